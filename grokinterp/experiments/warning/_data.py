"""The alarm benchmark's committed data (`docs/reproductions/data/warn/`), and the benchmark rebuilt from it.

Run directories stay on the machine that trained them; the page must be rebuildable on a fresh clone. So
`grokinterp warn --data-dir DIR` writes, beside the ledger's two tables (alarms.csv, delays.csv):

    sweep.json            what was scored and how: sources, control filters, what each control group differs
                          in, the command, when, the replay's wall time, the runs scored per role
    benchmark_runs.csv    one row per run: role, status, milestones, the settings the delay laws read and every
                          per-run fact of the diagnostics (`fact/...`), floats exact
    signals/<run>.csv     each scored run's alarm signals on its scoring window only (grokking runs
                          [T_mem, T_grok), controls [T_mem, end]): the only samples the benchmark reads

`load_warn_result` reads them back into a `WarnResult`: thresholds, alarms, AUROCs and delay-law fits are
recomputed by the same code as from the run directories, so `warn --doc-only` rewrites the page exactly.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from pathlib import Path

import numpy as np

from ...config import ConfigError
from ._alarms import RunSignal, _window
from ._delay_laws import FIRST_PASSAGE_COLUMNS, FirstPassageRun
from ._signals import ALARM_RULES
from ._sweep import WarnResult, WarnRun, benchmark_groups, fit_delay_laws

SCORED_ROLES = ("grokking", "control", "matched")
RUN_COLUMNS = ["run", "role", "status", "memorization_step", "grokking_step", "signals_file"]


def _file_names(runs: list[WarnRun]) -> list[str]:
    """A signals file name per run: the run's name, numbered when two scored runs share one."""
    names = [r.name for r in runs]
    return [f"{name}.csv" if names.count(name) == 1 else f"{i:03d}_{name}.csv" for i, name in enumerate(names)]


def _window_table(run: WarnRun) -> tuple[list[str], list[list]]:
    """One run's signals on their scoring windows as a wide table: step, then one column per rule (empty
    where the rule has no sample at that step)."""
    stop_at_grok = run.role == "grokking"
    kept = {}
    for rule in ALARM_RULES:
        sig = run.signals[rule.name]
        keep = _window(sig, stop_at_grok)
        kept[rule.name] = dict(zip(np.asarray(sig.steps)[keep].tolist(), np.asarray(sig.values)[keep].tolist()))
    steps = sorted({s for values in kept.values() for s in values})
    return ["step", *kept], [[int(s), *(values.get(s) for values in kept.values())] for s in steps]


def write_warn_data(result: WarnResult, data_dir: Path, command: str) -> WarnResult:
    """Write `data_dir` (see the module docstring) from a benchmark computed over run directories; returns the
    benchmark as read back from it, what a page must be written from so that `--doc-only` rewrites it exactly."""
    from ...sweep import available_cores
    from ..repro_data import write_json, write_rows
    from ._report import ALARM_DATA_COLUMNS, DELAY_DATA_COLUMNS, alarm_rows, delay_rows

    data_dir = Path(data_dir)
    write_rows(data_dir / "alarms.csv", ALARM_DATA_COLUMNS, alarm_rows(result))
    write_rows(data_dir / "delays.csv", DELAY_DATA_COLUMNS, delay_rows(result), exact=True)
    scored = [r for r in result.runs if r.role in SCORED_ROLES]
    files = dict(zip((id(r) for r in scored), _file_names(scored)))
    for old in sorted((data_dir / "signals").glob("*.csv")):  # rows of an earlier benchmark must not linger
        old.unlink()
    for run in scored:
        header, rows = _window_table(run)
        write_rows(data_dir / "signals" / files[id(run)], header, rows, exact=True)
    settings = sorted({k for r in result.runs for k in r.settings})
    facts = sorted({k for r in result.runs for k in r.facts})
    header = [*RUN_COLUMNS, *(f"setting/{k}" for k in settings), *(f"fact/{k}" for k in facts)]
    write_rows(data_dir / "benchmark_runs.csv", header,
               [[r.name, r.role, r.status, r.memorization_step, r.grokking_step, files.get(id(r), ""),
                 *(r.settings.get(k) for k in settings), *(r.facts.get(k) for k in facts)] for r in result.runs],
               exact=True)
    write_json(data_dir / "sweep.json", {
        "name": "warn", "runs": [], "cell_keys": [], "axes": [], "written_by": command,
        "written_at": result.written_at, "wall_time_s": result.wall_time_s,
        "sources": [str(s) for s in result.sources], "controls": result.controls,
        "matched_controls": result.matched_controls, "differences": result.differences,
        "scored": {role: sum(r.role == role for r in result.runs) for role in SCORED_ROLES},
        "machine": f"{platform.machine()} CPU, {available_cores()} cores"})
    return load_warn_result(data_dir)


def _number(text: str, kind=float):
    return None if text == "" else kind(float(text))


def _text(path: Path) -> str:
    if not path.is_file():
        raise ConfigError(f"{path} is missing: the alarm benchmark's data is incomplete; rerun `grokinterp warn "
                          f"SWEEP_DIR ... --data-dir {path.parent}` (see the Makefile's repro-warn)")
    return path.read_text()


def _read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(_text(path))))


def _read_signals(path: Path, run: WarnRun) -> dict[str, RunSignal]:
    from ..repro_data import read_columns

    columns = read_columns(_text(path))
    missing = [rule.name for rule in ALARM_RULES if columns and rule.name not in columns]
    if missing:
        raise ConfigError(f"{path} has no column for {missing}; rerun `grokinterp warn ... --data-dir`")
    out = {}
    for rule in ALARM_RULES:
        values = columns.get(rule.name, np.array([]))
        kept = np.isfinite(values)  # an empty cell: the rule has no sample at that step
        out[rule.name] = RunSignal(run.name, columns.get("step", np.array([]))[kept].astype(np.int64), values[kept],
                                   run.memorization_step, run.grokking_step)
    return out


def _first_passage(rows: list[dict]) -> dict[str, FirstPassageRun]:
    out = {}
    for row in rows:
        terms = [_number(row[c]) for c in FIRST_PASSAGE_COLUMNS]
        if all(t is not None for t in terms):
            out[row["run"]] = FirstPassageRun(*terms)
    return out


def load_warn_result(data_dir: Path) -> WarnResult:
    """The benchmark rebuilt from its committed data: the same `WarnResult` the page is written from."""
    try:
        return _load(Path(data_dir))
    except (KeyError, ValueError, TypeError) as e:  # a hand-edited or truncated file
        raise ConfigError(f"{data_dir}: the alarm benchmark's data does not parse ({type(e).__name__}: {e}); "
                          f"rewrite it with `grokinterp warn SWEEP_DIR ... --data-dir {data_dir}`") from None


def _load(data_dir: Path) -> WarnResult:
    meta_path = data_dir / "sweep.json"
    if not meta_path.is_file():
        raise ConfigError(f"{data_dir} holds no alarm-benchmark data (no sweep.json); run `grokinterp warn "
                          f"SWEEP_DIR ... --data-dir {data_dir}` first")
    meta = json.loads(meta_path.read_text())
    if "written_at" not in meta:
        raise ConfigError(f"{meta_path} predates the committed per-run signals; rerun `grokinterp warn ... "
                          f"--data-dir {data_dir}` once on the run directories")
    passages = _first_passage(_read_csv(data_dir / "delays.csv"))
    runs = []
    for row in _read_csv(data_dir / "benchmark_runs.csv"):
        run = WarnRun(row["run"], Path(row["run"]), row["role"], row["status"],
                      _number(row["memorization_step"], int), _number(row["grokking_step"], int))
        for key, text in row.items():
            if key.startswith("setting/") and text != "":
                run.settings[key.removeprefix("setting/")] = float(text)
            elif key.startswith("fact/") and text != "":
                run.facts[key.removeprefix("fact/")] = float(text)
        if row["signals_file"]:
            run.signals = _read_signals(data_dir / "signals" / row["signals_file"], run)
        if run.role == "grokking":
            run.first_passage = passages.get(run.name)
        runs.append(run)
    stats, matched_stats = benchmark_groups(runs)
    return WarnResult([Path(s) for s in meta["sources"]], meta["controls"], runs, stats, fit_delay_laws(runs),
                      meta["wall_time_s"], meta["matched_controls"], matched_stats, meta["differences"],
                      meta["written_at"])

