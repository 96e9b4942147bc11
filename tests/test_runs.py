import csv
import json

import numpy as np
import pytest
import torch

import grokinterp.runs._files as runs_module
from grokinterp.cli import main
from grokinterp.config import all_keys
from grokinterp.runs import Run, RunError
from grokinterp.model import build_model


def test_run_directory_layout(tiny_run):
    files = {p.name for p in tiny_run.path.iterdir()}
    assert {"config.json", "split.safetensors", "metrics.csv", "summary.json", "ckpt", "state", "LOCK"} <= files
    meta = json.loads((tiny_run.path / "config.json").read_text())
    assert meta["versions"]["torch"] == torch.__version__ and "transformer-lens" in meta["versions"]
    assert meta["versions"]["threads"] >= 1
    assert not list(tiny_run.path.rglob("*.tmp"))


def test_checkpoint_schedule_and_metrics_are_dense(tiny_run):
    final = tiny_run.summary["final_step"]
    every = tiny_run.config.train.ckpt_every
    assert tiny_run.steps == sorted(set(range(0, final + 1, every)) | {final})
    m = tiny_run.metrics
    assert np.array_equal(m["step"], np.arange(final + 1))  # one row per step
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "weight_norm_sq", "grad_norm", "lr",
            "mom_grad_cos", "wnorm_sq/embed.W_E"} <= set(m)
    evaluated = ~np.isnan(m["test_acc"])
    assert np.array_equal(np.flatnonzero(evaluated)[:-1], np.arange(0, final, 5))
    with open(tiny_run.path / "metrics.csv") as f:  # readable without grokinterp
        header = next(csv.reader(f))
    assert header[0] == "step"


def test_loaded_model_reproduces_the_recorded_metrics(tiny_run):
    step = tiny_run.steps[len(tiny_run.steps) // 2]
    model = tiny_run.model(step)
    task = tiny_run.task
    with torch.no_grad():
        acc = (model(task.train_tokens)[:, -1].argmax(-1) == task.train_labels).float().mean().item()
        norm = sum(p.pow(2).sum().item() for p in model.parameters())
    assert acc == pytest.approx(tiny_run.metrics["train_acc"][step])
    assert norm == pytest.approx(tiny_run.metrics["weight_norm_sq"][step], rel=1e-5)


def test_checkpoint_is_exactly_a_hooked_transformer_state_dict(tiny_run):
    sd = tiny_run.state_dict(tiny_run.steps[-1])
    reference = build_model(tiny_run.config).state_dict()
    assert list(sorted(sd)) == sorted(reference)
    assert all(sd[k].shape == reference[k].shape for k in sd)


def test_reading_one_step_reads_one_file(tiny_run, monkeypatch):
    opened = []
    real = runs_module._read_bytes
    monkeypatch.setattr(runs_module, "_read_bytes", lambda path: opened.append(str(path)) or real(path))
    tiny_run.model(tiny_run.steps[3])
    assert [p for p in opened if p.endswith(".safetensors")] == [str(tiny_run.path / "ckpt" / "step_0000060.safetensors")]


def test_optimizer_state_holds_adam_moments(tiny_run):
    step = tiny_run.state_steps[-1]
    state = tiny_run.optimizer_state(step)
    assert int(state["trainer/step"]) == step
    assert state["optim/blocks.0.mlp.W_in/exp_avg_sq"].shape == (32, 64)
    assert float(state["optim/blocks.0.mlp.W_in/step"]) == step


def test_missing_steps_and_folders_are_clear_errors(tiny_run, tmp_path):
    with pytest.raises(RunError, match="no checkpoint at step 7"):
        tiny_run.model(7)
    with pytest.raises(RunError, match="not a run directory"):
        Run(tmp_path)


def test_help_documents_every_config_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for key, _, _ in all_keys():
        assert f"--{key}" in out


def test_print_config_applies_overrides(capsys):
    assert main(["train", "--preset", "nanda", "--optim.lr=3e-4", "--task.op", "mul", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["optim"]["lr"] == 3e-4 and config["task"]["op"] == "mul" and config["task"]["p"] == 113


def test_cli_misuse_exits_2(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["train", "--out", str(out), "--optim.lrr=1"]) == 2
    assert "optim.lrr" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


def test_metrics_frame_is_metrics_csv_as_a_dataframe(tiny_run):
    pd = pytest.importorskip("pandas")
    frame = tiny_run.metrics_frame()
    assert isinstance(frame, pd.DataFrame) and frame.index.name == "step"
    np.testing.assert_array_equal(frame.index.to_numpy(), tiny_run.metrics["step"].astype(np.int64))
    np.testing.assert_array_equal(frame["test_acc"].to_numpy(), tiny_run.metrics["test_acc"])


def test_top_level_api_is_what_a_notebook_starts_from():
    import grokinterp
    from grokinterp import Run as TopRun, preset as top_preset, replay as top_replay, train_run as top_train_run
    from grokinterp.analysis import replay
    from grokinterp.config import preset
    from grokinterp.runs import Run
    from grokinterp.runs import train_run

    assert (TopRun, top_preset, top_replay, top_train_run) == (Run, preset, replay, train_run)
    with pytest.raises(AttributeError, match="no attribute"):
        grokinterp.not_a_name  # noqa: B018


def test_run_writer_locks_cleans_temp_files_and_refuses_through_check(tmp_path):
    from grokinterp.runs import RunWriter

    out = tmp_path / "run"
    (out / "ckpt").mkdir(parents=True)
    stale = out / "ckpt" / ".step_0000000.safetensors.abc123.tmp"  # as a writer killed mid-write leaves it
    stale.write_bytes(b"half")
    with RunWriter(out) as writer:
        assert not writer.existed and not stale.exists()
        with pytest.raises(RunError, match="being written by another process"):
            with RunWriter(out):
                pass
        writer.write_split(torch.arange(3), torch.arange(3, 5))
        writer.write_config({"b": 1, "a": 2})
    stored = json.loads((out / "config.json").read_text())
    assert list(stored) == ["config", "versions", "_sha256"] and list(stored["config"]) == ["b", "a"]  # order kept

    def refuse(existed: bool) -> None:
        if existed:
            raise ValueError("already holds a run")

    stale.write_bytes(b"half")
    with pytest.raises(ValueError, match="already holds a run"):
        with RunWriter(out, check=refuse):
            pass
    assert stale.exists()  # a refusal touches nothing
    with RunWriter(out) as writer:  # and releases the lock
        assert writer.existed


def test_run_writer_appends_metrics_in_place_and_rewinds_on_start(tmp_path):
    """The training loop's metrics.csv: `start_metrics` rewinds it (a resume), `append_metrics` adds only the new
    rows to the same file (a reader following it by offset keeps its place), a new column rewrites it whole."""
    from grokinterp.runs import RunWriter, read_metrics_csv

    rows = [{"step": s, "train_acc": s / 10, "test_acc": float("nan") if s % 2 else s / 20} for s in range(6)]
    path = tmp_path / "run" / "metrics.csv"
    with RunWriter(tmp_path / "run") as writer:
        with pytest.raises(RuntimeError, match="before start_metrics"):
            writer.append_metrics(rows)
        writer.start_metrics(rows[:2])
        inode, before = path.stat().st_ino, path.read_bytes()
        writer.append_metrics(rows[:4])
        after = path.read_bytes()
        assert path.stat().st_ino == inode and after.startswith(before) and len(after) > len(before)
        writer.append_metrics(rows[:4])  # nothing new: nothing written
        assert [r["step"] for r in read_metrics_csv(path)] == [0, 1, 2, 3]
        writer.append_metrics(rows)
        assert path.stat().st_ino == inode
        assert path.read_text() == _written_whole(tmp_path, rows)  # appends read back as one write of all rows would
        writer.append_metrics(rows + [{"step": 6, "train_acc": 0.6, "test_acc": 0.3, "extra": 1.0}])
        assert path.stat().st_ino != inode and read_metrics_csv(path)[-1]["extra"] == 1.0
        writer.start_metrics(rows[:3])  # a resume at step 3
        assert [r["step"] for r in read_metrics_csv(path)] == [0, 1, 2]


def _written_whole(tmp_path, rows) -> str:
    from grokinterp.runs import write_metrics_csv

    write_metrics_csv(tmp_path / "whole.csv", rows)
    return (tmp_path / "whole.csv").read_text()
