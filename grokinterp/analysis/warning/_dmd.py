"""Hankel dynamic mode decomposition of per-example distributions (the related-work papers).

Wang, Ying, Kanamori 2026, "Distributional Spectral Diagnostics for Localizing Grokking Transitions",
arXiv:2605.08237: follow the distribution of a per-example observable (log p(y|x) works best) through
training; a linear (DMD) model of its recent history fits well on plateaus and badly while the dynamics
change, so the DMD residual peaks before test accuracy rises.

Definitions (sizes are the spec's choice):
- quantile coordinates q_t in R^32 at levels u_j = (j - 1/2) / 32 (the L2 distance of two such vectors
  divided by sqrt(32) is the 1-D Wasserstein-2 distance of the distributions, up to quantization);
- a window of w = 20 snapshots, delay d = 4: Hankel matrix H [32 d, w - d + 1] whose column c stacks
  q_{c}, ..., q_{c+d-1}; X = H[:, :-1], Y = H[:, 1:];
- X = U S V^T; rank r = smallest with 99% of sum S^2, at most 8 (or fixed); A~ = U_r^T Y V_r S_r^-1,
  eigenvalues mu of A~; residual rho = ||Y - U_r A~ U_r^T X||_F / ||Y||_F; effective rank
  exp(H(S / sum S)) (Roy, Vetterli 2007) of X's singular values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

N_QUANTILES = 32
WINDOW = 20
DELAY = 4
ENERGY = 0.99
MAX_RANK = 8


def quantile_levels(n: int = N_QUANTILES) -> np.ndarray:
    """u_j = (j - 1/2) / n, j = 1..n."""
    return (np.arange(1, n + 1) - 0.5) / n


def quantile_coordinates(values: Float[Tensor, "batch"], n: int = N_QUANTILES) -> Float[Tensor, "n"]:
    """Empirical quantiles of `values` at `quantile_levels(n)` (linear interpolation), float64."""
    values = torch.as_tensor(values).double().reshape(-1)
    if values.numel() == 0:
        raise ValueError("quantile_coordinates needs at least one value")
    return torch.quantile(values, torch.as_tensor(quantile_levels(n), dtype=torch.float64, device=values.device))


def w2_distance(q1, q2) -> float:
    """1-D Wasserstein-2 distance from two quantile vectors on the same midpoint levels: rms(q1 - q2).

    >>> w2_distance([0.0, 1.0], [2.0, 3.0])
    2.0
    """
    q1, q2 = np.asarray(q1, dtype=np.float64), np.asarray(q2, dtype=np.float64)
    return float(np.sqrt(np.mean((q1 - q2) ** 2)))


def hankel(snapshots, delay: int) -> np.ndarray:
    """[m * delay, T - delay + 1] delay embedding of `snapshots` [T, m] (column c stacks rows c .. c+delay-1)."""
    s = np.asarray(snapshots, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if not 1 <= delay <= len(s) - 1:
        raise ValueError(f"delay={delay} must lie in [1, {len(s) - 1}] for {len(s)} snapshots")
    columns = len(s) - delay + 1
    return np.concatenate([s[k: k + columns].T for k in range(delay)], axis=0)


@dataclass(frozen=True)
class DMDFit:
    """eigenvalues: complex [r] (by decreasing modulus); residual rho; effective rank; rank r used."""

    eigenvalues: np.ndarray
    residual: float
    effective_rank: float
    rank: int


def hankel_dmd(snapshots, delay: int = DELAY, rank: int | None = None, energy: float = ENERGY,
               max_rank: int = MAX_RANK) -> DMDFit:
    """Exact DMD of the Hankel embedding of one window of snapshots [T, m] (or [T]).

    Args:
        snapshots: the window, oldest first.
        delay: delay-embedding depth d.
        rank: fixed truncation rank; None: the `energy` rank of X, capped at `max_rank`.
    """
    H = hankel(snapshots, delay)
    X, Y = H[:, :-1], H[:, 1:]
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    total = float((S ** 2).sum())
    if total == 0:
        return DMDFit(np.zeros(0, dtype=complex), 0.0 if not np.any(Y) else 1.0, 0.0, 0)
    if rank is None:
        r = int(np.searchsorted(np.cumsum(S ** 2) / total, energy - 1e-12) + 1)
        r = min(r, max_rank)
    else:
        r = int(rank)
    r = max(1, min(r, int((S > S[0] * 1e-14).sum())))
    Ur, Sr, Vr = U[:, :r], S[:r], Vt[:r].T
    A = Ur.T @ Y @ Vr / Sr
    eigenvalues = np.linalg.eigvals(A)
    eigenvalues = eigenvalues[np.argsort(-np.abs(eigenvalues), kind="stable")]
    y_norm = np.linalg.norm(Y)
    residual = float(np.linalg.norm(Y - Ur @ A @ (Ur.T @ X)) / y_norm) if y_norm > 0 else 0.0
    share = S / S.sum()
    share = share[share > 0]
    return DMDFit(eigenvalues, residual, float(math.exp(-(share * np.log(share)).sum())), r)


def rolling_dmd(snapshots, window: int = WINDOW, delay: int = DELAY, rank: int | None = None) -> dict[str, np.ndarray]:
    """`hankel_dmd` on every window of `window` consecutive snapshots [n, m], indexed by the window's last one.

    Returns:
        {"residual", "effective_rank", "max_abs_eigenvalue", "rank"}: float64 [n], NaN for the first
        window - 1 snapshots (and for windows holding a non-finite value).
    """
    s = np.asarray(snapshots, dtype=np.float64)
    s = s[:, None] if s.ndim == 1 else s
    if window <= delay + 1:
        raise ValueError(f"window={window} must exceed delay + 1 = {delay + 1} (X and Y need two columns)")
    out = {k: np.full(len(s), np.nan) for k in ("residual", "effective_rank", "max_abs_eigenvalue", "rank")}
    for end in range(window - 1, len(s)):
        chunk = s[end - window + 1: end + 1]
        if not np.all(np.isfinite(chunk)):
            continue
        fit = hankel_dmd(chunk, delay, rank)
        out["residual"][end] = fit.residual
        out["effective_rank"][end] = fit.effective_rank
        out["max_abs_eigenvalue"][end] = float(np.abs(fit.eigenvalues).max()) if fit.rank else np.nan
        out["rank"][end] = fit.rank
    return out
