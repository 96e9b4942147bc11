"""Sweeps: grids of ordinary runs, executed locally, on Ray or on Slurm, aggregated per grid cell.

>>> from grokinterp.sweep import SweepSpec, run_sweep, aggregate_sweep, sweep_report
>>> spec = SweepSpec({"optim.beta1": [0.0, 0.5, 0.9], "model.seed": list(range(30))}, preset="fast")
>>> result = run_sweep(spec, "checkpoints/sweep_beta1", workers=2)      # doctest: +SKIP
>>> rows = aggregate_sweep("checkpoints/sweep_beta1")                    # doctest: +SKIP
>>> sweep_report("checkpoints/sweep_beta1")                             # doctest: +SKIP
"""

import importlib

# Imported on first use, so that `grokinterp --help` and CLI usage errors answer before torch loads.
_EXPORTS = {
    "AGGREGATE_FILE": "_aggregate", "STAT_COLUMNS": "_aggregate", "SweepRecord": "_aggregate",
    "aggregate": "_aggregate", "aggregate_sweep": "_aggregate", "cell_stats": "_aggregate",
    "collect": "_aggregate", "write_aggregate_csv": "_aggregate", "BACKENDS": "_backends",
    "SweepResult": "_backends", "available_cores": "_backends", "run_sweep": "_backends",
    "Correlation": "_gap", "GapPrediction": "_gap", "gap_prediction": "_gap", "gap_scatter_figure": "_gap",
    "pearson_with_ci": "_gap", "FINAL_STATUSES": "_grid", "SWEEP_FILE": "_grid", "SweepRun": "_grid",
    "SweepSpec": "_grid", "is_finished": "_grid", "parse_axis_values": "_grid", "parse_grid_arg": "_grid",
    "read_sweep_file": "_grid", "run_name": "_grid", "run_status": "_grid", "write_sweep_file": "_grid",
    "REPORT_FILE": "_report", "gap_figure": "_report", "rate_figure": "_report", "run_curves": "_report",
    "sweep_report": "_report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
