"""Gradient geometry of the training loss (the Grokking Dynamics write-up): half-batch agreement and its dips, per-sample
gradients and their effective rank, the gradient norm.

- Half-batch gradient agreement: the cosine between the gradients of the mean training loss over two
  random halves of the training set. The Grokking Dynamics write-up reports it rises during memorization, and that the number
  of its dips during training predicts the grokking gap (r = 0.896 over 30 seeds). The halves are drawn
  from `numpy.random.default_rng([seed, step])`, so a step's value is reproducible and the same whether
  the `grad_agreement` training plug-in records it or a replay of that step's checkpoint computes it.
- Agreement dips: see `agreement_dips` for the definition (fixed here, with its parameters as arguments,
  so that a sweep can report r for neighbouring choices too).
- Effective rank of per-sample gradients: Roy and Vetterli's (2007) entropy effective rank of the
  singular values of the [n_samples, n_params] matrix of per-example loss gradients of a fixed sample
  subset (the Grokking Dynamics write-up: it drops 30-40% at grokking). Per-sample gradients use `torch.func` (vmap over grad).

All functions leave the model's parameters and `.grad` as they found them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from ...objective import AGREEMENT_SEED, select_parameters

DIP_WINDOW = 100  # steps: width of the rolling median that detrends the agreement
DIP_THRESHOLD = 3.0  # a dip goes below the trend by more than this many robust standard deviations
DIP_MIN_SEPARATION = 50  # steps: of two dips closer than this, only the deeper one counts
RANK_SAMPLES = 128  # training examples in the fixed subset whose per-sample gradients are ranked
MAD_TO_SD = 1.4826  # median absolute deviation -> standard deviation of a normal distribution


def per_sample_gradients(model: nn.Module, tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch"],
                         params: str | Sequence[str] | None = None, last_position_only: bool = True,
                         chunk_size: int | None = None) -> Float[Tensor, "batch n"]:
    """Row i: the flat gradient of the cross-entropy of example i alone (`torch.func.vmap` over `grad` of a
    `functional_call`), parameters in `named_parameters` order.

    Args:
        params: see `select_parameters`.
        chunk_size: examples per vectorised chunk (None: all at once; smaller saves memory).
    """
    from torch.func import functional_call, grad, vmap

    selected = {n: p.detach() for n, p in select_parameters(model, params).items()}

    def example_loss(weights: dict[str, Tensor], token_row: Tensor, label: Tensor) -> Tensor:
        logits = functional_call(model, weights, (token_row[None],), {"last_position_only": last_position_only})
        return F.cross_entropy(logits[:, -1], label[None])

    grads = vmap(grad(example_loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(selected, tokens, labels)
    return torch.cat([grads[n].reshape(len(tokens), -1) for n in selected], dim=1)


def effective_rank(singular_values: Float[Tensor, "k"] | np.ndarray) -> float:
    """Roy and Vetterli's (2007) entropy effective rank exp(-sum_i p_i log p_i), p_i = s_i / sum_j s_j,
    of non-negative singular values s (0 log 0 = 0). k equal nonzero values give k; one nonzero gives 1;
    all zero gives 0.

    >>> round(effective_rank(np.ones(5)), 6), round(effective_rank(np.array([3.0, 0.0, 0.0])), 6)
    (5.0, 1.0)
    """
    s = np.asarray(singular_values.detach().cpu() if isinstance(singular_values, Tensor) else singular_values,
                   dtype=np.float64).reshape(-1)
    if s.size == 0 or not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("singular values must be a non-empty array of finite, non-negative numbers")
    total = s.sum()
    if total == 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def singular_values(matrix: Float[Tensor, "rows cols"]) -> Float[Tensor, "k"]:
    """Singular values (descending, k = min(rows, cols)) of a wide or tall matrix, as the square roots of the
    eigenvalues of its smaller Gram matrix (formed in the matrix's dtype, diagonalised in float64).

    Much faster than an SVD of a 128 x 226,688 per-sample gradient matrix (0.13 s against 5.4 s here); in
    float32 values below about 3e-4 of the largest lose their digits, which moves an entropy effective
    rank by about 1e-5 of itself.
    """
    if matrix.ndim != 2:
        raise ValueError(f"expected a matrix; got shape {tuple(matrix.shape)}")
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return torch.linalg.eigvalsh(gram.double()).clamp_min(0).sqrt().flip(0)


def rank_sample(n: int, n_samples: int = RANK_SAMPLES, seed: int = AGREEMENT_SEED) -> np.ndarray:
    """The fixed subset of `min(n_samples, n)` example indices (sorted) whose per-sample gradients are
    ranked at every checkpoint: `numpy.random.default_rng(seed).choice(n, ..., replace=False)`."""
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples} must be positive")
    return np.sort(np.random.default_rng(int(seed)).choice(n, size=min(n_samples, n), replace=False))


def gradient_effective_rank(model: nn.Module, tokens: Tensor, labels: Tensor, n_samples: int = RANK_SAMPLES,
                            seed: int = AGREEMENT_SEED, params: str | Sequence[str] | None = None) -> float:
    """Entropy effective rank of the per-sample gradient matrix of the fixed subset `rank_sample(len(tokens),
    n_samples, seed)` (uncentred: a direction shared by every example lowers it)."""
    idx = torch.from_numpy(rank_sample(len(tokens), n_samples, seed)).to(tokens.device)
    matrix = per_sample_gradients(model, tokens[idx], labels[idx], params)
    return effective_rank(singular_values(matrix))


# ----- dips of the agreement series ---------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementDips:
    """Dips of a series, as defined in `agreement_dips`.

    Attributes:
        count: number of dips; steps: their steps [count]; depths: how far each goes below the trend, in
            robust standard deviations [count].
        series_steps, trend, residual: the finite samples used [m], the rolling median and values - trend.
        scale: the robust standard deviation of the residual (1.4826 MAD).
        window, threshold, min_separation: the parameters used.
    """

    count: int
    steps: np.ndarray
    depths: np.ndarray
    series_steps: np.ndarray
    trend: np.ndarray
    residual: np.ndarray
    scale: float
    window: float
    threshold: float
    min_separation: float


def rolling_median(steps: np.ndarray, values: np.ndarray, window: float) -> np.ndarray:
    """At each sample: the median of the samples whose steps lie within +- h of its step, h = window/2 shrunk
    near the ends to the distance to the first or last step (a centred window: a linear trend is followed
    up to the ends instead of being biased by a one-sided window)."""
    half = np.minimum(window / 2, np.minimum(steps - steps[0], steps[-1] - steps))
    lo = np.searchsorted(steps, steps - half, side="left")
    hi = np.searchsorted(steps, steps + half, side="right")
    return np.array([np.median(values[a:b]) for a, b in zip(lo, hi)])


def agreement_dips(steps: Sequence[float], values: Sequence[float], window: float = DIP_WINDOW,
                   threshold: float = DIP_THRESHOLD, min_separation: float = DIP_MIN_SEPARATION,
                   start: float | None = None, stop: float | None = None) -> AgreementDips:
    """Count the dips of a series such as the half-batch agreement (NaN samples are dropped).

    Definition:
    1. trend = rolling median of the values over a centred window of `window` steps (`rolling_median`);
       residual r = values - trend.
    2. scale = 1.4826 * median(|r - median(r)|), the residual's robust standard deviation.
    3. A candidate is an interior sample that is a local minimum of r (r_i <= r_(i-1) and r_i < r_(i+1))
       with r_i < -threshold * scale.
    4. From the deepest candidate down, a candidate is kept unless a kept dip lies within
       `min_separation` steps of it.
    5. Only dips with start <= step <= stop are returned (the trend and scale use the whole series).

    The scale is the series' own noise level: on a noisy series a Gaussian residual passes 3 robust SDs
    at about 0.1% of samples, so the default threshold keeps false dips rare (2 SDs would pass 2%); on a
    noise-free series the scale is near 0 and the count is not meaningful.

    Args:
        steps, values: the series, steps increasing.
        window, threshold, min_separation: see above (defaults DIP_WINDOW, DIP_THRESHOLD, DIP_MIN_SEPARATION).
        start, stop: the span counted (e.g. stop at the grokking step); None: all.
    """
    t, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise ValueError(f"steps {t.shape} and values {y.shape} must be 1-D arrays of the same length")
    if window <= 0 or threshold < 0 or min_separation < 0:
        raise ValueError(f"window={window} must be > 0, threshold={threshold} and min_separation={min_separation} >= 0")
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if len(t) > 1 and (np.diff(t) <= 0).any():
        raise ValueError("steps must be strictly increasing")
    trend = rolling_median(t, y, window) if len(t) else y.copy()
    residual = y - trend
    scale = MAD_TO_SD * float(np.median(np.abs(residual - np.median(residual)))) if len(t) else 0.0
    kept: list[int] = []
    if scale > 0 and len(t) >= 3:
        r = residual
        interior = np.arange(1, len(t) - 1)
        is_min = (r[interior] <= r[interior - 1]) & (r[interior] < r[interior + 1]) & (r[interior] < -threshold * scale)
        for i in sorted(interior[is_min], key=lambda i: r[i]):  # deepest first
            if all(abs(t[i] - t[j]) >= min_separation for j in kept):
                kept.append(int(i))
    kept.sort()
    kept = [i for i in kept if (start is None or t[i] >= start) and (stop is None or t[i] <= stop)]
    depths = -residual[kept] / scale if kept else np.zeros(0)
    return AgreementDips(len(kept), t[kept], depths, t, trend, residual, scale, float(window), float(threshold),
                         float(min_separation))
