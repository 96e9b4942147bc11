"""Neuron interventions through TransformerLens hooks: ablation, activation patching, weight transplants.

All act on the MLP neurons of block L, i.e. on the hook `blocks.L.mlp.hook_post` ([batch, pos, d_mlp]):

- zero ablation:  post[..., j] <- 0 for j in S;
- mean ablation:  post[b, i, j] <- mean_{b'} post[b', i, j] for j in S (mean per position over `mean_tokens`,
  default the tokens themselves; Nanda et al. 2023 mean-ablate over the full dataset);
- activation patching:  post[b, i, j] <- post_donor[b, i, j] for j in S, the donor model run on the same tokens;
- weight transplant:  W_in[:, j], b_in[j], W_out[j, :] <- the donor's, for j in S (the Grokking Dynamics write-up's "Fourier transplant").

S is a list of indices or a bool mask over d_mlp; `fourier_neurons` selects a grokked model's Fourier neurons.

Temporary hooks only live inside `neuron_patch(...)`, a `with` block built on `model.hooks(...)`: they are
removed on exit, even on error, and hooks the user added outside it are left alone. Surgery returns a new
model; the caller's models are never changed. Works with any HookedRootModule that has `blocks.L.mlp`
(grokinterp's Transformer, TL 3's HookedTransformer).

>>> logits = patch_neurons(recipient, donor, task.tokens, neurons=[3, 17])          # doctest: +SKIP
>>> neuron_intervention_metrics(model, task, [3, 17], intervention="mean")          # doctest: +SKIP
{'train_loss': ..., 'train_acc': ..., 'test_loss': ..., 'test_acc': ...}
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from .fourier import (
    NEURON_FRAC_THRESHOLD,
    grid_forward,
    group_grid,
    group_indexing,
    key_frequency_mask,
    neuron_frequencies,
)

__all__ = [
    "INTERVENTIONS", "ablate_neurons", "fourier_neurons", "neuron_index", "neuron_intervention_metrics",
    "neuron_patch", "patch_neurons", "transplant_neuron_weights",
]

INTERVENTIONS = ("none", "zero", "mean", "patch")


def _post_hook(layer: int) -> str:
    return f"blocks.{layer}.mlp.hook_post"


def _check_layer(model, layer: int) -> None:
    if not 0 <= layer < len(model.blocks):
        raise ValueError(f"layer={layer} is out of range: the model has {len(model.blocks)} block(s)")


def neuron_index(neurons: Sequence[int] | Tensor, d_mlp: int) -> Int[Tensor, "n_selected"]:
    """Selected neurons as sorted, distinct int64 indices; accepts indices or a bool mask [d_mlp].

    >>> neuron_index(torch.tensor([False, True, True, False]), 4).tolist(), neuron_index([3, 0], 4).tolist()
    ([1, 2], [0, 3])
    """
    idx = torch.as_tensor(neurons)
    if idx.dtype == torch.bool:
        if idx.shape != (d_mlp,):
            raise ValueError(f"a neuron mask must have shape [{d_mlp}] (d_mlp), not {list(idx.shape)}")
        return torch.nonzero(idx).flatten()
    idx = idx.to(torch.int64).flatten()
    if idx.numel() and (idx.min() < 0 or idx.max() >= d_mlp):
        raise ValueError(f"neuron indices must lie in 0..{d_mlp - 1} (d_mlp={d_mlp}); got {idx.tolist()}")
    if idx.unique().numel() != idx.numel():
        raise ValueError(f"neuron indices must be distinct; got {idx.tolist()}")
    return idx.sort().values


def fourier_neurons(
    model, task, layer: int = 0, frac_threshold: float = NEURON_FRAC_THRESHOLD
) -> Int[Tensor, "n_selected"]:
    """The layer's Fourier neurons: those whose dominant frequency is a key frequency and explains at least
    `frac_threshold` of their variance (`neuron_frequencies`, `key_frequency_mask`; Nanda et al. 2023, section 4).

    Activations at the final position over all p^2 pairs (over Z_{p-1} by discrete log for mul/div).
    Before a Fourier circuit forms there are no key frequencies and the result is empty.

    Returns:
        Sorted int64 indices into d_mlp.
    """
    _check_layer(model, layer)
    grid = grid_forward(model, task, layer)
    neurons = neuron_frequencies(group_grid(grid.neuron_acts, group_indexing(task.p, task.op).residues))
    key = key_frequency_mask(neurons, frac_threshold=frac_threshold)
    return torch.nonzero(key[neurons.freq.cpu()] & (neurons.frac_explained.cpu() >= frac_threshold)).flatten()


@contextmanager
def neuron_patch(model, neurons: Sequence[int] | Tensor, values: Tensor, layer: int = 0) -> Iterator:
    """Within the block, `blocks.{layer}.mlp.hook_post[..., neurons]` is replaced by `values`.

    `values` broadcasts against [batch, pos, n_selected]: [n_selected] (one value per neuron), [pos, n_selected],
    or [batch, pos, n_selected]. When the forward computes fewer positions than `values` holds (grokinterp's
    `last_position_only`), the last positions of `values` are used. The hook is removed on exit, even on error.

    Args:
        model: a HookedRootModule with `blocks[layer].mlp`.
        neurons: indices or a bool mask over d_mlp.
        values: the replacement activations (last axis: the selected neurons, in sorted index order).
    """
    _check_layer(model, layer)
    idx = neuron_index(neurons, model.blocks[layer].mlp.W_in.shape[-1])

    def patch(acts: Float[Tensor, "batch pos d_mlp"], hook) -> Tensor:
        v = values.to(device=acts.device, dtype=acts.dtype)
        if v.dim() >= 2 and v.shape[-2] != acts.shape[1]:
            v = v[..., -acts.shape[1]:, :]
        patched = acts.clone()  # out of place: relu's backward still needs the original output
        patched[..., idx.to(acts.device)] = v
        return patched

    with model.hooks(fwd_hooks=[(_post_hook(layer), patch)]):
        yield model


def _post_activations(model, tokens: Tensor, layer: int) -> Float[Tensor, "batch pos d_mlp"]:
    store = {}

    def capture(acts, hook):
        store["post"] = acts.detach()

    with torch.no_grad(), model.hooks(fwd_hooks=[(_post_hook(layer), capture)]):
        model(tokens)
    return store["post"]


def ablate_neurons(
    model,
    tokens: Int[Tensor, "batch pos"],
    neurons: Sequence[int] | Tensor,
    mode: str = "zero",
    layer: int = 0,
    mean_tokens: Int[Tensor, "n pos"] | None = None,
) -> Float[Tensor, "batch pos d_vocab_out"]:
    """Logits with the selected neurons zero- or mean-ablated at `blocks.{layer}.mlp.hook_post`.

    Args:
        tokens: [batch, pos] inputs.
        neurons: indices or a bool mask over d_mlp.
        mode: "zero", or "mean" (each neuron's mean activation per position over `mean_tokens`, default `tokens`).
        mean_tokens: [n, pos] the inputs the mean is taken over.

    Returns:
        [batch, pos, d_vocab_out] logits of the full forward.
    """
    if mode not in ("zero", "mean"):
        raise ValueError(f"mode={mode!r} is not valid; choose 'zero' or 'mean'")
    _check_layer(model, layer)
    idx = neuron_index(neurons, model.blocks[layer].mlp.W_in.shape[-1])
    if mode == "zero":
        values = torch.zeros(len(idx))
    else:
        post = _post_activations(model, tokens if mean_tokens is None else mean_tokens, layer)
        values = post.mean(0)[:, idx.to(post.device)]  # [pos, n_selected]
    with neuron_patch(model, idx, values, layer):
        return model(tokens)


def patch_neurons(
    model,
    donor_model,
    tokens: Int[Tensor, "batch pos"],
    neurons: Sequence[int] | Tensor,
    layer: int = 0,
) -> Float[Tensor, "batch pos d_vocab_out"]:
    """Logits of `model` with the selected neurons' activations at `blocks.{layer}.mlp.hook_post` taken from
    `donor_model` run on the same tokens (activation patching).

    Returns:
        [batch, pos, d_vocab_out] logits of the full forward.
    """
    _check_layer(model, layer)
    _check_layer(donor_model, layer)
    d_mlp = model.blocks[layer].mlp.W_in.shape[-1]
    if donor_model.blocks[layer].mlp.W_in.shape[-1] != d_mlp:
        raise ValueError(f"donor has d_mlp={donor_model.blocks[layer].mlp.W_in.shape[-1]}, recipient {d_mlp}")
    idx = neuron_index(neurons, d_mlp)
    donor_post = _post_activations(donor_model, tokens, layer)
    with neuron_patch(model, idx, donor_post[..., idx.to(donor_post.device)], layer):
        return model(tokens)


def transplant_neuron_weights(recipient, donor, neurons: Sequence[int] | Tensor, layer: int = 0):
    """A copy of `recipient` whose selected neurons carry the donor's weights: W_in[:, j], b_in[j], W_out[j, :].

    Nothing else changes (attention, embeddings, b_out and the other neurons stay the recipient's); neither
    input model is modified, and the copy has no hooks.

    Args:
        recipient, donor: models of the same architecture.
        neurons: indices or a bool mask over d_mlp.

    Returns:
        A new model.
    """
    _check_layer(recipient, layer)
    _check_layer(donor, layer)
    src, rec = donor.blocks[layer].mlp, recipient.blocks[layer].mlp
    for name in ("W_in", "b_in", "W_out"):
        if getattr(src, name).shape != getattr(rec, name).shape:
            raise ValueError(f"donor's blocks.{layer}.mlp.{name} has shape {list(getattr(src, name).shape)}, "
                             f"the recipient's {list(getattr(rec, name).shape)}: transplants need one architecture")
    idx = neuron_index(neurons, src.W_in.shape[-1])
    new = copy.deepcopy(recipient)
    new.reset_hooks(including_permanent=True)  # the copy does not inherit the caller's hooks
    dst = new.blocks[layer].mlp
    with torch.no_grad():
        i = idx.to(dst.W_in.device)
        dst.W_in[:, i] = src.W_in[:, idx.to(src.W_in.device)].to(dst.W_in)
        dst.b_in[i] = src.b_in[idx.to(src.b_in.device)].to(dst.b_in)
        dst.W_out[i, :] = src.W_out[idx.to(src.W_out.device), :].to(dst.W_out)
    return new


def neuron_intervention_metrics(
    model,
    task,
    neurons: Sequence[int] | Tensor = (),
    intervention: str = "zero",
    donor=None,
    layer: int = 0,
) -> dict[str, float]:
    """Loss and accuracy on the train and test splits under a neuron intervention.

    Cross-entropy (float64) and accuracy at the final position, one forward over all pairs. Mean ablation
    uses each neuron's mean over all pairs (train and test), as in Nanda et al. 2023.

    Args:
        model: the model intervened on (not modified).
        task: a ModularTask (tokens, labels, train_idx, test_idx).
        neurons: indices or a bool mask over d_mlp.
        intervention: "none" (clean), "zero", "mean" or "patch" (needs `donor`). For a weight transplant, pass
            `transplant_neuron_weights(...)` as the model with "none".

    Returns:
        {"train_loss", "train_acc", "test_loss", "test_acc"} as floats.
    """
    if intervention not in INTERVENTIONS:
        raise ValueError(f"intervention={intervention!r} is not valid; choose one of {list(INTERVENTIONS)}")
    if intervention == "patch" and donor is None:
        raise ValueError("intervention='patch' needs a donor model: pass donor=...")
    device = next(model.parameters()).device
    tokens, labels = task.tokens.to(device), task.labels.to(device)
    with torch.no_grad():
        if intervention == "none":
            logits = model(tokens)
        elif intervention == "patch":
            logits = patch_neurons(model, donor, tokens, neurons, layer)
        else:
            logits = ablate_neurons(model, tokens, neurons, intervention, layer)
    last = logits[:, -1].to(torch.float64)
    out = {}
    for split, idx in (("train", task.train_idx), ("test", task.test_idx)):
        idx = idx.to(device)
        out[f"{split}_loss"] = F.cross_entropy(last[idx], labels[idx]).item()
        out[f"{split}_acc"] = (last[idx].argmax(-1) == labels[idx]).double().mean().item()
    return out
