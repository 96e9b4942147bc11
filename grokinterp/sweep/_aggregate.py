"""Aggregate a sweep's run summaries per grid cell (every grid key but the seed keys).

Definitions (DESIGN.md): gap = grokking step - memorization step; status grokked, memorized,
not_learned or diverged; "generalizes without memorizing" when test accuracy is >= 0.5 at the
memorization step. Medians and quartiles are over the runs where the quantity exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._grid import FINAL_STATUSES, read_sweep_file

AGGREGATE_FILE = "aggregate.csv"
STAT_COLUMNS = (
    "n", "n_unfinished", "n_grokked", "grok_rate", "median_memorization_step", "median_grokking_step",
    "median_gap", "gap_q25", "gap_q75", "frac_not_learned", "frac_generalizes_without_memorizing",
    "frac_diverged",
)


@dataclass(frozen=True)
class SweepRecord:
    """One run of a sweep: its name, grid values, directory and summary (empty when not trained yet)."""

    name: str
    values: dict
    path: Path
    summary: dict

    @property
    def finished(self) -> bool:
        return self.summary.get("status") in FINAL_STATUSES


def collect(sweep_dir: str | Path) -> list[SweepRecord]:
    """Every run listed in `<sweep_dir>/sweep.json`, with its summary.json (read-only)."""
    sweep_dir = Path(sweep_dir)
    records = []
    for run in read_sweep_file(sweep_dir)["runs"]:
        path = sweep_dir / run["name"]
        summary_path = path / "summary.json"
        try:
            summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        except json.JSONDecodeError:
            summary = {}
        records.append(SweepRecord(run["name"], run["values"], path, summary))
    return records


def _median(values: list) -> float | None:
    return float(np.median(values)) if values else None


def _quantile(values: list, q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


def cell_stats(summaries: list[dict]) -> dict:
    """Statistics of one cell from its runs' summary dicts (unfinished runs only count in `n_unfinished`).

    Returns:
        {column: value} for STAT_COLUMNS; rates are over the n finished runs, None when n is 0.

    >>> s = [{"status": "grokked", "memorization_step": 100, "grokking_step": 400, "gap": 300,
    ...       "generalizes_without_memorizing": False}, {"status": "not_learned"}]
    >>> stats = cell_stats(s)
    >>> stats["n"], stats["grok_rate"], stats["median_gap"], stats["frac_not_learned"]
    (2, 0.5, 300.0, 0.5)
    """
    done = [s for s in summaries if s.get("status") in FINAL_STATUSES]
    n = len(done)
    rate = (lambda k: k / n) if n else (lambda k: None)
    grokked = [s for s in done if s["status"] == "grokked"]
    gaps = [s["gap"] for s in grokked if s.get("gap") is not None]
    return {
        "n": n,
        "n_unfinished": len(summaries) - n,
        "n_grokked": len(grokked),
        "grok_rate": rate(len(grokked)),
        "median_memorization_step": _median([s["memorization_step"] for s in done if s.get("memorization_step") is not None]),
        "median_grokking_step": _median([s["grokking_step"] for s in grokked if s.get("grokking_step") is not None]),
        "median_gap": _median(gaps),
        "gap_q25": _quantile(gaps, 0.25),
        "gap_q75": _quantile(gaps, 0.75),
        "frac_not_learned": rate(sum(s["status"] == "not_learned" for s in done)),
        "frac_generalizes_without_memorizing": rate(sum(bool(s.get("generalizes_without_memorizing")) for s in done)),
        "frac_diverged": rate(sum(s["status"] == "diverged" for s in done)),
    }


def _cell_key(value):
    return json.dumps(value, sort_keys=True)


def aggregate(records: list, cell_keys: list[str]) -> list[dict]:
    """One row per grid cell: its `cell_keys` values, then `cell_stats` over its runs (seeds pooled).

    Args:
        records: SweepRecords, or dicts with "values" (grid values) and "summary" (summary.json content).
        cell_keys: the grid keys that define a cell (all but the seed keys); [] pools every run into one row.

    Returns:
        Rows in first-seen order of the cells.
    """
    cells: dict[tuple, list] = {}
    for rec in records:
        values, summary = (rec.values, rec.summary) if isinstance(rec, SweepRecord) else (rec["values"], rec["summary"])
        key = tuple(_cell_key(values[k]) for k in cell_keys)
        cells.setdefault(key, [{k: values[k] for k in cell_keys}, []])[1].append(summary)
    return [{**cell, **cell_stats(summaries)} for cell, summaries in cells.values()]


def aggregate_sweep(sweep_dir: str | Path, write: bool = True) -> list[dict]:
    """`aggregate` over a sweep directory's runs; with `write`, also `<sweep_dir>/aggregate.csv`."""
    sweep_dir = Path(sweep_dir)
    rows = aggregate(collect(sweep_dir), read_sweep_file(sweep_dir)["cell_keys"])
    if write:
        write_aggregate_csv(sweep_dir / AGGREGATE_FILE, rows)
    return rows


def write_aggregate_csv(path: str | Path, rows: list[dict]) -> None:
    """Rows as CSV (atomic); None is an empty cell, lists and dicts are JSON."""
    from ..runs import write_csv

    write_csv(Path(path), rows, _csv_value)


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)
