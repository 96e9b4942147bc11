"""The committed results of a reproduction: `docs/reproductions/data/<name>/`.

Run directories are git-ignored and stay on the machine that trained them; a page and the claims ledger
must be rebuildable on a fresh clone. So each reproduction exports, next to its page:

    sweep.json          the sweep's spec, axes, cell keys, runs (name and grid values), machine facts
    runs.csv            one row per run: its name and its summary.json fields (empty: not finished / None)
    series/<run>.csv    the few metric columns the page plots or tests, downsampled where it does not need
                        every step (never checkpoints)
    <extra>.csv/.json   whatever a study adds (transplant forks, transcribed tables)

`load_data` reads them back into the records the tables use; nothing here touches a run directory but
`export_data`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..sweep import SweepRecord, available_cores, collect, read_sweep_file

DATA_DIR = Path("docs/reproductions/data")
SUMMARY_FIELDS = {  # summary.json field -> type, in column order
    "status": str, "memorization_step": int, "grokking_step": int, "gap": int, "stable_grokking_step": int,
    "generalizes_without_memorizing": bool, "diverged_step": int, "final_step": int, "final_train_acc": float,
    "final_test_acc": float, "wall_time_s": float, "steps_per_s": float,
}


@dataclass(frozen=True)
class ReproData:
    """A reproduction's committed results: its runs (records with summaries) and per-run series."""

    name: str
    data_dir: Path
    sweep: dict  # the content of sweep.json
    records: list  # SweepRecords whose `path` is the data directory's series file (may not exist)
    extras: dict = field(default_factory=dict)

    @property
    def cell_keys(self) -> list[str]:
        return self.sweep["cell_keys"]

    def series(self, run: str) -> dict | None:
        """The run's committed metric columns ({"step": [...], column: [...]}) or None when none were kept."""
        path = self.data_dir / "series" / f"{run}.csv"
        if not path.is_file():
            return None
        return read_columns(path.read_text())

    def finished(self) -> list:
        return [r for r in self.records if r.finished]


def read_columns(text: str) -> dict:
    """CSV text -> {column: float array}; empty cells are NaN."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    return {h: np.array([float(r[i]) if r[i] != "" else math.nan for r in body]) for i, h in enumerate(header)}


def _cell(value, exact: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # np.float64 is a float too
        if not math.isfinite(value):
            return ""
        return repr(float(value)) if exact else repr(float(round(value, 6)))
    return str(value)


def _parse(value: str, kind):
    if value == "":
        return None
    if kind is bool:
        return value == "True"
    return kind(float(value)) if kind is int else kind(value)


def _write(path: Path, text: str) -> None:
    from ..runs import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj) -> None:
    """A JSON file of a data directory (atomic), in the committed layout (indent 1, trailing newline)."""
    _write(path, json.dumps(obj, indent=1) + "\n")


def write_rows(path: Path, header: list[str], rows: list[list], exact: bool = False) -> None:
    """A CSV file (atomic), None and non-finite floats as empty cells; floats rounded to 6 decimals unless
    `exact` (every digit, so that what is recomputed from the file equals what was computed before)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v, exact) for v in row] for row in rows])
    _write(path, buf.getvalue())


def export_data(name: str, out: Path, data_dir: Path, series_columns: tuple = (), series_every: int = 1) -> Path:
    """Write `data_dir` from the sweep under `out`: sweep.json, runs.csv, and `series_columns` of each run.

    Args:
        series_columns: metric columns to keep per run (with "step"); rows where all of them are NaN are
            dropped, and only every `series_every`-th remaining row is kept.
    """
    from ..runs import read_metrics_columns

    sweep = read_sweep_file(out)
    records = collect(out)
    meta = {"name": name, "spec": sweep["spec"], "axes": sweep["axes"], "cell_keys": sweep["cell_keys"],
            "seed_keys": sweep["seed_keys"], "runs": sweep["runs"],
            "steps": sweep["base_config"]["train"]["steps"],
            "machine": f"{platform.machine()} CPU, {available_cores()} cores"}
    write_json(data_dir / "sweep.json", meta)
    write_rows(data_dir / "runs.csv", ["run", *SUMMARY_FIELDS],
               [[r.name, *(r.summary.get(k) for k in SUMMARY_FIELDS)] for r in records])
    if series_columns:
        for rec in records:
            metrics_path = rec.path / "metrics.csv"
            if not rec.finished or not metrics_path.is_file():
                continue
            m = read_metrics_columns(metrics_path)
            cols = [c for c in series_columns if c in m]
            if not cols:
                continue
            keep = np.flatnonzero(np.any([np.isfinite(m[c]) for c in cols], axis=0))[::series_every]
            write_rows(data_dir / "series" / f"{rec.name}.csv", ["step", *cols],
                       [[int(m["step"][i]), *(float(m[c][i]) for c in cols)] for i in keep])
    return data_dir


def load_data(name: str, data_dir: Path | None = None) -> ReproData:
    """The committed results of reproduction `name` (FileNotFoundError naming the fix when absent)."""
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR / name
    path = data_dir / "sweep.json"
    if not path.is_file():
        raise FileNotFoundError(f"{data_dir} holds no results of reproduction {name!r}; run "
                                f"`grokinterp repro {name}` (or `--export-only` on an existing sweep) first")
    sweep = json.loads(path.read_text())
    summaries = {}
    runs_csv = data_dir / "runs.csv"
    if runs_csv.is_file():
        rows = list(csv.reader(io.StringIO(runs_csv.read_text())))
        header = rows[0]
        for row in rows[1:]:
            values = dict(zip(header, row))
            summaries[values["run"]] = {k: _parse(values.get(k, ""), kind) for k, kind in SUMMARY_FIELDS.items()
                                        if values.get(k, "") != ""}
    records = [SweepRecord(r["name"], r["values"], data_dir, summaries.get(r["name"], {})) for r in sweep["runs"]]
    extras = {}
    for extra in sorted(data_dir.glob("*.json")):
        if extra.name != "sweep.json":
            extras[extra.stem] = json.loads(extra.read_text())
    for extra in sorted(data_dir.glob("*.csv")):
        if extra.name != "runs.csv":
            extras[extra.stem] = list(csv.DictReader(io.StringIO(extra.read_text())))
    return ReproData(name, data_dir, sweep, records, extras)
