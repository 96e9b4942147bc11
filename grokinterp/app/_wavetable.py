"""The wavetable: every MLP neuron's activation as a waveform over the input residue, rows sorted by frequency.

Seed 001's "wavetable display" of the clock algorithm (Nanda et al. 2023, "Progress measures for grokking
via mechanistic interpretability"): after grokking, neuron j fires like cos(w_k (a + b) + phi_j) for one
key frequency k, so, sorted by dominant frequency, the rows form bands of waves with k periods each.
Two panels: the activation over a with b fixed, and its mean over the pairs with the same a + b (a - b for
sub/div); for mul/div the axes run over the group in discrete-log order, where characters are waves too.
Each row is divided by its largest |value| so that every neuron's shape shows. Dominant frequencies and
key frequencies are those of the replayed "spectra" analysis at that step (`checkpoint_spectra`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis import diagonal_sums, grid_forward, group_grid, group_indexing, key_frequency_mask, neuron_frequencies

KEY_COLOR, OTHER_COLOR = "#d62728", "#7f7f7f"


@dataclass(frozen=True)
class Wavetable:
    """Neuron waveforms at one checkpoint, rows already in display order.

    Attributes:
        over_a: [d_mlp, n], activation of neuron order[r] at (a = residues[i], b = b); row r is order[r].
        over_sum: [d_mlp, n], mean activation over the pairs with a + sign * b = residues[i] (group order).
        order: int64 [d_mlp], neuron index of each row: by dominant frequency (0, dead or constant, last),
            then by the fraction of variance it explains, largest first.
        freq, frac: [d_mlp] per ROW: dominant frequency and fraction of variance explained.
        key_freqs: key frequencies at this step. residues: [n] the axis (group order). b: the fixed b.
        sign: +1 (the second panel is over a + b) or -1 (over a - b).
    """

    over_a: np.ndarray
    over_sum: np.ndarray
    order: np.ndarray
    freq: np.ndarray
    frac: np.ndarray
    key_freqs: list[int]
    residues: np.ndarray
    b: int
    sign: int


def wavetable(model, task, spectra: dict | None = None, b_index: int = 0) -> Wavetable:
    """The wavetable of `model` on `task`: one forward over every pair (`grid_forward`), last MLP's hook_post.

    Args:
        model, task: a checkpoint and its ModularTask.
        spectra: that checkpoint's replayed "spectra" (`ReplayResult.at("spectra", step)`), for the neuron
            frequencies and key frequencies; computed from the activations when None.
        b_index: which group element b is fixed at in the first panel (group order; 0: b = 0 for add).
    """
    indexing = group_indexing(task.p, task.op)
    acts = group_grid(grid_forward(model, task).neuron_acts, indexing.residues).double().cpu()  # [n, n, d_mlp]
    n = acts.shape[0]
    sign = indexing.sign or 1
    if spectra is None:
        neurons = neuron_frequencies(acts)
        freq, frac = neurons.freq.numpy(), neurons.frac_explained.numpy()
        mask = key_frequency_mask(neurons).numpy()
    else:
        freq, frac = np.asarray(spectra["neuron_freq"]), np.asarray(spectra["neuron_frac_explained"])
        mask = np.asarray(spectra["key_freq_mask"])
    freq = freq.astype(np.int64)
    order = np.lexsort((-frac, freq, freq == 0))
    over_a = acts[:, b_index % n, :].numpy().T
    over_sum = (diagonal_sums(acts, sign) / n).numpy().T
    return Wavetable(over_a=over_a[order], over_sum=over_sum[order], order=order, freq=freq[order], frac=frac[order],
                     key_freqs=[int(k) for k in np.flatnonzero(mask)], residues=indexing.residues.numpy(),
                     b=int(indexing.residues[b_index % n]), sign=sign)


def _normalised(rows: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return rows / np.where(scale > 0, scale, 1.0)[:, None]


def wavetable_figure(table: Wavetable, step: int, title_prefix: str = "") -> go.Figure:
    """Two heatmaps (over a with b fixed; over a + b), one row per neuron, frequency bands labelled on the
    right, key frequencies in red."""
    scale = np.maximum(np.abs(table.over_a).max(1), np.abs(table.over_sum).max(1))
    d = len(table.order)
    sum_label = "a + b" if table.sign == 1 else "a - b"
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=(f"over a, b = {table.b}", f"mean over pairs with the same {sum_label}"))
    custom = np.stack([table.order, table.freq], axis=1)[:, None, :].repeat(len(table.residues), axis=1)
    for col, (rows, axis) in enumerate(((table.over_a, "a"), (table.over_sum, sum_label)), start=1):
        fig.add_trace(go.Heatmap(
            z=_normalised(rows, scale), x=[str(r) for r in table.residues], y=np.arange(d), customdata=custom,
            colorscale="RdBu_r", zmid=0, zmin=-1, zmax=1, showscale=col == 2,
            colorbar=dict(title="act / max", len=0.8, x=1.16),
            hovertemplate=f"neuron %{{customdata[0]}} (k=%{{customdata[1]}})<br>{axis}=%{{x}}<br>%{{z:.2f}}<extra></extra>",
            name=f"over {axis}"), row=1, col=col)
    keys = set(table.key_freqs)
    bands = np.flatnonzero(np.r_[True, table.freq[1:] != table.freq[:-1]])
    shapes, notes = [], list(fig.layout.annotations)  # set at once: plotly's add_* re-validates the figure each time
    for start, end in zip(bands, list(bands[1:]) + [d]):
        k = int(table.freq[start])
        if start > 0:
            shapes.append(dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=start - 0.5, y1=start - 0.5,
                               line=dict(color="#444", width=0.6)))
        label = "dead" if k == 0 else f"k={k}" + (" key" if k in keys else "")
        notes.append(dict(x=1.0, xref="paper", xanchor="left", y=(start + end - 1) / 2, yref="y", showarrow=False,
                          text=f"{label} ({end - start})", font=dict(size=10, color=KEY_COLOR if k in keys else OTHER_COLOR)))
    fig.update_layout(shapes=shapes, annotations=notes)
    listed = ", ".join(map(str, sorted(keys))) or "none yet"
    fig.update_yaxes(autorange="reversed", title_text=f"{d} neurons, sorted by dominant frequency", row=1, col=1,
                     showticklabels=False)
    fig.update_xaxes(title_text="a", row=1, col=1)
    fig.update_xaxes(title_text=sum_label, row=1, col=2)
    fig.update_layout(title=html.escape(f"{title_prefix}Wavetable at step {step}: key frequencies {listed}"),
                      height=max(420, min(1400, 3 * d + 160)), template="plotly_white",
                      margin=dict(l=60, r=150, t=80, b=50))
    return fig
