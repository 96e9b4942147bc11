"""Plotly figures of a run and its replayed analyses, and one offline HTML report per run.

>>> from grokinterp.report import analyze_run, loss_curves
>>> analyze_run("checkpoints/quick")                                  # doctest: +SKIP
PosixPath('checkpoints/quick/report.html')

    write_comparison(["checkpoints/nanda", "checkpoints/nanda_wd025"], "compare.html")
    export_figure(loss_curves(run), "loss.svg")
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
from ._html import analyze_run, offline_page, render_report, write_report
from ._nanda_views import (  # registers the report section of Nanda et al.'s views
    NANDA_TITLES,
    attention_fourier_figure,
    embedding_circles_figure,
    logit_attribution_figure,
    nanda_figures,
    neuron_logit_fourier_figure,
    pair_loss_figure,
    trig_fit_curve,
    views_of,
)
from ._curvature_figures import (  # registers the curvature and gradient-geometry section
    CURVATURE_TITLES,
    agreement_figure,
    curvature_figures,
    effective_rank_curve,
    hessian_trace_curve,
    preconditioned_sharpness_curve,
    top_eigenvalue_curve,
)
from ._warning_figures import (  # registers the "Early warning" section (the related-work papers)
    bifurcation_path_figure,
    fiedler_csd_figure,
    warning_section,
    warning_signals_figure,
)
from ._lead_times import lead_time_strip_figure, lead_time_strip_svg
from ._compare import comparison_figures, render_comparison, summary_rows, write_comparison
from ._export import ExportError, export_backend, export_figure, export_figures, export_run_figures, find_chromium

__all__ = [
    "lead_time_strip_figure", "lead_time_strip_svg",
    # Nanda et al. 2023's views
    "NANDA_TITLES", "attention_fourier_figure", "embedding_circles_figure", "logit_attribution_figure",
    "nanda_figures", "neuron_logit_fourier_figure", "pair_loss_figure", "trig_fit_curve", "views_of",
    # curvature and gradient geometry (the Grokking Dynamics write-up)
    "CURVATURE_TITLES", "agreement_figure", "curvature_figures", "effective_rank_curve", "hessian_trace_curve",
    "preconditioned_sharpness_curve", "top_eigenvalue_curve",
    # early warning (the related-work papers)
    "bifurcation_path_figure", "fiedler_csd_figure", "warning_section", "warning_signals_figure",
    # comparing runs
    "comparison_figures", "render_comparison", "summary_rows", "write_comparison",
    # image export
    "ExportError", "export_backend", "export_figure", "export_figures", "export_run_figures", "find_chromium",
    "offline_page",
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
