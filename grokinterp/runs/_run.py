"""Read a run directory lazily: config, metrics, summary, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import ConfigError, RunConfig
from ..model import Transformer, build_model
from ..tasks import ModularTask, make_task
from ._files import RunError, list_steps, load_tensors, read_json, records_hashes, recovery_hint, step_filename
from ._metrics import read_metrics_columns
from ._integrity import METRICS_KEY
from ._checks import check_split, check_state_dict, metrics_record, read_checked_metrics
from ..milestones import FINAL_STATUSES


class Run:
    """Read a run directory without the training code: config, metrics, summary, checkpoints.

    Example (needs a trained run, e.g. from `make train`):

        run = Run("checkpoints/quick")
        run.metrics["test_acc"], run.steps, run.model(run.steps[-1])
        run.metrics_frame()          # a pandas DataFrame, one row per step
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise RunError(f"{self.path} is not a run directory (no config.json); train one with `grokinterp train --out {self.path}`")
        self._metrics: dict[str, np.ndarray] | None = None
        self._task: ModularTask | None = None
        self._config: RunConfig | None = None
        self._record: dict | None = None
        self.hashed = records_hashes(self.path)  # written with content hashes: then every file must carry one

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, steps={len(self.steps)}, status={self.summary.get('status')!r})"

    @property
    def record(self) -> dict:
        """config.json as written (`config`, `versions`, an importer's `source`), checked against its hash."""
        if self._record is None:
            self._record, _ = read_json(self.path / "config.json", self.hashed)
        return self._record

    @property
    def config(self) -> RunConfig:
        if self._config is None:
            path = self.path / "config.json"
            if not isinstance(self.record.get("config"), dict):
                raise RunError(f"{path} has no 'config' object; {recovery_hint(path)}")
            try:
                self._config = RunConfig.from_dict(self.record["config"])
            except (ConfigError, TypeError, ValueError) as e:
                raise RunError(f"{path} holds an invalid config ({e}); {recovery_hint(path)}") from None
        return self._config

    @property
    def summary(self) -> dict:
        """summary.json (status, milestones, wall time), checked against its hash; {} while none is written."""
        path = self.path / "summary.json"
        if not path.is_file():
            return {}
        summary, _ = read_json(path, self.hashed)
        return {k: v for k, v in summary.items() if k != METRICS_KEY}

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """Dense metric series: column name -> float array indexed like `metrics["step"]` (NaN = not measured).

        Checked against the hash recorded by the last resume point or summary.json; {} while a run has
        written no metrics yet (it writes them with its first resume point)."""
        if self._metrics is None:
            path = self.path / "metrics.csv"
            if not path.is_file():
                recorded, where = metrics_record(self.path)
                if recorded is not None or self.summary.get("status") in FINAL_STATUSES:
                    raise RunError(f"{path} is missing, but {where or 'summary.json'} says the run wrote it; "
                                   f"{recovery_hint(path)}")
                return {}  # stopped before its first resume point: nothing recorded yet
            trained = "source" not in self.record
            metrics = read_metrics_columns(path, read_checked_metrics(self.path, self.hashed), consecutive=trained)
            final = self.summary.get("final_step") if self.summary.get("status") in FINAL_STATUSES[:-1] else None
            last = int(metrics["step"][-1]) if len(metrics.get("step", ())) else None
            if trained and isinstance(final, int) and last != final:
                raise RunError(f"{path} ends at step {last} but the run finished at step {final} (summary.json): "
                               f"rows are missing; {recovery_hint(path)}")
            self._metrics = metrics
        return self._metrics

    def metrics_frame(self):
        """metrics.csv as a pandas DataFrame: one row per step (index "step"), one column per metric.

        Needs pandas (`pip install pandas`); `Run.metrics` gives the same columns as numpy arrays.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Run.metrics_frame() needs pandas (pip install pandas); Run.metrics holds the same "
                              "columns as numpy arrays") from None
        columns = dict(self.metrics)
        index = pd.Index(columns.pop("step").astype(np.int64), name="step")
        return pd.DataFrame(columns, index=index)

    @property
    def steps(self) -> list[int]:
        """Steps that have a model checkpoint."""
        return list_steps(self.path / "ckpt")

    @property
    def state_steps(self) -> list[int]:
        """Steps that have optimizer state."""
        return list_steps(self.path / "state")

    @property
    def task(self) -> ModularTask:
        if self._task is None:
            self._task = check_split(self.path / "split.safetensors", self.config.task, "source" not in self.record,
                                     self.hashed)
        return self._task

    def state_dict(self, step: int) -> dict[str, Tensor]:
        """The HookedTransformer state dict at `step` (reads that one file only)."""
        if step not in self.steps:
            raise RunError(f"no checkpoint at step {step} in {self.path}; available: {_span(self.steps)}")
        return load_tensors(self.path / "ckpt" / step_filename(step), self.hashed)

    def checked_state_dict(self, step: int, reference: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """`state_dict(step)`, its names, shapes, dtypes and finiteness checked against this run's model."""
        reference = build_model(self.config).state_dict() if reference is None else reference
        state = self.state_dict(step)
        check_state_dict(self.path / "ckpt" / step_filename(step), state, reference)
        return state

    def flat_weights(self, steps, suffixes: tuple[str, ...]) -> np.ndarray:
        """[n_steps, D] float64: the checkpoint tensors whose names end with one of `suffixes` (in sorted name
        order), flattened and concatenated, one row per step; only those tensors are read.

        Raises:
            ValueError: a checkpoint holds none of them.
        """
        rows = []
        for step in steps:
            tensors = self.state_dict(int(step))  # the whole file: its hash covers all of it
            names = sorted(k for k in tensors if k.endswith(tuple(suffixes)))
            if not names:
                raise ValueError(f"{self.path} checkpoint {step} has no tensor named *{'|*'.join(suffixes)}")
            rows.append(np.concatenate([tensors[k].reshape(-1).to(torch.float64).numpy() for k in names]))
        return np.stack(rows)

    def optimizer_state(self, step: int) -> dict[str, Tensor]:
        """Adam moments and the rest of the resume state at `step` (see `state_steps`)."""
        if step not in self.state_steps:
            raise RunError(f"no optimizer state at step {step} in {self.path}; available: {_span(self.state_steps)}")
        return load_tensors(self.path / "state" / step_filename(step), self.hashed)

    def model(self, step: int | None = None, device: str = "cpu") -> Transformer:
        """The model at `step` (default: the last checkpoint), in eval mode."""
        if step is None and not self.steps:
            raise RunError(f"{self.path} has no checkpoints yet (ckpt/ is empty)")
        step = self.steps[-1] if step is None else step
        model = build_model(self.config)
        model.load_state_dict(self.checked_state_dict(step, model.state_dict()), strict=True)
        return model.to(device).eval()


def _span(steps: list[int]) -> str:
    if not steps:
        return "none"
    return f"{len(steps)} steps from {steps[0]} to {steps[-1]}"
