"""Spectral lock-in of the weight updates (the related-work papers).

Xu 2026, "Feature Repulsion and Spectral Lock-in: An Empirical Study of Two-Layer Network Grokking",
arXiv:2605.08119: before grokking the recent weight updates lock into a rank-2 subspace. With
Delta_t = [vec dW_{t-19}, ..., vec dW_t] the last 20 updates and sigma_1 >= ... >= sigma_20 the
eigenvalues of Delta_t^T Delta_t (20 x 20):

    ratio(t) = ln(sigma_2 / sigma_3),      s(t) = [ratio(t) - ratio(t - 25)] / 25,

and the detector fires at the first t >= 100 with s(t) > 0.04 (the paper's units: epochs). Ours (the
spec's choice): dW are differences of consecutive *checkpoints* of W_E and every W_in (so t, the window
and the lag count checkpoints), and the threshold is calibrated on control runs (the paper's 0.04 is
per-epoch). The paper's feature-repulsion check is for an MSE-trained two-layer MLP, which this library
does not train; it is left out.
"""

from __future__ import annotations

import math

import numpy as np

WINDOW = 20
LAG = 25
PAPER_THRESHOLD = 0.04
PAPER_T_MIN = 100
LOCKIN_WEIGHTS = ("embed.W_E", "mlp.W_in")  # state-dict name suffixes whose updates the lock-in signal follows


def update_gram_spectra(weights, window: int = WINDOW) -> np.ndarray:
    """Eigenvalues (descending) of the Gram matrix of the last `window` updates, at every checkpoint.

    Args:
        weights: [n_ckpt, D] flattened weights per checkpoint (update i = weights[i] - weights[i - 1]).
        window: updates per Gram matrix.

    Returns:
        float64 [n_ckpt, window]; row t uses updates t - window + 1 .. t, so rows t < window are NaN.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or len(w) < 2:
        raise ValueError(f"weights has shape {w.shape}; expected [n_checkpoints >= 2, D]")
    if window < 3:
        raise ValueError(f"window={window} must be >= 3 (sigma_3 is needed)")
    diffs = np.diff(w, axis=0)  # diffs[i - 1] is the update into checkpoint i
    gram = diffs @ diffs.T
    out = np.full((len(w), window), np.nan)
    for t in range(window, len(w)):
        block = gram[t - window: t, t - window: t]
        out[t] = np.linalg.eigvalsh(block)[::-1]
    return out


def lockin_ratio(spectra) -> np.ndarray:
    """ln(sigma_2 / sigma_3) per row of `update_gram_spectra` (NaN where undefined; sigma_3 <= 0 gives +inf
    only if sigma_2 > 0, clipped to the float64 resolution of sigma_1)."""
    s = np.asarray(spectra, dtype=np.float64)
    floor = np.abs(s[:, :1]) * np.finfo(np.float64).eps  # eigenvalues below rounding are zero
    s2, s3 = np.maximum(s[:, 1], floor[:, 0]), np.maximum(s[:, 2], floor[:, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(s2 / s3)


def lockin_slope(ratio, lag: int = LAG) -> np.ndarray:
    """s(t) = [ratio(t) - ratio(t - lag)] / lag (NaN where either is undefined)."""
    r = np.asarray(ratio, dtype=np.float64)
    out = np.full(len(r), np.nan)
    if lag < 1:
        raise ValueError(f"lag={lag} must be >= 1")
    out[lag:] = (r[lag:] - r[:-lag]) / lag
    return out


def lockin_fire_step(steps, slope, threshold: float = PAPER_THRESHOLD, t_min: float = PAPER_T_MIN) -> int | None:
    """The first step >= t_min with slope > threshold; None if the detector never fires."""
    steps, slope = np.asarray(steps), np.asarray(slope, dtype=np.float64)
    hits = np.flatnonzero((steps >= t_min) & (np.nan_to_num(slope, nan=-math.inf) > threshold))
    return int(steps[hits[0]]) if len(hits) else None
