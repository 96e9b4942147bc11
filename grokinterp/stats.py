"""Statistics for reproductions: intervals, correlations and a periodicity test (numpy and scipy only).

Every number a reproduction page or the claims ledger reports comes with an interval from here:

- medians (and other statistics of one sample): percentile bootstrap (Efron & Tibshirani 1993, ch. 13);
- ratios and differences of two independent samples' medians: the same bootstrap, resampling each sample;
- rates (k of n): the Wilson score interval (Wilson 1927), which keeps its coverage at 0/n and n/n;
- correlations: Pearson's r with the Fisher z interval, tanh(atanh(r) ± z_(1-α/2) / sqrt(n - 3 - k)) for a
  partial correlation controlling k covariates (Fisher 1924);
- periodicity: the periodogram's highest peak against an AR(1) red-noise null (Monte Carlo, fitted lag-1
  autocorrelation; the maximum over the searched band, so the search over periods is paid for), the test
  used for climate spectra (Gilman et al. 1963; Schulz & Mudelsee 2002); phase locking of two series against
  phase-randomized surrogates of one of them (Theiler et al. 1992), which keep its spectrum and destroy its
  phase relation to the other.

All resampling is seeded, so a page rebuilt from the same data prints the same intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

N_RESAMPLES = 10_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its two-sided confidence interval over n observations."""

    value: float
    low: float
    high: float
    n: int
    confidence: float = 0.95
    method: str = ""

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def format(self, digits: int = 0, scale: float = 1.0, suffix: str = "") -> str:
        """`value [low, high]` with thousands separators, e.g. `1,220 [1,010, 1,450]`."""
        if not np.isfinite(self.value):
            return "–"
        f = (lambda x: f"{x * scale:,.{digits}f}{suffix}")
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}]"


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1)")
    return float(_st.norm.ppf(0.5 + confidence / 2))


def _sample(values, what: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError(f"{what}: an interval needs at least one observation")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: every observation must be finite")
    return x


def bootstrap_ci(values, statistic=np.median, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
                 seed: int = 0) -> Estimate:
    """Percentile bootstrap interval of `statistic` (default the median) of one sample.

    The interval is the (α/2, 1-α/2) quantiles of the statistic over `n_resamples` resamples drawn with
    replacement; the point estimate is the statistic of the sample itself.

    >>> bootstrap_ci([3, 3, 3]).format()
    '3 [3, 3]'
    """
    x = _sample(values)
    rng = np.random.default_rng(seed)
    draws = statistic(x[rng.integers(0, x.size, size=(n_resamples, x.size))], axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(statistic(x)), float(low), float(high), int(x.size), confidence, "percentile bootstrap")


def bootstrap_two_sample_ci(x, y, combine, statistic=np.median, confidence: float = 0.95,
                            n_resamples: int = N_RESAMPLES, seed: int = 0) -> Estimate:
    """Interval of combine(statistic(x), statistic(y)) for two independent samples (each resampled on its own).

    `combine` is e.g. `np.divide` (ratio of medians) or `np.subtract` (difference); n is len(x) + len(y).
    """
    x, y = _sample(x, "x"), _sample(y, "y")
    rng = np.random.default_rng(seed)
    sx = statistic(x[rng.integers(0, x.size, size=(n_resamples, x.size))], axis=1)
    sy = statistic(y[rng.integers(0, y.size, size=(n_resamples, y.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = combine(sx, sy)
    draws = draws[np.isfinite(draws)]
    alpha = 1 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2]) if draws.size else (math.nan, math.nan)
    return Estimate(float(combine(statistic(x), statistic(y))), float(low), float(high), int(x.size + y.size),
                    confidence, "two-sample percentile bootstrap")


def median_ratio_ci(x, y, **kwargs) -> Estimate:
    """median(x) / median(y) with a two-sample bootstrap interval."""
    return bootstrap_two_sample_ci(x, y, np.divide, **kwargs)


def median_difference_ci(x, y, **kwargs) -> Estimate:
    """median(x) - median(y) with a two-sample bootstrap interval."""
    return bootstrap_two_sample_ci(x, y, np.subtract, **kwargs)


def auroc(positive, negative) -> float:
    """Area under the ROC curve: P(a positive's score > a negative's) + P(tie) / 2 (the Mann-Whitney U
    statistic over n_pos * n_neg); NaN scores count as -inf (a run without a finite level scores lowest).

    >>> auroc([3.0, 4.0], [1.0, 2.0]), auroc([1.0], [1.0]), auroc([float("nan")], [0.0])
    (1.0, 0.5, 0.0)
    """
    pos = np.nan_to_num(np.asarray(positive, dtype=np.float64), nan=-np.inf)
    neg = np.nan_to_num(np.asarray(negative, dtype=np.float64), nan=-np.inf)
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def auroc_ci(positive, negative, confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Estimate:
    """`auroc` with a stratified percentile-bootstrap interval (positives and negatives resampled separately,
    so every resample keeps both class sizes); n is n_pos + n_neg."""
    pos = np.nan_to_num(np.asarray(positive, dtype=np.float64), nan=-np.inf)
    neg = np.nan_to_num(np.asarray(negative, dtype=np.float64), nan=-np.inf)
    value = auroc(pos, neg)
    if not math.isfinite(value):
        return Estimate(value, math.nan, math.nan, int(len(pos) + len(neg)), confidence, "stratified bootstrap")
    rng = np.random.default_rng(seed)
    p = pos[rng.integers(0, len(pos), size=(n_resamples, len(pos)))]
    q = neg[rng.integers(0, len(neg), size=(n_resamples, len(neg)))]
    wins = (p[:, :, None] > q[:, None, :]).sum(axis=(1, 2)) + 0.5 * (p[:, :, None] == q[:, None, :]).sum(axis=(1, 2))
    draws = wins / (len(pos) * len(neg))
    alpha = 1 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return Estimate(value, float(low), float(high), int(len(pos) + len(neg)), confidence, "stratified bootstrap")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> Estimate:
    """Wilson score interval of a rate k/n: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).

    >>> wilson_interval(5, 30).format(2)
    '0.17 [0.07, 0.34]'
    """
    if not (isinstance(k, (int, np.integer)) and isinstance(n, (int, np.integer))) or n < 1 or not 0 <= k <= n:
        raise ValueError(f"a rate needs integers 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}")
    z, p = _z(confidence), k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denom = 1 + z * z / n
    # at k = 0 or k = n the bound equals p exactly; clip the last-bit rounding error
    return Estimate(p, max(0.0, min(p, (centre - half) / denom)), min(1.0, max(p, (centre + half) / denom)),
                    int(n), confidence, "Wilson score")


@dataclass(frozen=True)
class Correlation:
    """Pearson's r (or a partial r) with a two-sided Fisher-z confidence interval and p-value."""

    r: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    confidence: float
    n_covariates: int = 0

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.r, self.ci_low, self.ci_high, self.n, self.confidence,
                        "Fisher z" + (f", partial on {self.n_covariates}" if self.n_covariates else ""))


def _fisher(r: float, n: int, k: int, confidence: float) -> Correlation:
    dof = n - 3 - k
    z = math.atanh(min(max(r, -0.999999), 0.999999))
    half = _z(confidence) / math.sqrt(dof)
    t = r * math.sqrt((n - 2 - k) / max(1e-300, 1 - r * r))
    p = float(2 * _st.t.sf(abs(t), n - 2 - k))
    return Correlation(float(r), math.tanh(z - half), math.tanh(z + half), p, n, confidence, k)


def pearson_with_ci(x, y, confidence: float = 0.95) -> Correlation:
    """Pearson's r; CI from z = atanh(r) ± z_(1-α/2) / sqrt(n - 3) mapped back with tanh (needs n >= 4)."""
    return partial_correlation(x, y, None, confidence)


def partial_correlation(x, y, covariates=None, confidence: float = 0.95) -> Correlation:
    """Correlation of x and y after removing (least squares, with intercept) what the covariates explain.

    Equal to Pearson's r of the two residual vectors; its Fisher-z interval and t-test use n - 3 - k and
    n - 2 - k degrees of freedom for k covariates. NaN when a residual has no variance.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x {x.shape} and y {y.shape} must be 1-D of the same length")
    z = np.empty((x.size, 0)) if covariates is None else np.asarray(covariates, dtype=np.float64).reshape(x.size, -1)
    n, k = x.size, z.shape[1]
    if n < 4 + k:
        raise ValueError(f"a correlation with a confidence interval needs at least {4 + k} runs, got {n}")
    design = np.column_stack([np.ones(n), z])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    if np.std(rx) < 1e-12 * (1 + np.std(x)) or np.std(ry) < 1e-12 * (1 + np.std(y)):
        return Correlation(math.nan, math.nan, math.nan, math.nan, n, confidence, k)
    r = float(np.dot(rx, ry) / math.sqrt(np.dot(rx, rx) * np.dot(ry, ry)))
    return _fisher(r, n, k, confidence)


# ---- periodicity -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeriodicityTest:
    """The periodogram's highest peak within [min_period, max_period] tested against AR(1) red noise."""

    period: float  # steps, at the peak
    amplitude: float  # of the sinusoid at the peak (series units)
    peak_ratio: float  # peak power / fitted red-noise power at that frequency, normalised to the series' variance
    p_value: float  # Monte Carlo: (1 + #surrogates with a ratio >= ours) / (1 + n_surrogates)
    ar1: float  # fitted lag-1 autocorrelation of the detrended series
    n_samples: int
    spacing: float
    n_surrogates: int

    def significant(self, level: float = 0.05) -> bool:
        return self.p_value < level


def _even(steps, values) -> tuple[np.ndarray, float]:
    """The series on an even grid at its median spacing (linear interpolation where samples are uneven)."""
    t, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if t.size < 16:
        raise ValueError(f"a periodicity test needs at least 16 finite samples, got {t.size}")
    dt = float(np.median(np.diff(t)))
    grid = np.arange(t[0], t[-1] + dt / 2, dt)
    return (y if grid.size == t.size and np.allclose(grid, t) else np.interp(grid, t, y)), dt


def _detrended(y: np.ndarray) -> np.ndarray:
    """Remove the least-squares line from each row (last axis)."""
    idx = np.arange(y.shape[-1], dtype=np.float64)
    idx -= idx.mean()
    d = y - y.mean(axis=-1, keepdims=True)
    return d - np.outer(d @ idx / (idx @ idx), idx).reshape(d.shape)


def _ar1(d: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each (detrended) row, clipped to [0, 0.99]."""
    d = d - d.mean(axis=-1, keepdims=True)
    denom = np.sum(d * d, axis=-1)
    r = np.where(denom > 0, np.sum(d[..., :-1] * d[..., 1:], axis=-1) / np.where(denom > 0, denom, 1), 0.0)
    return np.clip(r, 0.0, 0.99)


def _peak_ratios(y: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: periodogram / AR(1) spectrum over the band (each normalised to unit mean) and the fitted φ."""
    d = _detrended(np.atleast_2d(y))
    phi = _ar1(d)[:, None]
    power = np.abs(np.fft.rfft(d, axis=-1))[:, band] ** 2
    freq = (np.arange(d.shape[-1] // 2 + 1)[band] / d.shape[-1])[None, :]  # cycles per sample
    red = (1 - phi * phi) / (1 - 2 * phi * np.cos(2 * np.pi * freq) + phi * phi)
    mean_power = power.mean(axis=-1, keepdims=True)
    ratios = np.where(mean_power > 0, power / np.where(mean_power > 0, mean_power, 1), 0.0)
    return ratios / (red / red.mean(axis=-1, keepdims=True)), phi[:, 0]


def _ar1_series(phi: float, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` stationary AR(1) series of length n with unit variance."""
    from scipy.signal import lfilter

    burn = 200
    e = rng.standard_normal((count, n + burn)) * math.sqrt(max(1e-300, 1 - phi * phi))
    return lfilter([1.0], [1.0, -phi], e, axis=-1)[:, burn:]


def periodicity_test(steps, values, min_period: float | None = None, max_period: float | None = None,
                     n_surrogates: int = 999, seed: int = 0) -> PeriodicityTest:
    """Is there a cycle? The periodogram's highest peak against an AR(1) red-noise null.

    Definition: the series is put on an even grid, linearly detrended, and its periodogram taken at the
    Fourier frequencies whose periods lie in [min_period, max_period] (default: 4 samples to a third of the
    span, so a reported cycle repeats at least three times). The statistic is the largest ratio of
    periodogram power to the AR(1) spectrum with the series' fitted lag-1 autocorrelation φ (both
    normalised over the band). Null: AR(1) series of the same length and φ, each detrended and refitted the
    same way; p = (1 + #null ratios >= ours) / (1 + n_surrogates). Taking the maximum over the band makes the
    p-value honest about having searched every period. Phase-randomised surrogates cannot serve here: they
    keep the periodogram exactly, peak included; they test phase locking (`phase_locking_test`).
    """
    y, dt = _even(steps, values)
    n = y.size
    k = np.arange(n // 2 + 1)
    with np.errstate(divide="ignore"):
        periods = np.where(k > 0, n * dt / np.maximum(k, 1), np.inf)
    lo, hi = (4 * dt if min_period is None else min_period), (n * dt / 3 if max_period is None else max_period)
    band = (k > 0) & (periods >= lo) & (periods <= hi)
    if band.sum() < 2:
        raise ValueError(f"no Fourier period of a {n * dt:g}-step series lies in [{lo:g}, {hi:g}] steps")
    ratios, phi = _peak_ratios(y, band)
    ratios, phi = ratios[0], float(phi[0])
    best = int(np.argmax(ratios))
    ours = float(ratios[best])
    null = _peak_ratios(_ar1_series(phi, n, n_surrogates, np.random.default_rng(seed)), band)[0].max(axis=-1)
    spectrum = np.fft.rfft(_detrended(y[None, :])[0])[band]
    amplitude = 2 * abs(spectrum[best]) / n
    return PeriodicityTest(float(periods[band][best]), float(amplitude), ours,
                           float((1 + np.sum(null >= ours)) / (1 + n_surrogates)), phi, n, dt, n_surrogates)


def phase_randomized(y, rng: np.random.Generator) -> np.ndarray:
    """A surrogate with exactly the amplitude spectrum of y and uniformly random Fourier phases."""
    y = np.asarray(y, dtype=np.float64)
    spectrum = np.fft.rfft(y - y.mean())
    phases = rng.uniform(0, 2 * np.pi, spectrum.size)
    phases[0] = 0.0
    if y.size % 2 == 0:
        phases[-1] = 0.0  # the Nyquist term stays real
    return np.fft.irfft(np.abs(spectrum) * np.exp(1j * phases), n=y.size) + y.mean()


def phase_locking_value(x, y) -> float:
    """|mean exp(i(φx - φy))| of the Hilbert phases of two detrended, equally sampled series."""
    from scipy.signal import hilbert

    px = np.angle(hilbert(_detrended(np.asarray(x, dtype=np.float64)[None, :])[0]))
    py = np.angle(hilbert(_detrended(np.asarray(y, dtype=np.float64)[None, :])[0]))
    return float(abs(np.mean(np.exp(1j * (px - py)))))


def phase_locking_test(x, y, n_surrogates: int = 999, seed: int = 0) -> tuple[float, float]:
    """(PLV, p): the phase-locking value of x and y and its p-value against phase-randomised surrogates of y.

    Two smooth series share slow phases by chance; the surrogates keep y's spectrum and so its smoothness,
    and break only its phase relation to x.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.size < 16:
        raise ValueError(f"phase locking needs two equally sampled series of >= 16 samples, got {x.shape}, {y.shape}")
    ours = phase_locking_value(x, y)
    rng = np.random.default_rng(seed)
    null = np.array([phase_locking_value(x, phase_randomized(y, rng)) for _ in range(n_surrogates)])
    return ours, float((1 + np.sum(null >= ours)) / (1 + n_surrogates))
