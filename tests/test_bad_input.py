"""One clear message for every bad file and flag, and bounded inputs (issue 17).

Each damaged file is made by the test; each command runs in this process through `cli.main`, so an exception
escaping it (a traceback) fails the test. Memory limits use a small ceiling (`GROKINTERP_MEMORY_BYTES`), never
a real allocation.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from grokinterp.cli import main
from grokinterp.runs import RunWriter, save_tensors, step_filename

from conftest import train_tiny

SCHEDULE = dict(train__steps=60, train__ckpt_every=20, train__state_every=20)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("bad") / "run", **SCHEDULE)


def legacy(run_dir: Path) -> None:
    """As a run written before hashes were recorded."""
    for path in run_dir.rglob("*.safetensors"):
        save_file(load_file(path), path)
    for path in run_dir.glob("*.json"):
        obj = json.loads(path.read_text())
        obj.pop("_sha256", None), obj.pop("_metrics", None)
        path.write_text(json.dumps(obj))


def edit_json(name: str, fn):
    def damage(d: Path) -> None:
        obj = json.loads((d / name).read_text())
        fn(obj)
        (d / name).write_text(json.dumps(obj))
    return damage


def metrics_lines(fn):
    def damage(d: Path) -> None:
        lines = (d / "metrics.csv").read_text().splitlines(keepends=True)
        (d / "metrics.csv").write_text("".join(fn(lines)))
    return damage


def edit_ckpt(fn):
    def damage(d: Path) -> None:
        path = d / "ckpt" / step_filename(40)
        tensors = load_file(path)
        fn(tensors)
        save_tensors(path, tensors)
    return damage


def flip_split(d: Path) -> None:
    data = bytearray((d / "split.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (d / "split.safetensors").write_bytes(bytes(data))


DAMAGE = {  # case -> (damage, the file the message must name)
    "config-invalid-json": (lambda d: (d / "config.json").write_text("{oops"), "config.json"),
    "config-a-list": (lambda d: (d / "config.json").write_text("[1, 2]"), "config.json"),
    "config-no-config": (lambda d: (d / "config.json").write_text('{"versions": {}}'), "config.json"),
    "config-edited-p": (edit_json("config.json", lambda o: o["config"]["task"].update(p=29)), "config.json"),
    "summary-invalid": (lambda d: (d / "summary.json").write_text("{"), "summary.json"),
    "metrics-cut-mid-line": (metrics_lines(lambda lines: lines[:30] + [lines[30][:6]]), "metrics.csv"),
    "metrics-garbage": (lambda d: (d / "metrics.csv").write_bytes(b"\x00\xff\xfe\x81 junk\n"), "metrics.csv"),
    "metrics-non-numeric": (metrics_lines(lambda lines: lines[:5] + [lines[5].replace(",", ",x", 1)] + lines[6:]),
                            "metrics.csv"),
    "metrics-header-only": (metrics_lines(lambda lines: lines[:1]), "metrics.csv"),
    "metrics-missing": (lambda d: (d / "metrics.csv").unlink(), "metrics.csv"),
    "metrics-duplicated-step": (metrics_lines(lambda lines: lines[:9] + [lines[8]] + lines[9:]), "metrics.csv"),
    "split-flipped": (flip_split, "split.safetensors"),
    "ckpt-wrong-keys": (edit_ckpt(lambda t: t.update(foo=t.pop("embed.W_E"))), step_filename(40)),
    "ckpt-wrong-shape": (edit_ckpt(lambda t: t.update({"embed.W_E": torch.zeros(3, 3)})), step_filename(40)),
    "ckpt-nan": (edit_ckpt(lambda t: t["unembed.W_U"].fill_(float("nan"))), step_filename(40)),
}


@pytest.mark.parametrize("hashes", ["hashed", "legacy"])
def test_every_bad_file_is_one_line_naming_it(pristine, tmp_path, capsys, hashes):
    for name, (damage, file_name) in DAMAGE.items():
        run_dir = tmp_path / hashes / name
        shutil.copytree(pristine, run_dir)
        if hashes == "legacy":
            legacy(run_dir)
        damage(run_dir)
        code = main(["analyze", str(run_dir), "--no-progress", "--analyses", "spectra"])
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1, (name, captured)
        assert file_name in lines[0] and "error" in lines[0], (name, lines)
        assert not list(run_dir.rglob("*.tmp")), name


def test_a_run_killed_before_its_first_resume_point_is_analysed(pristine, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(pristine, run_dir)
    for path in [run_dir / "metrics.csv", *(run_dir / "state").glob("step_00000[2-9]*"),
                 *(run_dir / "ckpt").glob("step_00000[4-9]*")]:
        path.unlink()
    (run_dir / "summary.json").unlink()
    assert main(["analyze", str(run_dir), "--no-progress", "--analyses", "spectra"]) == 0
    out = capsys.readouterr().out
    assert "recorded no metrics yet" in out and (run_dir / "report.html").is_file()


def test_output_paths_are_checked_before_anything_runs(pristine, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [(["train", "--out", str(a_file)], str(a_file)),
             (["train", "--out", str(a_file / "sub")], str(a_file)),
             (["analyze", str(pristine), "--out", str(tmp_path)], "is a directory"),
             (["compare", str(pristine), "--out", str(tmp_path)], "is a directory"),
             (["analyze", str(pristine), "--cache-dir", str(a_file)], "--cache-dir")]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and words in err and "--" in err, (argv, err)


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"),
                                         (errno.EACCES, "permission denied")])
def test_write_failures_are_one_line_and_leave_no_temp_files(pristine, tmp_path, capsys, monkeypatch, code, words):
    import grokinterp.runs._files as files

    run_dir = tmp_path / "run"
    shutil.copytree(pristine, run_dir)

    def refuse(fd):
        raise OSError(code, "refused")

    monkeypatch.setattr(files.os, "fsync", refuse)
    assert main(["analyze", str(run_dir), "--no-progress", "--analyses", "spectra"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err and str(run_dir) in err, err
    assert not list(run_dir.rglob("*.tmp"))


def test_a_read_only_run_is_analysed_elsewhere(pristine, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(pristine, run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    out, cache = tmp_path / "elsewhere" / "report.html", tmp_path / "cache"
    assert main(["analyze", str(run_dir), "--no-progress", "--analyses", "spectra", "--out", str(out),
                 "--cache-dir", str(cache)]) == 0
    assert out.is_file() and list(cache.rglob("*.safetensors"))
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # nothing written in the run


@pytest.mark.parametrize("flag, words", [
    ("--optim.lr=1e999", "optim.lr=inf must be a finite number"),
    ("--task.frac_train=1e-9", "empty train or test split"),
    ("--train.device=banana", "train.device='banana' is not a device"),
    ("--train.device=cuda", "use --train.device=cpu"),
    ("--train.threads=100000", "exceeds the"),
    ("--task.p=1000000007", "task.p=1000000007 must be a prime between 2 and"),
    ("--model.n_layers=100000", "needs about"),
])
def test_unusable_configs_exit_2_and_write_nothing(tmp_path, capsys, flag, words):
    if flag == "--train.device=cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    assert main(["train", "--no-progress", "--out", str(out), flag]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err, err
    assert not out.exists()


def test_memory_estimate_is_checked_against_the_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GROKINTERP_MEMORY_BYTES", str(10_000_000))  # a small ceiling: tiny fits, quick does not
    tiny = ["--task.p=23", "--model.d_model=32", "--model.d_head=8", "--model.d_mlp=64", "--train.steps=2"]
    assert main(["train", "--no-progress", "--out", str(tmp_path / "quick")]) == 2
    err = capsys.readouterr().err
    assert "needs about 0.0211 GB" in err and "0.01 GB is available" in err and not (tmp_path / "quick").exists()
    threads = torch.get_num_threads()
    try:
        assert main(["train", "--no-progress", "--out", str(tmp_path / "tiny"), *tiny]) == 0
    finally:
        torch.set_num_threads(threads)


def test_a_new_run_failing_after_the_lock_leaves_nothing(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(ValueError, match="boom"):
        with RunWriter(out) as writer:
            writer.write_split(torch.arange(3), torch.arange(3, 5))
            writer.write_checkpoint(0, {"w": torch.zeros(2)})
            raise ValueError("boom")
    assert not out.exists()
    keep = tmp_path / "kept"
    (keep / "mine.txt").parent.mkdir()
    (keep / "mine.txt").write_text("a user's file")
    with pytest.raises(ValueError):
        with RunWriter(keep):
            raise ValueError("boom")
    assert sorted(p.name for p in keep.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("spec, words", [
    ('{"grid": [1, 2]}', "'grid' must be a JSON object"),
    ('{"grid": "model.seed=0:3"}', "'grid' must be a JSON object"),
    ('{"grid": {"model.seed": [0]}, "overrides": [1]}', "'overrides' must be a JSON object"),
    ('{"grid": {"model.seed": [0]}, "threads": "2"}', "'threads' must be a JSON int"),
    ('{"grid": {"model.seed": [0]}, "seed_keys": "model.seed"}', "'seed_keys' must be a JSON list"),
    (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    ('{"grid": {"model.seed": "0:100000000"}}', "at most 100,000 runs"),
    ('{"grid": {"model.seed": "0:1000", "task.seed": "0:1000"}}', "the grid has 1,000,000 runs"),
])
def test_malformed_sweep_specs_exit_2(tmp_path, capsys, spec, words):
    path = tmp_path / "spec.json"
    path.write_bytes(spec if isinstance(spec, bytes) else spec.encode())
    assert main(["sweep", "--spec", str(path), "--dry-run", "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err and str(path) in err or "runs" in err, err


def test_usage_and_config_errors_answer_before_torch_loads():
    probe = ("import sys; from grokinterp.cli import main; codes = [main(a) for a in ({})]; "
             "assert 'torch' not in sys.modules, 'torch imported'; print(codes)")
    argvs = [["train", "--optim.lrr=1"], ["train", "--optim.lr=1e999"], ["analyze", "/no/such/run"],
             ["verify", "/no/such/run"], ["sweep", "--grid", "model.seed=0:100000000", "--dry-run"]]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", probe.format(argvs)], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0 and proc.stdout.strip() == str([2] * len(argvs)), proc.stderr
    assert elapsed < 5, f"{elapsed:.1f} s"  # about 0.2 s on an idle machine; torch alone takes 4
