"""Logit scale and softmax collapse (the related-work papers).

Khanh 2026, "What Does the Weight Norm Control in Grokking? Logit-Scale Mediation under Cross-Entropy",
arXiv:2606.18465: under cross-entropy the grokking delay is set by the effective logit scale, not by the
weight norm itself. Softmax collapse: Prieto et al. 2025, "Grokking at the Edge of Numerical Stability",
arXiv:2501.04697: once float32 rounds p(y|x) to exactly 1, the example's loss and gradient vanish.

Definitions (the spec's choice; tau is a fixed logit temperature, the softmax reads z / tau):

    s_eff = mean over train examples n of std_j(z_nj) / tau        (population std over the outputs j)
    SC    = fraction of train examples whose float32 cross-entropy of z / tau is exactly 0
    g_attn[l] = ||resid_mid_l|| / ||resid_pre_l||,  g_mlp[l] = ||resid_post_l|| / ||resid_mid_l||,
    g_U       = ||(z - zbar) / tau|| / ||resid_final||

with ||X|| the root mean square over train examples of the per-example Euclidean norm and zbar the mean
of z over the outputs. Since resid_pre_{l+1} = resid_post_l, the gains telescope:
||(z - zbar) / tau|| = ||resid_pre_0|| * prod(g_attn) * prod(g_mlp) * g_U (the layer-wise amplification).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor


def _check_tau(tau: float) -> float:
    if not tau > 0:
        raise ValueError(f"tau={tau!r} must be a positive temperature (logits are divided by it)")
    return float(tau)


def effective_logit_scale(logits: Float[Tensor, "batch d_vocab_out"], tau: float = 1.0) -> float:
    """s_eff = mean_n std_j(z_nj) / tau (population std over outputs), Khanh 2026.

    >>> z = torch.tensor([[0.0, 2.0], [0.0, 4.0]])
    >>> effective_logit_scale(z), effective_logit_scale(z, tau=2.0)
    (1.5, 0.75)
    """
    tau = _check_tau(tau)
    return float(logits.double().std(dim=-1, correction=0).mean() / tau)


def softmax_collapse(logits: Float[Tensor, "batch d_vocab_out"], labels: Int[Tensor, "batch"],
                     tau: float = 1.0) -> float:
    """Fraction of examples whose float32 cross-entropy of z / tau is exactly 0 (Prieto et al. 2025).

    >>> labels = torch.zeros(2, dtype=torch.long)
    >>> softmax_collapse(40.0 * F.one_hot(labels, 113).float(), labels), softmax_collapse(5.0 * F.one_hot(labels, 113).float(), labels)
    (1.0, 0.0)
    """
    tau = _check_tau(tau)
    losses = F.cross_entropy(logits.float() / tau, labels, reduction="none")
    return float((losses == 0).float().mean())


def _rms_norm(x: Float[Tensor, "batch d"]) -> Tensor:
    return x.double().pow(2).sum(-1).mean().sqrt()


def layer_gains(resid_pre: Float[Tensor, "n_layers batch d_model"], resid_mid: Float[Tensor, "n_layers batch d_model"],
                resid_post: Float[Tensor, "n_layers batch d_model"], logits: Float[Tensor, "batch d_vocab_out"],
                tau: float = 1.0) -> tuple[Float[Tensor, "n_gains"], float]:
    """Layer-wise amplification ratios [g_attn_0, g_mlp_0, ..., g_attn_{L-1}, g_mlp_{L-1}, g_U] (2L + 1 of them).

    Args:
        resid_pre, resid_mid, resid_post: final-position residual streams of the examples, per layer.
        logits: [batch, d_vocab_out] of the same examples; tau: logit temperature.

    Returns:
        (gains float64 [2L + 1], ||resid_pre_0||), with ||.|| the RMS over examples of the Euclidean norm.
        ||resid_pre_0|| * prod(gains) = ||(z - zbar) / tau|| (to rounding).
    """
    tau = _check_tau(tau)
    gains = []
    for layer in range(resid_pre.shape[0]):
        pre, mid, post = (_rms_norm(x[layer]) for x in (resid_pre, resid_mid, resid_post))
        gains += [mid / pre, post / mid]
    centred = (logits.double() - logits.double().mean(-1, keepdim=True)) / tau
    gains.append(_rms_norm(centred) / _rms_norm(resid_post[-1]))
    return torch.stack(gains), float(_rms_norm(resid_pre[0]))
