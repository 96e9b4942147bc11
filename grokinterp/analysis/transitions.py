"""Timing of the geometric events around grokking, as the grokking-dynamics write-up describes them.

The write-up ("Grokking Dynamics") reads the transition off curves: the top Hessian eigenvalue "spikes
20x during memorization", its decline "starts around step 600", test accuracy follows the decline "almost
immediately" at β1 = 0 and after "a ~400-step lag" at β1 = 0.9; gradient agreement "rises during
memorization"; the momentum–gradient cosine is "−0.1 to −0.3" after memorization; the effective rank of
per-sample gradients "drops 30–40 % at grokking"; Fourier features are "present by step 700". Each
function below turns one of these phrases into a number with a stated definition; all are pure functions
of arrays (a step axis and values, NaN where not measured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st


def _finite(steps, values) -> tuple[np.ndarray, np.ndarray]:
    t, v = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"steps {t.shape} and values {v.shape} must be 1-D of the same length")
    keep = np.isfinite(t) & np.isfinite(v)
    order = np.argsort(t[keep], kind="stable")
    return t[keep][order], v[keep][order]


@dataclass(frozen=True)
class Spike:
    """The curvature spike: its height relative to init, where it peaks, where its decline starts."""

    factor: float  # max over [first step, until] ÷ the value at the first step
    peak_step: float
    peak: float
    initial: float
    decline_step: float | None  # first step after the peak below (1 - drop) × peak; None: never


def curvature_spike(steps, top_eigenvalue, until: float | None = None, drop: float = 0.25) -> Spike:
    """Spike factor and decline onset of the top Hessian eigenvalue.

    Definitions: factor = max λ_max(t) over steps ≤ `until` (default: all; pass the grokking step to keep
    the search in memorization) ÷ λ_max at the first step (init); the decline starts at the first step
    after the peak where λ_max ≤ (1 − drop) · peak (drop 0.25: a quarter of the spike gone).
    """
    t, v = _finite(steps, top_eigenvalue)
    if len(t) < 2:
        raise ValueError("a spike needs at least two measured steps")
    window = t <= (until if until is not None else t[-1])
    i = int(np.argmax(np.where(window, v, -np.inf)))
    after = np.flatnonzero((t > t[i]) & (v <= (1 - drop) * v[i]))
    return Spike(float(v[i] / v[0]) if v[0] > 0 else math.nan, float(t[i]), float(v[i]), float(v[0]),
                 float(t[after[0]]) if len(after) else None)


def log_midpoint_step(steps, values, after: float | None = None) -> float | None:
    """First step (after `after`) where a falling positive series crosses the geometric midpoint between its
    maximum and its minimum thereafter: halfway down on a log scale (curvature falls by decades)."""
    t, v = _finite(steps, values)
    keep = (t >= after) if after is not None else np.ones_like(t, dtype=bool)
    t, v = t[keep], v[keep]
    if len(t) < 2 or np.any(v <= 0):
        return None
    i = int(np.argmax(v))
    level = math.sqrt(v[i] * v[i:].min())
    below = np.flatnonzero(v[i:] <= level)
    return float(t[i + below[0]]) if len(below) else None


def rise_midpoint_step(steps, values) -> float | None:
    """First step where a rising series reaches halfway between its first value and its maximum."""
    t, v = _finite(steps, values)
    if len(t) < 2:
        return None
    level = (v[0] + v.max()) / 2
    hit = np.flatnonzero(v >= level)
    return float(t[hit[0]]) if len(hit) and v.max() > v[0] else None


def transition_lag(curvature_steps, top_eigenvalue, acc_steps, test_acc) -> float | None:
    """Lag from the curvature decline to the test-accuracy rise, in steps.

    Definition: (first step where test accuracy reaches halfway between its first value and its maximum)
    − (first step after the spike where λ_max has fallen halfway down on a log scale, `log_midpoint_step`).
    Both are midpoints of their transitions, so two curves of the same shape shifted by L give L; positive:
    accuracy rises after the curvature falls. None when either transition is absent.
    """
    t, v = _finite(curvature_steps, top_eigenvalue)
    if len(t) < 2:
        return None
    fall = log_midpoint_step(t, v, after=t[int(np.argmax(v))])
    rise = rise_midpoint_step(acc_steps, test_acc)
    return None if fall is None or rise is None else rise - fall


@dataclass(frozen=True)
class Slope:
    """Least-squares slope per step with its two-sided 95 % t interval."""

    slope: float
    low: float
    high: float
    n: int


def trend(steps, values, start: float | None = None, stop: float | None = None) -> Slope:
    """OLS slope of values on steps over [start, stop] with its 95 % t interval (n − 2 degrees of freedom)."""
    t, v = _finite(steps, values)
    keep = (t >= (start if start is not None else -np.inf)) & (t <= (stop if stop is not None else np.inf))
    t, v = t[keep], v[keep]
    if len(t) < 3:
        raise ValueError(f"a slope with an interval needs at least 3 samples in [{start}, {stop}], got {len(t)}")
    fit = _st.linregress(t, v)
    half = _st.t.ppf(0.975, len(t) - 2) * fit.stderr
    return Slope(float(fit.slope), float(fit.slope - half), float(fit.slope + half), int(len(t)))


def window_median(steps, values, start: float, stop: float) -> float | None:
    """Median of the measured values with start < step < stop (e.g. the momentum–gradient cosine between
    memorization and grokking); None when none are measured there."""
    t, v = _finite(steps, values)
    inside = v[(t > start) & (t < stop)]
    return float(np.median(inside)) if len(inside) else None


def relative_drop(steps, values, before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """1 − min(values in `after`) ÷ median(values in `before`): e.g. the effective rank's drop across
    grokking, with `before` = [memorization, grokking) and `after` = [grokking, grokking + 500]."""
    t, v = _finite(steps, values)
    pre = v[(t >= before[0]) & (t < before[1])]
    post = v[(t >= after[0]) & (t <= after[1])]
    if not len(pre) or not len(post) or np.median(pre) == 0:
        return None
    return float(1 - post.min() / np.median(pre))


def value_at(steps, values, step: float) -> float | None:
    """The value at the measured step nearest `step` (None when nothing is measured)."""
    t, v = _finite(steps, values)
    return float(v[int(np.argmin(np.abs(t - step)))]) if len(t) else None
