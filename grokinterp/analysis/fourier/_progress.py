"""Progress measures of grokking (Nanda et al. 2023, "Progress measures for grokking via mechanistic
interpretability", section 5.1): restricted loss, excluded loss, and the total weight norm.

The generalizing circuit of a grokked a + b model computes logits ~ sum_{k in K} alpha_k cos(w_k (a + b - c))
for a few key frequencies K (w_k = 2 pi k / p). As functions of the inputs (a, b), for each output c, these
lie in the span of cos(w_k (a + b)) and sin(w_k (a + b)), k in K. With L[a, b, c] the logits on the full
grid of pairs and, for each output c, P_K the orthogonal projection (over the p^2 pairs) onto
span{cos(w_k (a + b)), sin(w_k (a + b)) : k in K}:

    restricted logits  R[a, b, c] = mean_{a', b'} L[a', b', c] + (P_K L[., ., c])[a, b]
    excluded logits    X[a, b, c] = L[a, b, c] - (P_K L[., ., c])[a, b]

The constant term (the mean over pairs of each output's logit, i.e. the 2D DFT's const x const
component) is kept in both, as in Nanda et al.: their restricted logits are re-centred on the original
logits' mean. Restricted loss = cross-entropy of R over all pairs: low once the circuit alone solves
the task. Excluded loss = cross-entropy of X over the training pairs: rises when the training
performance comes from the circuit rather than memorization. Nanda et al. project the MLP neuron
activations (then map through W_out W_U); the paper's text defines it on the logits' 2D DFT, which is
what is done here (the attention and direct paths' key-frequency parts are then kept too).

Generalizations: sub uses a - b; mul and div use the discrete-log re-indexing of `_characters.py`
(a + b becomes log a + log b, resp. log a - log b, over Z_{p-1}, on the (p-1)^2 pairs with a, b != 0;
frequency (p-1)/2 has only its cos direction). For ops that are no group law (x2+y2, ..., random)
restricted and excluded loss are NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ...hooked import as_hooked
from ._characters import group_indexing, group_law_labels
from ._spectra import GridForward, diagonal_sums, grid_forward, group_grid


def key_wave_table(n: int, key_freqs: list[int]) -> Float[Tensor, "m n"]:
    """The key directions as functions of the combined coordinate s = i + sign * j mod n: T[r, s].

    Rows cos(w_k s), sin(w_k s) for k in key_freqs (sorted, no sine at the Nyquist k = n/2 of even n),
    each scaled so that the grid vector (i, j) -> T[r, s(i, j)] has unit norm over the n^2 pairs
    (each s occurs n times). float64.
    """
    t = torch.arange(n, dtype=torch.float64)
    rows = []
    for k in sorted(set(int(k) for k in key_freqs)):
        if not 1 <= k <= n // 2:
            raise ValueError(f"key frequency {k} is out of range 1..{n // 2} for a group of order {n}")
        angle = 2 * math.pi * k * t / n
        rows.append(torch.cos(angle))
        if 2 * k != n:
            rows.append(torch.sin(angle))
    if not rows:
        return torch.zeros(0, n, dtype=torch.float64)
    table = torch.stack(rows)
    return table / (math.sqrt(n) * table.norm(dim=1, keepdim=True))


def combined_coordinate(n: int, sign: int = 1) -> Int[Tensor, "n n"]:
    """s[i, j] = (i + sign * j) mod n."""
    i = torch.arange(n)
    return (i[:, None] + sign * i[None, :]) % n


def key_directions(n: int, key_freqs: list[int], sign: int = 1) -> Float[Tensor, "m n_sq"]:
    """Unit vectors over the flattened [n, n] grid of (i, j): cos and sin of w_k (i + sign * j), k in key_freqs.

    Orthonormal, and orthogonal to the constant. float64 [m, n * n], m = 2 |key_freqs| (minus one per Nyquist).
    """
    return key_wave_table(n, key_freqs)[:, combined_coordinate(n, sign).reshape(-1)]


def _projection_table(logits: Float[Tensor, "n n c"], key_freqs: list[int], sign: int) -> Float[Tensor, "n c"]:
    """(P_K L)[i, j, c] depends on (i, j) only through s = i + sign * j: its value Q[s, c].

    <L_c, T_r(s(i, j))> = sum_s T[r, s] D[s, c] with D the diagonal sums of L, so Q = T.T @ (T @ D), O(n c).
    """
    table = key_wave_table(logits.shape[0], key_freqs).to(logits.device)
    sums = diagonal_sums(logits, sign).to(torch.float64)
    return table.T @ (table @ sums)


def key_projection(logits: Float[Tensor, "n n c"], key_freqs: list[int], sign: int = 1) -> Float[Tensor, "n n c"]:
    """P_K: for each output c, the projection of logits[., ., c] onto the key directions (`key_directions`). float64."""
    s = combined_coordinate(logits.shape[0], sign).to(logits.device)
    return _projection_table(logits, key_freqs, sign)[s]


def restricted_logits(logits: Float[Tensor, "n n c"], key_freqs: list[int], sign: int = 1) -> Float[Tensor, "n n c"]:
    """R = per-output mean over pairs + P_K L (module docstring; Nanda et al. 2023). float64."""
    mean = logits.to(torch.float64).mean((0, 1), keepdim=True)
    return mean + key_projection(logits, key_freqs, sign)


def excluded_logits(logits: Float[Tensor, "n n c"], key_freqs: list[int], sign: int = 1) -> Float[Tensor, "n n c"]:
    """X = L - P_K L (module docstring; Nanda et al. 2023). float64."""
    return logits.to(torch.float64) - key_projection(logits, key_freqs, sign)


def per_example_loss(logits: Float[Tensor, "batch c"], labels: Int[Tensor, "batch"]) -> Float[Tensor, "batch"]:
    """Cross-entropy of each row, as log(1 + sum_{c != y} exp(x_c - x_y)) so that tiny losses keep their precision.

    With d_c = x_c - x_y (d_y = -inf) and m = max(0, max_c d_c): loss = m + log1p(sum_c exp(d_c - m) + expm1(-m)).
    A grokked model's loss (1e-7 and below) is then exact to float32 relative precision, where
    logsumexp(x) - x_y would round it to a multiple of eps * max|x|. Returns float64.
    """
    labels = labels.to(logits.device)[:, None]
    d = logits - logits.gather(1, labels)
    d.scatter_(1, labels, -torch.inf)
    m = d.amax(1).clamp_min(0.0)
    rest = torch.exp(d - m[:, None]).sum(1)
    return (m.to(torch.float64) + torch.log1p(rest.to(torch.float64) + torch.expm1(-m.to(torch.float64))))


def cross_entropy(logits: Float[Tensor, "batch c"], labels: Int[Tensor, "batch"]) -> float:
    """Mean cross-entropy (`per_example_loss`)."""
    return float(per_example_loss(logits, labels).mean())


def restricted_loss(logits: Float[Tensor, "n n c"], labels: Int[Tensor, "n n"], key_freqs: list[int], sign: int = 1) -> float:
    """Cross-entropy of `restricted_logits` over all n^2 pairs of the grid (labels[i, j] = the answer).

    When the labels depend on s = i + sign * j only (a group law), so do the restricted logits, and the loss
    is computed on the n rows s instead of the n^2 pairs (each s occurs n times: the same mean).
    """
    return _restricted_loss(logits, labels, _projection_table(logits, key_freqs, sign), sign)


def excluded_loss(
    logits: Float[Tensor, "n n c"], labels: Int[Tensor, "n n"], key_freqs: list[int], pairs: Int[Tensor, "k"], sign: int = 1
) -> float:
    """Cross-entropy of `excluded_logits` on the pairs with flat grid index `pairs` (i * n + j): the train pairs."""
    return _excluded_loss(logits, labels, _projection_table(logits, key_freqs, sign), pairs, sign)


def _restricted_loss(logits: Tensor, labels: Tensor, table: Tensor, sign: int) -> float:
    n = logits.shape[0]
    s = combined_coordinate(n, sign).to(labels.device)
    by_s = torch.full((n,), -1, dtype=labels.dtype, device=labels.device).scatter_(0, s.reshape(-1), labels.reshape(-1))
    restricted = (logits.mean((0, 1)).to(torch.float64) + table).to(logits.dtype)  # [n, c]: R at every s
    if torch.equal(by_s[s], labels):
        return cross_entropy(restricted, by_s)
    return cross_entropy(restricted[s.to(table.device)].reshape(n * n, -1), labels.reshape(-1))


def _excluded_loss(logits: Tensor, labels: Tensor, table: Tensor, pairs: Tensor, sign: int) -> float:
    n = logits.shape[0]
    pairs = pairs.to(logits.device)
    s = combined_coordinate(n, sign).reshape(-1).to(logits.device)[pairs]
    chosen = logits.reshape(n * n, -1).index_select(0, pairs)
    return cross_entropy(chosen - table[s].to(logits.dtype), labels.reshape(-1)[pairs.to(labels.device)])


def weight_norm_sq(model) -> float:
    """Total squared L2 norm of all parameters, sum_theta theta^2 (frozen ones, e.g. zero biases, included),
    over the TL 3 parameters (`as_hooked(model).weights()`: the same set for a bridge, a HookedTransformer
    and a grokinterp Transformer)."""
    return float(sum(param.detach().to(torch.float64).pow(2).sum() for param in as_hooked(model).weights().values()))


def progress_measures(model, task, key_freqs: list[int], grid: GridForward | None = None) -> dict[str, float]:
    """Nanda et al.'s progress measures of one checkpoint, from one forward over all p^2 pairs.

    Keys:
        restricted_loss: cross-entropy of the restricted logits over all pairs of the group grid (all p^2
            pairs for add/sub, the (p-1)^2 pairs with a, b != 0 for mul/div); NaN for non-group ops.
        excluded_loss: cross-entropy of the excluded logits on the training pairs of the grid; NaN likewise.
        train_loss, test_loss: the model's cross-entropy on the task's train / test rows (final position).
        weight_norm_sq: `weight_norm_sq(model)`.

    Args:
        model, task: a HookedTransformer-like model and its ModularTask.
        key_freqs: the key frequencies, usually those of the final checkpoint (`key_frequencies`), over Z_p,
            or over Z_{p-1} for mul/div.
        grid: `grid_forward(model, task)` if already computed (it must come from this model).
    """
    grid = grid_forward(model, task) if grid is None else grid
    p = task.p
    full = grid.logits.reshape(p * p, -1)
    rows = (task.a * p + task.b).to(full.device)
    nll = per_example_loss(full.index_select(0, rows), task.labels)
    measures = {
        "restricted_loss": float("nan"),
        "excluded_loss": float("nan"),
        "train_loss": float(nll[task.train_idx.to(full.device)].mean()),
        "test_loss": float(nll[task.test_idx.to(full.device)].mean()),
        "weight_norm_sq": weight_norm_sq(model),
    }
    indexing = group_indexing(p, task.op)
    if indexing.sign is None:
        return measures
    logits = group_grid(grid.logits, indexing.residues)
    labels = group_law_labels(indexing)
    train_a, train_b = task.a[task.train_idx], task.b[task.train_idx]
    i, j = indexing.position[train_a], indexing.position[train_b]
    pairs = (i * indexing.n + j)[(i >= 0) & (j >= 0)]  # mul/div: pairs with a zero have no log
    table = _projection_table(logits, key_freqs, indexing.sign)  # shared by both losses
    measures["restricted_loss"] = _restricted_loss(logits, labels, table, indexing.sign)
    measures["excluded_loss"] = _excluded_loss(logits, labels, table, pairs, indexing.sign)
    return measures
