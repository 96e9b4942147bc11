"""The training loop: repeat `Trainer.train_step` until `should_stop`, handing checkpoints to a writer.

`train_loop(trainer, writer, ...)` takes a checkpoint every `train.ckpt_every` steps (metrics grow by the rows
since the last one, so a live run can be followed), a resume point (state) every `train.state_every`, and the
summary at the end. Where those go is the writer's business: `grokinterp.runs.train_run` passes the
run-directory writer (`runs.RunWriter`), which sits above this layer; anything with the methods of
`CheckpointWriter` will do.
"""

from __future__ import annotations

import json
import math
import time
from typing import Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..milestones import summarize
from ._step import Trainer


class CheckpointWriter(Protocol):
    """Where the loop's output goes (`runs.RunWriter` is the one the library uses)."""

    def write_checkpoint(self, step: int, state_dict: dict[str, Tensor]) -> None: ...
    def write_state(self, step: int, tensors: dict[str, Tensor]) -> None: ...
    def append_metrics(self, rows: list[dict]) -> None: ...
    def write_summary(self, summary: dict) -> None: ...
    def discard_from(self, step: int) -> None: ...


def should_stop(trainer: Trainer) -> bool:
    """Stop after `train.steps`, at divergence, or `train.early_stop_after` steps after grokking."""
    train = trainer.config.train
    if trainer.milestones.diverged_step is not None or trainer.step >= train.steps:
        return True
    grok = trainer.milestones.grokking_step
    return train.early_stop_after is not None and grok is not None and trainer.step >= grok + train.early_stop_after


def _save_point(trainer: Trainer, writer: CheckpointWriter, ckpt: bool, state: bool, wall_time_s: float,
                rows: list[dict] | None = None) -> None:
    """Checkpoint, then the metrics (`rows` appended, when given), then the state: a resume point (a state
    file) only ever exists once the metrics of every step before it are written."""
    if ckpt:
        writer.write_checkpoint(trainer.step, trainer.model.state_dict())
    if rows is not None:
        writer.append_metrics(rows)
    if state:
        tensors = trainer.state_dict()
        tensors["trainer/wall_time_s"] = torch.tensor(wall_time_s, dtype=torch.float64)
        writer.write_state(trainer.step, tensors)


def train_loop(trainer: Trainer, writer: CheckpointWriter, rows: list[dict], wall_before: float = 0.0,
               progress: bool = True, name: str = "train") -> dict:
    """Train until `should_stop`, writing checkpoints, resume points and the summary; returns the summary.

    Args:
        trainer: a fresh `Trainer` (step 0) or one restored from a resume point.
        writer: receives checkpoints, states, metric rows and the summary.
        rows: the metric rows of the steps before `trainer.step` (grown in place).
        wall_before: training wall time spent before this call (a resumed run).
        progress: show a progress bar (labelled `name`) and print the summary's milestones at the end.
    """
    train = trainer.config.train
    start = time.perf_counter()
    elapsed = lambda: wall_before + time.perf_counter() - start  # noqa: E731
    if trainer.step == 0:
        _save_point(trainer, writer, ckpt=True, state=True, wall_time_s=0.0)
    bar = tqdm(total=train.steps, initial=trainer.step, disable=not progress, desc=name, unit="step",
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
        writer.discard_from(trainer.milestones.diverged_step)
        writer.append_metrics(rows)
    summary = summarize(trainer.milestones, rows, trainer.step, elapsed(), trainer.step)
    writer.write_summary(summary)
    if progress:
        print(json.dumps({k: summary[k] for k in ("status", "memorization_step", "grokking_step", "gap", "wall_time_s")}))
    return summary
