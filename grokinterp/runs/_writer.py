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

import json
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from ._files import (
    RunLock,
    atomic_write_bytes,
    list_steps,
    read_json,
    remove_stale_temp_files,
    save_tensors,
    step_filename,
    versions,
    write_metrics_csv,
)
from ._integrity import METRICS_KEY, lines_digest, metrics_record, seal_json
from ._metrics import MetricsAppender

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
        self._record: dict | None = None  # {"rows", "sha256"} of the metrics.csv written last
        self._lock = RunLock(self.path)
        self._appender: MetricsAppender | None = None

    def __enter__(self) -> "RunWriter":
        self._created = [p for p in (self.path, self.path / "ckpt", self.path / "state") if not p.exists()]
        self._written: list[Path] = [] if self._lock.path.exists() else [self._lock.path]  # removed while held:
        self._lock.__enter__()  # safe, since a second writer opening it meanwhile is refused by our flock
        try:
            self.existed = (self.path / CONFIG_FILE).is_file()
            if self._check is not None:
                self._check(self.existed)
            remove_stale_temp_files(self.path)  # left by a writer killed mid-write
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and not self.existed and not (self.path / CONFIG_FILE).is_file():
                self._remove_new_run()  # a new run that failed before config.json: leave nothing behind
        finally:
            self._lock.__exit__(exc_type, exc, tb)

    def _remove_new_run(self) -> None:
        """Delete the files this writer wrote, its LOCK and the folders it created (if they are empty)."""
        for path in self._written:
            path.unlink(missing_ok=True)
        for folder in sorted(self._created, key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                pass  # not empty (someone else's files) or already gone: keep it

    def write_split(self, train_idx: Tensor, test_idx: Tensor) -> None:
        """split.safetensors: the train/test row indices, so any replay is exact."""
        self._save(self.path / SPLIT_FILE, {"train_idx": train_idx, "test_idx": test_idx})

    def write_config(self, config: dict, sort_keys: bool = False, **extra) -> None:
        """config.json: `{"config": config, "versions": versions(), **extra}`; write it after the files a new
        run needs (it marks a run). Key order is kept unless `sort_keys` (plug-in order matters)."""
        self.write_json(CONFIG_FILE, {"config": config, "versions": versions(), **extra}, sort_keys=sort_keys)

    def write_checkpoint(self, step: int, state_dict: dict[str, Tensor]) -> None:
        """ckpt/step_N.safetensors: the model's state dict at `step`."""
        self._save(self.path / "ckpt" / step_filename(step), state_dict)

    def write_state(self, step: int, tensors: dict[str, Tensor], metrics_rows: int | None = None) -> None:
        """state/step_N.safetensors: everything else a resume needs at `step`, with the hash of the metrics.csv
        rows written before it (so a resume point's rows are checkable); `metrics_rows`: record the hash of
        that many rows of the metrics.csv on disk instead (a repaired state)."""
        record = self._record
        if metrics_rows is not None:
            data = (self.path / METRICS_FILE).read_bytes()
            record = {"rows": metrics_rows, "sha256": lines_digest(data, metrics_rows) or ""}
        meta = {} if record is None else {"metrics_rows": str(record["rows"]), "metrics_sha256": str(record["sha256"])}
        self._save(self.path / "state" / step_filename(step), tensors, meta)

    def discard_from(self, step: int) -> None:
        """Delete the checkpoints and states at `step` and later (a diverged run: their parameters may hold
        NaN/inf, so the last one kept is the last good one)."""
        for folder in (self.path / "ckpt", self.path / "state"):
            for s in list_steps(folder):
                if s >= step:
                    (folder / step_filename(s)).unlink(missing_ok=True)

    def write_metrics(self, rows: list[dict]) -> None:
        """metrics.csv: one row per step, the whole file at once; its hash goes into the next state file and
        summary.json."""
        self._written.append(self.path / METRICS_FILE)
        self._record = metrics_record(write_metrics_csv(self.path / METRICS_FILE, rows))

    def start_metrics(self, rows: list[dict]) -> None:
        """Rewind metrics.csv to `rows` (atomically: a resume drops the rows of the steps it redoes and any torn
        tail a kill left), ready for `append_metrics`."""
        self._written.append(self.path / METRICS_FILE)
        self._appender = MetricsAppender(self.path / METRICS_FILE, rows)
        self._record = self._appender.record()

    def append_metrics(self, rows: list[dict]) -> None:
        """Grow metrics.csv to `rows` by appending the rows not yet written, as whole lines (a reader following a
        live run never sees a torn row); `rows` only ever grows after `start_metrics`."""
        if self._appender is None:
            raise RuntimeError("append_metrics before start_metrics")
        self._appender.write(rows)
        self._record = self._appender.record()

    def write_summary(self, summary: dict) -> None:
        """summary.json, with the hash of the metrics.csv this writer wrote (if it wrote one)."""
        summary = {k: v for k, v in summary.items() if k != METRICS_KEY}
        if self._record is not None:
            summary[METRICS_KEY] = self._record
        self.write_json(SUMMARY_FILE, summary)

    def update_summary(self, **fields) -> None:
        """Add `fields` to the existing summary.json (checked first), keeping its metrics hash."""
        summary, _ = read_json(self.path / SUMMARY_FILE)
        if self._record is None and isinstance(summary.get(METRICS_KEY), dict):
            self._record = summary[METRICS_KEY]
        self.write_summary({**summary, **fields})

    def write_json(self, name: str, obj, sort_keys: bool = True) -> None:
        """A JSON file of the run (config.json, summary.json, a fork's fork.json), with its `_sha256`."""
        text = json.dumps(seal_json(obj), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"
        self._written.append(self.path / name)
        atomic_write_bytes(self.path / name, text.encode())

    def _save(self, path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
        self._written.append(path)
        save_tensors(path, tensors, metadata=metadata)
