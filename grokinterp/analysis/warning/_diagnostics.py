"""Early-warning diagnostics the per-run signals of one run (the related-work papers), on one shared step axis.

`warning_diagnostics(run)` replays the per-checkpoint warning analyses (`WARNING_ANALYSES`: one forward per
checkpoint, cached under `<run>/analysis/`) and adds what needs a whole series: the Fiedler-value signal's critical-slowing-down
indicators, the DMD signal's rolling Hankel DMD, the lock-in signal's update spectra (read from the checkpoints' W_E and W_in) and the weight-norm signal's
norm peak and tanh fit (from metrics.csv). Every array is indexed by the replayed checkpoint steps, except
`metric_series`, which follows metrics.csv's rows. Definitions: the `_warn_*` modules' docstrings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...runs import Run
from ..replay_engine import ReplayResult, replay
from ._slowing import csd_alarm_series, csd_indicators, rolling_ar1, rolling_variance_ratio
from ._dmd import rolling_dmd
from ._lockin import LOCKIN_WEIGHTS, PAPER_T_MIN, PAPER_THRESHOLD, lockin_fire_step, lockin_ratio, lockin_slope, update_gram_spectra
from ._norm_peak import norm_peak_lead, norm_peak_step, tanh_kink_fit
from ._replayed import WARNING_ANALYSES

PAPER_CSD_WINDOW_STEPS = 200  # Benfield 2026's rolling window, in training steps
CSD_MIN_POINTS = 10  # samples after T_mem before the online Kendall tau is computed
CSD_MAX_POINTS = 2000  # dense metric series are thinned to at most this many samples for the CSD indicators
CSD_METRICS = {"train_loss": "train_loss", "log_weight_norm": "weight_norm_sq", "grad_norm": "grad_norm",
               "mom_grad_cos": "mom_grad_cos"}


@dataclass(frozen=True)
class WarningDiagnostics:
    """Every early-warning signal of one run.

    Attributes:
        run_path: the run directory.
        steps: int64 [n], the replayed checkpoint steps; axis 0 of every `series` array.
        series: name -> float64 [n, ...] (see `SERIES_DOC`).
        metric_steps: int64 [n_rows] of metrics.csv; metric_series: name -> [n_rows] (NaN = not measured).
        memorization_step, grokking_step: the run's milestones (None when absent).
        csd_tau: series name -> {"ar1": tau, "variance": tau}, Dakos et al.'s Kendall tau on [T_mem, T_grok).
        scalars: lockin_fire_step_paper (paper threshold 0.04, t >= 100), norm_peak_step, norm_peak_lead,
            tanh_a, tanh_b, tanh_t0, tanh_w, tanh_r2, paper_csd_window (checkpoints), tau (logit temperature),
            s_eff_at_memorization and weight_norm_at_memorization (for the logit-scale signal's sweep-level comparison).
    """

    run_path: Path
    steps: np.ndarray
    series: dict[str, np.ndarray]
    metric_steps: np.ndarray
    metric_series: dict[str, np.ndarray]
    memorization_step: int | None
    grokking_step: int | None
    csd_tau: dict[str, dict[str, float]] = field(default_factory=dict)
    scalars: dict[str, float | None] = field(default_factory=dict)


SERIES_DOC = {
    "test_acc": "test accuracy of the checkpoint (full forward)", "train_acc": "train accuracy",
    "s_eff": "D1 effective logit scale", "softmax_collapse": "D1 fraction of train examples with float32 CE = 0",
    "gains": "D1 layer gains [n, 2L+1]",
    "fiedler": "D2 lambda_2(L)", "fiedler_normalized": "D2 lambda_2 of the normalized Laplacian",
    "fiedler_ar1_paper": "D2 rolling lag-1 correlation of raw lambda_2 (paper)",
    "fiedler_vr_paper": "D2 rolling variance ratio of raw lambda_2 (paper)",
    "fiedler_normalized_trend": "D2 kernel trend on [T_mem, T_grok)",
    "fiedler_normalized_ar1": "D2 detrended rolling AR1 on [T_mem, T_grok)",
    "fiedler_normalized_variance": "D2 detrended rolling variance on [T_mem, T_grok)",
    "fiedler_tau_ar1_online": "D2 Kendall tau of AR1 on [T_mem, t]",
    "fiedler_tau_variance_online": "D2 Kendall tau of variance on [T_mem, t]",
    "dmd_residual_test": "D3 rho (test log p)", "dmd_residual_train": "D3 rho (train log p)",
    "dmd_effective_rank_test": "D3 effective rank (test)", "dmd_max_eigenvalue_test": "D3 max |mu| (test)",
    "lar": "D4 log-alignment ratio", "k_eff": "D4 effective number of aligned directions",
    "lar_p": "D4 weight spectrum p [n, d_model]", "lar_q": "D4 activation spectrum q [n, d_model]",
    "head_similarity": "D5 C [n, L]", "entropy_spread": "D5 S [n, L]",
    "lockin_ratio": "D6 ln(sigma2/sigma3)", "lockin_slope": "D6 s(t)", "lockin_spectra": "D6 sigma [n, 20]",
    "beta_ratio": "D7 beta/beta_c [n, L]", "nc1": "D7 NC1 [n, L]",
    "nc1_trace_ratio": "D7 tr(Sigma_W)/tr(Sigma_B) [n, L]",
}


def lockin_weights(run: Run, steps) -> np.ndarray:
    """[n_steps, D] float64: W_E and every W_in of each checkpoint, flattened (the lock-in signal's weights), read alone."""
    try:
        return run.flat_weights(steps, LOCKIN_WEIGHTS)
    except ValueError as e:
        raise ValueError(f"{e}; the lock-in signal needs them") from None


def _window_mask(steps: np.ndarray, start: int | None, stop: int | None) -> np.ndarray:
    keep = np.ones(len(steps), dtype=bool)
    if start is not None:
        keep &= steps >= start
    if stop is not None:
        keep &= steps < stop
    return keep


def _csd_on_window(values: np.ndarray, keep: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Dakos indicators of values[keep] (a contiguous block), placed back on the full axis (NaN outside)."""
    arrays = {k: np.full(len(values), np.nan) for k in ("trend", "ar1", "variance")}
    segment = values[keep]
    if keep.sum() < 6 or not np.all(np.isfinite(segment)):
        return arrays, {"ar1": math.nan, "variance": math.nan}
    ind = csd_indicators(segment)
    for key in arrays:
        arrays[key][keep] = getattr(ind, key)
    return arrays, {"ar1": ind.tau_ar1, "variance": ind.tau_variance}


def _metric_csd_tau(steps: np.ndarray, values: np.ndarray, start, stop) -> dict[str, float]:
    keep = _window_mask(steps, start, stop) & np.isfinite(values)
    idx = np.flatnonzero(keep)
    if len(idx) < 6:
        return {"ar1": math.nan, "variance": math.nan}
    idx = idx[:: max(1, math.ceil(len(idx) / CSD_MAX_POINTS))]
    ind = csd_indicators(values[idx])
    return {"ar1": ind.tau_ar1, "variance": ind.tau_variance}


def warning_diagnostics(run: Run | str | Path, result: ReplayResult | None = None, workers: int = 1, stride: int = 1,
                        progress: bool = True) -> WarningDiagnostics:
    """Replay the warning analyses over `run` (cached) and compute every early-warning series.

    Args:
        run: a Run or its directory.
        result: a ReplayResult that already holds every name in `WARNING_ANALYSES` (else they are replayed).
        workers, stride, progress: passed to `replay`.

    Returns:
        WarningDiagnostics on the replayed checkpoint steps.
    """
    run = run if isinstance(run, Run) else Run(run)
    if result is None or any(name not in result.data for name in WARNING_ANALYSES):
        result = replay(run, WARNING_ANALYSES, stride=stride, workers=workers, progress=progress)
    steps = result.steps.astype(np.int64)
    summary = run.summary
    t_mem, t_grok = summary.get("memorization_step"), summary.get("grokking_step")
    data = result["warning"]
    series = {k: np.asarray(data[k], dtype=np.float64) for k in
              ("test_acc", "train_acc", "s_eff", "softmax_collapse", "gains", "lar", "k_eff", "head_similarity",
               "entropy_spread", "beta_ratio", "nc1", "nc1_trace_ratio")}
    series["lar_p"], series["lar_q"] = (np.asarray(data[k], dtype=np.float64) for k in ("p", "q"))
    scalars: dict[str, float | None] = {"tau": float(result.context.get("warning", {}).get("tau", 1.0))}
    if t_mem is not None and len(steps):
        scalars["s_eff_at_memorization"] = float(np.interp(t_mem, steps, series["s_eff"]))

    # the Fiedler-value signal: the Fiedler values, the paper's raw rolling indicators, Dakos et al.'s on [T_mem, T_grok), online tau
    fiedler = {k: np.asarray(data[k], dtype=np.float64) for k in ("fiedler", "fiedler_normalized")}
    series.update(fiedler)
    spacing = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
    paper_window = max(5, int(round(PAPER_CSD_WINDOW_STEPS / max(spacing, 1.0))))
    scalars["paper_csd_window"] = float(paper_window)
    nan = np.full(len(steps), np.nan)
    ok = len(steps) >= paper_window
    series["fiedler_ar1_paper"] = rolling_ar1(fiedler["fiedler"], paper_window) if ok else nan.copy()
    series["fiedler_vr_paper"] = rolling_variance_ratio(fiedler["fiedler"], paper_window) if ok else nan.copy()
    window = _window_mask(steps, t_mem, t_grok)
    csd_tau = {}
    for name, values in fiedler.items():
        arrays, csd_tau[name] = _csd_on_window(values, window)
        if name == "fiedler_normalized":
            series.update({f"{name}_{k}": v for k, v in arrays.items()})
    start = int(np.searchsorted(steps, t_mem)) if t_mem is not None else 0
    online = csd_alarm_series(fiedler["fiedler_normalized"], start, CSD_MIN_POINTS)
    for indicator, values in online.items():
        series[f"fiedler_tau_{indicator}_online"] = values
    metrics = run.metrics
    metric_steps = metrics["step"].astype(np.int64)
    for name, column in CSD_METRICS.items():
        if column in metrics:
            values = metrics[column]
            if name == "log_weight_norm":
                values = 0.5 * np.log(np.where(values > 0, values, np.nan))
            csd_tau[name] = _metric_csd_tau(metric_steps, values, t_mem, t_grok)

    # the DMD signal: rolling Hankel DMD on the log-probability quantiles
    for split in ("test", "train"):
        dmd = rolling_dmd(np.asarray(data[f"{split}_logp_quantiles"], dtype=np.float64))
        series[f"dmd_residual_{split}"] = dmd["residual"]
        series[f"dmd_effective_rank_{split}"] = dmd["effective_rank"]
        series[f"dmd_max_eigenvalue_{split}"] = dmd["max_abs_eigenvalue"]

    # the lock-in signal: spectra of the last 20 checkpoint updates of W_E and W_in
    spectra = update_gram_spectra(lockin_weights(run, steps)) if len(steps) >= 2 else np.full((len(steps), 20), np.nan)
    series["lockin_spectra"] = spectra
    series["lockin_ratio"] = lockin_ratio(spectra)
    series["lockin_slope"] = lockin_slope(series["lockin_ratio"])
    fire = lockin_fire_step(steps, series["lockin_slope"], PAPER_THRESHOLD, PAPER_T_MIN)
    scalars["lockin_fire_step_paper"] = None if fire is None else float(fire)

    # the weight-norm signal: the weight-norm peak (every step) and the tanh kink of test accuracy
    metric_series = {"weight_norm": np.sqrt(metrics["weight_norm_sq"]) if "weight_norm_sq" in metrics else None}
    for column in ("train_acc", "test_acc", "train_loss", "test_loss"):
        metric_series[column] = metrics.get(column)
    metric_series = {k: np.asarray(v, dtype=np.float64) for k, v in metric_series.items() if v is not None}
    if "weight_norm" in metric_series and np.isfinite(metric_series["weight_norm"]).any():
        scalars["norm_peak_step"] = float(norm_peak_step(metric_steps, metric_series["weight_norm"]))
        scalars["norm_peak_lead"] = norm_peak_lead(metric_steps, metric_series["weight_norm"], t_grok)
        if t_mem is not None:
            finite = np.isfinite(metric_series["weight_norm"])
            scalars["weight_norm_at_memorization"] = float(np.interp(t_mem, metric_steps[finite],
                                                                     metric_series["weight_norm"][finite]))
    if "test_acc" in metric_series:
        fit = tanh_kink_fit(metric_steps, metric_series["test_acc"])
        scalars.update({f"tanh_{k}": getattr(fit, k) for k in ("a", "b", "t0", "w", "r2")})
    return WarningDiagnostics(run.path, steps, series, metric_steps, metric_series, t_mem, t_grok, csd_tau, scalars)
