"""Nanda et al. 2023's views as plotly figures, and their section of the run report.

- `trig_fit_curve(result)`: the trig-identity fit over the checkpoint series (fraction of logit
  variance explained by sum_k alpha_k cos(w_k (a + b - c)), and each alpha_k);
- from one checkpoint's `NandaViews` (`grokinterp.analysis.nanda_views`): the embedding's circles per
  key frequency, the neuron-logit map and the attention from `=` to a and b in the Fourier basis, the
  loss of every pair (a, b), and the direct logit attribution per neuron cluster.

The report shows them for the last replayed checkpoint (`nanda_figures`, registered with
`register_figures`), with the key frequencies the progress measures used.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis import ReplayResult
from ..analysis.fourier import NandaViews, basis_names, key_frequencies, nanda_views
from ..runs import Run
from ._figures import COLORS, HEIGHT, _layout, _line, add_milestones, key_frequencies_of, register_figures

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _where(views: NandaViews) -> str:
    group = f"Z_{views.n} by discrete log" if views.op in ("mul", "div") else f"Z_{views.p}"
    return f"step {views.step}, over {group}" if views.step is not None else f"over {group}"


def _operand(views: NandaViews) -> str:
    return "log a" if views.op in ("mul", "div") else "a"


def trig_fit_curve(result: ReplayResult, run: Run | None = None) -> go.Figure:
    """Fraction of the logits' variance explained by sum_k alpha_k cos(w_k (a + b - c)) at every replayed
    checkpoint (left axis), and each fitted alpha_k (right axis); key frequencies of the last checkpoint."""
    fit = result["trig_fit"]
    keys = [int(k) for k in result.context.get("trig_fit", {}).get("key_freqs", [])]
    fig = go.Figure(_line(result.steps, fit["frac_explained"], "variance explained", COLORS["restricted"]))
    alpha = np.asarray(fit["alpha"]).reshape(len(result.steps), -1)
    for i, k in enumerate(keys[: alpha.shape[1]]):
        fig.add_trace(go.Scatter(x=result.steps, y=alpha[:, i], name=f"alpha_{k}", mode="lines", yaxis="y2",
                                 line=dict(color=PALETTE[i % len(PALETTE)], width=1, dash="dot", simplify=False)))
    if run is not None:
        add_milestones(fig, run.summary)
    listed = ", ".join(map(str, keys)) or "none"
    fig = _layout(fig, f"Trig identity: logits ~ sum_k alpha_k cos(w_k (a+b-c)), k in {{{listed}}}",
                  "checkpoint step", "fraction of logit variance explained")
    fig.update_yaxes(range=[-0.02, 1.02])
    fig.update_layout(yaxis2=dict(title="alpha_k", overlaying="y", side="right", showgrid=False))
    return fig


def embedding_circles_figure(views: NandaViews) -> go.Figure:
    """Each residue's embedding on the (cos, sin) plane of each key frequency (`embedding_circles`),
    coloured by its group index: a circle, walked in steps of w_k, once the frequency is learned."""
    freqs = views.circle_freqs
    if not freqs:
        fig = go.Figure()
        fig.add_annotation(text="no key frequency with a cos/sin plane: no circle to draw", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        return _layout(fig, f"Embedding circles ({_where(views)})", "", "")
    cols = min(len(freqs), 4)
    rows = -(-len(freqs) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"k = {k}" for k in freqs],
                        horizontal_spacing=0.06, vertical_spacing=0.12)
    index = np.arange(views.n)
    residues = views.residues.numpy()
    for i, k in enumerate(freqs):
        xy = views.circles[i].numpy()
        fig.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name=f"k = {k}", showlegend=False,
            marker=dict(color=index, colorscale="Twilight", size=6, showscale=i == 0,
                        colorbar=dict(title=_operand(views), len=0.8)),
            text=[f"{_operand(views)} = {j} (residue {r})" for j, r in zip(index, residues)],
            hovertemplate="%{text}<extra></extra>"), row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(title=f"Embedding on the (cos, sin) plane of each key frequency ({_where(views)})",
                      height=max(HEIGHT, 300 * rows), template="plotly_white", margin=dict(l=50, r=20, t=80, b=40))
    return fig


def neuron_logit_fourier_figure(views: NandaViews) -> go.Figure:
    """|W_out W_U| with the output in the Fourier basis (`neuron_logit_map`), neurons sorted by cluster:
    each cluster of neurons writes to the logits along its own frequency only."""
    order = np.argsort(views.clusters.assignment.numpy(), kind="stable")
    z = np.abs(views.neuron_logit_fourier.numpy()[order]).astype(np.float32)
    rows = [f"neuron {j} ({views.clusters.names[c]})" for j, c in zip(order, views.clusters.assignment.numpy()[order])]
    fig = go.Figure(go.Heatmap(z=z, x=basis_names(views.n), y=rows, colorscale="Viridis",
                               hovertemplate="%{y}, %{x}: %{z:.3g}<extra></extra>",
                               colorbar=dict(title="|W_L|"), name="neuron-logit map"))
    fig = _layout(fig, f"Neuron-logit map W_out W_U in the Fourier basis ({_where(views)})",
                  "output basis function", "neuron (sorted by cluster)")
    fig.update_xaxes(type="category")  # _layout sets linear axes; these are named basis functions and neurons
    fig.update_yaxes(type="category", autorange="reversed", showticklabels=False)
    return fig


def attention_fourier_figure(views: NandaViews) -> go.Figure:
    """|2D Fourier coefficients| of the attention from `=` to a (top row) and to b (bottom row), per head,
    over the grid of (a, b): sparse on a few (cos/sin k) x const terms when the heads read the inputs' waves.
    The const x const coefficient (the mean attention) is left blank so that it does not set the colour scale."""
    coeffs = np.abs(views.attention_fourier.numpy()).astype(np.float32)  # [2, heads, n, n]
    coeffs[:, :, 0, 0] = np.nan  # n x the mean attention: it would set the colour scale alone
    heads = coeffs.shape[1]
    names = basis_names(views.n)
    fig = make_subplots(rows=2, cols=heads, horizontal_spacing=0.03, vertical_spacing=0.12,
                        subplot_titles=[f"head {h}: = to {t}" for t in ("a", "b") for h in range(heads)])
    for target in range(2):
        for h in range(heads):
            fig.add_trace(go.Heatmap(z=coeffs[target, h], x=names, y=names, coloraxis="coloraxis",
                                     name=f"head {h} to {'ab'[target]}",
                                     hovertemplate="a: %{y}, b: %{x}: %{z:.3g}<extra></extra>"),
                          row=target + 1, col=h + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(title=f"Attention from = to a and b in the 2D Fourier basis ({_where(views)}; "
                            "rows: basis of a, columns: basis of b; mean left out)", coloraxis=dict(colorscale="Viridis"),
                      height=2 * HEIGHT - 60, template="plotly_white", margin=dict(l=40, r=20, t=80, b=30))
    return fig


def pair_loss_figure(views: NandaViews) -> go.Figure:
    """log10 of the loss of every pair (a, b), train pairs and test pairs alike (hover says which)."""
    loss = views.pair_loss.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log10(np.maximum(loss, 1e-30)).astype(np.float32)
    z[np.isnan(loss)] = np.nan
    split = np.where(views.train_mask.numpy(), "train", "test")
    fig = go.Figure(go.Heatmap(z=z, x=np.arange(views.p), y=np.arange(views.p), colorscale="Magma",
                               customdata=split, colorbar=dict(title="log10 loss"), name="loss",
                               hovertemplate="a %{y}, b %{x} (%{customdata}): 10^%{z:.2f}<extra></extra>"))
    fig = _layout(fig, f"Loss of every pair (a, b) ({_where(views)})", "b", "a")
    fig.update_xaxes(constrain="domain")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    return fig


def logit_attribution_figure(views: NandaViews) -> go.Figure:
    """Mean direct logit attribution of each neuron cluster to the correct answer (`neuron_logit_attribution`:
    acts x (W_L[:, correct] - mean W_L)), over every example; the bars sum to the total of all neurons."""
    counts = np.bincount(views.clusters.assignment.numpy(), minlength=len(views.clusters.names))
    labels = [f"{name} ({n} neurons)" for name, n in zip(views.clusters.names, counts)]
    colors = [COLORS["key"] if k else COLORS["other"] for k in views.clusters.freqs]
    fig = go.Figure(go.Bar(x=labels, y=views.dla.numpy(), marker_color=colors, name="cluster"))
    fig.add_hline(y=views.dla_total, line=dict(color="#444", dash="dash", width=1),
                  annotation_text=f"all neurons {views.dla_total:.3g}", annotation_position="top left")
    fig = _layout(fig, f"Direct logit attribution to the correct answer by neuron cluster ({_where(views)})",
                  "neuron cluster (dominant frequency)", "mean logit contribution (vs mean output)")
    fig.update_xaxes(type="category")  # after _layout, which sets linear axes
    return fig


NANDA_TITLES = {
    "trig_fit": "Trig-identity fit over time",
    "embedding_circles": "Embedding circles per key frequency",
    "neuron_logit_fourier": "Neuron-logit map in the Fourier basis",
    "attention_fourier": "Attention in the Fourier basis",
    "pair_loss": "Loss per pair (a, b)",
    "logit_attribution": "Logit attribution by neuron cluster",
}


def views_of(run: Run, result: ReplayResult | None = None, step: int | None = None) -> NandaViews:
    """`nanda_views` of the run at `step` (default: the last replayed checkpoint, else the last one), with the
    key frequencies the replayed analyses used (else those of that checkpoint)."""
    if step is None:
        step = int(result.steps[-1]) if result is not None and len(result.steps) else run.steps[-1]
    model, task = run.model(step), run.task
    if result is not None and ("spectra" in result.data or "progress" in result.data):
        keys = key_frequencies_of(result)
    elif result is not None and "key_freqs" in result.context.get("trig_fit", {}):
        keys = [int(k) for k in result.context["trig_fit"]["key_freqs"]]
    else:
        keys = key_frequencies(model, task)
    return nanda_views(model, task, keys, step=step)


def nanda_figures(run: Run, result: ReplayResult | None) -> dict[str, go.Figure]:
    """The report section: the trig fit over time (when replayed) and the views of the last checkpoint."""
    figures = {}
    if result is not None and "trig_fit" in result.data:
        figures["trig_fit"] = trig_fit_curve(result, run)
    if run.steps:
        views = views_of(run, result)
        figures.update(embedding_circles=embedding_circles_figure(views),
                       neuron_logit_fourier=neuron_logit_fourier_figure(views),
                       attention_fourier=attention_fourier_figure(views),
                       pair_loss=pair_loss_figure(views),
                       logit_attribution=logit_attribution_figure(views))
    return figures


register_figures(nanda_figures, NANDA_TITLES)
