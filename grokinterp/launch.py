"""Train a run into its directory, or resume one bit-identically after any kill."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import ConfigError, RunConfig
from .runs import (
    MetricsAppender,
    Run,
    RunError,
    RunLock,
    atomic_write_json,
    list_steps,
    load_tensors,
    read_metrics_csv,
    remove_stale_temp_files,
    save_tensors,
    step_filename,
    versions,
)
from .tasks import make_task
from .train import ACC_THRESHOLD, Trainer, build_plugins, make_trainer


def summarize(trainer: Trainer, rows: list[dict], wall_time_s: float, steps_run: int) -> dict:
    """summary.json: status, milestones, gap, final accuracies, speed (definitions in DESIGN.md)."""
    m = trainer.milestones
    if m.diverged_step is not None:
        status = "diverged"
    elif m.grokking_step is not None:
        status = "grokked"
    elif m.memorization_step is not None:
        status = "memorized"
    else:
        status = "not_learned"
    steps = np.array([r["step"] for r in rows])
    test_acc = np.array([r["test_acc"] for r in rows], dtype=float)
    evaluated = ~np.isnan(test_acc)
    stable = None
    if evaluated.any() and test_acc[evaluated][-1] >= ACC_THRESHOLD:
        below = np.flatnonzero(evaluated & (test_acc < ACC_THRESHOLD))
        after = steps[evaluated & (steps > (steps[below[-1]] if len(below) else -1))]
        stable = int(after[0]) if len(after) else None
    no_memorize = None
    if m.memorization_step is not None:
        seen = evaluated & (steps <= m.memorization_step)
        no_memorize = bool(test_acc[seen][-1] >= 0.5) if seen.any() else None
    last = rows[-1] if rows else {}
    gap = None if m.grokking_step is None or m.memorization_step is None else m.grokking_step - m.memorization_step
    return {
        "status": status,
        "memorization_step": m.memorization_step,
        "grokking_step": m.grokking_step,
        "gap": gap,
        "stable_grokking_step": stable,
        "generalizes_without_memorizing": no_memorize,
        "diverged_step": m.diverged_step,
        "final_step": trainer.step,
        "final_train_acc": _finite_or_none(last.get("train_acc")),
        "final_test_acc": _finite_or_none(last.get("test_acc")),
        "wall_time_s": round(wall_time_s, 3),
        "steps_per_s": round(steps_run / wall_time_s, 2) if wall_time_s > 0 else None,
    }


def _finite_or_none(x):
    return None if x is None or not math.isfinite(x) else x


def _check_resumable(out: Path, config: RunConfig) -> None:
    stored = Run(out).config
    if stored != config:
        a, b = stored.to_dict(), config.to_dict()
        diff = [f"{s}.{k}: {a[s][k]!r} -> {b[s][k]!r}" for s in a if isinstance(a[s], dict) for k in a[s]
                if k in b.get(s, {}) and a[s][k] != b[s][k] and s != "plugins"]
        raise ConfigError(f"--resume with a config that differs from {out}/config.json ({'; '.join(diff) or 'plugins'}); "
                          "drop the overrides to resume as it was")


def _latest_resume_point(out: Path) -> tuple[int, dict, dict, list[dict]] | None:
    """The newest step with a loadable checkpoint, a loadable state and the metrics of every step before it
    (a corrupt newest one, or one whose metrics.csv rows are missing, is skipped); with those rows."""
    metrics = read_metrics_csv(out / "metrics.csv") if (out / "metrics.csv").is_file() else []
    recorded = {int(r["step"]) for r in metrics}
    both = sorted(set(list_steps(out / "ckpt")) & set(list_steps(out / "state")), reverse=True)
    for step in both:
        if not recorded.issuperset(range(step)):
            continue
        try:
            model_state = load_tensors(out / "ckpt" / step_filename(step))
            trainer_state = load_tensors(out / "state" / step_filename(step))
        except RunError:
            continue
        rows = [{k: (int(v) if k == "step" else v) for k, v in r.items()} for r in metrics if r["step"] < step]
        return step, model_state, trainer_state, rows
    return None


def train_run(config: RunConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Run:
    """Train `config` into the run directory `out` (or continue it with `resume=True`); returns the Run.

    Writes config.json, split, checkpoints every `train.ckpt_every` steps, resume state every
    `train.state_every`, metrics.csv (rows appended at every checkpoint, so a live run can be followed),
    and summary.json at the end.
    """
    out = Path(out)
    build_plugins(config)  # an unknown plug-in or bad plug-in arguments: a ConfigError before anything is written
    if resume and (out / "config.json").is_file():
        _check_resumable(out, config)  # read-only: a refused resume touches nothing
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    # The lock first: a second writer is told about the first, and `exists` cannot change under us.
    # fork_rng: training seeds (or, resuming, restores) the global RNG; the caller's is given back after.
    with RunLock(out), torch.random.fork_rng(devices=[]):
        exists = (out / "config.json").is_file()
        if exists and not resume:
            raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
        if exists:
            _check_resumable(out, config)  # again, under the lock (a run may have been created meanwhile)
        remove_stale_temp_files(out)  # left by a writer killed mid-write
        if not exists:
            # config.json last: it marks a run, so a kill before it leaves a folder that a resume starts afresh
            task = make_task(config.task)
            save_tensors(out / "split.safetensors", {"train_idx": task.train_idx, "test_idx": task.test_idx})
            atomic_write_json(out / "config.json", {"config": config.to_dict(), "versions": versions()},
                              sort_keys=False)  # plug-in order matters
        else:
            split = load_tensors(out / "split.safetensors")
            task = make_task(config.task, (split["train_idx"], split["test_idx"]))
        # torch seeds its global RNG at random at start-up: seed it from the config so that the RNG state a
        # state file records, and anything drawing from it, is a function of config.json (the plug-ins'
        # generator uses model.seed; +1 keeps the two streams apart)
        torch.manual_seed(config.model.seed + 1)
        trainer = make_trainer(config, task)
        rows: list[dict] = []
        wall_before = 0.0
        point = _latest_resume_point(out) if resume and exists else None
        if point is not None:
            step, model_state, trainer_state, rows = point
            trainer.model.load_state_dict(model_state, strict=True)
            trainer.load_state_dict(trainer_state)
            wall_before = float(trainer_state.get("trainer/wall_time_s", torch.tensor(0.0)))
        atomic_write_json(out / "summary.json", {"status": "running", "final_step": trainer.step})
        metrics = MetricsAppender(out / "metrics.csv", rows)  # rewound to the resume point
        return _loop(trainer, out, rows, wall_before, progress, metrics)


def _save_point(trainer: Trainer, out: Path, ckpt: bool, state: bool, wall_time_s: float,
                rows: list[dict] | None = None, metrics: MetricsAppender | None = None) -> None:
    """Checkpoint, then metrics.csv (`rows` appended, when given), then the state: a resume point (a state
    file) only ever exists once the metrics of every step before it are on disk."""
    name = step_filename(trainer.step)
    if ckpt:
        save_tensors(out / "ckpt" / name, trainer.model.state_dict())
    if rows is not None:
        metrics.write(rows)
    if state:
        tensors = trainer.state_dict()
        tensors["trainer/wall_time_s"] = torch.tensor(wall_time_s, dtype=torch.float64)
        save_tensors(out / "state" / name, tensors)


def _discard_from(out: Path, step: int) -> None:
    """Delete checkpoints and states at `step` and later: their parameters give a non-finite loss
    (they may hold NaN/inf weights), so the last one kept is the last good one."""
    for folder in (out / "ckpt", out / "state"):
        for s in list_steps(folder):
            if s >= step:
                (folder / step_filename(s)).unlink(missing_ok=True)


def _loop(trainer: Trainer, out: Path, rows: list[dict], wall_before: float, progress: bool,
          metrics: MetricsAppender) -> Run:
    train = trainer.config.train
    start = time.perf_counter()
    elapsed = lambda: wall_before + time.perf_counter() - start  # noqa: E731
    if trainer.step == 0:
        _save_point(trainer, out, ckpt=True, state=True, wall_time_s=0.0)
    bar = tqdm(total=train.steps, initial=trainer.step, disable=not progress, desc=out.name, unit="step",
               dynamic_ncols=True, mininterval=0.5)
    last_test = (math.nan, math.nan)
    while not trainer.should_stop():
        row = trainer.train_step()
        rows.append(row)
        if trainer.milestones.diverged_step is not None:
            break
        if not math.isnan(row["test_acc"]):
            last_test = (row["test_loss"], row["test_acc"])
        if trainer.step % train.ckpt_every == 0 or trainer.step % train.state_every == 0:
            state = trainer.step % train.state_every == 0
            _save_point(trainer, out, ckpt=True, state=state, wall_time_s=elapsed(), rows=rows, metrics=metrics)
        if row["step"] % 10 == 0:
            bar.set_postfix_str(
                f"train {row['train_loss']:.3g}/{row['train_acc']:.3f} test {last_test[0]:.3g}/{last_test[1]:.3f}",
                refresh=False)
        bar.update(1)
    bar.close()
    if trainer.milestones.diverged_step is None:
        rows.append(trainer.final_row())
        _save_point(trainer, out, ckpt=True, state=True, wall_time_s=elapsed(), rows=rows, metrics=metrics)
    else:
        _discard_from(out, trainer.milestones.diverged_step)
        metrics.write(rows)
    summary = summarize(trainer, rows, elapsed(), trainer.step)
    atomic_write_json(out / "summary.json", summary)
    if progress:
        print(json.dumps({k: summary[k] for k in ("status", "memorization_step", "grokking_step", "gap", "wall_time_s")}))
    return Run(out)
