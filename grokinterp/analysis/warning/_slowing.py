"""Part 2: critical-slowing-down indicators of a series (the related-work papers).

Two recipes, both on series sampled on a uniform grid (the sample index is the time):

- Benfield 2026's (the paper's): on the raw series, in a rolling window, AR1 = the lag-1 Pearson
  correlation and VR = var(last 20% of the window) / var(first 80%).
- Dakos et al. 2012 ("Methods for detecting early warnings of critical transitions in time series",
  PLoS ONE 7:e41010): remove a Gaussian-kernel trend (bandwidth 10% of the span), then AR1 and variance of
  the residual in a rolling window of 50% of the span, and Kendall's tau of each indicator against time.
  Dakos et al. smooth with a Nadaraya-Watson kernel; we fit the kernel-weighted *local-linear* trend, which
  removes a linear trend exactly, edges included (the kernel smoother leaves an edge bias of about slope x
  bandwidth there, which shows up as spurious autocorrelation).

Rolling windows are causal: the value at index i describes the window ending at i (NaN before it fills).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal
import scipy.stats

BANDWIDTH_FRAC = 0.1
WINDOW_FRAC = 0.5


def _as_series(x, name: str = "x", min_len: int = 3) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or len(x) < min_len:
        raise ValueError(f"{name} must be a 1-D series of at least {min_len} samples; got shape {x.shape}")
    return x


def lag1_autocorrelation(x) -> float:
    """Pearson correlation of (x_t, x_{t+1}) over the series (NaN for a constant series).

    >>> round(lag1_autocorrelation([1.0, 2.0, 3.0, 4.0]), 6)
    1.0
    """
    x = _as_series(x)
    a, b = x[:-1] - x[:-1].mean(), x[1:] - x[1:].mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan


def kernel_trend(x, bandwidth: float) -> np.ndarray:
    """Local-linear Gaussian-kernel trend: at each i, the value at i of the weighted least-squares line with
    weights exp(-(j - i)^2 / (2 h^2)) (kernel cut at 4 h). A linear series is returned unchanged."""
    x = _as_series(x)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth={bandwidth!r} must be > 0 samples")
    n = len(x)
    reach = int(min(n - 1, math.ceil(4 * bandwidth)))
    u = np.arange(-reach, reach + 1, dtype=np.float64)
    w = np.exp(-0.5 * (u / bandwidth) ** 2)

    def window_sum(values: np.ndarray, power: int) -> np.ndarray:
        # sum_u values[i + u] * u^power * w(u): a correlation, i.e. a convolution with the flipped kernel
        return scipy.signal.fftconvolve(values, (w * u**power)[::-1], mode="same")

    ones = np.ones(n)
    s0, s1, s2 = (window_sum(ones, k) for k in range(3))
    t0, t1 = window_sum(x, 0), window_sum(x, 1)
    denom = s0 * s2 - s1 * s1
    safe = np.abs(denom) > 1e-12 * np.maximum(s0 * s2, 1e-300)
    return np.where(safe, (s2 * t0 - s1 * t1) / np.where(safe, denom, 1.0), t0 / s0)


def rolling_ar1(x, window: int) -> np.ndarray:
    """Lag-1 Pearson correlation in each causal window of `window` samples; NaN before the first full one."""
    x = _as_series(x)
    window = _check_window(window, len(x), minimum=3)
    x = x - x.mean()  # cumulative sums below are then well conditioned
    a, b = x[:-1], x[1:]
    m = window - 1  # pairs per window

    def sums(v: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(v)])
        return c[m:] - c[:-m]  # sums over the m pairs ending at each pair index >= m - 1

    sa, sb, saa, sbb, sab = sums(a), sums(b), sums(a * a), sums(b * b), sums(a * b)
    cov = sab - sa * sb / m
    var = (saa - sa * sa / m) * (sbb - sb * sb / m)
    out = np.full(len(x), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[window - 1:] = np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.nan)
    return out


def rolling_variance(x, window: int) -> np.ndarray:
    """Population variance in each causal window of `window` samples; NaN before the first full one."""
    x = _as_series(x)
    window = _check_window(window, len(x), minimum=2)
    x = x - x.mean()
    c1, c2 = (np.concatenate([[0.0], np.cumsum(v)]) for v in (x, x * x))
    s1, s2 = c1[window:] - c1[:-window], c2[window:] - c2[:-window]
    out = np.full(len(x), np.nan)
    out[window - 1:] = np.maximum(s2 / window - (s1 / window) ** 2, 0.0)
    return out


def rolling_variance_ratio(x, window: int, tail: float = 0.2) -> np.ndarray:
    """Benfield 2026's VR = var(last `tail` of the window) / var(the rest), per causal window (NaN before)."""
    x = _as_series(x)
    window = _check_window(window, len(x), minimum=5)
    n_tail = max(2, int(round(tail * window)))
    late, early = rolling_variance(x, n_tail), rolling_variance(x, window - n_tail)
    out = np.full(len(x), np.nan)
    idx = np.arange(window - 1, len(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        out[idx] = late[idx] / early[idx - n_tail]
    return out


def _check_window(window: int, n: int, minimum: int) -> int:
    window = int(window)
    if not minimum <= window <= n:
        raise ValueError(f"window={window} must lie in [{minimum}, {n}] (the series has {n} samples)")
    return window


def kendall_trend(values) -> float:
    """Kendall's tau-b between time (the index) and the finite values; NaN with fewer than 3 of them."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    if keep.sum() < 3 or np.ptp(values[keep]) == 0:
        return math.nan
    return float(scipy.stats.kendalltau(np.flatnonzero(keep), values[keep]).statistic)


@dataclass(frozen=True)
class CSDIndicators:
    """Dakos et al. 2012's indicators of one series: trend and residual [n]; rolling AR1 and variance of the
    residual [n] (NaN before the first full window); Kendall tau of each against time; the window used."""

    trend: np.ndarray
    residual: np.ndarray
    ar1: np.ndarray
    variance: np.ndarray
    tau_ar1: float
    tau_variance: float
    window: int


def csd_indicators(x, bandwidth_frac: float = BANDWIDTH_FRAC, window_frac: float = WINDOW_FRAC) -> CSDIndicators:
    """Detrend (local-linear Gaussian kernel, bandwidth `bandwidth_frac` of the span), then rolling AR1 and
    variance of the residual over `window_frac` of the span, and their Kendall tau against time."""
    x = _as_series(x, min_len=6)
    trend = kernel_trend(x, bandwidth_frac * len(x))
    residual = x - trend
    window = max(3, int(round(window_frac * len(x))))
    ar1, variance = rolling_ar1(residual, window), rolling_variance(residual, window)
    return CSDIndicators(trend, residual, ar1, variance, kendall_trend(ar1), kendall_trend(variance), window)


def csd_alarm_series(x, start: int, min_points: int = 10) -> dict[str, np.ndarray]:
    """Online Kendall tau: at each index t >= start + min_points - 1, the tau of the rolling AR1 and of the
    rolling variance from `csd_indicators(x[start:t + 1])`, i.e. using only data up to t. NaN elsewhere.

    Returns:
        {"ar1": [n], "variance": [n]}.
    """
    x = _as_series(x, min_len=1)
    if min_points < 6:
        raise ValueError(f"min_points={min_points} must be >= 6 (detrending and a rolling window need them)")
    out = {"ar1": np.full(len(x), np.nan), "variance": np.full(len(x), np.nan)}
    for t in range(max(start, 0) + min_points - 1, len(x)):
        segment = x[max(start, 0): t + 1]
        if np.all(np.isfinite(segment)):
            ind = csd_indicators(segment)
            out["ar1"][t], out["variance"][t] = ind.tau_ar1, ind.tau_variance
    return out
