"""The delay laws, delay laws of grokking fitted across the runs of a sweep, with bootstrap confidence intervals (the related-work papers).

(a) First passage: Khanh, Hoa, Trung, Duc 2026, "First-Passage Prediction of Grokking Delay",
    arXiv:2605.18845. Under AdamW the squared weight norm V = ||theta||^2 decays on the plateau as
    ln V(t) = ln V_mem - 2 kappa eta lambda (t - T_mem), and the run groks when V reaches V*:
        T_grok - T_mem = ln(V_mem / V*) / (2 kappa eta lambda).
    Per run, kappa = -slope / (2 eta lambda) with the slope of ln V on [T_mem, T_grok) (least squares), and
    V* = V(T_grok). Calibrated on one grid cell (median kappa, geometric-mean V*), it predicts the gaps of the
    others; the error is the mean absolute percentage error (paper: 17.7%).
(b) Norm clamp: Khanh, Viet, Trung, Duc 2026, "The Weight Norm Sets the Grokking Timescale",
    arXiv:2606.13753: with ||theta|| clamped to rho W_c (the `norm_clamp` plug-in), T_grok = A exp(alpha rho).
(c) Weight-decay power law: Verma 2026, arXiv:2605.20441: T_grok = A (lambda - lambda_c)^(-nu)
    (paper: nu = 0.757, lambda_c = 0.0158; the paper calls the form unverified). lambda_c fixed or fitted.
(d) Arrhenius escape: Ersoy, Wiesner 2026, arXiv:2606.17120: T_grok = A exp(Delta E / D), D = lr sigma^2
    of the `gradient_noise` plug-in (our choice for full-batch training).

Fits of (b)-(d) are least squares on ln T. Confidence intervals: percentile bootstrap over runs (resampled
with replacement, 1,000 draws, fixed seed).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import scipy.optimize

N_BOOT = 1000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class LawFit:
    """Fitted parameters by name, their bootstrap CIs (lo, hi), the number of runs and the R^2 of ln T."""

    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    n: int
    r2: float


def bootstrap_ci(fit: Callable[[np.ndarray], dict[str, float]], n_items: int, n_boot: int = N_BOOT,
                 seed: int = 0, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap: `fit(indices)` on `n_boot` resamples (with replacement) of range(n_items).

    Resamples whose fit fails (raises ValueError / RuntimeError or gives non-finite values) are dropped.
    """
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n_boot):
        idx = rng.integers(0, n_items, n_items)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params = fit(idx)
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            continue
        for key, value in params.items():
            if math.isfinite(value):
                draws.setdefault(key, []).append(value)
    alpha = (1 - level) / 2
    return {k: (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))) for k, v in draws.items()}


def _r2(y: np.ndarray, fitted: np.ndarray) -> float:
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1 - float(((y - fitted) ** 2).sum()) / ss_tot if ss_tot > 0 else math.nan


def _check_pairs(x, t, what: str) -> tuple[np.ndarray, np.ndarray]:
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(t) & (t > 0)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0:
        raise ValueError(f"{what} needs at least 3 runs with a grokking time and 2 distinct control values; "
                         f"got {int(keep.sum())}")
    return x[keep], t[keep]


def fit_exponential_law(x, t, n_boot: int = N_BOOT, seed: int = 0) -> LawFit:
    """T = A exp(alpha x) by least squares on ln T (D8b with x = rho; D8d with x = 1 / D, alpha = Delta E)."""
    x, t = _check_pairs(x, t, "an exponential delay law")

    def fit(idx: np.ndarray) -> dict[str, float]:
        if np.ptp(x[idx]) == 0:
            raise ValueError("degenerate resample")
        slope, intercept = np.polyfit(x[idx], np.log(t[idx]), 1)
        return {"alpha": float(slope), "A": float(math.exp(intercept))}

    params = fit(np.arange(len(x)))
    fitted = math.log(params["A"]) + params["alpha"] * x
    return LawFit(params, bootstrap_ci(fit, len(x), n_boot, seed), len(x), _r2(np.log(t), fitted))


def fit_power_law(lam, t, lam_c: float | None = 0.0, n_boot: int = N_BOOT, seed: int = 0) -> LawFit:
    """T = A (lambda - lambda_c)^(-nu) by least squares on ln T; lambda_c fixed, or fitted when None
    (bounded below min(lambda))."""
    lam, t = _check_pairs(lam, t, "a weight-decay power law")

    def fit(idx: np.ndarray) -> dict[str, float]:
        x, y = lam[idx], np.log(t[idx])
        if np.ptp(x) == 0:
            raise ValueError("degenerate resample")
        if lam_c is not None:
            if np.any(x <= lam_c):
                raise ValueError(f"every weight decay must exceed lambda_c={lam_c}")
            slope, intercept = np.polyfit(np.log(x - lam_c), y, 1)
            return {"nu": float(-slope), "A": float(math.exp(intercept)), "lambda_c": float(lam_c)}
        slope, intercept = np.polyfit(np.log(x), y, 1)
        upper = float(x.min()) * (1 - 1e-9)

        def model(v, log_a, nu, c):
            return log_a - nu * np.log(np.maximum(v - c, 1e-300))

        p, _ = scipy.optimize.curve_fit(model, x, y, p0=[intercept, -slope, 0.0],
                                        bounds=([-np.inf, -np.inf, -np.inf], [np.inf, np.inf, upper]), maxfev=20000)
        return {"nu": float(p[1]), "A": float(math.exp(p[0])), "lambda_c": float(p[2])}

    params = fit(np.arange(len(lam)))
    fitted = math.log(params["A"]) - params["nu"] * np.log(lam - params["lambda_c"])
    return LawFit(params, bootstrap_ci(fit, len(lam), n_boot, seed), len(lam), _r2(np.log(t), fitted))


@dataclass(frozen=True)
class FirstPassageRun:
    """One run's first-passage quantities: the ln V slope on [T_mem, T_grok), kappa, V_mem, V*, the gap."""

    slope: float
    kappa: float
    v_mem: float
    v_star: float
    gap: float
    lr: float
    weight_decay: float


FIRST_PASSAGE_COLUMNS = [f.name for f in fields(FirstPassageRun)]  # its terms in order, as committed (delays.csv)


def first_passage_run(steps, weight_norm_sq, t_mem: int, t_grok: int, lr: float, weight_decay: float) -> FirstPassageRun:
    """The per-run quantities of the first-passage law from the dense V = ||theta||^2 series (metrics.csv)."""
    steps, v = np.asarray(steps, dtype=np.float64), np.asarray(weight_norm_sq, dtype=np.float64)
    if t_mem is None or t_grok is None or t_grok <= t_mem:
        raise ValueError(f"the first-passage law needs T_mem < T_grok; got {t_mem}, {t_grok}")
    keep = (steps >= t_mem) & (steps < t_grok) & np.isfinite(v) & (v > 0)
    if keep.sum() < 2:
        raise ValueError(f"fewer than 2 weight-norm samples on [T_mem, T_grok) = [{t_mem}, {t_grok})")
    slope = float(np.polyfit(steps[keep], np.log(v[keep]), 1)[0])
    at = {s: float(np.interp(s, steps[np.isfinite(v)], v[np.isfinite(v)])) for s in (t_mem, t_grok)}
    rate = 2 * lr * weight_decay
    kappa = -slope / rate if rate > 0 else math.nan
    return FirstPassageRun(slope, kappa, at[t_mem], at[t_grok], float(t_grok - t_mem), lr, weight_decay)


def predict_gap(kappa: float, v_star: float, v_mem: float, lr: float, weight_decay: float) -> float:
    """T_grok - T_mem = ln(V_mem / V*) / (2 kappa eta lambda); inf when eta lambda kappa <= 0 (never groks)."""
    rate = 2 * kappa * lr * weight_decay
    return math.log(v_mem / v_star) / rate if rate > 0 else math.inf


def fit_first_passage(runs: Sequence[FirstPassageRun], n_boot: int = N_BOOT, seed: int = 0) -> LawFit:
    """Calibrate kappa (median over runs) and V* (geometric mean) on a set of runs, with bootstrap CIs."""
    runs = [r for r in runs if math.isfinite(r.kappa) and r.v_star > 0]
    if not runs:
        raise ValueError("no run with weight decay, T_mem < T_grok and a finite kappa to calibrate on")
    kappa = np.array([r.kappa for r in runs])
    log_v = np.log([r.v_star for r in runs])

    def fit(idx: np.ndarray) -> dict[str, float]:
        return {"kappa": float(np.median(kappa[idx])), "v_star": float(math.exp(log_v[idx].mean()))}

    params = fit(np.arange(len(runs)))
    predicted = np.array([predict_gap(params["kappa"], params["v_star"], r.v_mem, r.lr, r.weight_decay) for r in runs])
    gaps = np.array([r.gap for r in runs])
    ok = np.isfinite(predicted) & (predicted > 0)
    r2 = _r2(np.log(gaps[ok]), np.log(predicted[ok])) if ok.sum() >= 2 else math.nan
    return LawFit(params, bootstrap_ci(fit, len(runs), n_boot, seed), len(runs), r2)


def leave_one_out_errors(runs: Sequence[FirstPassageRun]) -> list[float]:
    """|predicted - gap| / gap of each run, its law calibrated on all the others (`fit_first_passage`);
    their mean is the leave-one-out MAPE. Empty with fewer than 3 runs."""
    if len(runs) < 3:
        return []
    return [prediction_error(fit_first_passage([o for j, o in enumerate(runs) if j != i], n_boot=0), [r])
            for i, r in enumerate(runs)]


def prediction_error(fit: LawFit, runs: Sequence[FirstPassageRun]) -> float:
    """Mean absolute percentage error |predicted - gap| / gap over `runs` (inf if one is predicted never to grok)."""
    if not runs:
        return math.nan
    predicted = [predict_gap(fit.params["kappa"], fit.params["v_star"], r.v_mem, r.lr, r.weight_decay) for r in runs]
    return float(np.mean([abs(p - r.gap) / r.gap for p, r in zip(predicted, runs)]))
