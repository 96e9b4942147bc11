import numpy as np
import pytest

from grokinterp.analysis.dynamics import (
    Collapse,
    ResolutionWarning,
    check_resolution,
    detect_collapses,
    detrend,
    lomb_scargle,
    phase_locking,
    post_grokking_dynamics,
    stable_grokking_step,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def irregular_steps(rng, span=3000.0, n=400):
    """Random sample steps with two long gaps (as when evaluation or checkpoints are missing)."""
    t = np.sort(rng.uniform(0, span, n))
    return t[~((t > 800) & (t < 1100)) & ~((t > 2000) & (t < 2150))]


def test_lomb_scargle_recovers_a_known_period_from_a_noisy_irregular_sinusoid(rng):
    t = irregular_steps(rng)
    y = 0.9 + 0.05 * np.cos(2 * np.pi * t / 150 + 0.7) + 2e-5 * t + rng.normal(0, 0.02, len(t))
    y[rng.choice(len(t), 20, replace=False)] = np.nan  # unmeasured samples are dropped
    osc = lomb_scargle(t, y)
    assert osc.period == pytest.approx(150, rel=0.02)
    assert osc.amplitude == pytest.approx(0.05, rel=0.15)
    assert np.angle(np.exp(1j * (osc.phase - 0.7))) == pytest.approx(0, abs=0.3)
    assert osc.trend[0] == pytest.approx(2e-5, rel=0.3)  # the linear trend was removed first
    assert osc.resolved and osc.n_samples == np.isfinite(y).sum()
    assert osc.power > 0.5 and osc.power == osc.powers.max()
    noise = lomb_scargle(t, rng.normal(0, 0.02, len(t)))
    assert noise.power < 0.2  # no oscillation: a low peak


def test_detrend_removes_a_polynomial():
    t = np.linspace(0, 100, 50)
    residual, coeffs = detrend(t, 3 + 0.5 * t - 0.01 * t**2, degree=2)
    assert np.allclose(residual, 0, atol=1e-9) and np.allclose(coeffs, [-0.01, 0.5, 3])


def test_unresolvable_periods_warn(rng):
    t = np.arange(0, 3000, 100.0)  # samples every 100 steps cannot resolve a 150-step cycle
    y = np.sin(2 * np.pi * t / 150)
    with pytest.warns(ResolutionWarning, match="Nyquist"):
        osc = lomb_scargle(t, y, expected_period=150)
    assert osc.period == pytest.approx(300, rel=0.02)  # what it sees is the alias
    with pytest.warns(ResolutionWarning, match="fewer than two periods"):
        assert not check_resolution(np.arange(0, 200, 10.0), 150)
    assert check_resolution(np.arange(0, 1000, 10.0), 150)


def test_phase_locking_of_locked_sinusoids_is_one_and_of_independent_noise_small(rng):
    t = np.arange(0, 3000, 1.0)
    acc_t = np.arange(0, 3000, 10.0)  # accuracy is evaluated every 10 steps, the norm every step
    norm = 40 - 0.002 * t + np.sin(2 * np.pi * t / 150) + rng.normal(0, 0.3, len(t))
    acc = 0.95 + 0.03 * np.sin(2 * np.pi * acc_t / 150 - 0.8) + rng.normal(0, 0.01, len(acc_t))
    locked = phase_locking(t, norm, acc_t, acc, period=150)
    assert locked.plv > 0.95
    assert locked.mean_phase_difference == pytest.approx(0.8, abs=0.15)  # the norm leads by 0.8 rad
    assert locked.lag_steps == pytest.approx(0.8 / (2 * np.pi) * 150, abs=4)
    assert phase_locking(t, norm, acc_t, acc).plv > 0.85  # without the band-pass too
    independent = phase_locking(t, rng.normal(size=len(t)), t, rng.normal(size=len(t)))
    assert independent.plv < 0.1


def test_collapse_detection_on_hand_made_curves():
    steps = np.arange(0, 200, 10)
    acc = np.array([0.05, 0.1, 0.5, 1.0, 1.0, 0.95, 1.0, 0.25, 0.2, 0.6, 0.99, 1.0, 1.0, 0.3, 0.4, np.nan, 0.7, 0.8,
                    0.45, 0.9])
    collapses = detect_collapses(steps, acc, threshold=0.5)
    assert collapses == [Collapse(70, 80, 0.2, 100), Collapse(130, 130, 0.3, None)]
    assert collapses[0].duration == 30 and collapses[1].duration is None
    assert detect_collapses(steps, acc, threshold=0.1) == []  # every dip stays above 0.1
    assert detect_collapses(steps, acc, grokking_step=110) == [Collapse(130, 130, 0.3, None)]
    assert detect_collapses(steps[:3], acc[:3]) == []  # never grokked
    assert stable_grokking_step(steps, acc) is None
    assert stable_grokking_step(steps[:13], acc[:13]) == 100
    with pytest.raises(ValueError, match="below"):
        detect_collapses(steps, acc, threshold=0.99)


def test_post_grokking_dynamics_on_a_synthetic_limit_cycle(rng):
    steps = np.arange(0, 4000)
    grok = 1000
    evaluated = steps % 10 == 0
    cycle = np.where(steps < grok, 0, np.sin(2 * np.pi * (steps - grok) / 150))
    test_acc = np.where(steps < grok, 0.1, 0.97 + 0.03 * np.sin(2 * np.pi * (steps - grok) / 150 - 0.5))
    test_acc = np.where(evaluated, test_acc + rng.normal(0, 0.003, len(steps)), np.nan)
    train_acc = np.where(steps < 100, 0.5, 1.0)
    metrics = {"step": steps.astype(float), "test_acc": test_acc, "train_acc": train_acc,
               "weight_norm_sq": (30 - 0.001 * steps + cycle) ** 2}
    result = post_grokking_dynamics(metrics)
    assert result.grokking_step == steps[(test_acc >= 0.99) & (train_acc >= 0.99)][0] and result.collapses == []
    assert result.weight_norm.period == pytest.approx(150, rel=0.02)
    assert result.accuracy.period == pytest.approx(150, rel=0.02)
    assert result.accuracy.amplitude == pytest.approx(0.03, rel=0.2)
    assert result.locking.plv > 0.9
    assert result.cycle_test.p_value < 0.01 and result.cycle_test.period == pytest.approx(150, rel=0.05)
    assert result.locking_p_value < 0.01

    # negative control: the same run with noise in place of the cycle has a period but no significant cycle
    flat = np.where(evaluated, np.where(steps < grok, 0.1, 0.995) + rng.normal(0, 0.003, len(steps)), np.nan)
    flat = np.where(steps >= grok, np.minimum(flat, 1.0), flat)
    null = post_grokking_dynamics({**metrics, "test_acc": flat}, grokking_step=grok)
    assert null.accuracy is not None and null.cycle_test.p_value > 0.05

    collapsed = test_acc.copy()
    collapsed[(steps >= 2500) & (steps < 2700) & evaluated] = 0.25  # one collapse, then re-grokking
    result = post_grokking_dynamics({**metrics, "test_acc": collapsed}, threshold=0.5)
    assert [(c.start_step, c.min_value, c.regrok_step) for c in result.collapses] == [(2500, 0.25, 2700)]

    sparse = np.where(steps % 100 == 0, test_acc, np.nan)  # accuracy evaluated every 100 steps only
    with pytest.warns(ResolutionWarning, match="Nyquist"):  # the norm, logged every step, shows a 150-step cycle
        post_grokking_dynamics({**metrics, "test_acc": sparse}, grokking_step=1000)

    never = post_grokking_dynamics({**metrics, "test_acc": np.full(len(steps), 0.1)})
    assert never.grokking_step is None and never.accuracy is None and never.collapses == []
