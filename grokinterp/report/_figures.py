"""Plotly figures of one run: training curves from its metrics, and replayed analyses over its checkpoints.

Every function returns a `plotly.graph_objects.Figure` (show it in a notebook, or pass it to
`write_report`). Figures over training steps use a log step axis (Nanda et al. 2023 plot grokking on
one); step 0 cannot sit on a log axis, so those figures hold every metric row with step >= 1. Figures
over checkpoints hold one point per replayed checkpoint. Line traces are not simplified, so every
point is drawn. Memorization and grokking steps (run.summary, definitions in DESIGN.md) are dashed
vertical markers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go

from ..analysis import ReplayResult
from ..analysis.fourier import NEURON_FRAC_THRESHOLD
from ..runs import Run

HEIGHT = 420
COLORS = {"train": "#1f77b4", "test": "#d62728", "restricted": "#2ca02c", "excluded": "#9467bd",
          "embed": "#1f77b4", "neuron": "#ff7f0e", "logit": "#2ca02c", "key": "#d62728", "other": "#9fb4c7"}
MARKERS = (("memorization_step", "memorized", "#7f7f7f"), ("grokking_step", "grokked", "#2ca02c"))


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, log_x: bool = False,
            log_y: bool = False) -> go.Figure:
    fig.update_layout(title=title, height=HEIGHT, template="plotly_white", margin=dict(l=60, r=20, t=60, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear", **({"dtick": 1} if log_y else {}))
    return fig


def _line(x, y, name: str, color: str, dash: str | None = None) -> go.Scatter:
    return go.Scatter(x=np.asarray(x), y=np.asarray(y), name=name, mode="lines",
                      line=dict(color=color, dash=dash, simplify=False))


def add_milestones(fig: go.Figure, summary: dict, log_x: bool = False) -> go.Figure:
    """Dashed vertical lines at the memorization and grokking steps of `summary` (absent ones are skipped)."""
    for key, label, color in MARKERS:
        step = summary.get(key)
        if step is None or (log_x and step <= 0):
            continue
        fig.add_shape(type="line", x0=step, x1=step, y0=0, y1=1, xref="x", yref="paper",
                      line=dict(color=color, dash="dash", width=1.5))
        # Annotations on a log axis take log10 of the position (shapes take the value itself).
        fig.add_annotation(x=math.log10(step) if log_x else step, y=1, xref="x", yref="paper", text=f"{label} {step}",
                           showarrow=False, xanchor="left", yanchor="top", font=dict(size=11, color=color))
    return fig


def _metric_rows(run: Run, column: str, log_x: bool) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a metric column at the steps it was measured (and step >= 1 on a log axis)."""
    metrics = run.metrics
    if column not in metrics:
        raise ValueError(f"{run.path}/metrics.csv has no column {column!r}; it has {sorted(metrics)}")
    steps, values = metrics["step"], metrics[column]
    keep = np.isfinite(values) & ((steps >= 1) if log_x else True)
    return steps[keep].astype(np.int64), values[keep]


def _train_test_traces(run: Run, column: str, label: str) -> go.Figure:
    """Train and test `<split>_<column>` over log steps, with the memorization/grokking markers."""
    fig = go.Figure()
    for split in ("train", "test"):
        steps, values = _metric_rows(run, f"{split}_{column}", log_x=True)
        fig.add_trace(_line(steps, values, f"{split} {label}", COLORS[split]))
    add_milestones(fig, run.summary, log_x=True)
    return fig


def loss_curves(run: Run) -> go.Figure:
    """Train loss (every step) and test loss (every evaluated step) on log-log axes, with milestones."""
    fig = _train_test_traces(run, "loss", "loss")
    return _layout(fig, "Loss", "step", "cross-entropy", log_x=True, log_y=True)


def accuracy_curves(run: Run) -> go.Figure:
    """Train and test accuracy on a log step axis, with milestones (memorized: train >= 0.99; grokked: both)."""
    fig = _layout(_train_test_traces(run, "acc", "accuracy"), "Accuracy", "step", "accuracy", log_x=True)
    fig.update_yaxes(range=[-0.02, 1.02])
    return fig


def weight_norm_curve(run: Run) -> go.Figure:
    """Total squared weight norm sum_theta theta^2 at every step (Nanda et al. 2023: it falls during cleanup)."""
    steps, values = _metric_rows(run, "weight_norm_sq", log_x=False)
    fig = go.Figure(_line(steps, values, "sum of squared weights", COLORS["train"]))
    add_milestones(fig, run.summary)
    return _layout(fig, "Total weight norm", "step", "sum of squared weights")


def _frequency_axis(result: ReplayResult) -> str:
    try:
        op = Run(result.run_path).config.task.op
    except Exception:  # a result built by hand may have no run directory
        op = "add"
    if op in ("mul", "div"):
        return "character frequency k over Z_(p-1) (discrete-log index)"
    return "frequency k over Z_p"


def embedding_spectrum_heatmap(result: ReplayResult) -> go.Figure:
    """Norm of the embedding per frequency (rows; 0 = constant) at every replayed checkpoint (columns)."""
    spectrum = result["spectra"]["embed_freq_norm"]  # [n_steps, n_freq]
    fig = go.Figure(go.Heatmap(x=result.steps, y=np.arange(spectrum.shape[1]), z=spectrum.T, colorscale="Viridis",
                               colorbar=dict(title="norm"), name="embedding norm"))
    return _layout(fig, "Embedding spectrum over training", "checkpoint step", _frequency_axis(result))


def neuron_frequency_histogram(result: ReplayResult, step: int | None = None,
                               threshold: float = NEURON_FRAC_THRESHOLD) -> go.Figure:
    """How many MLP neurons have each dominant frequency at `step` (default: the last replayed checkpoint),
    split by whether that frequency explains at least `threshold` of the neuron's variance. Frequency 0
    counts dead or constant neurons (`neuron_frequencies` gives them freq 0)."""
    step = int(result.steps[-1]) if step is None else step
    at = result.at("spectra", step)
    n_freq = at["embed_freq_norm"].shape[0]
    freq, frac = at["neuron_freq"].astype(np.int64), at["neuron_frac_explained"]
    bins = np.arange(n_freq)
    clean = np.bincount(freq[frac >= threshold], minlength=n_freq)[:n_freq]
    mixed = np.bincount(freq[frac < threshold], minlength=n_freq)[:n_freq]
    fig = go.Figure([
        go.Bar(x=bins, y=clean, name=f"explains >= {threshold:.0%}", marker_color=COLORS["key"]),
        go.Bar(x=bins, y=mixed, name=f"explains < {threshold:.0%}", marker_color=COLORS["other"]),
    ])
    fig.update_layout(barmode="stack")
    return _layout(fig, f"Neurons by dominant frequency (step {step}, {len(freq)} neurons)",
                   _frequency_axis(result) + " (0: dead or constant)", "neurons")


def key_frequencies_of(result: ReplayResult) -> list[int]:
    """The key frequencies the progress measures used (those of the last checkpoint), else the spectra's
    mask at the last replayed checkpoint."""
    if "progress" in result.data and "key_freqs" in result.context.get("progress", {}):
        return [int(k) for k in result.context["progress"]["key_freqs"]]
    return [int(k) for k in np.flatnonzero(result["spectra"]["key_freq_mask"][-1])]


def key_frequency_figure(result: ReplayResult) -> go.Figure:
    """Embedding and logit spectra at the last checkpoint, key frequencies highlighted."""
    step = int(result.steps[-1])
    at = result.at("spectra", step)
    keys = key_frequencies_of(result)
    bins = np.arange(at["embed_freq_norm"].shape[0])
    colors = [COLORS["key"] if k in keys else COLORS["other"] for k in bins]
    fig = go.Figure([
        go.Bar(x=bins, y=at["embed_freq_norm"], name="embedding norm", marker_color=colors),
        go.Scatter(x=bins, y=at["logit_freq_norm"] / max(float(at["logit_freq_norm"].max()), 1e-12)
                   * float(at["embed_freq_norm"].max()), name="logit norm (rescaled)", mode="markers",
                   marker=dict(color=COLORS["logit"], symbol="diamond", size=7)),
    ])
    listed = ", ".join(map(str, keys)) or "none found"
    return _layout(fig, f"Key frequencies at step {step}: {listed}", _frequency_axis(result), "norm")


def progress_curves(result: ReplayResult, run: Run | None = None) -> go.Figure:
    """Nanda et al.'s progress measures at every replayed checkpoint: restricted loss (key frequencies
    only), excluded loss (key frequencies removed, train pairs), train and test loss; log loss axis."""
    measures = result["progress"]
    fig = go.Figure([
        _line(result.steps, measures["train_loss"], "train loss", COLORS["train"]),
        _line(result.steps, measures["test_loss"], "test loss", COLORS["test"]),
        _line(result.steps, measures["restricted_loss"], "restricted loss", COLORS["restricted"], "dot"),
        _line(result.steps, measures["excluded_loss"], "excluded loss", COLORS["excluded"], "dot"),
    ])
    if run is not None:
        add_milestones(fig, run.summary)
    keys = ", ".join(map(str, key_frequencies_of(result))) or "none"
    return _layout(fig, f"Progress measures (key frequencies {keys})", "checkpoint step", "cross-entropy", log_y=True)


def gini_curves(result: ReplayResult, run: Run | None = None) -> go.Figure:
    """Sparsity of the spectra over training: Gini coefficient of the embedding, neuron and logit spectra
    (constant term excluded; 0 = flat, 1 = one frequency)."""
    spectra = result["spectra"]
    fig = go.Figure([_line(result.steps, spectra[f"{part}_gini"], f"{part} Gini", COLORS[part])
                     for part in ("embed", "neuron", "logit")])
    if run is not None:
        add_milestones(fig, run.summary)
    fig = _layout(fig, "Spectral sparsity (Gini) over training", "checkpoint step", "Gini coefficient")
    fig.update_yaxes(range=[0, 1.02])
    return fig


FigureBuilder = Callable[[Run, "ReplayResult | None"], dict[str, go.Figure]]
FIGURE_TITLES = {
    "loss": "Loss curves",
    "accuracy": "Accuracy curves",
    "weight_norm": "Weight norm",
    "progress": "Restricted and excluded loss",
    "embedding_spectrum": "Embedding spectrum over time",
    "key_frequencies": "Key frequencies",
    "neuron_frequencies": "Neuron frequencies at the last checkpoint",
    "gini": "Gini coefficients over time",
}
_SECTIONS: list[FigureBuilder] = []


def register_figures(builder: FigureBuilder, titles: dict[str, str] | None = None) -> FigureBuilder:
    """Add a report section: `builder(run, result)` returns {figure id: figure} for what the run and
    `result` allow (an empty dict when its analysis was not replayed); `titles` names each figure id.
    Sections appear after the standard figures, in registration order."""
    if builder not in _SECTIONS:
        _SECTIONS.append(builder)
    FIGURE_TITLES.update(titles or {})
    return builder


def run_figures(run: Run, result: ReplayResult | None) -> dict[str, go.Figure]:
    """Every report figure that the run's metrics and `result` allow, by id, in page order."""
    metrics = run.metrics  # {} for a run stopped before its first resume point: no curves, the replay still shows
    figures = {"loss": loss_curves(run), "accuracy": accuracy_curves(run)} if "train_loss" in metrics else {}
    if "weight_norm_sq" in metrics:
        figures["weight_norm"] = weight_norm_curve(run)
    if result is not None and "progress" in result.data:
        figures["progress"] = progress_curves(result, run)
    if result is not None and "spectra" in result.data:
        figures["embedding_spectrum"] = embedding_spectrum_heatmap(result)
        figures["key_frequencies"] = key_frequency_figure(result)
        figures["neuron_frequencies"] = neuron_frequency_histogram(result)
        figures["gini"] = gini_curves(result, run)
    for builder in _SECTIONS:
        figures.update(builder(run, result))
    return figures
