"""The run directory's file primitives: safetensors / JSON / CSV, the lock (writes via `atomic.atomic_write_bytes`).

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
import hashlib
import io
import json
import os
import re
import subprocess
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor

from ..atomic import atomic_write_bytes  # noqa: F401  (the run directory's writes go through it)
from ._integrity import HASH_KEY, JSON_HASH_KEY, RECOVERY, UNHASHED, RunError, parse_json_file, tensors_digest


STEP_RE = re.compile(r"^step_(\d{7,})\.safetensors$")
TEMP_RE = re.compile(r"^\..+\.tmp$")  # atomic_write_bytes' temp names: .<name>.<pid>.<random>.tmp
_TEMP_PID_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on a header


def step_filename(step: int) -> str:
    return f"step_{step:07d}.safetensors"


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


def remove_orphan_temp_files(folder: Path, max_age_s: float = 3600.0) -> list[Path]:
    """Delete temp files in `folder` (recursively) whose writer is gone: its pid (in the name) is not alive, or,
    for a name without a pid, older than `max_age_s`. Safe while other processes write there (their pids live)."""
    removed = []
    for path in Path(folder).rglob(".*.tmp") if Path(folder).is_dir() else []:
        m = _TEMP_PID_RE.match(path.name)
        try:
            orphan = not _pid_alive(int(m.group(1))) if m else time.time() - path.stat().st_mtime > max_age_s
            if orphan and path.is_file():
                path.unlink()
                removed.append(path)
        except (OSError, ValueError):
            continue  # gone meanwhile, or an unreadable entry: not ours to judge
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_json(path: Path, obj, sort_keys: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n").encode())


def save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors atomically as safetensors, with the content hash `grokinterp_sha256` in the metadata."""
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {**(metadata or {}), HASH_KEY: tensors_digest(data, metadata)}
    atomic_write_bytes(path, save(data, metadata=metadata))


def _read_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


def recovery_hint(path: Path) -> str:
    """What to do about a damaged file of a run: verify and repair commands for the run it belongs to."""
    path = Path(path)
    if path.parent.name in ("ckpt", "state"):
        return RECOVERY.format(run=path.parent.parent)
    return (f"it cannot be regenerated: restore it from a copy or retrain the run (`grokinterp verify {path.parent}` "
            "lists every damaged file)")


def read_tensors(path: Path, require_hash: bool = False) -> tuple[dict[str, Tensor], dict[str, str], bool]:
    """(tensors, metadata, hash checked) of a safetensors file, its content checked against its recorded hash.

    Raises:
        RunError: missing, truncated, corrupted, or not matching its hash (naming the file and what to do).
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist; {recovery_hint(path)}")
    try:
        data = _read_bytes(path)
        tensors = load(data)
        metadata = _safetensors_metadata(data)
    except (SafetensorError, OSError, ValueError, RuntimeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is truncated or corrupted ({e}); {recovery_hint(path)}") from None
    recorded = metadata.get(HASH_KEY)
    if recorded is None and require_hash:
        raise RunError(f"{path} {UNHASHED}; {recovery_hint(path)}")
    if recorded is not None and recorded != tensors_digest(tensors, metadata):
        raise RunError(f"{path} does not match the content hash recorded in it (corrupted); {recovery_hint(path)}")
    return tensors, metadata, recorded is not None


def content_digest(path: Path, recorded_only: bool = False) -> str:
    """A file's content hash as recorded in it (safetensors metadata, a JSON file's `_sha256`), else the SHA-256
    of its bytes; reads only a safetensors file's header when the hash is recorded. "" for a missing file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if path.suffix == ".safetensors":
                n = int.from_bytes(f.read(8), "little")
                if 0 < n <= MAX_HEADER_BYTES:
                    recorded = _header_hash(f.read(n))
                    if recorded:
                        return recorded
                if recorded_only:
                    return ""
                f.seek(0)
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return ""


def _header_hash(header: bytes) -> str | None:
    try:
        meta = json.loads(header.decode("utf-8")).get("__metadata__") or {}
        value = meta.get(HASH_KEY)
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def load_tensors(path: Path, require_hash: bool = False) -> dict[str, Tensor]:
    """Load a safetensors file, checked against its recorded hash; a bad one raises RunError naming it."""
    return read_tensors(path, require_hash)[0]


def records_hashes(run_dir: Path) -> bool:
    """Whether the run at `run_dir` was written with content hashes: config.json, summary.json or the split
    records one. Then every file of it must (a file without one had its hash damaged)."""
    run_dir = Path(run_dir)
    for name in ("config.json", "summary.json"):
        try:
            if f'"{JSON_HASH_KEY}"'.encode() in _read_bytes(run_dir / name):
                return True
        except OSError:
            continue
    return content_digest(run_dir / "split.safetensors", recorded_only=True) != ""


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file's bytes (already validated by `load`)."""
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, MAX_HEADER_BYTES):
        raise ValueError(f"header length {n} exceeds the file")
    meta = json.loads(data[8:8 + n].decode("utf-8")).get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError("__metadata__ is not a string mapping")
    return meta


def read_json(path: Path, require_hash: bool = False) -> tuple[dict, bool]:
    """(object, hash checked) of a run's JSON file, without its `_sha256`.

    Raises:
        RunError: missing, not a JSON object, or not matching its recorded hash (naming the file).
    """
    path = Path(path)
    try:
        return parse_json_file(path, _read_bytes(path), require_hash)
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except OSError as e:
        raise RunError(f"{path} cannot be read ({e.strerror})") from None
    except RunError as e:
        raise RunError(f"{e}; {recovery_hint(path)}") from None


def write_csv(path: Path, rows: list[dict], cell) -> bytes:
    """Rows as CSV, atomically; columns in first-seen order, each value written as `cell(value)`; returns
    the bytes written."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    data = _csv_text(rows, columns, cell, header=True).encode()
    atomic_write_bytes(Path(path), data)
    return data


def _csv_text(rows: list[dict], columns: list[str], cell, header: bool) -> str:
    """CSV lines (each ending in a newline) of `rows` over `columns`, after the header line if `header`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_metrics_csv(path: Path, rows: list[dict[str, float]]) -> bytes:
    """All rows; NaN (not measured) is written as an empty cell, floats exactly (repr); returns the bytes."""
    return write_csv(path, rows, _metric_cell)


def _metric_cell(x) -> str:
    return "" if _isnan(x) else _fmt(x)


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and x != x)


def _fmt(x) -> str:
    return str(int(x)) if isinstance(x, int) else repr(float(x))


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
