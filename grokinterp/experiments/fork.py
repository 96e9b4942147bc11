"""Fork a run: continue it from step N with changed settings, exactly where the parent was at N.

    fork_run("checkpoints/nanda", step=6000, out="checkpoints/nanda_wd025", overrides={"optim.weight_decay": 0.25})

What the fork starts from, at step N (which must have a checkpoint in the parent):
- the parent's weights at N (`ckpt/step_N`);
- the optimizer moments, RNG states, milestones and plug-in states of the parent at N. A parent saves
  them only every `train.state_every` steps, so when N has none they come from the nearest state S < N,
  replayed forward from S to N with the PARENT's config (same thread count): training is deterministic
  on CPU, so the replay reproduces the parent's steps S..N-1 bit for bit, and then the new settings apply.
  The replay is checked against the parent (its metric rows and weights at N); `fork.json` says whether
  it was exact, and a warning is raised when it was not (e.g. another thread count or device).

The fork is an ordinary run directory (`grokinterp train --resume`, `analyze`, `report` all work on it):
- metrics.csv holds the parent's rows 0..N-1, then the fork's own rows from N on (so the curves of
  parent and fork coincide up to N, and milestones reached before N keep their steps);
- ckpt/ and state/ start at N (the parent's earlier checkpoints stay in the parent);
- fork.json records the parent (path and name), the fork step, the state step S it was replayed from,
  the overrides and whether the replay was exact; summary.json gets `forked_from` {run, step}.

Only training settings may change (optim.*, train.*, plugins.*): task.* and model.* define the model
and data being continued.
"""

from __future__ import annotations

import json
from collections.abc import Callable
import math
import time
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import ConfigError, RunConfig, apply_overrides
from ..runs import Run, RunError, RunWriter, list_steps, read_metrics_csv, step_filename

FORK_FILE = "fork.json"
FROZEN_SECTIONS = ("task", "model")  # a fork continues the parent's model on the parent's data


class ReplayMismatchWarning(UserWarning):
    """Replaying the parent from its saved state did not reproduce it bit for bit."""


def fork_config(parent: RunConfig, overrides: dict) -> RunConfig:
    """The parent's config with `overrides` ({"optim.weight_decay": 0.25, ...}) applied; task.* and model.*
    keys are refused (ConfigError naming them)."""
    frozen = sorted(k for k in overrides if k.partition(".")[0] in FROZEN_SECTIONS)
    if frozen:
        raise ConfigError(f"a fork cannot change {frozen}: it continues the parent's model on the parent's task; "
                          "only optim.*, train.* and plugins.* may change (train a new run instead)")
    return apply_overrides(parent, overrides)


def _nearest_state(run: Run, step: int) -> int:
    states = [s for s in run.state_steps if s <= step]
    if not states:
        raise ConfigError(f"{run.path} has no saved optimizer state at or before step {step} (state/ holds "
                          f"{run.state_steps[:5]}...); it cannot be forked there")
    return states[-1]


def _check_step(run: Run, step: int) -> None:
    ckpts = run.steps
    if not ckpts:
        raise ConfigError(f"{run.path} has no checkpoints; train it first")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0 or step > ckpts[-1]:
        raise ConfigError(f"--step {step!r} is outside the run: {run.path} has checkpoints from {ckpts[0]} to "
                          f"{ckpts[-1]}")
    if step not in ckpts:
        below = max((s for s in ckpts if s < step), default=None)
        above = min((s for s in ckpts if s > step), default=None)
        near = " or ".join(str(s) for s in (below, above) if s is not None)
        raise ConfigError(f"{run.path} has no checkpoint at step {step}; fork at a checkpoint step, e.g. {near} "
                          f"(checkpoints every {run.config.train.ckpt_every} steps)")


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if not a.numel():
        return 0.0
    a, b = a.double(), b.double()
    return float(torch.where(a == b, 0.0, (a - b).abs()).max())  # equal infinities (buffers) count as 0


def replay_threads(run: Run) -> int | None:
    """The thread count a bit-exact replay of `run` needs: its config's, else the one config.json recorded."""
    return run.config.train.threads or run.record.get("versions", {}).get("threads")


def start_trainer(run: Run, state_step: int | None):
    """(Trainer, recorded wall time) of `run` at `state_step`, from its checkpoint and state there; None: a fresh
    trainer at step 0, exactly as `train_run` starts one. Call inside `torch.random.fork_rng`: it sets the
    global RNG."""
    from ..train import make_trainer

    torch.manual_seed(run.config.model.seed + 1)  # as train_run, before building plug-ins
    trainer = make_trainer(run.config, run.task)
    if state_step is None:
        return trainer, 0.0
    trainer.model.load_state_dict(run.checked_state_dict(state_step), strict=True)
    trainer_state = run.optimizer_state(state_step)
    trainer.load_state_dict(trainer_state)
    return trainer, float(trainer_state.get("trainer/wall_time_s", torch.tensor(0.0)))


def replay_parent(run: Run, step: int, progress: bool = False) -> tuple[dict, dict, list[dict], dict]:
    """The parent's full training state at `step`, rebuilt from its nearest saved state S <= step.

    Loads the weights and state at S into a Trainer with the parent's config, then trains S -> step (no
    files written), at the parent's thread count.

    Returns:
        (the parent's weights at `step` (its checkpoint), trainer state dict at `step` (as
        `Trainer.state_dict()`, with the wall time), replayed metric rows of steps S..step-1,
        info {state_step, replayed_steps, exact, max_abs_weight_diff, replay_s}); `exact` compares the
        replayed rows with the parent's metrics.csv and the weights with `ckpt/step_<step>`.
    """
    state_step = _nearest_state(run, step)
    threads = replay_threads(run)
    before = torch.get_num_threads()
    started = time.perf_counter()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        with torch.random.fork_rng(devices=[]):  # the state restores the global RNG; give the caller's back after
            trainer, wall = start_trainer(run, state_step)
            rows = []
            for _ in tqdm(range(step - state_step), disable=not progress, desc=f"replay {run.path.name} "
                          f"{state_step}->{step}", unit="step", dynamic_ncols=True, mininterval=0.5):
                rows.append(trainer.train_step())
                if trainer.milestones.diverged_step is not None:
                    raise RunError(f"replaying {run.path} from step {state_step} diverged at step "
                                   f"{trainer.milestones.diverged_step}; fork at a step with saved state instead")
            model_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            state = trainer.state_dict()
    finally:
        torch.set_num_threads(before)
    recorded = {int(r["step"]): r for r in read_metrics_csv(run.path / "metrics.csv")}
    rows_exact = all(int(r["step"]) in recorded and all(_same(float(v), recorded[int(r["step"])].get(k, math.nan))
                                                        for k, v in r.items()) for r in rows)
    saved = run.state_dict(step)
    diff = max((_max_abs_diff(model_state[k], saved[k]) for k in saved), default=0.0)
    state["trainer/wall_time_s"] = torch.tensor(wall + time.perf_counter() - started, dtype=torch.float64)
    info = {"state_step": state_step, "replayed_steps": step - state_step,
            "exact": bool(rows_exact and all(torch.equal(model_state[k], saved[k]) for k in saved)),
            "max_abs_weight_diff": diff, "replay_s": round(time.perf_counter() - started, 3)}
    return saved, state, rows, info


def fork_run(parent: str | Path | Run, step: int, out: str | Path, overrides: dict | None = None,
             resume: bool = False, progress: bool = True,
             edit_weights: Callable[[dict], dict] | None = None) -> Run:
    """Continue `parent` from `step` into the new run directory `out`, with config `overrides` applied.

    Args:
        parent: the run to fork (a Run or its directory); it is only read.
        step: a checkpoint step of the parent, 0 <= step <= its last checkpoint.
        out: the fork's run directory (must not hold a run, unless `resume`).
        overrides: dotted config keys -> values, e.g. {"optim.weight_decay": 0.25, "train.steps": 8000};
            only optim.*, train.* and plugins.* (see `fork_config`).
        resume: continue an interrupted fork in `out` (same parent, step and overrides).
        progress: progress bars for the replay and the training.
        edit_weights: state dict -> state dict applied once to the starting weights at `step`, before the fork's
            first checkpoint is written (e.g. a neuron transplant); written before config.json, so a fork killed
            before it starts afresh and a resumed fork never sees unedited weights.

    Returns:
        The fork's Run. With no overrides it ends bit-identical to the parent (same thread count).

    Raises:
        ConfigError: a bad step, override or `out`; RunError: an unreadable parent or a locked `out`.
    """
    from ..runs import train_run

    parent = parent if isinstance(parent, Run) else Run(parent)
    out = Path(out)
    overrides = dict(overrides or {})
    config = fork_config(parent.config, overrides)
    _check_step(parent, step)
    if out.resolve() == parent.path.resolve():
        raise ConfigError(f"--out {out} is the parent run itself; choose a new directory")
    record = {"parent": str(parent.path.resolve()), "parent_name": parent.path.name, "step": step,
              "overrides": overrides}
    if (out / "config.json").is_file():
        if not resume:
            raise ConfigError(f"{out} already holds a run; pass --resume to continue an interrupted fork, "
                              "or choose another --out")
        stored = json.loads((out / FORK_FILE).read_text()) if (out / FORK_FILE).is_file() else {}
        if {k: stored.get(k) for k in record} != record:
            raise ConfigError(f"{out} is not a fork of {parent.path} at step {step} with overrides {overrides} "
                              f"({FORK_FILE}: {stored or 'missing'}); use the fork's own arguments to resume")
    else:
        _write_start(parent, step, out, config, record, progress, edit_weights)
    fork = train_run(config, out, resume=True, progress=progress)
    with RunWriter(out) as writer:
        writer.update_summary(forked_from={"run": record["parent"], "step": step})
    return fork


def _write_start(parent: Run, step: int, out: Path, config: RunConfig, record: dict, progress: bool,
                 edit_weights: Callable[[dict], dict] | None = None) -> None:
    """The fork's directory at step N: split, fork.json, ckpt and state at N, metrics rows < N, and
    config.json last (it marks a run, so a kill before it leaves a folder that a new fork starts afresh)."""
    model_state, trainer_state, replayed, info = replay_parent(parent, step, progress)
    if edit_weights is not None:
        model_state = edit_weights(model_state)
    if not info["exact"]:
        warnings.warn(f"replaying {parent.path} from step {info['state_step']} to {step} did not reproduce it "
                      f"bit for bit (max |weight diff| {info['max_abs_weight_diff']:.3g}; another thread count or "
                      "device?); the fork starts from the parent's checkpoint weights and the replayed optimizer "
                      "state", ReplayMismatchWarning, stacklevel=3)
    earlier = [r for r in read_metrics_csv(parent.path / "metrics.csv") if r["step"] < info["state_step"]]
    rows = [{k: (int(v) if k == "step" else v) for k, v in r.items()} for r in earlier + replayed]
    def check(exists: bool) -> None:
        if exists:
            raise ConfigError(f"{out} already holds a run (created meanwhile); choose another --out")

    with RunWriter(out, check=check) as writer:
        for folder in ("ckpt", "state"):  # left by a fork set-up killed before config.json, maybe at another step
            for s in list_steps(out / folder):
                (out / folder / step_filename(s)).unlink()
        split = parent.task
        writer.write_split(split.train_idx, split.test_idx)
        writer.write_json(FORK_FILE, {**record, **info})
        writer.write_checkpoint(step, model_state)
        writer.write_metrics(rows)
        writer.write_state(step, trainer_state)
        writer.write_config(config.to_dict())
