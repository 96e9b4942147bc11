"""The training objective and its gradients, below `train` so that training plug-ins and analyses share them.

- `training_loss`: mean cross-entropy of the final position's logits, the loss the training loop minimises.
- `select_parameters`: the parameters to differentiate by (all trainable ones, or named ones).
- `loss_gradient`: the flat gradient of `training_loss`.
- `half_batch_agreement`: half-batch gradient agreement (the "Grokking Dynamics" write-up): the cosine
  between the gradients of the mean training loss over two random halves of the training set, the halves
  drawn from `numpy.random.default_rng([seed, step])`, so that the `grad_agreement` training plug-in and a
  replay of that step's checkpoint (`grokinterp.analysis.curvature`) give the same value.

All functions leave the model's parameters and `.grad` as they found them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

AGREEMENT_SEED = 0  # the plug-in's and the replay's default, so both draw the same halves at a step


def training_loss(model: nn.Module, tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch"],
                  last_position_only: bool = True) -> Float[Tensor, ""]:
    """Mean cross-entropy of the final position's logits: the loss the training loop minimises.

    `last_position_only=True` uses the model's fast forward (same loss and derivatives; any number of
    layers); False runs every position. The loss is computed in the model's dtype.
    """
    logits = model(tokens, last_position_only=last_position_only)[:, -1]
    return F.cross_entropy(logits, labels)


def select_parameters(model: nn.Module, params: str | Sequence[str] | None = None) -> dict[str, nn.Parameter]:
    """The parameters to differentiate by, in `named_parameters` order.

    Args:
        model: any module.
        params: None for every trainable parameter (`requires_grad`); else names, each an exact parameter
            name (`"unembed.W_U"`) or a module prefix (`"blocks.0.mlp"` selects that MLP's trainable
            parameters).

    Returns:
        name -> parameter.
    """
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if params is None:
        chosen = dict(trainable)
    else:
        items = [params] if isinstance(params, str) else list(params)
        every = dict(model.named_parameters())
        chosen = {}
        for item in items:
            if item in every and item not in trainable:
                raise ValueError(f"parameter {item!r} is frozen (requires_grad=False); choose among the trainable "
                                 f"ones: {sorted(trainable)}")
            hits = [n for n in trainable if n == item or n.startswith(item + ".")]
            if not hits:
                raise ValueError(f"{item!r} names no trainable parameter or module; trainable parameters: "
                                 f"{sorted(trainable)}")
            chosen.update({n: trainable[n] for n in hits})
        chosen = {n: p for n, p in trainable.items() if n in chosen}
    if not chosen:
        raise ValueError("the model has no trainable parameters to differentiate by")
    return chosen


def loss_gradient(model: nn.Module, tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch"],
                  params: str | Sequence[str] | None = None, last_position_only: bool = True) -> Float[Tensor, "n"]:
    """The flat gradient of `training_loss` over (tokens, labels), by parameter in `named_parameters` order.

    `params`: see `select_parameters` (None: every trainable parameter). `.grad` is untouched.
    """
    selected = list(select_parameters(model, params).values())
    with torch.enable_grad():
        loss = training_loss(model, tokens, labels, last_position_only)
        grads = torch.autograd.grad(loss, selected, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(selected, grads)])


def half_batch_split(n: int, seed: int = AGREEMENT_SEED, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of range(n), sorted: the first floor(n/2) and the rest of a permutation drawn
    from `numpy.random.default_rng([seed, step])` (nothing else's random state is used or changed).

    >>> a, b = half_batch_split(7, seed=0, step=3)
    >>> len(a), len(b), sorted([*a, *b]) == list(range(7))
    (3, 4, True)
    """
    if n < 2:
        raise ValueError(f"n={n} examples cannot be split into two non-empty halves")
    if seed < 0 or step < 0:
        raise ValueError(f"seed={seed} and step={step} must be non-negative integers")
    perm = np.random.default_rng([int(seed), int(step)]).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


@dataclass(frozen=True)
class HalfBatchAgreement:
    """cosine(g_A, g_B) of the two halves' gradients; grad_norm: |g| of the whole batch, g = (|A| g_A + |B| g_B) / n;
    half_norms: (|g_A|, |g_B|)."""

    cosine: float
    grad_norm: float
    half_norms: tuple[float, float]


def half_batch_agreement(model: nn.Module, tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch"],
                         seed: int = AGREEMENT_SEED, step: int = 0, params: str | Sequence[str] | None = None,
                         last_position_only: bool = True) -> HalfBatchAgreement:
    """Half-batch gradient agreement (the Grokking Dynamics write-up): the cosine between the gradients of the mean training loss
    over two random halves A, B of the batch (`half_batch_split(n, seed, step)`).

    Costs about one training step (two half-batch forwards and backwards). NaN when a half's gradient is 0.

    Args:
        model: any model of the library; tokens [batch, pos], labels [batch]: the training set.
        seed, step: select the halves (reproducible per step).
        params: see `select_parameters`.
    """
    idx_a, idx_b = (torch.from_numpy(i).to(tokens.device) for i in half_batch_split(len(tokens), seed, step))
    g_a = loss_gradient(model, tokens[idx_a], labels[idx_a], params, last_position_only).double()
    g_b = loss_gradient(model, tokens[idx_b], labels[idx_b], params, last_position_only).double()
    norm_a, norm_b = float(g_a.norm()), float(g_b.norm())
    cosine = float(g_a @ g_b) / (norm_a * norm_b) if norm_a > 0 and norm_b > 0 else math.nan
    full = (len(idx_a) * g_a + len(idx_b) * g_b) / len(tokens)
    return HalfBatchAgreement(cosine, float(full.norm()), (norm_a, norm_b))
