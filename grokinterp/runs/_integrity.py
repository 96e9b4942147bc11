"""Content hashes of the files a run writes, recorded inside each file and checked when it is read.

- A safetensors file records `grokinterp_sha256` in its metadata: the SHA-256 of its tensors (names,
  dtypes, shapes and bytes, in sorted name order) and of its other metadata (`tensors_digest`).
- A JSON file records `_sha256` at its top level: the SHA-256 of the rest of the object in canonical form
  (`json_digest`).
- metrics.csv cannot hold its own hash, so the file written right after it holds it: each state file
  (`metrics_rows`, `metrics_sha256`: the first rows of metrics.csv it covers) and, at the end, summary.json
  (`_metrics`). A resume point's rows are therefore checked even while a run is still training.

A file without a recorded hash (written before grokinterp recorded them) still loads; `grokinterp verify`
says that it was not checked. Nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor

HASH_KEY = "grokinterp_sha256"  # safetensors metadata key
JSON_HASH_KEY = "_sha256"  # top-level key of a JSON file
METRICS_KEY = "_metrics"  # summary.json: {"rows": n, "sha256": hex} of metrics.csv
RECOVERY = "run `grokinterp verify {run}` to list damaged files and `grokinterp repair {run}` to regenerate them"


class RunError(RuntimeError):
    """A run directory that cannot be used as asked (locked, missing, corrupted); the message names the file."""


def tensor_bytes(tensor: Tensor) -> bytes:
    """The raw little-endian bytes of a CPU tensor, whatever its dtype (bf16 and bool included)."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def tensors_digest(tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> str:
    """SHA-256 (hex) of named tensors and string metadata, independent of file layout and dict order.

    >>> a = tensors_digest({"w": torch.zeros(2)}); a == tensors_digest({"w": torch.zeros(2)})
    True
    >>> a == tensors_digest({"w": torch.zeros(2, dtype=torch.float64)})
    False
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(tensor_bytes(t))
    for key, value in sorted((metadata or {}).items()):
        if key != HASH_KEY:
            h.update(json.dumps(["meta", key, value]).encode())
    return h.hexdigest()


def json_digest(obj) -> str:
    """SHA-256 (hex) of a JSON value in canonical form (sorted keys, no spaces), `_sha256` left out.

    >>> json_digest({"a": 1, "b": [2.5]}) == json_digest({"b": [2.5], "a": 1, "_sha256": "x"})
    True
    """
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k != JSON_HASH_KEY}
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def seal_json(obj: dict) -> dict:
    """`obj` with its `_sha256` (a fresh dict; key order kept, the hash last)."""
    return {**{k: v for k, v in obj.items() if k != JSON_HASH_KEY}, JSON_HASH_KEY: json_digest(obj)}


UNHASHED = "has no recorded hash, though the other files of its run record theirs (its hash was damaged)"


def parse_json_file(path: Path, data: bytes, require_hash: bool = False) -> tuple[dict, bool]:
    """The object of a run's JSON file without its `_sha256`, and whether a hash was recorded.

    Raises:
        RunError: not UTF-8 JSON, not an object, or content that does not match its recorded hash.
    """
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path} holds a JSON {type(obj).__name__}, not an object")
    recorded = obj.pop(JSON_HASH_KEY, None)
    if recorded is None and require_hash:
        raise RunError(f"{path} {UNHASHED}")
    if recorded is not None and recorded != json_digest(obj):
        raise RunError(f"{path} does not match the hash recorded in it (edited or corrupted)")
    return obj, recorded is not None


def csv_prefix(data: bytes, rows: int) -> bytes | None:
    """The header and first `rows` lines of a CSV file's bytes; None when it has fewer lines.

    >>> csv_prefix(b"step\\n0\\n1\\n", 1), csv_prefix(b"step\\n0\\n", 2)
    (b'step\\n0\\n', None)
    """
    end = -1
    for _ in range(rows + 1):
        end = data.find(b"\n", end + 1)
        if end < 0:
            return None
    return data[: end + 1]


def lines_digest(data: bytes, rows: int) -> str | None:
    """SHA-256 of `csv_prefix(data, rows)`; None when the file has fewer lines."""
    head = csv_prefix(data, rows)
    return None if head is None else hashlib.sha256(head).hexdigest()


def metrics_record(data: bytes) -> dict[str, int | str]:
    """{"rows", "sha256"} of a metrics.csv's bytes, as the writer records it."""
    rows = max(data.count(b"\n") - 1, 0)
    return {"rows": rows, "sha256": lines_digest(data, rows) or ""}


def state_metrics_record(metadata: dict[str, str]) -> dict | None:
    """The metrics.csv record a state file's metadata holds (None for an older state)."""
    if "metrics_rows" not in metadata:
        return None
    return {"rows": metadata["metrics_rows"], "sha256": metadata.get("metrics_sha256")}


def check_metrics_bytes(path: Path, data: bytes, record: dict | None, where: str) -> bool:
    """Check metrics.csv's bytes against a record from `where`; True if checked, False if nothing is recorded.

    Rows after the recorded ones (a run killed between writing metrics.csv and its next state) are allowed:
    a resume drops them.

    Raises:
        RunError: the recorded rows are missing or differ.
    """
    if not record:
        return False
    try:
        rows, expected = int(record["rows"]), str(record["sha256"])
    except (KeyError, TypeError, ValueError):
        raise RunError(f"{where} records metrics.csv's hash in an unreadable form") from None
    got = lines_digest(data, rows)
    if got is None:
        raise RunError(f"{path} has fewer than the {rows} rows recorded in {where} (truncated)")
    if got != expected:
        raise RunError(f"{path} does not match the hash of its first {rows} rows recorded in {where} "
                             "(edited or corrupted)")
    return True
