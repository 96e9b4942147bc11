"""The views of Nanda et al. 2023, "Progress measures for grokking via mechanistic interpretability",
as pure functions: the trig-identity fit of the logits, the embedding's circles, the neuron-logit map
and the attention patterns in the Fourier basis, per-pair loss, and direct logit attribution by
neuron cluster.

The paper's algorithm for a + b: embed a and b as rotations cos/sin(w_k a) for a few key frequencies k
(w_k = 2 pi k / p), multiply them in the attention and MLP into cos/sin(w_k (a + b)), and read the
answer out as logits(a, b, c) ~ sum_k alpha_k cos(w_k (a + b - c)), which peaks at c = a + b.
Everything here works over the task's group indexing (`_characters.group_indexing`): Z_p for add and
sub (c = a - b: the identity is cos(w_k (a - b - c))), Z_{p-1} by discrete log for mul and div.

"trig_fit" is registered as a checkpoint analysis (one value per replayed checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ...tasks import ModularTask
from ._characters import group_indexing
from ._spectra import (
    NEURON_FRAC_THRESHOLD,
    GridForward,
    diagonal_sums,
    fourier_basis,
    grid_forward,
    group_grid,
    neuron_frequencies,
)
from ._progress import per_example_loss
from ..replay_engine import register_analysis
from ._standard import _final_key_frequencies


# ----- the trig identity --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrigFit:
    """Least-squares fit of the logits by sum_k alpha_k cos(w_k (i + sign j - r)) (see `trig_identity_fit`).

    Attributes:
        key_freqs: the frequencies fitted (sorted).
        alpha: float64 [n_key], the fitted amplitudes.
        frac_explained: fraction of the centred logits' sum of squares the fit explains, in [0, 1].
    """

    key_freqs: list[int]
    alpha: Tensor
    frac_explained: float


def trig_identity_fit(logits: Float[Tensor, "n n n_out"], key_freqs: list[int], sign: int = 1) -> TrigFit:
    """Fit logits[i, j, r] ~ sum_k alpha_k cos(w_k (i + sign * j - r)) by least squares, w_k = 2 pi k / n.

    i, j are the operands' and r the output's group indices (`group_grid` for the inputs and the same
    re-indexing of the outputs). The logits are first centred over outputs, L~[i, j, r] = L[i, j, r] -
    mean_r L[i, j, r] (softmax ignores that offset; the cosines have zero mean over r). With
    X_k[i, j, r] = cos(w_k (s - r)), s = i + sign j, the normal equations G alpha = v have
    G_kl = <X_k, X_l> and v_k = <X_k, L~> = sum_{s, r} cos(w_k (s - r)) D[s, r], D the sums of L~ over
    each diagonal s (`diagonal_sums`), so the fit costs O(n^3). Fraction explained:
    ||fit||^2 / ||L~||^2 = alpha . v / ||L~||^2 (the fit is an orthogonal projection). Nanda et al. 2023,
    section 4 ("the model computes cos(w (a + b - c)) via trig identities"; they report the logits'
    variance explained by these directions).

    Args:
        logits: [n, n, n] in group-index order on all three axes.
        key_freqs: frequencies 1..n//2 (an empty list fits nothing: frac_explained 0).
        sign: +1 (a + b, a * b) or -1 (a - b, a / b).

    >>> n, k = 7, 2
    >>> s = (torch.arange(n)[:, None, None] + torch.arange(n)[None, :, None] - torch.arange(n)) % n
    >>> fit = trig_identity_fit(3.0 * torch.cos(2 * math.pi * k * s / n), [k])
    >>> round(float(fit.alpha[0]), 6), round(fit.frac_explained, 6)
    (3.0, 1.0)
    """
    n = logits.shape[0]
    if logits.shape != (n, n, n):
        raise ValueError(f"logits must be [n, n, n] (inputs and outputs on the same group); got {list(logits.shape)}")
    if sign not in (1, -1):
        raise ValueError(f"sign={sign} must be +1 or -1")
    freqs = sorted({int(k) for k in key_freqs})
    if any(not 1 <= k <= n // 2 for k in freqs):
        raise ValueError(f"key frequencies {freqs} must lie in 1..{n // 2} for a group of order {n}")
    centred = logits.to(torch.float64)
    centred = centred - centred.mean(-1, keepdim=True)
    total = float((centred * centred).sum())
    if not freqs or total == 0.0:
        return TrigFit(freqs, torch.zeros(len(freqs), dtype=torch.float64), 0.0)
    sums = diagonal_sums(centred, sign)  # [s, r]
    t = torch.arange(n, dtype=torch.float64, device=logits.device)
    shift = (t[:, None] - t[None, :]) % n  # s - r
    waves = torch.stack([torch.cos(2 * math.pi * k * shift / n) for k in freqs])  # [K, s, r]
    flat = waves.reshape(len(freqs), -1)
    gram = n * flat @ flat.T  # each s occurs for n pairs (i, j)
    v = flat @ sums.reshape(-1)
    alpha = torch.linalg.lstsq(gram, v[:, None]).solution[:, 0]
    explained = float(alpha @ v) / total
    return TrigFit(freqs, alpha.cpu(), min(max(explained, 0.0), 1.0))


def group_logits(logits: Float[Tensor, "p p p_out"], p: int, op: str) -> Float[Tensor, "n n n"]:
    """The [p, p, p] logits re-indexed to the task's group on inputs and outputs (identity for add/sub;
    discrete log over the nonzero residues for mul/div)."""
    residues = group_indexing(p, op).residues.to(logits.device)
    return group_grid(logits, residues)[..., residues]


def trig_fit_of(model, task: ModularTask, key_freqs: list[int], grid: GridForward | None = None) -> dict:
    """`trig_identity_fit` of a model's logits over the task's group: {"alpha": [n_key], "frac_explained"}.
    NaN for ops that are no group law (x2+y2, ..., random)."""
    indexing = group_indexing(task.p, task.op)
    if indexing.sign is None:
        return {"alpha": np.full(len(key_freqs), np.nan), "frac_explained": float("nan")}
    grid = grid_forward(model, task) if grid is None else grid
    fit = trig_identity_fit(group_logits(grid.logits, task.p, task.op), key_freqs, indexing.sign)
    return {"alpha": fit.alpha.numpy(), "frac_explained": fit.frac_explained}


@register_analysis("trig_fit", version=1, kind="checkpoint", prepare=_final_key_frequencies)
def trig_fit(model, task: ModularTask, context: dict) -> dict:
    """Trig-identity fit at one checkpoint against the final key frequencies (`trig_identity_fit`, Nanda et
    al. 2023): alpha [n_key] (order of the sorted key frequencies) and frac_explained (scalar)."""
    grid = context.shared("grid_forward", lambda: grid_forward(model, task))
    with torch.no_grad():
        return trig_fit_of(model, task, context["key_freqs"], grid)


# ----- views of one model -------------------------------------------------------------------------


def fourier_transform_2d(x: Float[Tensor, "... n n"]) -> Float[Tensor, "... n n"]:
    """Coefficients of x over the last two axes in the 2D Fourier basis: B x B^T, B = `fourier_basis(n)`
    (rows const, cos 1, sin 1, ...; Nanda et al. 2023 show attention and neuron activations this way)."""
    n = x.shape[-1]
    basis = fourier_basis(n, torch.float64).to(x.device)
    return basis @ x.to(torch.float64) @ basis.T


def embedding_circles(W_E: Float[Tensor, "d_vocab d_model"], p: int, key_freqs: list[int],
                      op: str = "add") -> Float[Tensor, "n_key n 2"]:
    """Each residue's embedding projected on the plane of each key frequency: the circles of Nanda et al. 2023.

    With E[i] = W_E[residue i] - mean (group order, `group_indexing`), the frequency-k directions of the
    embedding are c_k = sum_i B[cos k, i] E[i] and s_k = sum_i B[sin k, i] E[i] (rows of `fourier_basis`).
    The plane span{c_k, s_k} gets an orthonormal basis (q_1, q_2) by QR, and residue i sits at
    (E[i] . q_1, E[i] . q_2). When the embedding of frequency k is cos/sin(w_k i) along two orthogonal
    directions of equal norm, the points lie on a circle in the order i -> i + 1 turning by w_k.

    Returns:
        float64 [n_key, n, 2]; row i of each plane is the residue `group_indexing(p, op).residues[i]`.
    """
    indexing = group_indexing(p, op)
    n = indexing.n
    emb = W_E[indexing.residues.to(W_E.device)].detach().to(torch.float64)
    emb = emb - emb.mean(0, keepdim=True)
    coeffs = fourier_basis(n, torch.float64).to(emb.device) @ emb  # [n, d_model]
    planes = []
    for k in key_freqs:
        if not 1 <= k <= (n - 1) // 2:
            raise ValueError(f"key frequency {k} has no cos/sin plane over a group of order {n} (1..{(n - 1) // 2})")
        q, _ = torch.linalg.qr(torch.stack([coeffs[2 * k - 1], coeffs[2 * k]], 1))  # [d_model, 2]
        planes.append(emb @ q)
    return torch.stack(planes) if planes else torch.zeros(0, n, 2, dtype=torch.float64)


def neuron_logit_map(W_out: Float[Tensor, "d_mlp d_model"], W_U: Float[Tensor, "d_model d_vocab_out"], p: int,
                     op: str = "add") -> Float[Tensor, "d_mlp n"]:
    """The neuron-logit map W_L = W_out W_U with its output axis in the Fourier basis: W_L[:, residues] B^T.

    Entry [j, r] is how neuron j writes to the logits along basis function r (const, cos 1, sin 1, ...)
    of the output (group order for mul/div). Nanda et al. 2023 (fig. 5): it is sparse, on the key
    frequencies only.
    """
    residues = group_indexing(p, op).residues.to(W_U.device)
    W_L = W_out.detach().to(torch.float64) @ W_U.detach().to(torch.float64)[:, residues]
    return W_L @ fourier_basis(len(residues), torch.float64).to(W_L.device).T


@dataclass(frozen=True)
class NeuronClusters:
    """MLP neurons grouped by dominant frequency (see `neuron_clusters`).

    Attributes:
        names: cluster names, "freq k" for each key frequency, then "other".
        freqs: the key frequency of each cluster (0 for "other").
        assignment: int64 [d_mlp], each neuron's cluster index into `names`.
    """

    names: list[str]
    freqs: list[int]
    assignment: Tensor


def neuron_clusters(neuron_freq: Int[Tensor, "d_mlp"], neuron_frac: Float[Tensor, "d_mlp"], key_freqs: list[int],
                    threshold: float = NEURON_FRAC_THRESHOLD) -> NeuronClusters:
    """Cluster k holds the neurons whose dominant frequency is the key frequency k and explains at least
    `threshold` of their variance (`neuron_frequencies`); every other neuron is in "other"."""
    freqs = sorted({int(k) for k in key_freqs})
    assignment = torch.full(neuron_freq.shape, len(freqs), dtype=torch.int64)
    clean = neuron_frac >= threshold
    for i, k in enumerate(freqs):
        assignment[(neuron_freq.cpu() == k) & clean.cpu()] = i
    return NeuronClusters([f"freq {k}" for k in freqs] + ["other"], freqs + [0], assignment)


def neuron_logit_attribution(acts: Float[Tensor, "batch d_mlp"], W_out: Float[Tensor, "d_mlp d_model"],
                             W_U: Float[Tensor, "d_model d_vocab_out"], labels: Int[Tensor, "batch"],
                             assignment: Int[Tensor, "d_mlp"], n_clusters: int) -> tuple[Tensor, float]:
    """Direct logit attribution of MLP neurons to the correct answer, summed per cluster.

    Neuron j's direct contribution to example e's logit of output c is acts[e, j] W_L[j, c], W_L = W_out W_U
    (the path through the residual stream to the unembedding, with no later layer or LayerNorm between).
    Attributed to the correct answer y_e, relative to the mean output (softmax ignores common shifts):
        dla[e, j] = acts[e, j] (W_L[j, y_e] - mean_c W_L[j, c]).
    Returns (per-cluster mean over examples of sum_{j in cluster} dla[e, j] [n_clusters], float64; the
    mean over examples of sum_j dla[e, j], the total). The clusters sum to the total exactly up to
    rounding. Nanda et al. 2023 attribute the logits to neuron clusters by frequency the same way.
    """
    W_L = W_out.detach().to(torch.float64) @ W_U.detach().to(torch.float64)
    centred = W_L - W_L.mean(1, keepdim=True)  # [d_mlp, d_vocab_out]
    per_neuron = (acts.detach().to(torch.float64) * centred[:, labels.to(W_L.device)].T).mean(0)  # [d_mlp]
    per_cluster = torch.zeros(n_clusters, dtype=torch.float64).index_add_(0, assignment.cpu(), per_neuron.cpu())
    total = float((acts.detach().to(torch.float64) @ centred).gather(1, labels.to(W_L.device)[:, None]).mean())
    return per_cluster, total


def pair_loss_grid(logits: Float[Tensor, "p p d_vocab_out"], task: ModularTask) -> Float[Tensor, "p p"]:
    """Cross-entropy of every pair (a, b) of the task as a [p, p] grid (residue order; NaN where the task
    has no example, e.g. b = 0 for div). float64 (`per_example_loss`)."""
    p = task.p
    rows = (task.a * p + task.b).to(logits.device)
    losses = per_example_loss(logits.reshape(p * p, -1).index_select(0, rows), task.labels.to(logits.device))
    grid = torch.full((p * p,), math.nan, dtype=torch.float64, device=logits.device)
    return grid.index_copy_(0, rows, losses).reshape(p, p)


@dataclass(frozen=True)
class NandaViews:
    """Nanda et al. 2023's views of one checkpoint, as arrays (see `nanda_views`).

    Attributes:
        p, op, n, step: the task, its group order, and the checkpoint step (None if unknown).
        key_freqs: the key frequencies the views are drawn for.
        circle_freqs: the key frequencies with a cos/sin plane (all but a Nyquist character of Z_{p-1}).
        circles: [n_circle, n, 2] (`embedding_circles`); residues: [n], the residue of each group index.
        neuron_logit_fourier: [d_mlp, n] (`neuron_logit_map`).
        attention_fourier: [2, n_heads, n, n], the 2D Fourier coefficients (`fourier_transform_2d`) of the
            attention paid by `=` to a (index 0) and to b (index 1), over the group grid of (a, b).
        pair_loss: [p, p] (`pair_loss_grid`); train_mask: bool [p, p], pairs in the train split.
        clusters: `neuron_clusters` of the last MLP; dla: [n_clusters] and dla_total (`neuron_logit_attribution`
            over every example of the task).
        trig: `trig_identity_fit` of the logits (None for ops that are no group law).
    """

    p: int
    op: str
    n: int
    step: int | None
    key_freqs: list[int]
    circle_freqs: list[int]
    circles: Tensor
    residues: Tensor
    neuron_logit_fourier: Tensor
    attention_fourier: Tensor
    pair_loss: Tensor
    train_mask: Tensor
    clusters: NeuronClusters
    dla: Tensor
    dla_total: float
    trig: TrigFit | None


def attention_to_operands(model, task: ModularTask, layer: int = 0) -> tuple[Float[Tensor, "2 n_heads p p"], GridForward]:
    """Attention paid by the final position `=` to a and to b in block `layer`, for every pair: [2, heads, a, b];
    with the `grid_forward` of the same pass (the capture hook lives only inside this call)."""
    captured = {}

    def capture(pattern, hook):
        captured["pattern"] = pattern[:, :, -1, :2].detach()  # [batch, heads, key pos a and b]

    with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", capture)]):
        grid = grid_forward(model, task)
    p = task.p
    pattern = captured["pattern"].reshape(p, p, -1, 2).permute(3, 2, 0, 1)
    return pattern, grid


def nanda_views(model, task: ModularTask, key_freqs: list[int], step: int | None = None,
                threshold: float = NEURON_FRAC_THRESHOLD) -> NandaViews:
    """Every view of one checkpoint from one forward over all p^2 pairs (no hook outlives the call).

    Args:
        model: a HookedTransformer-like model (grokinterp's Transformer, TL 3's HookedTransformer).
        task: its ModularTask. key_freqs: usually the final checkpoint's (`key_frequencies`).
        step: the checkpoint's step, for titles.
        threshold: the variance fraction that puts a neuron in its frequency's cluster.
    """
    indexing = group_indexing(task.p, task.op)
    last = len(model.blocks) - 1
    with torch.no_grad():
        pattern, grid = attention_to_operands(model, task, layer=0)
        residues = indexing.residues
        attention = fourier_transform_2d(group_grid(pattern.permute(2, 3, 0, 1), residues).permute(2, 3, 0, 1))
        neurons = neuron_frequencies(group_grid(grid.neuron_acts, residues))
        clusters = neuron_clusters(neurons.freq, neurons.frac_explained, key_freqs, threshold)
        W_out, W_U = model.blocks[last].mlp.W_out, model.unembed.W_U
        p = task.p
        acts = grid.neuron_acts.reshape(p * p, -1).index_select(0, (task.a * p + task.b).to(grid.neuron_acts.device))
        dla, total = neuron_logit_attribution(acts, W_out, W_U, task.labels, clusters.assignment, len(clusters.names))
        train = torch.zeros(p * p, dtype=torch.bool)
        train[(task.a * p + task.b)[task.train_idx].cpu()] = True
        trig = None
        if indexing.sign is not None:
            trig = trig_identity_fit(group_logits(grid.logits, p, task.op), key_freqs, indexing.sign)
        planar = sorted(int(k) for k in key_freqs if 2 * k != indexing.n)  # the Nyquist character has no sine: no circle
        return NandaViews(
            p=p, op=task.op, n=indexing.n, step=step, key_freqs=sorted(int(k) for k in key_freqs),
            circle_freqs=planar, residues=residues.cpu(),
            circles=embedding_circles(model.embed.W_E, p, planar, task.op).cpu(),
            neuron_logit_fourier=neuron_logit_map(W_out, W_U, p, task.op).cpu(),
            attention_fourier=attention.cpu(), pair_loss=pair_loss_grid(grid.logits, task).cpu(),
            train_mask=train.reshape(p, p), clusters=clusters, dla=dla, dla_total=total, trig=trig)

