"""`grokinterp warn`: replay the early-warning diagnostics over a sweep's runs and benchmark their alarms.

Runs are split into roles: *controls* (matched by `--controls`: a KEY=VALUE filter on the resolved config,
default `optim.weight_decay=0`, or a sweep / run directory) that never grokked calibrate the thresholds;
the other runs that grokked are scored. Controls that grokked and scored runs that did not are listed and
left out. Per run, `warning_diagnostics` (cached in the run) gives every signal; `_alarms` scores them;
the delay laws are fitted where the sweep varies what they need.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...analysis.warning import warning_diagnostics
from ...config import ConfigError, parse_literal
from ...runs import FINAL_STATUSES, Run
from ...sweep import SWEEP_FILE, collect
from ._alarms import AlarmStats, RunSignal, benchmark_alarm
from ._delay_laws import (FirstPassageRun, LawFit, first_passage_run, fit_exponential_law, fit_first_passage,
                          fit_power_law, leave_one_out_errors, prediction_error)
from ._signals import ALARM_RULES

DEFAULT_CONTROLS = ("optim.weight_decay=0",)
ROLES = ("grokking", "control", "control_grokked", "matched", "matched_grokked", "not_grokked")


@dataclass
class WarnRun:
    """One run of the benchmark: where it is, its role, milestones, alarm signals and per-run facts."""

    name: str
    path: Path
    role: str
    status: str
    memorization_step: int | None
    grokking_step: int | None
    signals: dict[str, RunSignal] = field(default_factory=dict)
    facts: dict[str, float | None] = field(default_factory=dict)
    first_passage: FirstPassageRun | None = None
    settings: dict[str, float] = field(default_factory=dict)


@dataclass
class WarnResult:
    """The benchmark: runs by role, per-rule AlarmStats, the delay laws fits (name -> LawFit or a dict of numbers)."""

    sources: list[Path]
    controls: list[str]
    runs: list[WarnRun]
    stats: dict[str, AlarmStats]
    delay_laws: dict[str, object]
    wall_time_s: float
    matched_controls: list[str] = field(default_factory=list)
    matched_stats: dict[str, AlarmStats] = field(default_factory=dict)  # thresholds from the matched controls
    differences: dict[str, list[str]] = field(default_factory=dict)  # role -> config keys where it differs
    written_at: str = ""  # when the replay finished (UTC), as the page states it

    def of_role(self, role: str) -> list[WarnRun]:
        return [r for r in self.runs if r.role == role]


def _config_value(run: Run, key: str):
    section, _, name = key.partition(".")
    if section == "plugins":
        return run.config.plugins.get(name)
    try:
        return getattr(getattr(run.config, section), name)
    except AttributeError:
        raise ConfigError(f"--controls {key}=...: {key!r} is not a config key (e.g. optim.weight_decay)") from None


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _run_dirs(path: Path) -> list[tuple[str, Path, str]]:
    """(name, directory, status) of the finished runs of a sweep directory, or of one run directory."""
    if (path / SWEEP_FILE).is_file():
        return [(r.name, r.path, r.summary.get("status")) for r in collect(path) if r.finished]
    if (path / "config.json").is_file():
        status = Run(path).summary.get("status")
        return [(path.name, path, status)] if status in FINAL_STATUSES else []
    raise ConfigError(f"{path} is neither a sweep directory (no {SWEEP_FILE}) nor a run directory (no config.json)")


def _parse_controls(controls: Sequence[str], flag: str = "--controls") -> tuple[list[tuple[str, object]], list[Path]]:
    """KEY=VALUE filters and control directories of a --controls list."""
    filters, control_dirs = [], []
    for item in controls:
        if Path(item).is_dir():
            control_dirs.append(Path(item))
            continue
        key, eq, value = item.partition("=")
        if not eq or "." not in key:
            raise ConfigError(f"{flag} {item!r} must be KEY=VALUE (e.g. optim.weight_decay=0) or a directory")
        filters.append((key, parse_literal(value)))
    return filters, control_dirs


def assign_roles(sources: Sequence[Path], controls: Sequence[str],
                 matched_controls: Sequence[str] = ()) -> list[tuple[str, Path, str, str | None]]:
    """(name, path, status, group) of every finished run of `sources` and of control directories; group is
    "control", "matched" (a run of the matched-control group) or None (a run to score)."""
    groups = {"control": _parse_controls(controls), "matched": _parse_controls(matched_controls, "--matched-controls")}
    seen, out = set(), []
    for source in sources:
        for name, path, status in _run_dirs(Path(source)):
            run = Run(path)
            member = [g for g, (filters, _) in groups.items()
                      if filters and all(_same(_config_value(run, k), v) for k, v in filters)]
            if len(member) > 1:
                raise ConfigError(f"{path} matches both --controls and --matched-controls; make the filters exclusive")
            out.append((name, path, status, member[0] if member else None))
            seen.add(path.resolve())
    for group, (_, control_dirs) in groups.items():
        for directory in control_dirs:
            for name, path, status in _run_dirs(directory):
                if path.resolve() not in seen:
                    out.append((name, path, status, group))
                    seen.add(path.resolve())
    return out


def config_differences(reference: Sequence[Path], others: Sequence[Path]) -> list[str]:
    """The resolved-config keys (section.name; seeds and training cadence left out) whose set of values among
    `others` differs from that among `reference`: what separates a control group from the scored runs."""
    ignore = {"model.seed", "task.seed", "train.seed"}

    def values(paths):
        out: dict[str, set] = {}
        for path in paths:
            for section, fields in Run(path).config.to_dict().items():
                for key, value in (fields.items() if isinstance(fields, dict) else [("", fields)]):
                    out.setdefault(f"{section}.{key}" if key else section, set()).add(repr(value))
        return out

    def compared(key: str) -> bool:  # checkpoint cadence, threads and the like do not change what is learned
        return key not in ignore and (not key.startswith("train.") or key == "train.steps")

    ref, oth = values(reference), values(others)
    return sorted(k for k in set(ref) | set(oth) if compared(k) and ref.get(k) != oth.get(k))


def _settings(run: Run) -> dict[str, float]:
    config = run.config
    out = {"lr": config.optim.lr, "weight_decay": config.optim.weight_decay}
    plugins = config.plugins
    if "norm_clamp" in plugins:
        out["rho"] = float(plugins["norm_clamp"].get("rho", 1.0))
    if "gradient_noise" in plugins:
        out["noise_temperature"] = config.optim.lr * float(plugins["gradient_noise"].get("sigma", 0.0)) ** 2
    if "logit_temperature" in plugins:
        out["tau"] = float(plugins["logit_temperature"].get("tau", 1.0))
    return out


def _evaluate_run(name: str, path: Path, status: str, group: str | None, workers: int, stride: int,
                  progress: bool) -> WarnRun:
    run = Run(path)
    summary = run.summary
    grokked = status == "grokked"
    role = (group + "_grokked" if grokked else group) if group else ("grokking" if grokked else "not_grokked")
    out = WarnRun(name, path, role, status, summary.get("memorization_step"), summary.get("grokking_step"),
                  settings=_settings(run))
    diag = warning_diagnostics(run, workers=workers, stride=stride, progress=progress)
    for rule in ALARM_RULES:
        steps, values = rule.signal(diag)
        out.signals[rule.name] = RunSignal(name, np.asarray(steps), np.asarray(values, dtype=np.float64),
                                           out.memorization_step, out.grokking_step)
    out.facts = dict(diag.scalars)
    for series, taus in diag.csd_tau.items():
        for indicator, tau in taus.items():
            out.facts[f"csd_tau/{series}/{indicator}"] = tau
    metrics = run.metrics
    if grokked and out.memorization_step is not None and "weight_norm_sq" in metrics:
        try:
            out.first_passage = first_passage_run(metrics["step"], metrics["weight_norm_sq"], out.memorization_step,
                                                  out.grokking_step, out.settings["lr"], out.settings["weight_decay"])
        except ValueError:
            out.first_passage = None
    return out


def fit_delay_laws(runs: Sequence[WarnRun]) -> dict[str, object]:
    """The delay laws on the grokking runs: first passage (cross-cell prediction, or leave-one-out within one cell), and
    the clamp, weight-decay and Arrhenius laws when the runs vary rho, weight decay or noise temperature."""
    grok = [r for r in runs if r.role == "grokking"]
    out: dict[str, object] = {}
    fp = [r for r in grok if r.first_passage is not None and math.isfinite(r.first_passage.kappa)]
    if fp:
        cells: dict[tuple, list[WarnRun]] = {}
        for r in fp:
            cells.setdefault(tuple(sorted(r.settings.items())), []).append(r)
        out["first_passage"] = fit_first_passage([r.first_passage for r in fp])
        if len(cells) > 1:
            calib_key = max(cells, key=lambda k: len(cells[k]))
            fit = fit_first_passage([r.first_passage for r in cells[calib_key]])
            others = [r.first_passage for k, rs in cells.items() if k != calib_key for r in rs]
            out["first_passage_prediction"] = {"scheme": f"calibrated on {dict(calib_key)}, predicting the other cells",
                                               "mape": prediction_error(fit, others), "n_predicted": len(others)}
        elif len(fp) >= 3:
            errors = leave_one_out_errors([r.first_passage for r in fp])
            out["first_passage_prediction"] = {"scheme": "one cell: leave-one-out over its runs",
                                               "mape": float(np.mean(errors)), "n_predicted": len(fp)}
    gaps = {r.name: r.grokking_step - r.memorization_step for r in grok if r.memorization_step is not None}
    mediation = logit_scale_mediation(grok)
    if mediation:
        out["logit_scale_mediation"] = mediation
    for key, law in (("rho", "norm_clamp"), ("weight_decay", "weight_decay_power"), ("noise_temperature", "arrhenius")):
        pts = [(r.settings[key], r) for r in grok if key in r.settings and r.settings[key] > 0]
        if len({x for x, _ in pts}) < 2 or len(pts) < 3:
            continue
        x = np.array([p for p, _ in pts])
        try:
            if law == "norm_clamp":
                out[law] = fit_exponential_law(x, [r.grokking_step for _, r in pts])
            elif law == "weight_decay_power":
                out[law] = fit_power_law(x, [r.grokking_step for _, r in pts], lam_c=0.0)
            else:
                out[law] = fit_exponential_law(1 / x, [gaps.get(r.name, math.nan) for _, r in pts])
        except ValueError as e:
            out[law] = {"error": str(e)}
    return out


def logit_scale_mediation(runs: Sequence[WarnRun]) -> dict[str, float]:
    """the logit-scale signal's sweep claim (Khanh 2026): across grokking runs, R^2 of ln(gap) regressed on ln s_eff(T_mem), and on
    ln ||theta||(T_mem) (the logit scale should explain the delay better). Empty with fewer than 3 runs."""
    rows = [(r.grokking_step - r.memorization_step, r.facts.get("s_eff_at_memorization"),
             r.facts.get("weight_norm_at_memorization")) for r in runs if r.memorization_step is not None]
    rows = [row for row in rows if row[0] > 0 and all(v is not None and v > 0 for v in row[1:])]
    if len(rows) < 3:
        return {}
    gap, s_eff, norm = (np.log(np.array(col, dtype=np.float64)) for col in zip(*rows))

    def r2(x: np.ndarray) -> float:
        if np.ptp(x) == 0 or np.ptp(gap) == 0:
            return math.nan
        return float(np.corrcoef(x, gap)[0, 1] ** 2)

    return {"r2_s_eff": r2(s_eff), "r2_weight_norm": r2(norm), "n": float(len(rows))}


def warn_sweep(sources: Sequence[str | Path], controls: Sequence[str] = DEFAULT_CONTROLS, workers: int = 1,
               stride: int = 1, progress: bool = True, matched_controls: Sequence[str] = ()) -> WarnResult:
    """Replay the warning diagnostics over every finished run of `sources` and benchmark every alarm rule.

    Args:
        sources: sweep directories (or single run directories).
        controls: KEY=VALUE filters on the resolved config (all must match) and/or control directories.
        matched_controls: a second control group, in the same form, that does not generalize although it shares
            the thing a signal may respond to (e.g. the random-table task at the grokking runs' own weight
            decay); every rule is benchmarked again with thresholds from this group (`WarnResult.matched_stats`).
        workers, stride, progress: passed to the replay of each run.
    """
    t0 = time.perf_counter()
    sources = [Path(s) for s in sources]
    for s in sources:
        if not s.is_dir():
            raise ConfigError(f"{s} does not exist; run `grokinterp sweep ... --out {s}` first")
    assigned = assign_roles(sources, list(controls), list(matched_controls))
    runs = [_evaluate_run(n, p, s, g, workers, stride, progress) for n, p, s, g in assigned]
    n_grok, n_control = (sum(r.role == role for r in runs) for role in ("grokking", "control"))
    if not n_grok or not n_control:
        raise ConfigError(f"the benchmark needs grokking runs and control runs that never grokked; found "
                          f"{n_grok} grokking and {n_control} controls among {len(runs)} finished "
                          f"runs (controls: {list(controls)})")
    if matched_controls and not any(r.role == "matched" for r in runs):
        raise ConfigError(f"--matched-controls {list(matched_controls)} matched no finished run that never grokked")
    grok = [r.path for r in runs if r.role == "grokking"]
    differences = {g: config_differences(grok, [r.path for r in runs if r.role == g])
                   for g in ("control", "matched") if any(r.role == g for r in runs)}
    stats, matched_stats = benchmark_groups(runs)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return WarnResult(sources, list(controls), runs, stats, fit_delay_laws(runs), time.perf_counter() - t0,
                      list(matched_controls), matched_stats, differences, when)


def benchmark_groups(runs: Sequence[WarnRun]) -> tuple[dict[str, AlarmStats], dict[str, AlarmStats]]:
    """Every rule benchmarked on the grokking runs against the controls, and again against the matched
    controls (empty when there are none)."""
    grok = [r for r in runs if r.role == "grokking"]

    def bench(role: str) -> dict[str, AlarmStats]:
        ctrl = [r for r in runs if r.role == role]
        if not ctrl:
            return {}
        return {rule.name: benchmark_alarm([r.signals[rule.name] for r in grok], [r.signals[rule.name] for r in ctrl],
                                           rule.persist) for rule in ALARM_RULES}

    return bench("control"), bench("matched")


def law_summary(fit: LawFit) -> str:
    """'name = value [lo, hi]' for every fitted parameter, then n and R^2."""
    parts = []
    for key, value in fit.params.items():
        lo, hi = fit.ci.get(key, (math.nan, math.nan))
        parts.append(f"{key} = {value:.4g} [{lo:.4g}, {hi:.4g}]")
    return "; ".join(parts) + f" (n = {fit.n}, R^2 of ln T = {fit.r2:.3f})"
