"""metrics.csv: appended by whole rows while a run trains, read back checked (UTF-8, complete numeric rows,
one row per step), its hash kept as it grows so that each state file can record it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from pathlib import Path

import numpy as np

from ._files import RunError, _csv_text, _metric_cell, _read_bytes, recovery_hint, write_metrics_csv


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
        self._hash = hashlib.sha256()  # of the file's bytes so far: appends continue it
        self._rewrite(rows)

    def record(self) -> dict | None:
        """{"rows", "sha256"} of the file as written so far (what the next state file records); None if empty."""
        return {"rows": self.count, "sha256": self._hash.copy().hexdigest()} if self.count else None

    def _rewrite(self, rows: list[dict]) -> None:
        if rows:
            self._hash = hashlib.sha256(write_metrics_csv(self.path, rows))
        else:
            self.path.unlink(missing_ok=True)
            self._hash = hashlib.sha256()
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
            encoded = _csv_text(new, self.columns, _metric_cell, header=False).encode()
            data = memoryview(encoded)
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._hash.update(encoded)
        self.count = len(rows)


def read_metrics_csv(path: Path, data: bytes | None = None, consecutive: bool = False) -> list[dict[str, float]]:
    """metrics.csv's rows (see `parse_metrics_csv`)."""
    return parse_metrics_csv(path, data, consecutive)[1]


def parse_metrics_csv(path: Path, data: bytes | None = None,
                      consecutive: bool = False) -> tuple[list[str], list[dict[str, float]]]:
    """metrics.csv's header and rows (NaN = not measured), checked: UTF-8, a `step` column, every row complete and
    numeric, steps strictly increasing (and, if `consecutive`, one row per step).

    Raises:
        RunError: naming the file, the line or step, and what is wrong.
    """
    path = Path(path)
    try:
        text = (_read_bytes(path) if data is None else data).decode("utf-8")
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except UnicodeDecodeError as e:
        raise RunError(f"{path} is not UTF-8 text ({e}); {recovery_hint(path)}") from None
    text = text[: text.rfind("\n") + 1]  # a last line without its newline is a row being appended (or torn)
    lines = list(csv.reader(io.StringIO(text, newline="")))
    if not lines:
        return [], []
    header = lines[0]
    if "step" not in header or len(set(header)) != len(header):
        raise RunError(f"{path} has no 'step' column or repeats a column (header {header[:5]}...); {recovery_hint(path)}")
    rows, previous = [], None
    for number, cells in enumerate(lines[1:], start=2):
        row = _metrics_row(path, number, header, cells)
        step = row["step"]
        if not math.isfinite(step) or step != int(step):
            raise RunError(f"{path} line {number}: step {step!r} is not a whole number; {recovery_hint(path)}")
        if previous is not None and step <= previous:
            what = "is repeated" if step == previous else f"comes after step {previous:g}"
            raise RunError(f"{path} line {number}: step {step:g} {what}; {recovery_hint(path)}")
        if consecutive and previous is not None and step != previous + 1:
            raise RunError(f"{path} line {number}: steps {previous + 1:g} to {step - 1:g} are missing; "
                           f"{recovery_hint(path)}")
        rows.append(row)
        previous = step
    return header, rows


def _metrics_row(path: Path, number: int, header: list[str], cells: list[str]) -> dict[str, float]:
    """One parsed metrics row; a short, long or non-numeric row raises RunError naming the line."""
    if len(cells) != len(header):
        raise RunError(f"{path} line {number} has {len(cells)} cells for {len(header)} columns (truncated or "
                       f"corrupted); {recovery_hint(path)}")
    try:
        return {k: (float(v) if v != "" else float("nan")) for k, v in zip(header, cells)}
    except ValueError as e:
        raise RunError(f"{path} line {number}: {e}; {recovery_hint(path)}") from None


def read_metrics_columns(path: Path, data: bytes | None = None, consecutive: bool = False) -> dict[str, np.ndarray]:
    """metrics.csv as column name -> float64 array (NaN = not measured); {} for an empty file."""
    columns, rows = parse_metrics_csv(path, data, consecutive)
    return {c: np.array([r[c] for r in rows], dtype=np.float64) for c in columns}
