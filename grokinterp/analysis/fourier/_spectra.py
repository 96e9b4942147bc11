"""Fourier analysis over a cyclic group Z_n (Nanda et al. 2023, "Progress measures for grokking via
mechanistic interpretability"), and the per-checkpoint spectra of a model.

Conventions (w_k = 2 pi k / n):
- The orthonormal real basis of functions on Z_n has rows: constant 1/sqrt(n); then for
  k = 1..ceil(n/2) - 1 the pair sqrt(2/n) cos(w_k x), sqrt(2/n) sin(w_k x); and for even n the
  Nyquist row cos(pi x)/sqrt(n) = (-1)^x/sqrt(n), which has no sine (sin(pi x) = 0 on Z_n).
  For a prime p > 2 that is constant + (p-1)/2 cos/sin pairs; for Z_{p-1} (characters, `_characters.py`)
  it is constant + (p-3)/2 pairs + Nyquist.
- A "frequency" k runs over 0..n//2 (n_freq = n//2 + 1 of them; 0 is the constant). The energy of a
  signal at k is the sum of its squared coefficients on the rows of frequency k; its norm is the root.
- For mul and div, the same analysis runs over Z_{p-1} on the discrete-log re-indexing of the nonzero
  residues (residue 0 is left out); n_freq = (p-1)//2 + 1 either way.

Every function here is pure; `grid_forward` is the one that runs the model (one forward over all p^2
pairs, hooks removed on exit), and both `checkpoint_spectra` and `progress_measures` accept its result
so one forward serves a whole checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import einops
import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ...hooked import as_hooked
from ._characters import group_indexing

# A neuron is "clean" at frequency k when k explains at least this fraction of its variance ...
NEURON_FRAC_THRESHOLD = 0.5
# ... and k is a key frequency when its clean neurons hold at least this share of all neurons' variance.
KEY_FREQ_MIN_SHARE = 0.05


def n_frequencies(n: int) -> int:
    """Number of frequencies k = 0..n//2 of Z_n (the constant included)."""
    return n // 2 + 1


def fourier_basis(n: int, dtype: torch.dtype = torch.float32) -> Float[Tensor, "n n"]:
    """Orthonormal real Fourier basis of Z_n: rows constant, cos 1, sin 1, ..., (cos n/2 for even n).

    B[0, x] = 1/sqrt(n); B[2k-1, x] = sqrt(2/n) cos(2 pi k x / n); B[2k, x] = sqrt(2/n) sin(2 pi k x / n);
    for even n the last row is (-1)^x / sqrt(n). B @ B.T = I (Nanda et al. 2023, section 4).

    >>> B = fourier_basis(5); torch.allclose(B @ B.T, torch.eye(5), atol=1e-6)
    True
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    x = torch.arange(n, dtype=torch.float64)
    k = torch.arange(1, (n - 1) // 2 + 1, dtype=torch.float64)  # frequencies with a cos/sin pair
    angle = 2 * math.pi * k[:, None] * x[None, :] / n
    pairs = einops.rearrange([torch.cos(angle), torch.sin(angle)], "trig k x -> (k trig) x") * math.sqrt(2 / n)
    rows = [torch.full((1, n), 1 / math.sqrt(n), dtype=torch.float64), pairs]
    if n % 2 == 0:
        rows.append(torch.cos(math.pi * x)[None] / math.sqrt(n))
    return torch.cat(rows).to(dtype)


def basis_names(n: int) -> list[str]:
    """Row names of `fourier_basis(n)`: ["const", "cos 1", "sin 1", ...]."""
    names = ["const"]
    for k in range(1, n // 2 + 1):
        names += [f"cos {k}"] if 2 * k == n else [f"cos {k}", f"sin {k}"]
    return names


def basis_frequencies(n: int) -> Tensor:
    """int64 [n]: the frequency k of each row of `fourier_basis(n)`."""
    return torch.tensor([0 if name == "const" else int(name.split()[1]) for name in basis_names(n)])


def frequency_energy(x: Tensor, dim: int = 0) -> Tensor:
    """Energy of x at each frequency of Z_n along axis `dim`, all other axes kept.

    E[..., k] = sum of (B @ x)[row]^2 over the rows of `fourier_basis(n)` of frequency k. Equivalently, with
    X_k = sum_x x e^{-i w_k x}: E_0 = |X_0|^2/n, E_k = 2|X_k|^2/n, and E_{n/2} = |X_{n/2}|^2/n for even n.
    (Computed with the basis: for n ~ 100 one matmul beats a prime-length FFT.)

    Args:
        x: real tensor whose axis `dim` has length n.
    Returns:
        x's shape with axis `dim` removed and a last axis of n_freq = n//2 + 1.
    """
    n = x.shape[dim]
    moved = x.movedim(dim, 0)
    coeffs = fourier_basis(n, x.dtype).to(x.device) @ moved.reshape(n, -1)
    energy = torch.zeros(n_frequencies(n), coeffs.shape[1], dtype=x.dtype, device=x.device)
    energy.index_add_(0, basis_frequencies(n).to(x.device), coeffs * coeffs)
    return energy.T.reshape(*moved.shape[1:], n_frequencies(n))


def frequency_norms(matrix: Float[Tensor, "n d"]) -> Float[Tensor, "n_freq"]:
    """Norm of a [n, d] matrix per frequency of its first axis: ||rows of B @ M of frequency k||_F.

    Nanda et al. 2023 plot this for the embedding W_E[:p] (fig. 3): a few key frequencies stand out.

    >>> x = torch.arange(7, dtype=torch.float64)
    >>> M = torch.stack([torch.cos(2 * math.pi * 2 * x / 7), torch.sin(2 * math.pi * 3 * x / 7)], 1)
    >>> frequency_norms(M).round(decimals=3).tolist()
    [0.0, 0.0, 1.871, 1.871]
    """
    return frequency_energy(matrix, dim=0).sum(0).sqrt()


def embedding_spectrum(W_E: Float[Tensor, "d_vocab d_model"], p: int, op: str = "add") -> Float[Tensor, "n_freq"]:
    """Per-frequency norm of the residue embeddings W_E[:p] (`frequency_norms`), over Z_p for additive ops
    and over Z_{p-1} of the discrete-log re-indexed rows W_E[g^i] for mul/div (residue 0 left out).
    """
    indexing = group_indexing(p, op)
    return frequency_norms(W_E[indexing.residues.to(W_E.device)])


@dataclass(frozen=True)
class NeuronFrequencies:
    """2D Fourier decomposition of neuron activations over a grid Z_n x Z_n (see `neuron_frequencies`).

    Attributes:
        energy: [d, n_freq]; column 0 is the constant's energy n^2 mean^2, column k >= 1 the energy E_k.
        variance: [d], total non-constant energy sum_{a,b} (x - mean)^2.
        freq: int64 [d], the dominant frequency argmax_{k >= 1} E_k (0 for a constant neuron).
        frac_explained: [d], E_freq / variance (0 for a constant neuron).
    """

    energy: Tensor
    variance: Tensor
    freq: Tensor
    frac_explained: Tensor


def _wrapped_diagonal_sums(grid: Float[Tensor, "n n d"]) -> tuple[Tensor, Tensor]:
    """Sums over a + b = s and over b - a = s (mod n), each [n, d].

    Row a adds grid[a, b] at s = b + a (resp. b - a): its row cyclically shifted, as two slice additions
    into an accumulator that stays in cache. Measured faster than a gather, a scatter, or sheared strided
    views of a doubled grid, on 1 and 2 threads.
    """
    n = grid.shape[0]
    plus, minus = torch.zeros_like(grid[0]), torch.zeros_like(grid[0])
    for a in range(n):
        row = grid[a]
        for out, shift in ((plus, a), (minus, (n - a) % n)):
            out[shift:] += row[: n - shift]
            out[:shift] += row[n - shift :]
    return plus, minus


def diagonal_sums(grid: Float[Tensor, "n n ..."], sign: int = 1) -> Float[Tensor, "n ..."]:
    """Sums of a grid along its wrapped diagonals: out[s] = sum over i + sign * j = s (mod n) of grid[i, j].

    sign = +1 sums over a + b = s, sign = -1 over a - b = s.

    >>> grid = torch.tensor([[1.0, 0, 0], [0, 0, 2], [0, 0, 0]])  # (0, 0) = 1 and (1, 2) = 2
    >>> diagonal_sums(grid).tolist(), diagonal_sums(grid, -1).tolist()
    ([3.0, 0.0, 0.0], [1.0, 0.0, 2.0])
    """
    if sign not in (1, -1):
        raise ValueError(f"sign={sign} must be +1 or -1")
    n = grid.shape[0]
    plus, minus = _wrapped_diagonal_sums(grid.reshape(n, n, -1).contiguous())
    if sign == 1:
        return plus.reshape(n, *grid.shape[2:])
    # a - b = s is b - a = -s.
    return minus[(-torch.arange(n, device=grid.device)) % n].reshape(n, *grid.shape[2:])


def _pair_marginals(grid: Float[Tensor, "n n d"]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Sums over b, over a, over a + b = s, over b - a = s ([n, d] each), and the sum of squares ([d], float64)."""
    grid = grid.contiguous()
    plus, minus = _wrapped_diagonal_sums(grid)
    squares = sum((chunk * chunk).sum((0, 1)).to(torch.float64) for chunk in grid.split(16))
    return grid.sum(1), grid.sum(0), plus, minus, squares


def pair_frequency_energy(grid: Float[Tensor, "n n d"]) -> Float[Tensor, "d n_freq"]:
    """Energy of each channel of a grid over (a, b) in Z_n x Z_n at each frequency k (2D Fourier transform).

    E_k (k >= 1) is the energy in the 2D basis terms {const, cos k, sin k}(a) x {const, cos k, sin k}(b)
    minus const x const: the 8 terms cos/sin(w_k a), cos/sin(w_k b) and the 4 products, which span
    the same space as the orthonormal functions cos/sin(w_k a), cos/sin(w_k b), cos/sin(w_k (a+b)),
    cos/sin(w_k (a-b)) (3 terms at the Nyquist k = n/2 of even n). So it is computed from four
    marginals of the grid, O(n^2 d) instead of a full 2D transform:
        E_k = (1/n) [e_k(row sums) + e_k(column sums) + e_k(sums over a+b) + e_k(sums over b-a)]
    with e_k the 1D `frequency_energy` (the last term dropped at Nyquist). Column 0 is n^2 mean^2.
    Cross-frequency terms (cos k a cos j b, k != j) belong to no frequency. Nanda et al. 2023, section 4.

    Args:
        grid: [n, n, d], grid[a, b, channel].
    Returns:
        [d, n_freq] energies.
    """
    return _energy_from_marginals(*_pair_marginals(grid.reshape(grid.shape[0], grid.shape[1], -1))[:4])


def _energy_from_marginals(rows: Tensor, cols: Tensor, diag: Tensor, anti: Tensor) -> Tensor:
    """[d, n_freq] pair energies from the four [n, d] marginals (sums of n terms each; spectra in float64)."""
    n = rows.shape[0]
    # One transform of the four marginals: [n, 4, d] -> [4, d, n_freq].
    spectra = frequency_energy(torch.stack([rows, cols, diag, anti], 1).to(torch.float64), dim=0) / n
    if n % 2 == 0:
        spectra[3, :, -1] = 0.0  # at Nyquist cos(pi (b - a)) = cos(pi (a + b)): counted once
    energy = spectra.sum(0)
    energy[:, 0] = rows.sum(0).to(torch.float64) ** 2 / n**2
    return energy


def neuron_frequencies(acts: Float[Tensor, "n n d_mlp"]) -> NeuronFrequencies:
    """Each neuron's dominant frequency and the fraction of its variance that frequency explains.

    With E_{j,k} from `pair_frequency_energy` and V_j = sum_{a,b} (x_j - mean x_j)^2:
    freq_j = argmax_{k >= 1} E_{j,k}, frac_j = E_{j,freq_j} / V_j (Nanda et al. 2023, section 4:
    most neurons of a grokked model are explained > 85% by one frequency). A dead or constant neuron
    (V_j <= 1e-5 sum x_j^2, i.e. constant up to float32 rounding, or V_j <= 1e-12 max_j V_j) gets freq 0, frac 0.

    Args:
        acts: [n, n, d_mlp] activations at every pair (a, b) of the group (final position).
    """
    n = acts.shape[0]
    rows, cols, diag, anti, squares = _pair_marginals(acts)
    energy = _energy_from_marginals(rows, cols, diag, anti)
    # Sum of squares minus the constant's energy (float64; a near-constant neuron's variance is then rounding).
    variance = (squares - energy[:, 0]).clamp_min(0.0)
    best, freq = energy[:, 1:].max(-1)
    live = (variance > 1e-5 * squares) & (variance > 1e-12 * variance.max())
    freq = torch.where(live, freq + 1, 0)
    frac = torch.where(live, best / variance.clamp_min(1e-300), 0.0)
    return NeuronFrequencies(energy=energy, variance=variance, freq=freq, frac_explained=frac)


def key_frequency_mask(
    neurons: NeuronFrequencies, frac_threshold: float = NEURON_FRAC_THRESHOLD, min_share: float = KEY_FREQ_MIN_SHARE
) -> Tensor:
    """Key frequencies found from the neurons: bool [n_freq].

    k is key when the neurons "clean" at k (freq_j = k and frac_j >= frac_threshold) together hold at least
    `min_share` of the total neuron variance: sum_{j clean at k} V_j >= min_share * sum_j V_j. Defaults 0.5
    and 0.05. Before a Fourier circuit forms no neuron is clean and the mask is all False.
    """
    n_freq = neurons.energy.shape[1]
    clean = neurons.frac_explained >= frac_threshold
    share = torch.zeros(n_freq, dtype=torch.float64).index_add_(0, neurons.freq[clean].cpu(), neurons.variance[clean].cpu())
    total = neurons.variance.sum().item()
    mask = share >= min_share * total if total > 0 else torch.zeros(n_freq, dtype=torch.bool)
    mask[0] = False
    return mask


def gini(x: Tensor) -> float:
    """Gini coefficient of a non-negative vector x of length n: G = sum_ij |x_i - x_j| / (2 n sum_i x_i).

    0 for a uniform vector, 1 - 1/n for a one-hot one (0 for all-zero x). Spectra are measured without
    their constant term (`spectrum[1:]`). The Gini index as a sparsity measure: Hurley & Rickard 2009,
    "Comparing measures of sparsity".

    >>> gini(torch.tensor([0.0, 0.0, 0.0, 5.0])), gini(torch.ones(4))
    (0.75, 0.0)
    """
    x = x.to(torch.float64).flatten()
    n, total = x.numel(), x.sum().item()
    if n == 0 or total <= 0:
        return 0.0
    s = x.sort().values
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    # Sorted form of the mean absolute difference: sum_ij |x_i - x_j| = 2 sum_i (2 i - n - 1) s_i.
    return float(((2 * ranks - n - 1) * s).sum() / (n * total))


def inverse_participation_ratio(x: Tensor) -> float:
    """IPR of a non-negative spectrum x (norms): sum x^4 / (sum x^2)^2, in [1/n, 1]; 1 = one frequency.

    >>> inverse_participation_ratio(torch.tensor([0.0, 2.0])), inverse_participation_ratio(torch.ones(4))
    (1.0, 0.25)
    """
    e = x.to(torch.float64).flatten() ** 2
    total = e.sum().item()
    return float((e**2).sum() / total**2) if total > 0 else 0.0


@dataclass(frozen=True)
class GridForward:
    """One forward pass over every pair (a, b) in Z_p x Z_p, read at the final position.

    Attributes:
        logits: [p, p, d_vocab_out], logits[a, b, c].
        neuron_acts: [p, p, d_mlp], hook `blocks.{layer}.mlp.hook_post`.
        layer: the block whose MLP was read.
    """

    logits: Tensor
    neuron_acts: Tensor
    layer: int


def grid_forward(model, task, layer: int | None = None) -> GridForward:
    """Run `model` on the tokens [a, b, =] of all p^2 pairs (div's b = 0 included) and keep the final position.

    By hook name only (`grokinterp.hooked.as_hooked`): a grokinterp Transformer, a TransformerLens 4 bridge,
    a TL 3 HookedTransformer, or any model with `hooks(...)` and hook `blocks.{layer}.mlp.hook_post`. If the
    model's forward takes `last_position_only` (grokinterp's Transformer) it is used: same logits and
    final-position activations, computed for the last position only. The capture hook is removed on exit;
    the model is not modified.

    Args:
        model: a grokinterp Transformer, a bridge or a HookedTransformer; task: a ModularTask (for p and '=').
        layer: which block's MLP to read (default the last).
    """
    p, hooked = task.p, as_hooked(model)
    layer = hooked.n_layers - 1 if layer is None else layer
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    tokens = torch.stack([a, b, torch.full_like(a, int(task.tokens[0, -1]))], 1).to(hooked.device)
    name = f"blocks.{layer}.mlp.hook_post"
    with torch.no_grad():
        logits, acts = hooked.run_with_cache(tokens, [name], last_position_only=True)
    return GridForward(logits=logits[:, -1].reshape(p, p, -1), neuron_acts=acts[name][:, -1].reshape(p, p, -1),
                       layer=layer)


def group_grid(x: Tensor, residues: Tensor) -> Tensor:
    """A [p, p, ...] grid over residues restricted and re-ordered to group indices: out[i, j] = x[r_i, r_j]."""
    p, n = x.shape[0], len(residues)
    if n == p and torch.equal(residues.cpu(), torch.arange(p)):
        return x
    rows = (residues[:, None] * p + residues[None, :]).reshape(-1).to(x.device)
    return x.reshape(p * p, *x.shape[2:]).index_select(0, rows).reshape(n, n, *x.shape[2:])


def logit_output_spectrum(logits: Float[Tensor, "n n d_vocab_out"], residues: Tensor) -> Float[Tensor, "n_freq"]:
    """Norm per frequency of the logits along the output c, over all input pairs (the [n, n] group grid).

    Outputs are re-indexed by `residues` (identity for add; g^i for mul/div, which drops c = 0). A model
    computing logits ~ sum_k alpha_k cos(w_k (a + b - c)) (Nanda et al. 2023) has this spectrum on its
    key frequencies.
    """
    n, d_out = logits.shape[0], logits.shape[-1]
    # One matmul does the re-indexing and the transform: basis rows placed on the residue columns.
    basis = torch.zeros(n, d_out, dtype=logits.dtype, device=logits.device)
    basis[:, residues.to(logits.device)] = fourier_basis(len(residues), logits.dtype).to(logits.device)
    coeffs = logits.reshape(-1, d_out) @ basis.T  # [pairs, n]
    energy = coeffs.pow(2).sum(0).to(torch.float64)
    out = torch.zeros(n_frequencies(n), dtype=torch.float64, device=logits.device)
    return out.index_add_(0, basis_frequencies(n).to(logits.device), energy).sqrt()


def logit_input_spectrum(logits: Float[Tensor, "n n d_vocab_out"]) -> Float[Tensor, "n_freq"]:
    """Norm per frequency of the logits as functions of (a, b), summed over outputs (`pair_frequency_energy`)."""
    return pair_frequency_energy(logits).sum(0).sqrt()


def checkpoint_spectra(model, task, grid: GridForward | None = None) -> dict[str, np.ndarray | float]:
    """All Fourier (add/sub/other ops, over Z_p) or character (mul/div, over Z_{p-1}) spectra of one checkpoint.

    Fixed keys and shapes (n_freq = (p-1)//2 + 1 for every op; index 0 is the constant; for mul/div the last
    index is the Nyquist character (-1)^{log r}, which has only a cos component):
        embed_freq_norm [n_freq]: `embedding_spectrum`.
        logit_freq_norm [n_freq]: `logit_output_spectrum` (over the output c, all pairs of the group grid).
        neuron_freq [d_mlp] int64 and neuron_frac_explained [d_mlp]: `neuron_frequencies` of the last MLP.
        key_freq_mask [n_freq] bool: `key_frequency_mask`.
        embed_gini, embed_ipr, neuron_gini, logit_gini (floats): `gini` / `inverse_participation_ratio` of the
            spectra without the constant; neuron_gini is of sqrt(sum_j E_{j,k}), the total neuron spectrum.

    Args:
        model, task: a HookedTransformer-like model and its ModularTask.
        grid: `grid_forward(model, task)` if already computed (it must come from this model).
    """
    grid = grid_forward(model, task) if grid is None else grid
    indexing = group_indexing(task.p, task.op)
    embed = embedding_spectrum(as_hooked(model).weight("embed.W_E").detach(), task.p, task.op)
    logits = group_grid(grid.logits, indexing.residues)
    logit = logit_output_spectrum(logits, indexing.residues)
    neurons = neuron_frequencies(group_grid(grid.neuron_acts, indexing.residues))
    neuron_spectrum = neurons.energy.sum(0).sqrt()
    return {
        "embed_freq_norm": embed.cpu().numpy().astype(np.float32),
        "logit_freq_norm": logit.cpu().numpy().astype(np.float32),
        "neuron_freq": neurons.freq.cpu().numpy().astype(np.int64),
        "neuron_frac_explained": neurons.frac_explained.cpu().numpy().astype(np.float32),
        "key_freq_mask": key_frequency_mask(neurons).numpy(),
        "embed_gini": gini(embed[1:]),
        "embed_ipr": inverse_participation_ratio(embed[1:]),
        "neuron_gini": gini(neuron_spectrum[1:]),
        "logit_gini": gini(logit[1:]),
    }


def key_frequencies(model, task, grid: GridForward | None = None) -> list[int]:
    """The model's key frequencies (`key_frequency_mask` of its last MLP), over Z_p, or Z_{p-1} for mul/div."""
    grid = grid_forward(model, task) if grid is None else grid
    indexing = group_indexing(task.p, task.op)
    mask = key_frequency_mask(neuron_frequencies(group_grid(grid.neuron_acts, indexing.residues)))
    return [int(k) for k in torch.nonzero(mask).flatten()]
