"""Write an imported training run as an ordinary grokinterp run directory, with the writers of `runs`.

What a published file holds becomes: config.json (a `RunConfig` plus the `source` it came from),
split.safetensors, ckpt/step_N.safetensors (TL 3 state dicts, loaded strictly into grokinterp's
Transformer first), metrics.csv and summary.json. Metrics the file does not hold are NaN: loss
series come from the file; accuracy and the squared weight norm are measured on each imported
checkpoint (final position, all train / test pairs), so milestones have the checkpoint spacing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..config import RunConfig
from ..model import build_model
from ..runs import Milestones, Run, RunWriter, summarize
from ..tasks import make_task
from ..train import accuracy
from ._safe_load import ImportFormatError

METRIC_COLUMNS = ("test_loss", "test_acc", "train_loss", "train_acc", "weight_norm_sq")


@dataclass
class ImportedRun:
    """A published run in grokinterp terms, before it is written.

    Attributes:
        config: the run's RunConfig (what the file does not say is stated in `source["assumed"]`).
        train_idx, test_idx: int64 row indices into `make_task(config.task)`'s pairs.
        checkpoints: (step, TL 3 state dict) in step order; step s holds theta_s (before update s).
        losses: {step: {"train_loss": x, "test_loss": y}} as the file recorded them (either may be absent).
        source: where it came from: importer, file, what was read and what was assumed.
    """

    config: RunConfig
    train_idx: Tensor
    test_idx: Tensor
    checkpoints: list[tuple[int, dict[str, Tensor]]]
    losses: dict[int, dict[str, float]] = field(default_factory=dict)
    source: dict = field(default_factory=dict)


def check_state_dict(state_dict: dict[str, Tensor], config: RunConfig, where: str) -> None:
    """Every key and shape of a TL 3 state dict against the model `config` describes; one clear error naming
    the first wrong key (`where` says which checkpoint of which file)."""
    expected = build_model(config).state_dict()
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    if missing or extra:
        raise ImportFormatError(f"{where}: keys {missing} are missing and {extra} are unexpected for the config "
                                f"(n_layers={config.model.n_layers}, normalization={config.model.normalization_type})")
    for key, value in expected.items():
        if key.endswith(".attn.mask"):
            continue  # older TL 3 versions saved an [n_ctx, n_ctx] mask; the model keeps its own, as TL 3.9 does
        got = state_dict[key]
        if not isinstance(got, Tensor) or tuple(got.shape) != tuple(value.shape):
            shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
            raise ImportFormatError(f"{where}: {key} has shape {shape}, but the config "
                                    f"(p={config.task.p}, d_model={config.model.d_model}, ...) needs {tuple(value.shape)}")


MAX_IMPORT_STEPS = 10_000_000  # metrics rows an imported file may ask for, checked before they are built


def write_imported_run(imported: ImportedRun, out: str | Path, progress: bool = True) -> Run:
    """Write `imported` into the new run directory `out` and return it as a `Run`.

    Each checkpoint is loaded with strict=True into grokinterp's Transformer (a wrong key or shape raises
    ImportFormatError naming it) and measured: train/test accuracy and the squared weight norm.

    Raises:
        FileExistsError: `out` already holds a run.
    """
    out = Path(out)
    if (out / "config.json").is_file():
        raise FileExistsError(f"{out} already holds a run; choose another --out")
    config = imported.config
    last = max([*imported.losses, *(step for step, _ in imported.checkpoints)], default=0)
    if last > MAX_IMPORT_STEPS:
        raise ImportFormatError(f"{imported.source.get('file', 'the file')} describes step {last:,}; an import holds "
                                f"at most {MAX_IMPORT_STEPS:,} steps (one metrics row each)")
    task = make_task(config.task, (imported.train_idx, imported.test_idx))
    model = build_model(config).eval()
    measured: dict[int, dict[str, float]] = {}
    with RunWriter(out) as writer:
        for step, state_dict in tqdm(imported.checkpoints, disable=not progress, desc=f"import {out.name}",
                                     unit="ckpt", dynamic_ncols=True, mininterval=0.5):
            check_state_dict(state_dict, config, f"checkpoint at step {step}")
            model.load_state_dict(state_dict, strict=True)
            measured[step] = _measure(model, task)
            writer.write_checkpoint(step, model.state_dict())
        rows = _metric_rows(imported, measured)
        writer.write_metrics(rows)
        writer.write_split(task.train_idx, task.test_idx)
        writer.write_summary(_summary(rows, imported.source))
        # config.json last: it marks a run, so an interrupted import leaves no half-run behind a run's name
        writer.write_config(config.to_dict(), source=imported.source)
    return Run(out)


@torch.no_grad()
def _measure(model, task) -> dict[str, float]:
    logits = model(task.tokens, last_position_only=True)[:, -1]
    return {
        "train_acc": accuracy(logits[task.train_idx], task.labels[task.train_idx]),
        "test_acc": accuracy(logits[task.test_idx], task.labels[task.test_idx]),
        "weight_norm_sq": sum(p.detach().pow(2).sum().item() for p in model.parameters()),
    }


def _metric_rows(imported: ImportedRun, measured: dict[int, dict[str, float]]) -> list[dict[str, float]]:
    """One row per step from 0 to the last step the file describes; NaN where nothing is known."""
    last = max([*imported.losses, *measured], default=0)
    rows = []
    for step in range(last + 1):
        row: dict[str, float] = {"step": step, **{c: math.nan for c in METRIC_COLUMNS}}
        row.update(imported.losses.get(step, {}))
        row.update(measured.get(step, {}))
        rows.append(row)
    return rows


def _summary(rows: list[dict[str, float]], source: dict) -> dict:
    """summary.json as training writes it (`runs.summarize`), from the measured checkpoints' accuracies."""
    milestones = Milestones()
    for row in rows:
        if not math.isnan(row["train_acc"]):
            test_acc = None if math.isnan(row["test_acc"]) else row["test_acc"]
            milestones.update(int(row["step"]), row["train_acc"], test_acc)
    diverged = [int(r["step"]) for r in rows if any(math.isinf(r[c]) for c in METRIC_COLUMNS)]
    milestones.diverged_step = diverged[0] if diverged else None
    measured_rows = [r for r in rows if not math.isnan(r["train_acc"])]
    summary = summarize(milestones, measured_rows or rows[-1:], final_step=int(rows[-1]["step"]), wall_time_s=0.0,
                        steps_run=0)
    summary.update(wall_time_s=None, steps_per_s=None, milestone_resolution=_spacing(measured_rows), source=source)
    return summary


def _spacing(rows: list[dict[str, float]]) -> int | None:
    """The largest gap between measured checkpoints: how late a milestone may be found."""
    steps = [int(r["step"]) for r in rows]
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    return max(gaps) if gaps else None
