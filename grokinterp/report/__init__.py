"""Plotly figures of a run and its replayed analyses, and one offline HTML report per run.

>>> from grokinterp.report import analyze_run, loss_curves
>>> analyze_run("checkpoints/quick")                                  # doctest: +SKIP
PosixPath('checkpoints/quick/report.html')
"""

from ._figures import (
    accuracy_curves,
    add_milestones,
    embedding_spectrum_heatmap,
    gini_curves,
    key_frequencies_of,
    key_frequency_figure,
    loss_curves,
    neuron_frequency_histogram,
    FIGURE_TITLES,
    progress_curves,
    register_figures,
    run_figures,
    weight_norm_curve,
)
from ._html import analyze_run, render_report, write_report

__all__ = [
    "accuracy_curves",
    "add_milestones",
    "analyze_run",
    "embedding_spectrum_heatmap",
    "gini_curves",
    "key_frequencies_of",
    "key_frequency_figure",
    "loss_curves",
    "neuron_frequency_histogram",
    "FIGURE_TITLES",
    "progress_curves",
    "register_figures",
    "render_report",
    "run_figures",
    "weight_norm_curve",
    "write_report",
]
