"""grokinterp.stats against closed forms, exact references and coverage on simulated data."""

import math

import numpy as np
import pytest
from scipy import stats as st

from grokinterp.stats import (
    bootstrap_ci,
    median_difference_ci,
    median_ratio_ci,
    partial_correlation,
    pearson_with_ci,
    periodicity_test,
    phase_locking_test,
    phase_randomized,
    wilson_interval,
)


def test_wilson_matches_closed_form_and_edges():
    # closed form for k=5, n=30, z=1.959964: written out independently of the implementation
    z, n, p = st.norm.ppf(0.975), 30, 5 / 30
    lo = (p + z**2 / (2 * n) - z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))) / (1 + z**2 / n)
    hi = (p + z**2 / (2 * n) + z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))) / (1 + z**2 / n)
    w = wilson_interval(5, 30)
    assert (w.value, w.low, w.high) == pytest.approx((p, lo, hi), abs=1e-12)
    assert wilson_interval(0, 30).low == 0.0 and wilson_interval(30, 30).high == 1.0
    assert wilson_interval(30, 30).low == pytest.approx(n / (n + z**2), abs=1e-12)  # the k = n closed form
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(31, 30)


def test_wilson_coverage_near_nominal():
    rng = np.random.default_rng(1)
    for p in (0.1, 0.5, 0.9):
        ks = rng.binomial(30, p, size=4000)
        covered = np.mean([wilson_interval(int(k), 30).contains(p) for k in ks])
        assert 0.92 <= covered <= 0.985, (p, covered)


def test_bootstrap_median_coverage_and_degenerate_sample():
    rng = np.random.default_rng(2)
    hits = 0
    for i in range(300):
        x = rng.exponential(1.0, size=30)  # true median ln 2
        hits += bootstrap_ci(x, n_resamples=2000, seed=i).contains(math.log(2))
    assert 0.89 <= hits / 300 <= 0.99
    e = bootstrap_ci([7.0] * 10)
    assert (e.value, e.low, e.high, e.n) == (7.0, 7.0, 7.0, 10)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([1.0, float("nan")])


def test_two_sample_bootstrap_ratio_and_difference():
    rng = np.random.default_rng(3)
    hits_ratio = hits_diff = 0
    for i in range(200):
        x, y = rng.normal(300, 40, 30), rng.normal(150, 20, 30)
        hits_ratio += median_ratio_ci(x, y, n_resamples=2000, seed=i).contains(2.0)
        hits_diff += median_difference_ci(x, y, n_resamples=2000, seed=i).contains(150.0)
    assert hits_ratio / 200 >= 0.88 and hits_diff / 200 >= 0.88
    r = median_ratio_ci([2, 2, 2], [1, 1, 1])
    assert (r.value, r.low, r.high) == (2.0, 2.0, 2.0)


def test_pearson_and_partial_against_residual_regression():
    rng = np.random.default_rng(4)
    z = rng.normal(size=40)
    x = 2 * z + rng.normal(size=40)
    y = -z + 0.5 * x + rng.normal(size=40)
    c = pearson_with_ci(x, y)
    r, p = st.pearsonr(x, y)
    assert c.r == pytest.approx(r, abs=1e-12) and c.p_value == pytest.approx(p, rel=1e-6)
    half = st.norm.ppf(0.975) / math.sqrt(40 - 3)
    assert (c.ci_low, c.ci_high) == pytest.approx((math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)))
    # partial r = correlation of the residuals of x and y regressed on z (by hand, with numpy's polyfit)
    rx = x - np.polyval(np.polyfit(z, x, 1), z)
    ry = y - np.polyval(np.polyfit(z, y, 1), z)
    pc = partial_correlation(x, y, z)
    assert pc.r == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-10)
    half = st.norm.ppf(0.975) / math.sqrt(40 - 4)
    assert pc.ci_high == pytest.approx(math.tanh(math.atanh(pc.r) + half))
    # a correlation that exists only through the covariate vanishes once it is controlled
    w = rng.normal(size=400)
    a, b = w + 0.1 * rng.normal(size=400), w + 0.1 * rng.normal(size=400)
    assert pearson_with_ci(a, b).r > 0.9 and abs(partial_correlation(a, b, w).r) < 0.15


def _steps(n=800, dt=5):
    return np.arange(n) * dt


def test_periodicity_finds_a_planted_150_step_cycle():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        t = _steps()
        y = 0.99 + 0.004 * np.sin(2 * np.pi * t / 150) + 0.004 * rng.standard_normal(t.size)
        res = periodicity_test(t, y, n_surrogates=499, seed=seed)
        assert res.p_value < 0.01
        assert res.period == pytest.approx(150, rel=0.05)
        assert res.amplitude == pytest.approx(0.004, rel=0.3)


@pytest.mark.parametrize("phi", [0.0, 0.7, 0.95])
def test_periodicity_null_white_noise_and_ar1_report_no_cycle(phi):
    """At the 5 % level, across 40 generator seeds, red noise is called a cycle about 5 % of the time."""
    rejections = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        e = rng.standard_normal(800 + 500)
        y = np.empty_like(e)
        y[0] = e[0]
        for i in range(1, e.size):
            y[i] = phi * y[i - 1] + e[i]
        rejections += periodicity_test(_steps(), y[500:], n_surrogates=199, seed=seed).significant(0.05)
    assert rejections <= 6  # binomial(40, 0.05): P(X >= 7) < 1.5 %


def test_phase_randomized_keeps_the_spectrum():
    rng = np.random.default_rng(5)
    y = np.cumsum(rng.standard_normal(256))
    s = phase_randomized(y, rng)
    assert np.allclose(np.abs(np.fft.rfft(s - s.mean())), np.abs(np.fft.rfft(y - y.mean())))
    assert s.mean() == pytest.approx(y.mean())
    assert not np.allclose(s, y)


def test_phase_locking_locked_vs_independent():
    rng = np.random.default_rng(6)
    t = _steps(400)
    x = np.sin(2 * np.pi * t / 150) + 0.3 * rng.standard_normal(t.size)
    locked = np.sin(2 * np.pi * t / 150 + 0.5) + 0.3 * rng.standard_normal(t.size)
    plv, p = phase_locking_test(x, locked, n_surrogates=199)
    assert plv > 0.8 and p < 0.01
    independent = np.cumsum(rng.standard_normal(t.size))
    plv2, p2 = phase_locking_test(x, independent, n_surrogates=199)
    assert p2 > 0.05


def test_auroc_interval_on_a_hand_made_case_and_its_coverage():
    """AUROC = P(pos > neg) + ties/2; the stratified bootstrap interval holds the value, is degenerate under
    perfect separation, and covers the true AUROC of two shifted normals (Φ(d/√2)) about 95 % of the time."""
    from scipy.stats import norm

    from grokinterp.stats import auroc, auroc_ci

    est = auroc_ci([3.0, 4.0, 5.0], [1.0, 2.0, 3.5])
    assert est.value == pytest.approx(8 / 9) and 0 <= est.low <= est.value <= est.high <= 1 and est.n == 6
    perfect = auroc_ci([5.0, 6.0, 7.0], [1.0, 2.0])
    assert (perfect.value, perfect.low, perfect.high) == (1.0, 1.0, 1.0)
    assert auroc([1.0, float("nan")], [0.0, 0.0]) == 0.5
    d, n, trials = 1.0, 30, 200
    truth = norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(7)
    covered = 0
    for t in range(trials):
        e = auroc_ci(rng.normal(d, 1, n), rng.normal(0, 1, n), n_resamples=1000, seed=t)
        covered += e.low <= truth <= e.high
    assert 0.88 <= covered / trials <= 0.99
