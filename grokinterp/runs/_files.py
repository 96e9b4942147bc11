"""The run directory's file primitives: atomic writes, safetensors / JSON / CSV, the lock.

```
<run>/config.json  split.safetensors  metrics.csv  summary.json  LOCK
<run>/ckpt/step_<NNNNNNN>.safetensors    the HookedTransformer state dict of theta_step
<run>/state/step_<NNNNNNN>.safetensors   optimizer, RNG and plug-in state at that step
```
Every file is written to a temporary name, fsynced and renamed. Only
safetensors, JSON and CSV are read back; nothing is unpickled.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor


STEP_RE = re.compile(r"^step_(\d{7,})\.safetensors$")
TEMP_RE = re.compile(r"^\..+\.tmp$")  # atomic_write_bytes' temp names: .<name>.<random>.tmp


class RunError(RuntimeError):
    """A run directory that cannot be used as asked (locked, missing, corrupted)."""


def step_filename(step: int) -> str:
    return f"step_{step:07d}.safetensors"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; run outputs are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temp files a killed writer left in `run_dir`, ckpt/ and state/ (call with the lock held)."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "ckpt", Path(run_dir) / "state"):
        if folder.is_dir():
            for name in os.listdir(folder):
                if TEMP_RE.match(name) and (folder / name).is_file():
                    (folder / name).unlink(missing_ok=True)
                    removed.append(folder / name)
    return removed


def atomic_write_json(path: Path, obj, sort_keys: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n").encode())


def save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(data, metadata=metadata))


def load_tensors(path: Path) -> dict[str, Tensor]:
    """Load a safetensors file; a missing, truncated or corrupted one raises RunError naming it."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise RunError(f"{path} is truncated or corrupted ({e}); delete it (a resume rewrites it)") from None


def write_csv(path: Path, rows: list[dict], cell) -> None:
    """Rows as CSV, atomically; columns in first-seen order, each value written as `cell(value)`."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    atomic_write_bytes(Path(path), _csv_text(rows, columns, cell, header=True).encode())


def _csv_text(rows: list[dict], columns: list[str], cell, header: bool) -> str:
    """CSV lines (each ending in a newline) of `rows` over `columns`, after the header line if `header`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_metrics_csv(path: Path, rows: list[dict[str, float]]) -> None:
    """All rows; NaN (not measured) is written as an empty cell, floats exactly (repr)."""
    write_csv(path, rows, _metric_cell)


def _metric_cell(x) -> str:
    return "" if _isnan(x) else _fmt(x)


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and x != x)


def _fmt(x) -> str:
    return str(int(x)) if isinstance(x, int) else repr(float(x))


class MetricsAppender:
    """metrics.csv of a run being trained, grown by whole rows so that a live run can be followed.

    Opening it rewinds the file to `rows` (atomically: a resume drops the rows of the steps it redoes and
    any torn tail a kill left). `write(rows)` then appends the rows not yet on disk in one `write` of
    whole lines (each ending in a newline) and fsyncs; a row with a column the header lacks makes it
    rewrite the whole file atomically instead. A reader (`read_metrics_csv`) takes only the lines that
    end in a newline, so it never sees a torn row, even while a write is under way or after a kill.
    """

    def __init__(self, path: Path, rows: list[dict]):
        self.path = Path(path)
        self.columns: list[str] = []
        self.count = 0
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        if rows:
            write_metrics_csv(self.path, rows)
        else:
            self.path.unlink(missing_ok=True)
        self.columns = list(dict.fromkeys(k for row in rows for k in row))  # write_csv's order: first seen
        self.count = len(rows)

    def write(self, rows: list[dict]) -> None:
        """Put `rows` on disk: `rows[:self.count]` are there already (the caller only ever appends)."""
        new = rows[self.count:]
        if not new:
            return
        if not self.count or any(k not in self.columns for row in new for k in row):
            self._rewrite(rows)
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            data = memoryview(_csv_text(new, self.columns, _metric_cell, header=False).encode())
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.count = len(rows)


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    """metrics.csv's rows (NaN = not measured); a last line without its newline (a row being appended, or
    torn by a kill) is not a row yet and is left out."""
    with open(path, newline="") as f:
        text = f.read()
    text = text[: text.rfind("\n") + 1]
    return [{k: (float(v) if v != "" else float("nan")) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def read_metrics_columns(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as column name -> float64 array (NaN = not measured); {} for an empty file."""
    rows = read_metrics_csv(path)
    columns = list(rows[0]) if rows else []
    return {c: np.array([r[c] for r in rows], dtype=np.float64) for c in columns}


def versions() -> dict[str, str]:
    import transformer_lens  # noqa: F401  (version lookup only)
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for pkg in ("grokinterp", "transformer-lens", "safetensors", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    out["git_commit"] = commit or "unknown"
    return out


class RunLock:
    """An exclusive flock on <run>/LOCK, released by the kernel even on SIGKILL."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "LOCK"
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            self.fd = None
            raise RunError(
                f"{self.path.parent} is being written by another process (pid {holder}); "
                "wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def list_steps(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for name in os.listdir(folder) if (m := STEP_RE.match(name)))
