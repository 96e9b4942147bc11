"""Alarm rules of the early-warning diagnostics: one causal signal a(t) per rule (larger = more alarming).

The spec fixes the rules of the DMD signal (rho above theta for 3 windows) and the lock-in signal
(s(t) above the controls' level), and the Fiedler-value signal's statistic (Kendall tau > 0). For the others it says what should
happen at the grok, and the signal below follows that claim (our choice, stated per rule). Every signal at
step t uses only checkpoints (or metric rows) up to t; "since T_mem" means the running extreme is taken
from the memorization step on (NaN before it). Thresholds are never set here: see `_alarms`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...analysis.warning import WarningDiagnostics


@dataclass(frozen=True)
class AlarmRule:
    """name (table row), diagnostic (the logit-scale signal..D9), signal(diagnostics) -> (steps, values), persist, description."""

    name: str
    diagnostic: str
    signal: Callable[[WarningDiagnostics], tuple[np.ndarray, np.ndarray]]
    description: str
    persist: int = 1


def _start_index(steps: np.ndarray, start: int | None) -> int:
    return 0 if start is None else int(np.searchsorted(steps, start))


def running_drawdown(steps, values, start: int | None = None, log: bool = False) -> np.ndarray:
    """1 - v(t) / max_{start <= u <= t} v(u) (or ln max - ln v with `log`); NaN before `start`.

    >>> running_drawdown(np.arange(4), np.array([1.0, 4.0, 2.0, 3.0]), start=1).tolist()
    [nan, 0.0, 0.5, 0.25]
    """
    steps, v = np.asarray(steps), np.asarray(values, dtype=np.float64)
    out = np.full(len(v), np.nan)
    i0 = _start_index(steps, start)
    if i0 >= len(v):
        return out
    peak = np.fmax.accumulate(np.where(np.isfinite(v[i0:]), v[i0:], -np.inf))
    with np.errstate(invalid="ignore", divide="ignore"):
        out[i0:] = np.log(peak) - np.log(v[i0:]) if log else 1 - v[i0:] / peak
    return out


def running_rise(steps, values, start: int | None = None) -> np.ndarray:
    """v(t) - min_{start <= u <= t} v(u); NaN before `start`."""
    steps, v = np.asarray(steps), np.asarray(values, dtype=np.float64)
    out = np.full(len(v), np.nan)
    i0 = _start_index(steps, start)
    if i0 < len(v):
        out[i0:] = v[i0:] - np.fmin.accumulate(np.where(np.isfinite(v[i0:]), v[i0:], np.inf))
    return out


def shift_since(steps, values, start: int | None = None) -> np.ndarray:
    """|v(t) - v(first sample at or after start)|; NaN before it."""
    steps, v = np.asarray(steps), np.asarray(values, dtype=np.float64)
    out = np.full(len(v), np.nan)
    i0 = _start_index(steps, start)
    if i0 < len(v):
        out[i0:] = np.abs(v[i0:] - v[i0])
    return out


def _layer_mean(d: WarningDiagnostics, key: str) -> np.ndarray:
    x = d.series[key]
    return x.mean(axis=1) if x.ndim == 2 else x


def _ckpt(key: str, transform: Callable | None = None, layer_mean: bool = False):
    def signal(d: WarningDiagnostics) -> tuple[np.ndarray, np.ndarray]:
        values = _layer_mean(d, key) if layer_mean else d.series[key]
        return d.steps, values if transform is None else transform(d.steps, values, d.memorization_step)
    return signal


def _norm_drawdown(d: WarningDiagnostics) -> tuple[np.ndarray, np.ndarray]:
    norm = d.metric_series.get("weight_norm")
    if norm is None:
        return d.metric_steps, np.full(len(d.metric_steps), np.nan)
    return d.metric_steps, running_drawdown(d.metric_steps, norm, start=None)


ALARM_RULES: tuple[AlarmRule, ...] = (
    AlarmRule("D1 logit-scale decline", "D1", _ckpt("s_eff", running_drawdown),
              "1 - s_eff / its max since T_mem (s_eff decays under wd while test acc is flat)"),
    AlarmRule("D2 Fiedler AR1 trend", "D2", _ckpt("fiedler_tau_ar1_online"),
              "Kendall tau of the detrended rolling AR1 of normalized lambda_2 on [T_mem, t]"),
    AlarmRule("D2 Fiedler variance trend", "D2", _ckpt("fiedler_tau_variance_online"),
              "Kendall tau of the detrended rolling variance of normalized lambda_2 on [T_mem, t]"),
    AlarmRule("D2 Fiedler VR (paper)", "D2", _ckpt("fiedler_vr_paper"),
              "variance ratio of raw lambda_2 in a rolling 200-step window (Benfield 2026)"),
    AlarmRule("D3 DMD residual, test log p", "D3", _ckpt("dmd_residual_test"),
              "rho of the rolling Hankel DMD of test log-prob quantiles, above θ for 3 windows in a row", persist=3),
    AlarmRule("D3 DMD residual, train log p", "D3", _ckpt("dmd_residual_train"),
              "rho of the rolling Hankel DMD of train log-prob quantiles, above θ for 3 windows in a row", persist=3),
    AlarmRule("D4 LAR rise", "D4", _ckpt("lar", running_rise), "LAR - its min since T_mem (LAR rises at the grok)"),
    AlarmRule("D5 head-similarity shift", "D5", _ckpt("head_similarity", shift_since, layer_mean=True),
              "|C - C(T_mem)| (C shifts at T_grok)"),
    AlarmRule("D5 entropy-spread shift", "D5", _ckpt("entropy_spread", shift_since, layer_mean=True),
              "|S - S(T_mem)| (S shifts at T_grok)"),
    AlarmRule("D6 lock-in slope", "D6", _ckpt("lockin_slope"),
              "s(t) of ln(sigma2/sigma3) of the last 20 checkpoint updates (Xu 2026)"),
    AlarmRule("D7 NC1 drop", "D7", _ckpt("nc1", lambda s, v, t: running_drawdown(s, v, t, log=True), layer_mean=True),
              "ln max NC1 since T_mem - ln NC1 (NC1 drops at T_grok)"),
    AlarmRule("D7 NC1 trace-ratio drop", "D7",
              _ckpt("nc1_trace_ratio", lambda s, v, t: running_drawdown(s, v, t, log=True), layer_mean=True),
              "the same for tr(Sigma_W)/tr(Sigma_B) (pseudo-inverse-free)"),
    AlarmRule("D9 weight-norm decline", "D9", _norm_drawdown,
              "1 - ‖θ‖ / its running max (‖θ‖ peaks before the grok), every step"),
)


def rule_names() -> list[str]:
    return [rule.name for rule in ALARM_RULES]
