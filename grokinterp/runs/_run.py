"""Read a run directory lazily: config, metrics, summary, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors import safe_open
from torch import Tensor

from ..config import RunConfig
from ..model import Transformer, build_model
from ..tasks import ModularTask, make_task
from ._files import RunError, list_steps, load_tensors, read_metrics_columns, step_filename


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

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, steps={len(self.steps)}, status={self.summary.get('status')!r})"

    @property
    def config(self) -> RunConfig:
        data = json.loads((self.path / "config.json").read_text())
        return RunConfig.from_dict(data["config"])

    @property
    def summary(self) -> dict:
        path = self.path / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """Dense metric series: column name -> float array indexed like `metrics["step"]` (NaN = not measured)."""
        if self._metrics is None:
            self._metrics = read_metrics_columns(self.path / "metrics.csv")
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
            split = load_tensors(self.path / "split.safetensors")
            self._task = make_task(self.config.task, (split["train_idx"], split["test_idx"]))
        return self._task

    def state_dict(self, step: int) -> dict[str, Tensor]:
        """The HookedTransformer state dict at `step` (reads that one file only)."""
        if step not in self.steps:
            raise RunError(f"no checkpoint at step {step} in {self.path}; available: {_span(self.steps)}")
        return load_tensors(self.path / "ckpt" / step_filename(step))

    def flat_weights(self, steps, suffixes: tuple[str, ...]) -> np.ndarray:
        """[n_steps, D] float64: the checkpoint tensors whose names end with one of `suffixes` (in sorted name
        order), flattened and concatenated, one row per step; only those tensors are read.

        Raises:
            ValueError: a checkpoint holds none of them.
        """
        rows = []
        for step in steps:
            with safe_open(str(self.path / "ckpt" / step_filename(int(step))), framework="np") as f:
                names = sorted(k for k in f.keys() if k.endswith(tuple(suffixes)))
                if not names:
                    raise ValueError(f"{self.path} checkpoint {step} has no tensor named *{'|*'.join(suffixes)}")
                rows.append(np.concatenate([f.get_tensor(k).reshape(-1).astype(np.float64) for k in names]))
        return np.stack(rows)

    def optimizer_state(self, step: int) -> dict[str, Tensor]:
        """Adam moments and the rest of the resume state at `step` (see `state_steps`)."""
        if step not in self.state_steps:
            raise RunError(f"no optimizer state at step {step} in {self.path}; available: {_span(self.state_steps)}")
        return load_tensors(self.path / "state" / step_filename(step))

    def model(self, step: int | None = None, device: str = "cpu") -> Transformer:
        """The model at `step` (default: the last checkpoint), in eval mode."""
        step = self.steps[-1] if step is None else step
        model = build_model(self.config)
        model.load_state_dict(self.state_dict(step), strict=True)
        return model.to(device).eval()


def _span(steps: list[int]) -> str:
    if not steps:
        return "none"
    return f"{len(steps)} steps from {steps[0]} to {steps[-1]}"
