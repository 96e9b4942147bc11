"""Post-grokking dynamics: oscillations of test accuracy and weight norm, their phase locking, collapses.

The Grokking Dynamics write-up reports that after grokking under weight decay the model does not sit still: at wd 1 test
accuracy and the weight norm oscillate together (a limit cycle of about 150 steps), at wd 0.25 accuracy
collapses (to ~0.25) and re-groks. Everything here is a pure function of metric arrays (a step axis,
possibly irregular, and values with NaN where not measured), e.g. `Run(...).metrics`.

Definitions:
- detrended series: y - polyfit(t, y, degree)(t) (degree 1 by default).
- period: 1 / argmax_f P(f), P the generalized (floating-mean) Lomb-Scargle periodogram
  (Lomb 1976; Scargle 1982; Zechmeister & Kürster 2009), normalized to [0, 1], evaluated on a
  frequency grid from 1 / max_period to 1 / min_period; it handles irregular sample steps.
- amplitude, phase: of the least-squares fit y ≈ A cos(2π f t + φ) + c at the peak frequency.
- phase locking value: PLV = |mean_t exp(i (φ_x(t) - φ_y(t)))|, φ the angle of the analytic signal
  (Hilbert transform) of each detrended (optionally band-passed) series on a common uniform grid
  (Lachaux et al. 1999). 1: a constant phase difference; ~1/sqrt(n): independent.
- cycle test: is the accuracy oscillation more than red noise? `grokinterp.stats.periodicity_test` (the
  periodogram's highest peak against an AR(1) null, p-value over the whole period band); locking p-value:
  the PLV of accuracy and weight norm against phase-randomized surrogates of the norm
  (`grokinterp.stats.phase_locking_test`). A period without a small p-value is not a cycle.
- collapse: after grokking, accuracy falls below `threshold`; it ends by re-grokking, the first later
  step with accuracy >= `regrok_threshold` (0.99, the grokking threshold of DESIGN.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float

from ..runs import ACC_THRESHOLD
from ..stats import PeriodicityTest  # noqa: F401  (the cycle_test field's type)

__all__ = [
    "Collapse", "Oscillation", "PhaseLocking", "PostGrokDynamics", "ResolutionWarning", "check_resolution",
    "detect_collapses", "detrend", "lomb_scargle", "phase_locking", "post_grokking_dynamics",
    "stable_grokking_step",
]

Array = np.ndarray


class ResolutionWarning(UserWarning):
    """The samples cannot resolve the period asked about (spacing above Nyquist, or a too short series)."""


@dataclass(frozen=True)
class Oscillation:
    """A Lomb-Scargle period estimate. Steps are training steps; frequencies in cycles per step."""

    period: float  # steps
    frequency: float  # cycles per step
    power: float  # normalized Lomb-Scargle power at the peak, in [0, 1]
    amplitude: float  # of the fitted sinusoid, in the series' units (peak to mean)
    phase: float  # radians: y ≈ mean + amplitude * cos(2π frequency step + phase)
    mean: float
    trend: tuple  # polynomial coefficients removed (highest degree first, in steps)
    n_samples: int
    span: float  # steps covered
    median_spacing: float  # median step between samples
    frequencies: Array = field(repr=False, compare=False)
    powers: Array = field(repr=False, compare=False)

    @property
    def resolved(self) -> bool:
        """True when the samples resolve the period: >= 2 samples per period and >= 2 periods covered."""
        return self.period >= 2 * self.median_spacing and self.span >= 2 * self.period


@dataclass(frozen=True)
class PhaseLocking:
    """Phase locking of two series (Hilbert phases on a common uniform grid)."""

    plv: float  # in [0, 1]
    mean_phase_difference: float  # radians, angle of mean exp(i(φ_x - φ_y)): x leads y when > 0
    lag_steps: float | None  # mean phase difference in steps, when the period is known
    n_samples: int
    spacing: float


@dataclass(frozen=True)
class Collapse:
    """One loss of generalization after grokking."""

    start_step: int  # first sample below the threshold
    min_step: int  # where accuracy is lowest before re-grokking
    min_value: float
    regrok_step: int | None  # first later sample >= regrok_threshold; None: never re-grokked

    @property
    def duration(self) -> int | None:
        return None if self.regrok_step is None else self.regrok_step - self.start_step


@dataclass(frozen=True)
class PostGrokDynamics:
    """`post_grokking_dynamics`' result: oscillations after grokking, their locking, collapses."""

    grokking_step: int | None
    stable_grokking_step: int | None
    accuracy: Oscillation | None
    weight_norm: Oscillation | None
    locking: PhaseLocking | None
    collapses: list
    cycle_test: "PeriodicityTest | None" = None  # accuracy after grokking vs AR(1) red noise
    locking_p_value: float | None = None  # accuracy-norm PLV vs phase-randomized surrogates of the norm


def finite_series(steps, values, start: float | None = None, stop: float | None = None) -> tuple[Array, Array]:
    """Samples where `values` is finite and `start <= step <= stop`, sorted by step.

    Args:
        steps: [n] step of each sample; values: [n] the metric (NaN where not measured).
    """
    t, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise ValueError(f"steps and values must be 1-D arrays of one length, got shapes {t.shape} and {y.shape}")
    keep = np.isfinite(t) & np.isfinite(y)
    if start is not None:
        keep &= t >= start
    if stop is not None:
        keep &= t <= stop
    order = np.argsort(t[keep], kind="stable")
    return t[keep][order], y[keep][order]


def detrend(steps: Float[Array, "n"], values: Float[Array, "n"], degree: int = 1) -> tuple[Array, Array]:
    """values - the least-squares polynomial of `degree` in steps; returns (residual [n], coefficients).

    >>> r, c = detrend(np.arange(5.0), 2 * np.arange(5.0) + 1)
    >>> bool(np.allclose(r, 0)), np.round(c, 6).tolist()
    (True, [2.0, 1.0])
    """
    t, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if degree < 0:
        return y - 0.0, np.zeros(0)
    coeffs = np.polyfit(t, y, degree)
    return y - np.polyval(coeffs, t), coeffs


def check_resolution(steps, period: float, what: str = "the series") -> bool:
    """Warn (ResolutionWarning) when samples at `steps` cannot resolve `period`; returns True when they can.

    Nyquist: a period needs at least two samples, so the median spacing must be <= period / 2; and the
    series must cover at least two periods for a period to be estimated at all.
    """
    t = np.sort(np.asarray(steps, dtype=np.float64))
    spacing = float(np.median(np.diff(t))) if len(t) > 1 else np.inf
    span = float(t[-1] - t[0]) if len(t) else 0.0
    ok = True
    if period < 2 * spacing:
        warnings.warn(
            f"{what}: a period of {period:.4g} steps is below the Nyquist limit of samples every {spacing:.4g} steps "
            f"(it needs a spacing <= {period / 2:.4g}); the estimate may be an alias. Sample more often "
            f"(train.eval_every for test accuracy, train.ckpt_every for replayed checkpoints).",
            ResolutionWarning, stacklevel=3)
        ok = False
    if span < 2 * period:
        warnings.warn(
            f"{what}: {span:.4g} steps cover fewer than two periods of {period:.4g} steps; train longer after "
            f"grokking (train.early_stop_after, train.steps) to measure it.",
            ResolutionWarning, stacklevel=3)
        ok = False
    return ok


def _sinusoid_fit(t: Array, y: Array, frequency: float) -> tuple[float, float, float]:
    """Least-squares y ≈ c + A cos(2π f t + φ): returns (A, φ, c)."""
    w = 2 * np.pi * frequency
    design = np.stack([np.cos(w * t), np.sin(w * t), np.ones_like(t)], axis=1)
    (a, b, c), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.hypot(a, b)), float(np.arctan2(-b, a)), float(c)


def block_means(steps: Float[Array, "n"], values: Float[Array, "n"], k: int) -> tuple[Array, Array]:
    """Means of consecutive groups of `k` samples (steps and values): decimation with an averaging
    anti-alias filter. The last, shorter group is kept.

    >>> block_means(np.arange(5.0), np.arange(5.0), 2)
    (array([0.5, 2.5, 4. ]), array([0.5, 2.5, 4. ]))
    """
    t, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    starts = np.arange(0, len(t), k)
    counts = np.diff(np.append(starts, len(t)))
    return np.add.reduceat(t, starts) / counts, np.add.reduceat(y, starts) / counts


def lomb_scargle(steps: Float[Array, "n"], values: Float[Array, "n"], min_period: float | None = None,
                 max_period: float | None = None, detrend_degree: int = 1, oversampling: int = 3,
                 max_samples: int = 1000, expected_period: float | None = None,
                 what: str = "the series") -> Oscillation:
    """The dominant period of a possibly irregularly sampled series (generalized Lomb-Scargle, scipy).

    The periodogram is evaluated on a grid of `oversampling` points per peak width (1 / span), then
    refined around its three highest peaks; its cost is samples x frequencies, so a series of more than
    `max_samples` samples is first averaged in blocks (e.g. a per-step weight norm over 3,000 steps in
    blocks of 3, which still resolves periods down to 6 steps).

    Args:
        steps: [n] sample steps (any spacing; NaN values are dropped).
        values: [n] the metric.
        min_period: shortest period searched (default: twice the median spacing, the Nyquist limit of regular
            samples; pass a smaller one to search irregular samples beyond it, with a warning if found there).
        max_period: longest period searched (default: half the span, so two periods are covered).
        detrend_degree: degree of the polynomial trend removed first (-1: none).
        oversampling: frequency-grid points per periodogram peak width before refinement.
        max_samples: block-average longer series down to about this many samples.
        expected_period: a period known from elsewhere (e.g. the weight norm, logged every step): warns
            when this series' spacing cannot resolve it. Aliasing cannot be seen from one series alone:
            a period below Nyquist shows up as a longer alias.
        what: the series' name in warnings.

    Returns:
        An Oscillation; warns (ResolutionWarning) when the period found, or `expected_period`, is not
        resolved by the spacing of the samples given.

    >>> t = np.arange(0, 1000, 5.0)
    >>> round(lomb_scargle(t, np.sin(2 * np.pi * t / 150)).period)
    150
    """
    from scipy.signal import lombscargle

    t_all, y_all = finite_series(steps, values)
    if len(t_all) < 8:
        raise ValueError(f"{what}: {len(t_all)} finite samples; a period needs at least 8")
    k = -(-len(t_all) // max_samples)
    t, y = block_means(t_all, y_all, k) if k > 1 else (t_all, y_all)
    span = float(t_all[-1] - t_all[0])
    median_spacing = float(np.median(np.diff(t_all)))
    min_period = 2 * float(np.median(np.diff(t))) if min_period is None else float(min_period)
    max_period = span / 2 if max_period is None else float(max_period)
    if not 0 < min_period < max_period:
        raise ValueError(f"{what}: need 0 < min_period ({min_period:.4g}) < max_period ({max_period:.4g}); "
                         "the series is too short or too coarse for the range asked")
    residual, trend = detrend(t, y, detrend_degree)
    f_lo, f_hi = 1 / max_period, 1 / min_period

    def periodogram(freqs):
        if np.allclose(residual, residual[0]):
            return np.zeros_like(freqs)
        return lombscargle(t, residual, 2 * np.pi * freqs, normalize=True, floating_mean=True)

    coarse = np.linspace(f_lo, f_hi, int(min(50_000, max(200, oversampling * span * (f_hi - f_lo)))))
    powers = periodogram(coarse)
    step = coarse[1] - coarse[0]
    peaks = np.argsort(powers)[-3:]
    fine = np.concatenate([np.linspace(max(f_lo, coarse[i] - step), min(f_hi, coarse[i] + step), 41) for i in peaks])
    freqs = np.concatenate([coarse, fine])
    powers = np.concatenate([powers, periodogram(fine)])
    order = np.argsort(freqs, kind="stable")
    freqs, powers = freqs[order], powers[order]
    best = int(np.argmax(powers))
    frequency = float(freqs[best])
    residual_all = y_all - np.polyval(trend, t_all) if detrend_degree >= 0 else y_all
    amplitude, phase, mean = _sinusoid_fit(t_all, residual_all, frequency)
    result = Oscillation(period=1 / frequency, frequency=frequency, power=float(powers[best]), amplitude=amplitude,
                         phase=phase, mean=mean + float(np.mean(y_all - residual_all)),
                         trend=tuple(float(c) for c in trend), n_samples=len(t_all), span=span,
                         median_spacing=median_spacing, frequencies=freqs, powers=powers)
    check_resolution(t_all, result.period, what)
    if expected_period is not None:
        check_resolution(t_all, expected_period, f"{what} (expected period)")
    return result


def phase_locking(steps_x, x, steps_y, y, period: float | None = None, spacing: float | None = None,
                  bandwidth: float = 0.5, detrend_degree: int = 1, trim: float = 0.1) -> PhaseLocking:
    """Phase locking value of two series via the Hilbert transform.

    Both are linearly interpolated onto a uniform grid over their common range (spacing: the larger of their
    median spacings, unless given), detrended, band-passed around 1/period (relative width `bandwidth`) when
    `period` is given, and a `trim` fraction of each end is dropped (Hilbert edge effects).

    Args:
        steps_x, x: [n] first series; steps_y, y: [m] second series (NaN values dropped).
        period: the oscillation's period in steps (e.g. `lomb_scargle(...).period`), for the band-pass and lag.

    Returns:
        A PhaseLocking (PLV in [0, 1]).
    """
    from scipy.signal import butter, hilbert, sosfiltfilt

    tx, vx = finite_series(steps_x, x)
    ty, vy = finite_series(steps_y, y)
    if len(tx) < 8 or len(ty) < 8:
        raise ValueError(f"phase locking needs at least 8 finite samples per series, got {len(tx)} and {len(ty)}")
    lo, hi = max(tx[0], ty[0]), min(tx[-1], ty[-1])
    if hi <= lo:
        raise ValueError(f"the two series do not overlap (steps {tx[0]:g}-{tx[-1]:g} and {ty[0]:g}-{ty[-1]:g})")
    if spacing is None:
        spacing = max(float(np.median(np.diff(tx))), float(np.median(np.diff(ty))))
    grid = np.arange(lo, hi + spacing / 2, spacing)
    if len(grid) < 8:
        raise ValueError(f"the overlap of {hi - lo:g} steps holds fewer than 8 samples at spacing {spacing:g}")
    series = []
    for t, v in ((tx, vx), (ty, vy)):
        u, _ = detrend(grid, np.interp(grid, t, v), detrend_degree)
        series.append(u)
    if period is not None:
        check_resolution(grid, period, "phase locking")
        nyquist = 0.5 / spacing
        f0 = 1 / period
        band = [f0 * (1 - bandwidth / 2) / nyquist, min(f0 * (1 + bandwidth / 2) / nyquist, 0.99)]
        if 0 < band[0] < band[1] and len(grid) > 15:
            sos = butter(2, band, btype="bandpass", output="sos")
            series = [sosfiltfilt(sos, u) for u in series]
    cut = int(trim * len(grid))
    keep = slice(cut, len(grid) - cut)
    phases = [np.angle(hilbert(u))[keep] for u in series]
    z = np.mean(np.exp(1j * (phases[0] - phases[1])))
    diff = float(np.angle(z))
    return PhaseLocking(plv=float(np.abs(z)), mean_phase_difference=diff,
                        lag_steps=None if period is None else diff / (2 * np.pi) * period,
                        n_samples=int(len(phases[0])), spacing=float(spacing))


def detect_collapses(steps, accuracy, grokking_step: float | None = None, threshold: float = 0.5,
                     regrok_threshold: float = ACC_THRESHOLD) -> list[Collapse]:
    """Collapses of accuracy after grokking and the re-grokking that ends each.

    Args:
        steps: [n] sample steps; accuracy: [n] test accuracy (NaN where not evaluated).
        grokking_step: where to start (default: the first sample with accuracy >= regrok_threshold).
        threshold: a collapse starts at the first sample below it while grokked.
        regrok_threshold: a collapse ends (re-grokking) at the first later sample >= it.

    Returns:
        Collapses in order; the last has regrok_step None if the run ended collapsed.

    >>> detect_collapses([0, 10, 20, 30, 40, 50], [0.1, 1.0, 0.2, 0.6, 1.0, 1.0])
    [Collapse(start_step=20, min_step=20, min_value=0.2, regrok_step=40)]
    """
    if not threshold < regrok_threshold:
        raise ValueError(f"threshold={threshold} must be below regrok_threshold={regrok_threshold}")
    t, a = finite_series(steps, accuracy)
    if grokking_step is None:
        above = np.flatnonzero(a >= regrok_threshold)
        if not len(above):
            return []
        grokking_step = t[above[0]]
    collapses, start, low = [], None, None
    for step, value in zip(t[t >= grokking_step], a[t >= grokking_step]):
        if start is None:
            if value < threshold:
                start, low = step, (step, value)
        elif value >= regrok_threshold:
            collapses.append(Collapse(int(start), int(low[0]), float(low[1]), int(step)))
            start = None
        elif value < low[1]:
            low = (step, value)
    if start is not None:
        collapses.append(Collapse(int(start), int(low[0]), float(low[1]), None))
    return collapses


def stable_grokking_step(steps, accuracy, threshold: float = ACC_THRESHOLD) -> int | None:
    """The first sample after which accuracy stays >= threshold to the end (DESIGN.md); None if it ends below.

    >>> stable_grokking_step([0, 10, 20, 30], [1.0, 0.4, 1.0, 1.0])
    20
    """
    t, a = finite_series(steps, accuracy)
    if not len(a) or a[-1] < threshold:
        return None
    below = np.flatnonzero(a < threshold)
    return int(t[below[-1] + 1] if len(below) else t[0])


def post_grokking_dynamics(metrics: dict, grokking_step: int | None = None, acc_key: str = "test_acc",
                           norm_key: str = "weight_norm_sq", threshold: float = 0.5, min_period: float | None = None,
                           max_period: float | None = None, detrend_degree: int = 1,
                           n_surrogates: int = 999) -> PostGrokDynamics:
    """Oscillation of accuracy and weight norm after grokking, their phase locking, and collapses.

    Args:
        metrics: column -> [n] array with a "step" column (e.g. `Run(...).metrics`); NaN where not measured.
        grokking_step: default: the first step with train and test accuracy >= 0.99 (needs "train_acc").
        acc_key: the accuracy column; norm_key: the weight-norm column (a `_sq` column is square-rooted).
        threshold: accuracy below which a grokked run has collapsed.
        min_period, max_period, detrend_degree: passed to `lomb_scargle`.
        n_surrogates: null draws of the cycle test and the locking test (0: skip both).

    Returns:
        A PostGrokDynamics; oscillations and locking are None when the run never grokked or too few samples
        follow grokking. Warns (ResolutionWarning) when the spacing cannot resolve a period found.
    """
    steps = np.asarray(metrics["step"], dtype=np.float64)
    acc = np.asarray(metrics[acc_key], dtype=np.float64)
    if grokking_step is None and "train_acc" in metrics:
        train = np.asarray(metrics["train_acc"], dtype=np.float64)
        both = np.flatnonzero((train >= ACC_THRESHOLD) & (acc >= ACC_THRESHOLD))
        grokking_step = int(steps[both[0]]) if len(both) else None
    stable = stable_grokking_step(steps, acc)
    if grokking_step is None:
        return PostGrokDynamics(None, stable, None, None, None, [])
    collapses = detect_collapses(steps, acc, grokking_step, threshold)
    ta, va = finite_series(steps, acc, start=grokking_step)
    tn = vn = None
    if norm_key in metrics:
        norm = np.asarray(metrics[norm_key], dtype=np.float64)
        tn, vn = finite_series(steps, np.sqrt(norm) if norm_key.endswith("_sq") else norm, start=grokking_step)

    def estimate(t, v, what, expected=None):
        if len(t) < 8:
            return None
        lo = min_period if min_period is not None else 2 * float(np.median(np.diff(t)))
        hi = max_period if max_period is not None else (t[-1] - t[0]) / 2
        if not 0 < lo < hi:
            return None
        try:
            return lomb_scargle(t, v, min_period, max_period, detrend_degree, expected_period=expected, what=what)
        except ValueError:  # too short or too coarse for the period range
            return None

    # the weight norm is logged every step: its period tells whether accuracy's spacing can resolve the cycle
    norm_osc = estimate(tn, vn, "weight norm after grokking") if tn is not None else None
    acc_osc = estimate(ta, va, f"{acc_key} after grokking", norm_osc.period if norm_osc is not None else None)
    locking = None
    if acc_osc is not None and norm_osc is not None:
        try:
            locking = phase_locking(tn, vn, ta, va, period=norm_osc.period, detrend_degree=detrend_degree)
        except ValueError:
            locking = None
    cycle, locking_p = _significance(ta, va, tn, vn, min_period, max_period, n_surrogates)
    return PostGrokDynamics(grokking_step, stable, acc_osc, norm_osc, locking, collapses, cycle, locking_p)


def _significance(ta, va, tn, vn, min_period, max_period, n_surrogates: int):
    """The cycle test of accuracy after grokking and the surrogate p-value of its locking with the norm."""
    from ..stats import periodicity_test, phase_locking_test

    if n_surrogates < 1 or len(ta) < 16:
        return None, None
    try:
        cycle = periodicity_test(ta, va, min_period, max_period, n_surrogates=n_surrogates)
    except ValueError:  # too short, or no Fourier period in the band
        return None, None
    locking_p = None
    if tn is not None and len(tn) >= 16:
        grid = np.arange(ta[0], ta[-1] + cycle.spacing / 2, cycle.spacing)
        grid = grid[(grid >= tn[0]) & (grid <= tn[-1])]
        if len(grid) >= 16:
            locking_p = phase_locking_test(np.interp(grid, ta, va), np.interp(grid, tn, vn), n_surrogates)[1]
    return cycle, locking_p
