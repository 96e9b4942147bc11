"""The log-alignment ratio of the unembedding (the related-work papers).

Shehper, Vaswani 2026, "A Training-Time Diagnostic for Generalization via the Log-Alignment Ratio",
arXiv:2605.28975: how much of the activations' energy falls on the weight's strong singular directions.
With W_U = sum_i s_i u_i v_i^T (u_i in R^n, n = d_model; s_i = 0 past the rank) and z_b the final-position
residual streams the unembedding reads (train examples):

    p_i = s_i^2 / sum_j s_j^2,     q_i = sum_b (z_b . u_i)^2 / sum_b ||z_b||^2
    LAR = 1 + ln(sum_i p_i q_i) / (2 ln n),     k_eff = 1 / sum_i p_i q_i

Random weights and activations give sum p q ~ 1/n, LAR ~ 1/2; full alignment (rank 1, z along u_1) gives 1;
k equal singular values with z spread evenly over them give 1 - ln k / (2 ln n), so k ~ n^(2 (1 - LAR)),
the paper's relation (the constant checks out). z orthogonal to the range of W_U gives sum p q = 0: LAR
is NaN and a RuntimeWarning says so (below 1e-12 counts as 0).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


OVERLAP_FLOOR = 1e-12  # sum p_i q_i below this counts as zero overlap


@dataclass(frozen=True)
class LogAlignment:
    """lar, k_eff: floats; p, q: float64 [n] (n = d_model), ordered by decreasing singular value."""

    lar: float
    k_eff: float
    p: Tensor
    q: Tensor


def log_alignment_ratio(W_U: Float[Tensor, "d_model d_vocab_out"], z: Float[Tensor, "batch d_model"]) -> LogAlignment:
    """The log-alignment ratio of W_U with the activations z it reads (definition in the module docstring).

    Args:
        W_U: [n, d_out] weight whose left singular vectors live in activation space (n = d_model >= 2).
        z: [batch, n] activations (the final `hook_resid_post` / `unembed.hook_in` on train examples).

    Returns:
        LogAlignment(lar, k_eff, p, q).

    >>> u = torch.eye(4)[:, :1]
    >>> round(log_alignment_ratio(u @ torch.ones(1, 3), torch.randn(5, 1) @ u.T).lar, 6)
    1.0
    """
    n = W_U.shape[0]
    if W_U.ndim != 2 or z.ndim != 2 or z.shape[1] != n or n < 2:
        raise ValueError(f"W_U {tuple(W_U.shape)} and z {tuple(z.shape)} must be [n, d_out] and [batch, n] with n >= 2")
    U, s, _ = torch.linalg.svd(W_U.double(), full_matrices=True)
    s_full = torch.zeros(n, dtype=torch.float64, device=s.device)
    s_full[: len(s)] = s
    p = s_full.pow(2) / s_full.pow(2).sum().clamp_min(1e-300)
    projections = z.double() @ U  # [batch, n]: z_b . u_i
    q = projections.pow(2).sum(0) / z.double().pow(2).sum().clamp_min(1e-300)
    overlap = float((p * q).sum())
    if not overlap > OVERLAP_FLOOR:  # float64 rounding leaves ~1e-30, not 0, for z orthogonal to the range
        warnings.warn(f"log_alignment_ratio: the activations have no component in the range of W_U "
                      f"(sum p_i q_i = {overlap:.3g}); LAR and k_eff are NaN", RuntimeWarning, stacklevel=2)
        return LogAlignment(math.nan, math.nan, p, q)
    return LogAlignment(1 + math.log(overlap) / (2 * math.log(n)), 1 / overlap, p, q)
