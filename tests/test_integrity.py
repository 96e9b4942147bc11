"""Integrity of what is on disk (issue 17): content hashes verified on read, `verify`, `repair`, a cache keyed
on what it read, and runs written before hashes were recorded still loading.

Every damaged file here is made by the test from one tiny trained run (120 steps, a few seconds).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from grokinterp.analysis import replay
from grokinterp.cli import main
from grokinterp.experiments import repair_run
from grokinterp.runs import Run, RunError, save_tensors, step_filename, verify_run

from conftest import train_tiny

SCHEDULE = dict(train__steps=120, train__ckpt_every=20, train__state_every=40)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("integrity") / "run", **SCHEDULE)


@pytest.fixture
def run_dir(pristine, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(pristine, out)
    return out


def flip(path: Path, offset: int, n: int = 4) -> None:
    data = bytearray(path.read_bytes())
    for i in range(n):
        data[offset + i] ^= 0x5A
    path.write_bytes(bytes(data))


def strip_hashes(run_dir: Path) -> None:
    """Rewrite every file as a run written before hashes were recorded would hold it."""
    for path in run_dir.rglob("*.safetensors"):
        save_file(load_file(path), path)
    for path in run_dir.glob("*.json"):
        obj = json.loads(path.read_text())
        obj.pop("_sha256", None)
        obj.pop("_metrics", None)
        path.write_text(json.dumps(obj))


def test_flipped_tensor_bytes_are_detected_on_load_and_by_verify(run_dir, capsys):
    ckpt = run_dir / "ckpt" / step_filename(60)
    flip(ckpt, ckpt.stat().st_size - 64)  # inside the tensor data: still a valid safetensors file
    with pytest.raises(RunError, match=f"{ckpt}.*does not match the content hash.*grokinterp repair"):
        Run(run_dir).model(60)
    report = verify_run(run_dir)
    assert [(f.path, f.status) for f in report.problems] == [(ckpt, "bad")]
    assert main(["verify", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert f"bad        {ckpt}" in out and "damaged" in out.splitlines()[-1]


def test_flipped_state_and_swapped_split_are_detected(run_dir):
    state = run_dir / "state" / step_filename(80)
    flip(state, state.stat().st_size - 16)
    split = load_file(run_dir / "split.safetensors")
    save_tensors(run_dir / "split.safetensors", {"train_idx": split["test_idx"], "test_idx": split["train_idx"]})
    with pytest.raises(RunError, match="split.safetensors has .* training pairs .* swapped"):
        Run(run_dir).task
    with pytest.raises(RunError, match=str(state)):
        Run(run_dir).optimizer_state(80)
    bad = {f.path.name for f in verify_run(run_dir).problems}
    assert bad == {"split.safetensors", step_filename(80)}


def test_duplicated_or_missing_metrics_step_is_an_error_naming_file_and_step(run_dir):
    path = run_dir / "metrics.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:11] + [lines[10]] + lines[11:]))  # step 9 twice
    with pytest.raises(RunError, match="metrics.csv does not match the hash"):
        Run(run_dir).metrics
    strip_hashes(run_dir)  # an older run: no hash, the step check alone must catch it
    with pytest.raises(RunError, match=r"metrics.csv line 12: step 9 is repeated"):
        Run(run_dir).metrics
    path.write_text("".join(lines[:11] + lines[12:]))  # step 10 missing
    with pytest.raises(RunError, match=r"metrics.csv line 12: steps 10 to 10 are missing"):
        Run(run_dir).metrics


def test_edited_json_is_detected(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    config["config"]["optim"]["lr"] = 0.5
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="config.json does not match the hash recorded in it"):
        Run(run_dir).config
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["grokking_step"] = 3
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RunError, match="summary.json does not match"):
        Run(run_dir).summary


def test_runs_written_without_hashes_still_load_and_verify_says_so(run_dir, pristine, capsys):
    strip_hashes(run_dir)
    run, reference = Run(run_dir), Run(pristine)
    for key, value in reference.model(100).state_dict().items():
        assert torch.equal(run.model(100).state_dict()[key], value)
    np.testing.assert_array_equal(run.metrics["test_acc"], reference.metrics["test_acc"])
    report = verify_run(run_dir)
    assert report.ok and report.count("unrecorded") == len(report.findings) and report.count("ok") == 0
    assert main(["verify", str(run_dir)]) == 0
    assert "unrecorded" in capsys.readouterr().out


def test_cache_is_keyed_on_the_checkpoint_it_read(run_dir):
    first = replay(run_dir, ["spectra"], progress=False)
    assert first.computed["spectra"] == len(first.steps)
    # replace step 60 by step 100's checkpoint: a valid file with its own valid hash
    shutil.copy(run_dir / "ckpt" / step_filename(100), run_dir / "ckpt" / step_filename(60))
    second = replay(run_dir, ["spectra"], progress=False)
    assert second.computed["spectra"] == 1
    i60, i100 = list(second.steps).index(60), list(second.steps).index(100)
    for key, values in second["spectra"].items():  # step 60 now holds step 100's model: same values, recomputed
        np.testing.assert_array_equal(values[i60], values[i100], err_msg=key)
    assert not np.array_equal(first["spectra"]["embed_gini"][i60], second["spectra"]["embed_gini"][i60])


def test_repair_regenerates_missing_and_corrupt_files_bit_identically(run_dir, pristine, capsys):
    (run_dir / "ckpt" / step_filename(20)).unlink()  # older than the newest state: a resume never rewrites it
    flip(run_dir / "ckpt" / step_filename(60), (run_dir / "ckpt" / step_filename(60)).stat().st_size - 64)
    flip(run_dir / "state" / step_filename(80), (run_dir / "state" / step_filename(80)).stat().st_size - 16)
    (run_dir / "ckpt" / step_filename(120)).unlink()
    assert {f.status for f in verify_run(run_dir).problems} == {"bad", "missing"}
    assert main(["repair", str(run_dir), "--no-progress"]) == 0
    assert "regenerated" in capsys.readouterr().out
    assert verify_run(run_dir).ok
    for step in (20, 60, 120):
        name = step_filename(step)
        assert (run_dir / "ckpt" / name).read_bytes() == (pristine / "ckpt" / name).read_bytes()
    state, original = load_file(run_dir / "state" / step_filename(80)), load_file(pristine / "state" / step_filename(80))
    assert all(torch.equal(state[k], original[k]) for k in original if k != "trainer/wall_time_s")


def test_repair_says_when_it_is_impossible_and_writes_nothing(run_dir):
    (run_dir / "ckpt" / step_filename(20)).unlink()
    path = run_dir / "metrics.csv"
    path.write_bytes(path.read_bytes().replace(b"\n5,", b"\n7,", 1))
    with pytest.raises(RunError, match="metrics.csv is damaged .* cannot be regenerated"):
        repair_run(run_dir)
    assert not (run_dir / "ckpt" / step_filename(20)).exists()


def test_temp_files_of_a_killed_replay_are_removed_and_live_ones_kept(run_dir):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = run_dir / "analysis" / "spectra" / "v1"
    folder.mkdir(parents=True)
    orphan = folder / f".prepare.json.{int(dead.stdout)}.abc123.tmp"  # as a SIGKILLed analyze leaves it
    live = folder / f".step_0000020.safetensors.{os.getpid()}.def456.tmp"  # another replay writing right now
    orphan.write_text("{"), live.write_bytes(b"half")
    replay(run_dir, ["spectra"], progress=False)
    assert not orphan.exists() and live.exists()
