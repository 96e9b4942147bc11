"""The alarm benchmark: how early, and how reliably, does a signal warn of grokking? (the related-work papers)

An alarm rule turns a run's signal a(t) (larger = more alarming, computed from data up to t only) into an
alarm step: the first step t >= start at which a has exceeded the threshold theta for `persist` consecutive
samples. The scoring window of a run starts at its memorization step (the run's first step if it never
memorized) and ends at its grokking step (excluded) for grokking runs, at its last step for controls.

theta is set on control runs only (runs that never grok, e.g. weight decay 0): theta = the largest
"persistent level" (the minimum of a over `persist` consecutive samples) any calibration control reaches in
its window, so no calibration control would alarm. Per rule, over the grokking runs being scored:

- fired: the fraction whose alarm falls inside [T_mem, T_grok), with theta from every control;
- lead = T_grok - t_alarm over those runs: median and interquartile range (numpy's linear quantiles);
- false alarms: each control scored with theta from the *other* controls (leave-one-out), the fraction
  that alarm. With theta = the max over n - 1 exchangeable controls, about 1/n is expected by chance;
- AUROC: grokking runs against controls, scored by the largest persistent level in their windows
  (threshold-free; Mann-Whitney with ties counted one half; a run without any finite level scores lowest),
  with a stratified bootstrap 95 % interval (`grokinterp.stats.auroc_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...stats import Estimate, auroc, auroc_ci


@dataclass(frozen=True)
class RunSignal:
    """One run's alarm signal: its name, the steps and values of a(t), and its milestones."""

    name: str
    steps: np.ndarray
    values: np.ndarray
    memorization_step: int | None
    grokking_step: int | None


def persistent_level(values, persist: int = 1) -> np.ndarray:
    """min of values[i - persist + 1 .. i] at each i (-inf before `persist` samples and for NaN)."""
    v = np.where(np.isfinite(np.asarray(values, dtype=np.float64)), values, -np.inf).astype(np.float64)
    if persist < 1:
        raise ValueError(f"persist={persist} must be >= 1")
    if persist == 1 or len(v) == 0:
        return v
    out = np.full(len(v), -np.inf)
    if len(v) >= persist:
        windows = np.lib.stride_tricks.sliding_window_view(v, persist)
        out[persist - 1:] = windows.min(axis=1)
    return out


def _window(signal: RunSignal, stop_at_grok: bool) -> np.ndarray:
    steps = np.asarray(signal.steps)
    keep = np.ones(len(steps), dtype=bool)
    if signal.memorization_step is not None:
        keep &= steps >= signal.memorization_step
    if stop_at_grok and signal.grokking_step is not None:
        keep &= steps < signal.grokking_step
    return keep


def window_level(signal: RunSignal, persist: int = 1, stop_at_grok: bool = True) -> np.ndarray:
    """The persistent level restricted to the scoring window (-inf outside it; runs of `persist` samples must
    lie inside the window)."""
    values = np.where(_window(signal, stop_at_grok), np.asarray(signal.values, dtype=np.float64), np.nan)
    return persistent_level(values, persist)


def max_level(signal: RunSignal, persist: int = 1, stop_at_grok: bool = True) -> float:
    """The largest persistent level in the scoring window (-inf if there is none)."""
    level = window_level(signal, persist, stop_at_grok)
    return float(level.max()) if len(level) else -math.inf


def alarm_step(signal: RunSignal, threshold: float, persist: int = 1, stop_at_grok: bool = True) -> int | None:
    """The first step in the scoring window where the persistent level exceeds `threshold`, else None.

    >>> s = RunSignal("r", np.arange(0, 100, 10), np.array([0, 0, 0, 1, 2, 0, 3, 3, 3, 3.0]), 20, 90)
    >>> alarm_step(s, 0.5), alarm_step(s, 0.5, persist=3), alarm_step(s, 5.0)
    (30, 80, None)
    """
    if not math.isfinite(threshold):
        return None
    level = window_level(signal, persist, stop_at_grok)
    hits = np.flatnonzero(level > threshold)
    return int(np.asarray(signal.steps)[hits[0]]) if len(hits) else None


def calibrate_threshold(controls: Sequence[RunSignal], persist: int = 1) -> float:
    """theta = the largest persistent level of any control in its window (NaN without a finite one)."""
    levels = [max_level(c, persist, stop_at_grok=False) for c in controls]
    finite = [v for v in levels if math.isfinite(v)]
    return max(finite) if finite else math.nan


@dataclass(frozen=True)
class AlarmStats:
    """The benchmark of one alarm rule over grokking runs and controls (definitions in the module docstring)."""

    threshold: float
    n_grokking: int
    n_fired: int
    leads: list[float]
    n_controls: int
    n_false_alarms: int
    auroc: float
    alarm_steps: dict[str, int | None] = field(default_factory=dict)
    auroc_interval: Estimate | None = None  # stratified bootstrap over grokking runs and controls

    @property
    def fired_fraction(self) -> float:
        return self.n_fired / self.n_grokking if self.n_grokking else math.nan

    @property
    def false_alarm_rate(self) -> float:
        return self.n_false_alarms / self.n_controls if self.n_controls else math.nan

    def lead_quantile(self, q: float) -> float:
        return float(np.quantile(self.leads, q)) if self.leads else math.nan

    @property
    def median_lead(self) -> float:
        return self.lead_quantile(0.5)


def benchmark_alarm(grokking: Sequence[RunSignal], controls: Sequence[RunSignal], persist: int = 1) -> AlarmStats:
    """Score one alarm rule: threshold from `controls`, alarms and leads on `grokking`, LOO false alarms, AUROC.

    Args:
        grokking: signals of runs that grokked (each with a grokking step).
        controls: signals of control runs that never grokked.
        persist: consecutive samples above threshold an alarm needs.
    """
    missing = [g.name for g in grokking if g.grokking_step is None]
    if missing:
        raise ValueError(f"grokking runs need a grokking step; these have none: {missing}")
    threshold = calibrate_threshold(controls, persist)
    alarm_steps, leads = {}, []
    for g in grokking:
        step = alarm_step(g, threshold, persist)
        alarm_steps[g.name] = step
        if step is not None:
            leads.append(float(g.grokking_step - step))
    false_alarms = 0
    for i, c in enumerate(controls):
        others = [o for j, o in enumerate(controls) if j != i]
        step = alarm_step(c, calibrate_threshold(others, persist), persist, stop_at_grok=False)
        alarm_steps[c.name] = step
        false_alarms += step is not None
    interval = auroc_ci([max_level(g, persist) for g in grokking],
                        [max_level(c, persist, stop_at_grok=False) for c in controls])
    return AlarmStats(threshold, len(grokking), len(leads), leads, len(controls), false_alarms, interval.value,
                      alarm_steps, interval)
