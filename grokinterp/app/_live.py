"""Following runs as they train: their metrics.csv read incrementally, whether a writer holds them, their status.

A training run appends whole rows to metrics.csv at every checkpoint (`grokinterp.runs.RunWriter.append_metrics`)
and holds an flock on `<run>/LOCK` while it writes. `MetricsTail` reads only the bytes appended since
its last call (and starts over when the file was replaced, as a resume rewinds it); `writer_alive`
asks the kernel's lock table (/proc/locks) whether the LOCK is held, without taking it (a probe that
took it, even shared, could make a starting run fail).
"""

from __future__ import annotations

import csv
import json
import math
import os
import threading
import time
from pathlib import Path

import numpy as np

from ..runs import Milestones

CURVE_COLUMNS = ("step", "train_loss", "test_loss", "train_acc", "test_acc")


class MetricsTail:
    """The curve columns of one metrics.csv, extended by what was appended since the last `read()`.

    >>> import tempfile, pathlib; path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> _ = path.write_text("step,train_acc\\n0,0.5\\n1,0.7\\n2,0.")   # the last row is still being written
    >>> MetricsTail(path).read()["train_acc"].tolist()
    [0.5, 0.7]
    """

    def __init__(self, path: Path, columns: tuple[str, ...] = CURVE_COLUMNS):
        self.path, self.columns = Path(path), columns
        self._reset(None)

    def _reset(self, inode) -> None:
        self.inode, self.offset, self.index = inode, 0, None
        self.values: dict[str, list[float]] = {c: [] for c in self.columns}

    def read(self) -> dict[str, np.ndarray]:
        """Column -> float64 array over the complete rows on disk (NaN: not measured)."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self._reset(None)
            return self.arrays()
        with f:
            st = os.fstat(f.fileno())
            if st.st_ino != self.inode or st.st_size < self.offset:  # replaced (a resume rewinds it) or shrunk
                self._reset(st.st_ino)
            f.seek(self.offset)
            chunk = f.read(max(st.st_size - self.offset, 0))
        chunk = chunk[: chunk.rfind(b"\n") + 1]  # whole lines only: a row being appended is not a row yet
        self.offset += len(chunk)
        lines = chunk.decode().splitlines()
        if self.index is None and lines:
            header = next(csv.reader([lines.pop(0)]))
            self.index = {c: header.index(c) if c in header else None for c in self.columns}
        for cells in csv.reader(lines):
            for c in self.columns:
                i = self.index[c]
                self.values[c].append(float(cells[i]) if i is not None and i < len(cells) and cells[i] != "" else math.nan)
        return self.arrays()

    def arrays(self) -> dict[str, np.ndarray]:
        return {c: np.asarray(v, dtype=np.float64) for c, v in self.values.items()}


def _held_locks() -> set[tuple[int, int, int]] | None:
    """(major, minor, inode) of every flock held for writing, from /proc/locks; None where it cannot be read."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    held = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[3] == "WRITE":
            try:
                major, minor, inode = parts[5].split(":")
                held.add((int(major, 16), int(minor, 16), int(inode)))
            except ValueError:
                continue
    return held


def writer_alive(run_path: Path, held: set | None = None) -> bool:
    """Whether a process holds the run's LOCK (is training it now). Never takes the lock."""
    lock = Path(run_path) / "LOCK"
    try:
        st = os.stat(lock)
    except FileNotFoundError:
        return False
    held = _held_locks() if held is None else held
    if held is not None:
        return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in held
    try:  # no /proc/locks: the pid the writer recorded, if it still exists
        pid = int(lock.read_text().strip() or 0)
        os.kill(pid, 0)
        return pid > 0
    except (ValueError, OSError):
        return False


def milestones(curves: dict[str, np.ndarray]) -> tuple[int | None, int | None]:
    """(memorization step, grokking step) of the curve columns, as summary.json defines them (`runs.Milestones`)."""
    m = Milestones.of_columns(curves["step"], curves["train_acc"], curves["test_acc"])
    return m.memorization_step, m.grokking_step


class RunWatcher:
    """Metrics tails and speed estimates of many runs, shared by the server's threads."""

    def __init__(self):
        self._tails: dict[Path, MetricsTail] = {}
        self._seen: dict[Path, tuple[float, float, float]] = {}  # first (time, step) seen running, and the last step
        self._lock = threading.Lock()

    def curves(self, run_path: Path) -> dict[str, np.ndarray]:
        with self._lock:
            tail = self._tails.setdefault(run_path, MetricsTail(run_path / "metrics.csv"))
            return tail.read()

    def status(self, name: str, run_path: Path, held: set | None) -> dict:
        """One row of the Runs table: status, last step, milestones, speed, last test accuracy."""
        curves = self.curves(run_path)
        summary = _read_json(run_path / "summary.json")
        config = _read_json(run_path / "config.json").get("config", {})
        live = writer_alive(run_path, held)
        status = summary.get("status", "unknown")
        if status == "running" and not live:
            status = "stopped"  # killed or stopped: `resume` continues it
        mem, grok = milestones(curves)
        if status not in ("running", "stopped"):
            mem, grok = summary.get("memorization_step", mem), summary.get("grokking_step", grok)
        steps = curves["step"]
        last = int(steps[-1]) if len(steps) else None
        test = curves["test_acc"][np.isfinite(curves["test_acc"])]
        speed = summary.get("steps_per_s") if status not in ("running",) else self._speed(run_path, last)
        return {"id": name, "run": name, "status": status, "step": last,
                "of": config.get("train", {}).get("steps"), "memorized": mem, "grokked": grok,
                "gap": None if mem is None or grok is None else grok - mem,
                "steps/s": None if speed is None else round(float(speed), 1),
                "test acc": None if not len(test) else round(float(test[-1]), 4)}

    def _speed(self, run_path: Path, step: int | None) -> float | None:
        """Steps per second since this server first saw the run running (metrics come in per checkpoint)."""
        if step is None:
            return None
        now = time.monotonic()
        with self._lock:
            first = self._seen.get(run_path)
            if first is None or step < first[1]:
                self._seen[run_path] = (now, step, step)
                return None
            t0, s0, _ = first
            self._seen[run_path] = (t0, s0, step)
        return (step - s0) / (now - t0) if step > s0 and now > t0 else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
