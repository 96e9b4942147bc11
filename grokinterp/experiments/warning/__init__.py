"""Early warning of grokking across runs (the related-work papers): alarm rules, the alarm benchmark and the
delay laws.

The per-run signals live in `grokinterp.analysis.warning` (`warning_diagnostics`); this package sits at the
sweep level: it scores every signal's alarm on grokking runs against thresholds set on control runs
(`grokinterp warn SWEEP_DIR`), and fits the delay laws with bootstrap confidence intervals.

>>> from grokinterp.experiments.warning import warn_sweep, write_warn_markdown, write_lead_time_svg
>>> result = warn_sweep(["checkpoints/sweep_warn"], controls=["optim.weight_decay=0"])   # doctest: +SKIP
>>> result.stats["D9 weight-norm decline"].median_lead                                   # doctest: +SKIP
"""

import importlib

# Imported on first use, so that `grokinterp --help` and CLI usage errors answer before torch loads.
_EXPORTS = {
    "AlarmStats": "_alarms", "RunSignal": "_alarms", "alarm_step": "_alarms", "auroc": "_alarms",
    "benchmark_alarm": "_alarms", "calibrate_threshold": "_alarms", "max_level": "_alarms",
    "persistent_level": "_alarms", "FIRST_PASSAGE_COLUMNS": "_delay_laws", "FirstPassageRun": "_delay_laws", "LawFit": "_delay_laws",
    "bootstrap_ci": "_delay_laws", "first_passage_run": "_delay_laws", "fit_exponential_law": "_delay_laws",
    "fit_first_passage": "_delay_laws", "fit_power_law": "_delay_laws", "predict_gap": "_delay_laws",
    "prediction_error": "_delay_laws", "leave_one_out_errors": "_delay_laws", "alarm_table": "_report", "lead_time_figure": "_report",
    "lead_time_svg": "_report", "write_lead_time_svg": "_report", "write_warn_markdown": "_report",
    "ALARM_RULES": "_signals", "AlarmRule": "_signals", "rule_names": "_signals",
    "running_drawdown": "_signals", "running_rise": "_signals", "shift_since": "_signals",
    "load_warn_result": "_data", "write_warn_data": "_data",
    "DEFAULT_CONTROLS": "_sweep", "WarnResult": "_sweep", "WarnRun": "_sweep", "assign_roles": "_sweep",
    "benchmark_groups": "_sweep", "fit_delay_laws": "_sweep", "warn_sweep": "_sweep",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
