"""Forks (`grokinterp fork`, `experiments.fork_run`): exact continuation, replay between saved states,
changed settings, and clear errors. A parent of 200 tiny steps; each fork trains at most 140 more."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from grokinterp.cli import main
from grokinterp.config import ConfigError
from grokinterp.experiments import FORK_FILE, ReplayMismatchWarning, fork_run
from grokinterp.runs import train_run
from grokinterp.runs import Run, load_tensors, read_metrics_csv, save_tensors, step_filename

from conftest import tiny_config

# State every 60 steps, checkpoints every 20: step 120 has state, step 100 lies between states 60 and 120.
CONFIG = tiny_config(train__steps=200, train__ckpt_every=20, train__state_every=60)
VOLATILE = {"wall_time_s", "steps_per_s", "forked_from"}


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Run:
    return train_run(CONFIG, tmp_path_factory.mktemp("fork") / "parent", progress=False)


def _same_rows(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        set(x) == set(y) and all(x[k] == y[k] or (math.isnan(x[k]) and math.isnan(y[k])) for k in x)
        for x, y in zip(a, b))


def assert_bit_identical_from(fork: Run, parent: Run, step: int) -> None:
    """Every checkpoint from `step` on, the final Adam moments and step counts, metrics and summary."""
    assert fork.steps == [s for s in parent.steps if s >= step]
    for s in fork.steps:
        mine, theirs = fork.state_dict(s), parent.state_dict(s)
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), f"parameters differ at step {s}"
    last = parent.state_steps[-1]
    assert fork.state_steps[-1] == last
    mine, theirs = fork.optimizer_state(last), parent.optimizer_state(last)
    moments = [k for k in theirs if k.startswith("optim/")]
    assert any(k.endswith("/exp_avg_sq") for k in moments) and mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs if k != "trainer/wall_time_s")
    assert _same_rows(read_metrics_csv(fork.path / "metrics.csv"), read_metrics_csv(parent.path / "metrics.csv"))
    a, b = fork.summary, parent.summary
    assert {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}


def test_fork_at_a_saved_state_with_unchanged_config_is_bit_identical(parent, tmp_path):
    assert 120 in parent.state_steps
    fork = fork_run(parent, 120, tmp_path / "fork", progress=False)
    record = json.loads((fork.path / FORK_FILE).read_text())
    assert record["state_step"] == 120 and record["replayed_steps"] == 0 and record["exact"] is True
    assert fork.config == parent.config
    assert_bit_identical_from(fork, parent, 120)


def test_fork_between_saved_states_replays_the_parent_exactly(parent, tmp_path):
    assert 100 in parent.steps and 100 not in parent.state_steps and 60 in parent.state_steps
    fork = fork_run(parent, 100, tmp_path / "fork", progress=False)
    record = json.loads((fork.path / FORK_FILE).read_text())
    assert (record["state_step"], record["replayed_steps"], record["exact"]) == (60, 40, True)
    assert record["max_abs_weight_diff"] == 0.0
    # the state the fork starts from equals what the parent had at 100 as far as the parent saved it: its weights
    assert all(torch.equal(v, parent.state_dict(100)[k]) for k, v in fork.state_dict(100).items())
    assert_bit_identical_from(fork, parent, 100)


def test_fork_with_changed_weight_decay_records_its_parent_and_diverges(parent, tmp_path, capsys):
    out = tmp_path / "wd0"
    assert main(["fork", str(parent.path), "--step", "100", "--out", str(out), "--no-progress",
                 "--optim.weight_decay=0.0", "--train.steps=240"]) == 0
    fork = Run(out)
    assert fork.config.optim.weight_decay == 0.0 and parent.config.optim.weight_decay == 1.0
    assert fork.config.train.steps == 240 and fork.summary["final_step"] == 240
    record = json.loads((out / FORK_FILE).read_text())
    assert record["parent"] == str(parent.path.resolve()) and record["step"] == 100
    assert record["overrides"] == {"optim.weight_decay": 0.0, "train.steps": 240}
    assert fork.summary["forked_from"] == {"run": str(parent.path.resolve()), "step": 100}
    # the parent's rows up to the fork step, and at it the same parameters (row s describes theta_s)
    mine, theirs = read_metrics_csv(out / "metrics.csv"), read_metrics_csv(parent.path / "metrics.csv")
    assert _same_rows(mine[:100], theirs[:100])
    assert mine[100]["train_loss"] == theirs[100]["train_loss"]
    assert mine[101]["weight_norm_sq"] != theirs[101]["weight_norm_sq"]
    # AdamW's decoupled decay shrinks every weight by lr * wd per step: without it the norm falls less
    assert mine[120]["weight_norm_sq"] > theirs[120]["weight_norm_sq"]
    final = fork.state_dict(200)
    assert not all(torch.equal(v, parent.state_dict(200)[k]) for k, v in final.items())
    assert fork.state_steps[0] == 100 and fork.steps[0] == 100 and fork.steps[-1] == 240


def test_bad_steps_and_overrides_are_clear_errors(parent, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"no checkpoint at step 30; fork at a checkpoint step, e\.g\. 20 or 40"):
        fork_run(parent, 30, tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match=r"--step 999 is outside the run: .* checkpoints from 0 to 200"):
        fork_run(parent, 999, tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match=r"cannot change \['task.p'\]"):
        fork_run(parent, 100, tmp_path / "a", {"task.p": 29}, progress=False)
    with pytest.raises(ConfigError, match="unknown config key 'optim.nope'"):
        fork_run(parent, 100, tmp_path / "a", {"optim.nope": 1}, progress=False)
    assert not (tmp_path / "a").exists()
    assert main(["fork", str(parent.path), "--step", "999", "--out", str(tmp_path / "b")]) == 2
    assert "--step 999 is outside the run" in capsys.readouterr().err
    assert main(["fork", str(tmp_path / "nothing"), "--step", "0", "--out", str(tmp_path / "b")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert main(["fork", str(parent.path), "--step", "20", "--out", str(parent.path)]) == 2
    assert "is the parent run itself" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_an_existing_fork_needs_resume_with_the_same_arguments(parent, tmp_path):
    out = tmp_path / "fork"
    fork_run(parent, 180, out, {"train.steps": 200}, progress=False)
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        fork_run(parent, 180, out, {"train.steps": 200}, progress=False)
    with pytest.raises(ConfigError, match="is not a fork of .* at step 160"):
        fork_run(parent, 160, out, {"train.steps": 200}, resume=True, progress=False)
    # an interrupted fork (its last checkpoint and state lost) resumes to the parent's end, bit-identically
    for folder in ("ckpt", "state"):
        (out / folder / step_filename(200)).unlink()
    fork = fork_run(parent, 180, out, {"train.steps": 200}, resume=True, progress=False)
    assert all(torch.equal(v, parent.state_dict(200)[k]) for k, v in load_tensors(out / "ckpt" / step_filename(200)).items())
    assert fork.summary["forked_from"]["step"] == 180
    shutil.rmtree(out)


def test_a_replay_that_does_not_reproduce_the_parent_is_flagged(parent, tmp_path):
    """A parent whose checkpoint at the fork step disagrees with its replay (here: tampered with) gives a
    warning, `exact: false` in fork.json, and a fork that starts from the checkpoint's weights."""
    copy = tmp_path / "parent"
    shutil.copytree(parent.path, copy)
    weights = load_tensors(copy / "ckpt" / step_filename(100))
    weights["embed.W_E"][0, 0] += 0.5
    save_tensors(copy / "ckpt" / step_filename(100), weights)
    (tmp_path / "fork" / "ckpt").mkdir(parents=True)  # a fork set-up killed earlier, at another step
    save_tensors(tmp_path / "fork" / "ckpt" / step_filename(80), weights)
    with pytest.warns(ReplayMismatchWarning, match="did not reproduce it bit for bit .max .weight diff. 0.5"):
        fork = fork_run(copy, 100, tmp_path / "fork", {"train.steps": 120}, progress=False)
    record = json.loads((fork.path / FORK_FILE).read_text())
    assert record["exact"] is False and record["max_abs_weight_diff"] == pytest.approx(0.5)
    assert fork.steps == [100, 120] and torch.equal(fork.state_dict(100)["embed.W_E"], weights["embed.W_E"])
