"""Training a run: `train_run` owns the loop, the checkpoint cadence, stopping and resume.

`train_run(config, out)` writes the run directory through `runs.RunWriter`, then repeats
`Trainer.train_step` (one full-batch step, `_step.py`) until `should_stop`: a checkpoint every
`train.ckpt_every` steps (metrics.csv grows by the rows since the last one, so a live run can be
followed), a resume point (state) every `train.state_every`, summary.json at the end. A killed run
resumes bit-identically on CPU at the same thread count (`resume=True`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import ConfigError, RunConfig
from ..plugins import build_plugins
from ..runs import (Run, RunError, RunWriter, check_metrics_bytes, csv_prefix, list_steps, load_tensors, read_metrics_csv,
                    read_tensors, records_hashes, state_metrics_record, step_filename, summarize)
from ..tasks import make_task
from ._resources import check_resources
from ._step import Trainer, make_trainer


def _check_resumable(out: Path, config: RunConfig) -> None:
    stored = Run(out).config
    if stored != config:
        a, b = stored.to_dict(), config.to_dict()
        diff = [f"{s}.{k}: {a[s][k]!r} -> {b[s][k]!r}" for s in a if isinstance(a[s], dict) for k in a[s]
                if k in b.get(s, {}) and a[s][k] != b[s][k] and s != "plugins"]
        raise ConfigError(f"--resume with a config that differs from {out}/config.json ({'; '.join(diff) or 'plugins'}); "
                          "drop the overrides to resume as it was")


def _latest_resume_point(out: Path) -> tuple[int, dict, dict, list[dict]] | None:
    """The newest step with a checkpoint and a state that match their hashes and the metrics of every step before
    it, matching the hash that state recorded (a damaged newest one is skipped); with those rows."""
    path = out / "metrics.csv"
    data = path.read_bytes() if path.is_file() else b""
    both = sorted(set(list_steps(out / "ckpt")) & set(list_steps(out / "state")), reverse=True)
    hashed = records_hashes(out)
    for step in both:
        try:
            model_state = load_tensors(out / "ckpt" / step_filename(step), hashed)
            trainer_state, meta, _ = read_tensors(out / "state" / step_filename(step), hashed)
            record = state_metrics_record(meta)
            check_metrics_bytes(path, data, record, f"state/{step_filename(step)}")
            head = csv_prefix(data, int(record["rows"])) if record else data
            metrics = read_metrics_csv(path, head) if head else []
        except RunError:
            continue
        if not {int(r["step"]) for r in metrics}.issuperset(range(step)):
            continue
        rows = [{k: (int(v) if k == "step" else v) for k, v in r.items()} for r in metrics if r["step"] < step]
        return step, model_state, trainer_state, rows
    return None


def train_run(config: RunConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Run:
    """Train `config` into the run directory `out` (or continue it with `resume=True`); returns the Run.

    Writes config.json, split, checkpoints every `train.ckpt_every` steps, resume state every
    `train.state_every`, metrics.csv (rows appended at every checkpoint, so a live run can be followed), and
    summary.json at the end.
    """
    out = Path(out)
    build_plugins(config)  # an unknown plug-in or bad plug-in arguments: a ConfigError before anything is written
    check_resources(config)  # a missing device, too many threads, too little memory: likewise
    if resume and (out / "config.json").is_file():
        _check_resumable(out, config)  # read-only: a refused resume touches nothing

    def check(exists: bool) -> None:  # under the lock: a second writer is told about the first
        if exists and not resume:
            raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
        if exists:
            _check_resumable(out, config)  # again, under the lock (a run may have been created meanwhile)

    threads_before = torch.get_num_threads()
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    try:
        # fork_rng: training seeds (or, resuming, restores) the global RNG; the caller's is given back after.
        with RunWriter(out, check=check) as writer, torch.random.fork_rng(devices=[]):
            if not writer.existed:
                # config.json last: it marks a run, so a kill before it leaves a folder that a resume starts afresh
                task = make_task(config.task)
                writer.write_split(task.train_idx, task.test_idx)
                writer.write_config(config.to_dict())  # key order kept: plug-in order matters
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
            point = _latest_resume_point(out) if resume and writer.existed else None
            if point is not None:
                step, model_state, trainer_state, rows = point
                trainer.model.load_state_dict(model_state, strict=True)
                trainer.load_state_dict(trainer_state)
                wall_before = float(trainer_state.get("trainer/wall_time_s", torch.tensor(0.0)))
            writer.start_metrics(rows)  # rewound to the resume point
            writer.write_summary({"status": "running", "final_step": trainer.step})
            return _loop(trainer, writer, rows, wall_before, progress)
    finally:
        torch.set_num_threads(threads_before)  # a notebook keeps its own thread count


def should_stop(trainer: Trainer) -> bool:
    """Stop after `train.steps`, at divergence, or `train.early_stop_after` steps after grokking."""
    train = trainer.config.train
    if trainer.milestones.diverged_step is not None or trainer.step >= train.steps:
        return True
    grok = trainer.milestones.grokking_step
    return train.early_stop_after is not None and grok is not None and trainer.step >= grok + train.early_stop_after


def _save_point(trainer: Trainer, writer: RunWriter, ckpt: bool, state: bool, wall_time_s: float,
                rows: list[dict] | None = None) -> None:
    """Checkpoint, then metrics.csv (`rows` appended, when given), then the state: a resume point (a state
    file) only ever exists once the metrics of every step before it are on disk."""
    if ckpt:
        writer.write_checkpoint(trainer.step, trainer.model.state_dict())
    if rows is not None:
        writer.append_metrics(rows)
    if state:
        tensors = trainer.state_dict()
        tensors["trainer/wall_time_s"] = torch.tensor(wall_time_s, dtype=torch.float64)
        writer.write_state(trainer.step, tensors)


def _discard_from(out: Path, step: int) -> None:
    """Delete checkpoints and states at `step` and later: their parameters give a non-finite loss
    (they may hold NaN/inf weights), so the last one kept is the last good one."""
    for folder in (out / "ckpt", out / "state"):
        for s in list_steps(folder):
            if s >= step:
                (folder / step_filename(s)).unlink(missing_ok=True)


def _loop(trainer: Trainer, writer: RunWriter, rows: list[dict], wall_before: float, progress: bool) -> Run:
    """Train until `should_stop`, writing checkpoints, resume points and the summary; returns the Run."""
    out, train = writer.path, trainer.config.train
    start = time.perf_counter()
    elapsed = lambda: wall_before + time.perf_counter() - start  # noqa: E731
    if trainer.step == 0:
        _save_point(trainer, writer, ckpt=True, state=True, wall_time_s=0.0)
    bar = tqdm(total=train.steps, initial=trainer.step, disable=not progress, desc=out.name, unit="step",
               dynamic_ncols=True, mininterval=0.5)
    last_test = (math.nan, math.nan)
    while not should_stop(trainer):
        row = trainer.train_step()
        rows.append(row)
        if trainer.milestones.diverged_step is not None:
            break
        if not math.isnan(row["test_acc"]):
            last_test = (row["test_loss"], row["test_acc"])
        if trainer.step % train.ckpt_every == 0 or trainer.step % train.state_every == 0:
            state = trainer.step % train.state_every == 0
            _save_point(trainer, writer, ckpt=True, state=state, wall_time_s=elapsed(), rows=rows)
        if row["step"] % 10 == 0:
            bar.set_postfix_str(
                f"train {row['train_loss']:.3g}/{row['train_acc']:.3f} test {last_test[0]:.3g}/{last_test[1]:.3f}",
                refresh=False)
        bar.update(1)
    bar.close()
    if trainer.milestones.diverged_step is None:
        rows.append(trainer.final_row())
        _save_point(trainer, writer, ckpt=True, state=True, wall_time_s=elapsed(), rows=rows)
    else:
        _discard_from(out, trainer.milestones.diverged_step)
        writer.append_metrics(rows)
    summary = summarize(trainer.milestones, rows, trainer.step, elapsed(), trainer.step)
    writer.write_summary(summary)
    if progress:
        print(json.dumps({k: summary[k] for k in ("status", "memorization_step", "grokking_step", "gap", "wall_time_s")}))
    return Run(out)
