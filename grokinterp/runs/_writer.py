"""The one writer of a run directory: training, forks, importers and the vision control all write through it.

The protocol: hold `<run>/LOCK` (a second writer is refused, naming the first), decide under the lock whether
the run already exists (its `config.json`), delete the temp files a killed writer left behind, write the
split and the other files, and `config.json` last when the run is new: it marks a run, so a kill before it
leaves a folder that the next writer starts afresh. Every file goes through temp file + fsync + rename.

    with RunWriter(out) as writer:
        if not writer.existed:
            writer.write_split(task.train_idx, task.test_idx)
            writer.write_config(config.to_dict())
        writer.write_checkpoint(0, model.state_dict())
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from ._files import (
    MetricsAppender,
    RunLock,
    atomic_write_json,
    remove_stale_temp_files,
    save_tensors,
    step_filename,
    versions,
    write_metrics_csv,
)

CONFIG_FILE = "config.json"
SPLIT_FILE = "split.safetensors"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.csv"


class RunWriter:
    """Context manager: lock a run directory, clean stale temp files, and write its files atomically.

    Args:
        path: the run directory (created if missing).
        check: called with `existed` (whether config.json was there) under the lock, before anything is
            touched; raise from it to refuse (e.g. "already holds a run") and the directory is left as it was.

    Attributes:
        path: the run directory; existed: whether it held a run (config.json) when the lock was taken.
    """

    def __init__(self, path: str | Path, check: Callable[[bool], None] | None = None):
        self.path = Path(path)
        self.existed = False
        self._check = check
        self._lock = RunLock(self.path)
        self._metrics: MetricsAppender | None = None

    def __enter__(self) -> "RunWriter":
        self._lock.__enter__()
        try:
            self.existed = (self.path / CONFIG_FILE).is_file()
            if self._check is not None:
                self._check(self.existed)
            remove_stale_temp_files(self.path)  # left by a writer killed mid-write
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lock.__exit__(*exc)

    def write_split(self, train_idx: Tensor, test_idx: Tensor) -> None:
        """split.safetensors: the train/test row indices, so any replay is exact."""
        save_tensors(self.path / SPLIT_FILE, {"train_idx": train_idx, "test_idx": test_idx})

    def write_config(self, config: dict, sort_keys: bool = False, **extra) -> None:
        """config.json: `{"config": config, "versions": versions(), **extra}`; write it after the files a new
        run needs (it marks a run). Key order is kept unless `sort_keys` (plug-in order matters)."""
        atomic_write_json(self.path / CONFIG_FILE, {"config": config, "versions": versions(), **extra},
                          sort_keys=sort_keys)

    def write_checkpoint(self, step: int, state_dict: dict[str, Tensor]) -> None:
        """ckpt/step_N.safetensors: the model's state dict at `step`."""
        save_tensors(self.path / "ckpt" / step_filename(step), state_dict)

    def write_state(self, step: int, tensors: dict[str, Tensor]) -> None:
        """state/step_N.safetensors: everything else a resume needs at `step`."""
        save_tensors(self.path / "state" / step_filename(step), tensors)

    def write_metrics(self, rows: list[dict]) -> None:
        """metrics.csv: one row per step, the whole file at once."""
        write_metrics_csv(self.path / METRICS_FILE, rows)

    def start_metrics(self, rows: list[dict]) -> None:
        """Rewind metrics.csv to `rows` (atomically: a resume drops the rows of the steps it redoes and any torn
        tail a kill left), ready for `append_metrics`."""
        self._metrics = MetricsAppender(self.path / METRICS_FILE, rows)

    def append_metrics(self, rows: list[dict]) -> None:
        """Grow metrics.csv to `rows` by appending the rows not yet written, as whole lines (a reader following a
        live run never sees a torn row); `rows` only ever grows after `start_metrics`."""
        if self._metrics is None:
            raise RuntimeError("append_metrics before start_metrics")
        self._metrics.write(rows)

    def write_summary(self, summary: dict) -> None:
        """summary.json."""
        atomic_write_json(self.path / SUMMARY_FILE, summary)

    def write_json(self, name: str, obj, sort_keys: bool = True) -> None:
        """Another JSON file of the run (e.g. a fork's fork.json)."""
        atomic_write_json(self.path / name, obj, sort_keys=sort_keys)
