"""Sweeps: grids of ordinary runs, executed locally, on Ray or on Slurm, aggregated per grid cell.

>>> from grokinterp.sweep import SweepSpec, run_sweep, aggregate_sweep, sweep_report
>>> spec = SweepSpec({"optim.beta1": [0.0, 0.5, 0.9], "model.seed": list(range(30))}, preset="fast")
>>> result = run_sweep(spec, "checkpoints/sweep_beta1", workers=2)      # doctest: +SKIP
>>> rows = aggregate_sweep("checkpoints/sweep_beta1")                    # doctest: +SKIP
>>> sweep_report("checkpoints/sweep_beta1")                             # doctest: +SKIP
"""

from ._aggregate import (
    AGGREGATE_FILE,
    STAT_COLUMNS,
    SweepRecord,
    aggregate,
    aggregate_sweep,
    cell_stats,
    collect,
    write_aggregate_csv,
)
from ._backends import BACKENDS, SweepResult, available_cores, run_sweep
from ._grid import (
    FINAL_STATUSES,
    SWEEP_FILE,
    SweepRun,
    SweepSpec,
    is_finished,
    parse_axis_values,
    parse_grid_arg,
    read_sweep_file,
    run_name,
    run_status,
    write_sweep_file,
)
from ._gap import Correlation, GapPrediction, gap_prediction, gap_scatter_figure, pearson_with_ci
from ._report import REPORT_FILE, gap_figure, rate_figure, run_curves, sweep_report

__all__ = [
    "Correlation",
    "GapPrediction",
    "gap_prediction",
    "gap_scatter_figure",
    "pearson_with_ci",
    "AGGREGATE_FILE",
    "BACKENDS",
    "FINAL_STATUSES",
    "REPORT_FILE",
    "STAT_COLUMNS",
    "SWEEP_FILE",
    "SweepRecord",
    "SweepResult",
    "SweepRun",
    "SweepSpec",
    "aggregate",
    "aggregate_sweep",
    "available_cores",
    "cell_stats",
    "collect",
    "gap_figure",
    "is_finished",
    "parse_axis_values",
    "parse_grid_arg",
    "rate_figure",
    "read_sweep_file",
    "run_curves",
    "run_name",
    "run_status",
    "run_sweep",
    "sweep_report",
    "write_aggregate_csv",
    "write_sweep_file",
]
