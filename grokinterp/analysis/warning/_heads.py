"""Attention-head similarity and entropy spread (the related-work papers).

Verma 2026, "Weight Decay Regimes in Grokking Transformers: Cheap Online Diagnostics", arXiv:2605.20441:
two statistics of the final query's attention separate memorization, grokking and collapse (identical
heads at very large weight decay). With a_{h,n} = pattern[n, h, -1, :] the final position's attention of
head h on example n (pooling over examples is the spec's choice):

    C = mean over head pairs h < h' of cos(vec_{n,k} a_h, vec_{n,k} a_h')      (head similarity)
    S = std_h( mean_n H(a_{h,n}) ),  H(a) = -sum_k a_k ln a_k                  (entropy spread, population std)

Identical heads give C = 1; one-hot heads on distinct keys give C = 0; {one-hot, uniform over 3 keys}
gives S = ln(3) / 2. A single head has no pair: C is NaN.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor


def _check_pattern(pattern: Tensor) -> None:
    if pattern.ndim != 3:
        raise ValueError(f"pattern has shape {tuple(pattern.shape)}; expected [batch, n_heads, k_pos] "
                         "(one query position: the final one)")


def head_similarity(pattern: Float[Tensor, "batch n_heads k_pos"]) -> float:
    """C: mean pairwise cosine between heads' attention patterns flattened over examples and keys.

    >>> head_similarity(torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]))
    0.0
    """
    _check_pattern(pattern)
    n_heads = pattern.shape[1]
    if n_heads < 2:
        return math.nan
    vectors = pattern.double().transpose(0, 1).reshape(n_heads, -1)
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-300)
    cos = unit @ unit.T
    upper = torch.triu_indices(n_heads, n_heads, offset=1)
    return float(cos[upper[0], upper[1]].mean())


def head_entropies(pattern: Float[Tensor, "batch n_heads k_pos"]) -> Float[Tensor, "n_heads"]:
    """Mean over examples of each head's attention entropy, in nats (0 ln 0 = 0)."""
    _check_pattern(pattern)
    a = pattern.double()
    return -torch.where(a > 0, a * a.clamp_min(1e-300).log(), torch.zeros_like(a)).sum(-1).mean(0)


def entropy_spread(pattern: Float[Tensor, "batch n_heads k_pos"]) -> float:
    """S: population std over heads of the mean attention entropy.

    >>> round(entropy_spread(torch.tensor([[[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]])), 6) == round(math.log(3) / 2, 6)
    True
    """
    return float(head_entropies(pattern).std(correction=0))
