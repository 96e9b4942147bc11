"""Timing of geometric events on hand-made curves with known answers."""

import numpy as np
import pytest

from grokinterp.analysis.transitions import (
    curvature_spike,
    log_midpoint_step,
    relative_drop,
    transition_lag,
    trend,
    value_at,
    window_median,
)


def _curvature(t, spike_at=150, fall_mid=600, width=60.0):
    """λ_max: 1 at init, a rise to 20 by `spike_at`, then a fall by 4 decades centred on `fall_mid`."""
    rise = 1 + 19 / (1 + np.exp(-(t - spike_at / 2) / 15))
    fall = 10 ** (-4 / (1 + np.exp(-(t - fall_mid) / width)))
    return rise * fall


def test_spike_factor_and_decline_onset():
    t = np.arange(0, 3001, 25.0)
    s = curvature_spike(t, _curvature(t), until=2000)
    assert s.initial == pytest.approx(_curvature(np.array([0.0]))[0])
    assert s.factor == pytest.approx(s.peak / s.initial) and 12 < s.factor < 21
    assert 100 <= s.peak_step <= 450
    # hand-made: a plateau at 10, a step drop to 5 at step 600
    v = np.where(t < 600, 10.0, 5.0)
    v[0] = 0.5
    assert curvature_spike(t, v).decline_step == 600 and curvature_spike(t, v).factor == pytest.approx(20)
    assert curvature_spike(t, np.full(t.shape, 2.0)).decline_step is None


def test_transition_lag_recovers_a_known_shift():
    t = np.arange(0, 4001, 5.0)
    curv = _curvature(t, fall_mid=1000)
    for lag in (0, 400, 1000):
        acc = 0.02 + 0.98 / (1 + np.exp(-(t - 1000 - lag) / 60))
        assert transition_lag(t, curv, t, acc) == pytest.approx(lag, abs=10)
    assert log_midpoint_step(t, curv) == pytest.approx(1000, abs=10)
    flat = np.full(t.shape, 0.02)
    assert transition_lag(t, curv, t, flat) is None  # accuracy never rises


def test_trend_slope_interval_and_window_statistics():
    rng = np.random.default_rng(0)
    t = np.arange(0, 500, 5.0)
    y = 0.002 * t + rng.normal(0, 0.05, t.size)
    s = trend(t, y, start=0, stop=400)
    assert s.low < 0.002 < s.high and s.low > 0 and s.n == 81
    assert trend(t, -y).high < 0
    cos = np.where(t < 100, 0.5, -0.2)
    assert window_median(t, cos, 100, 400) == pytest.approx(-0.2)
    rank = np.where(t < 300, 115.0, 70.0)
    assert relative_drop(t, rank, (0, 300), (300, 500)) == pytest.approx(1 - 70 / 115)
    assert value_at(t, rank, 703) == 70.0 and value_at(t, rank, 12) == 115.0
