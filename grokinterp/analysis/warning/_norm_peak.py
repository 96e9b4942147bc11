"""Weight-norm fingerprints of grokking (the related-work papers).

Khanh 2026, "Emergence via Phase Transitions: Mechanism Landscapes and Universal Convergence Across Complex
Systems" (the Hierarchical Emergence Framework), arXiv:2606.07563: ||theta|| peaks before the grok (in 92%
of 111 runs) and test accuracy follows a tanh kink a + b tanh((t - t0) / w) (R^2 = 0.93). The lead is
T_grok - argmax_t ||theta||. The paper's critical energy E_c has no estimator; it is left out.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.optimize


def norm_peak_step(steps, norm) -> int:
    """The step of the largest finite ||theta|| (the first one on ties)."""
    steps, norm = np.asarray(steps), np.asarray(norm, dtype=np.float64)
    finite = np.isfinite(norm)
    if not finite.any():
        raise ValueError("norm_peak_step: the norm series has no finite value")
    return int(steps[np.flatnonzero(finite)[np.argmax(norm[finite])]])


def norm_peak_lead(steps, norm, t_grok: float | None) -> float:
    """T_grok - argmax ||theta|| (positive: the norm peaks first); NaN without a grokking step."""
    return math.nan if t_grok is None else float(t_grok - norm_peak_step(steps, norm))


@dataclass(frozen=True)
class TanhFit:
    """acc(t) ~ a + b tanh((t - t0) / w), least squares; r2 = 1 - SS_res / SS_tot."""

    a: float
    b: float
    t0: float
    w: float
    r2: float


def tanh_kink_fit(steps, accuracy) -> TanhFit:
    """Fit a + b tanh((t - t0) / w) to an accuracy curve (NaN samples skipped), as Khanh 2026.

    Start: a, b from the curve's range, t0 where it first crosses its midpoint, w a tenth of the span.
    A fit that fails returns NaN parameters.
    """
    t, y = np.asarray(steps, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    nan = TanhFit(math.nan, math.nan, math.nan, math.nan, math.nan)
    if len(t) < 5 or np.ptp(y) == 0:
        return nan
    lo, hi = float(y.min()), float(y.max())
    crossing = np.flatnonzero(y >= (lo + hi) / 2)
    t0 = float(t[crossing[0]]) if len(crossing) else float(np.median(t))
    start = [(lo + hi) / 2, (hi - lo) / 2, t0, max(np.ptp(t) / 10, 1.0)]

    def model(x, a, b, c, w):
        return a + b * np.tanh((x - c) / w)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's OptimizeWarning on a poorly determined covariance
            params, _ = scipy.optimize.curve_fit(model, t, y, p0=start, maxfev=20000)
    except (RuntimeError, ValueError):
        return nan
    a, b, t0, w = (float(v) for v in params)
    if w < 0:  # the same curve: tanh is odd
        b, w = -b, -w
    ss_res = float(((y - model(t, a, b, t0, w)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return TanhFit(a, b, t0, w, 1 - ss_res / ss_tot)
