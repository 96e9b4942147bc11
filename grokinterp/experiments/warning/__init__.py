"""Early warning of grokking across runs (the related-work papers): alarm rules, the alarm benchmark and the
delay laws.

The per-run signals live in `grokinterp.analysis.warning` (`warning_diagnostics`); this package sits at the
sweep level: it scores every signal's alarm on grokking runs against thresholds set on control runs
(`grokinterp warn SWEEP_DIR`), and fits the delay laws with bootstrap confidence intervals.

>>> from grokinterp.experiments.warning import warn_sweep, write_warn_markdown, write_lead_time_svg
>>> result = warn_sweep(["checkpoints/sweep_warn"], controls=["optim.weight_decay=0"])   # doctest: +SKIP
>>> result.stats["D9 weight-norm decline"].median_lead                                   # doctest: +SKIP
"""

from ._alarms import (
    AlarmStats,
    RunSignal,
    alarm_step,
    auroc,
    benchmark_alarm,
    calibrate_threshold,
    max_level,
    persistent_level,
)
from ._delay_laws import (
    FirstPassageRun,
    LawFit,
    bootstrap_ci,
    first_passage_run,
    fit_exponential_law,
    fit_first_passage,
    fit_power_law,
    predict_gap,
    prediction_error,
)
from ._report import alarm_table, lead_time_figure, lead_time_svg, write_lead_time_svg, write_warn_markdown
from ._signals import ALARM_RULES, AlarmRule, rule_names, running_drawdown, running_rise, shift_since
from ._sweep import DEFAULT_CONTROLS, WarnResult, WarnRun, assign_roles, fit_delay_laws, warn_sweep

__all__ = [
    "ALARM_RULES", "AlarmRule", "AlarmStats", "DEFAULT_CONTROLS", "FirstPassageRun", "LawFit", "RunSignal",
    "WarnResult", "WarnRun", "alarm_step", "alarm_table", "assign_roles", "auroc", "benchmark_alarm", "bootstrap_ci",
    "calibrate_threshold", "first_passage_run", "fit_delay_laws", "fit_exponential_law", "fit_first_passage",
    "fit_power_law", "lead_time_figure", "lead_time_svg", "max_level", "persistent_level", "predict_gap",
    "prediction_error", "rule_names", "running_drawdown", "running_rise", "shift_since", "warn_sweep",
    "write_lead_time_svg", "write_warn_markdown",
]
