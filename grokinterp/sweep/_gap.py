"""Gap prediction across a sweep's seeds: agreement dips vs the grokking gap (the Grokking Dynamics write-up: r = 0.896, n = 30).

Each grokked run of the sweep must have recorded the half-batch gradient agreement while training (the
`grad_agreement` plug-in, metric column `grad_agreement`). Its dips are counted with
`grokinterp.analysis.agreement_dips` (rolling-median detrend, robust threshold, minimum separation; see
its docstring) over a span of training, and correlated with the gap (grokking step - memorization step)
by Pearson's r with a Fisher-z confidence interval. Because the dip definition is a choice, the r of
neighbouring parameter choices is reported too (DESIGN.md: fix the definition first, show the rest).

A longer run has more room for dips: counting over [0, grokking step] can correlate with the gap through
duration alone. `dip_rate` (dips per 1,000 steps of the span) is reported beside the count so a reader can
tell the two apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..analysis.curvature import DIP_MIN_SEPARATION, DIP_THRESHOLD, DIP_WINDOW, agreement_dips
from ..runs import read_metrics_columns
from ..stats import Correlation, partial_correlation, pearson_with_ci  # noqa: F401  (re-exported)
from ._aggregate import collect

AGREEMENT_COLUMN = "grad_agreement"
SPANS = ("training", "gap")  # count dips over [0, grokking step] or [memorization step, grokking step]


@dataclass(frozen=True)
class GapPrediction:
    """Per grokked run (in `runs` order): its gap, dip count and dip rate; r for count and rate vs gap, and
    `sensitivity`: rows (window, threshold, min_separation, r of count vs gap) for neighbouring choices."""

    runs: list
    gaps: np.ndarray
    dips: np.ndarray
    dip_rates: np.ndarray
    count_vs_gap: Correlation
    rate_vs_gap: Correlation
    span: str
    window: float
    threshold: float
    min_separation: float
    skipped: dict = field(default_factory=dict)  # run name -> why it is not in the fit
    sensitivity: list = field(default_factory=list)
    count_vs_gap_given_length: Correlation | None = None  # partial r, controlling the span's length


def _span(summary: dict, span: str) -> tuple[float, float]:
    return (0.0 if span == "training" else float(summary["memorization_step"])), float(summary["grokking_step"])


def _count(series, summary, span, window, threshold, min_separation) -> tuple[int, float]:
    start, stop = _span(summary, span)
    dips = agreement_dips(series[0], series[1], window, threshold, min_separation, start=start, stop=stop)
    return dips.count, 1000.0 * dips.count / max(stop - start, 1.0)


def gap_prediction(sweep_dir, span: str = "training", window: float = DIP_WINDOW,
                   threshold: float = DIP_THRESHOLD, min_separation: float = DIP_MIN_SEPARATION,
                   confidence: float = 0.95, neighbours: bool = True, metrics_of=None) -> GapPrediction:
    """Correlate agreement-dip counts with grokking gaps over a sweep's grokked runs.

    Args:
        sweep_dir: a sweep whose runs used the `grad_agreement` plug-in, or its records (SweepRecords).
        metrics_of: record -> metric columns (default: the run directory's metrics.csv); reproductions pass
            a reader of their committed series instead.
        span: "training" counts dips over [0, grokking step]; "gap" over [memorization, grokking].
        window, threshold, min_separation: the dip definition (`agreement_dips`).
        neighbours: also compute r for window x {1/2, 1, 2}, threshold ± 0.5, min_separation x {1/2, 1, 2}.

    Returns:
        A GapPrediction; runs that did not grok or lack the agreement column are listed in `skipped`.
    """
    if span not in SPANS:
        raise ValueError(f"span={span!r} must be one of {list(SPANS)}")
    series, summaries, skipped = {}, {}, {}
    records = collect(sweep_dir) if isinstance(sweep_dir, (str, Path)) else list(sweep_dir)
    metrics_of = metrics_of or (lambda rec: read_metrics_columns(rec.path / "metrics.csv"))
    for rec in records:
        if rec.summary.get("status") != "grokked" or rec.summary.get("memorization_step") is None:
            skipped[rec.name] = f"status {rec.summary.get('status', 'not run')}"
            continue
        metrics = metrics_of(rec)
        if metrics is None or AGREEMENT_COLUMN not in metrics or not np.isfinite(metrics[AGREEMENT_COLUMN]).any():
            skipped[rec.name] = f"no {AGREEMENT_COLUMN} column (train with plugins.grad_agreement)"
            continue
        series[rec.name], summaries[rec.name] = (metrics["step"], metrics[AGREEMENT_COLUMN]), rec.summary
    names = list(series)
    if len(names) < 4:
        raise ValueError(f"{sweep_dir}: only {len(names)} grokked runs with a {AGREEMENT_COLUMN} column; need >= 4 "
                         f"(skipped: {skipped})")
    gaps = np.array([summaries[n]["gap"] for n in names], dtype=np.float64)

    def fit(w, t, s):
        counts = [_count(series[n], summaries[n], span, w, t, s) for n in names]
        return np.array([c for c, _ in counts], dtype=np.float64), np.array([r for _, r in counts])

    dips, rates = fit(window, threshold, min_separation)
    lengths = np.array([_span(summaries[n], span)[1] - _span(summaries[n], span)[0] for n in names])
    sensitivity = []
    if neighbours:
        for w, t, s in itertools.product((window / 2, window, window * 2), (threshold - 0.5, threshold, threshold + 0.5),
                                         (min_separation / 2, min_separation, min_separation * 2)):
            counts, _ = fit(w, max(t, 0.0), s)
            sensitivity.append((w, max(t, 0.0), s, pearson_with_ci(counts, gaps, confidence).r))
    return GapPrediction(names, gaps, dips, rates, pearson_with_ci(dips, gaps, confidence),
                         pearson_with_ci(rates, gaps, confidence), span, window, threshold, min_separation,
                         skipped, sensitivity, partial_correlation(dips, gaps, lengths, confidence)
                         if len(names) >= 5 else None)


def gap_scatter_figure(prediction: GapPrediction):
    """Scatter of dip count vs gap, one point per run (hover: run name), with the least-squares line."""
    import plotly.graph_objects as go

    c = prediction.count_vs_gap
    fig = go.Figure(go.Scatter(x=prediction.dips, y=prediction.gaps, mode="markers", text=prediction.runs,
                               name="runs", marker=dict(size=9, color="#1f77b4")))
    if np.std(prediction.dips) > 0:
        slope, intercept = np.polyfit(prediction.dips, prediction.gaps, 1)
        xs = np.array([prediction.dips.min(), prediction.dips.max()])
        fig.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines", name="least squares",
                                 line=dict(color="#d62728", dash="dash")))
    fig.update_layout(title=f"Agreement dips vs grokking gap: r = {c.r:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}], "
                            f"n = {c.n}", template="plotly_white", height=420,
                      xaxis_title=f"dips ({prediction.span} span)", yaxis_title="gap (steps)")
    return fig
