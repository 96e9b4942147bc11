"""The shared pass of the early-warning diagnostics (the related-work papers).

One forward per checkpoint over every example of the task (all p^2 pairs; div leaves out b = 0) keeps,
at the final position (the `=` token, the only one the loss reads), what the diagnostics the per-checkpoint signals need:

- `blocks.{l}.hook_resid_pre / hook_resid_mid / hook_resid_post`  -> resid_pre/mid/post [n_layers, batch, d_model]
- `blocks.{l}.attn.hook_pattern[:, :, -1, :]`                     -> pattern [n_layers, batch, n_heads, k_pos]
- `blocks.{l}.mlp.hook_post`                                      -> mlp_post [n_layers, batch, d_mlp]
- `unembed.hook_in` (= the final resid_post without LayerNorm)    -> unembed_in [batch, d_model]
- the logits                                                      -> logits [batch, d_vocab_out]

The forward is the model's final-position path (`last_position_only=True` where the model has it): it gives
the same logits and the same final-position activations as the full forward, several times faster. Every
capture hook is removed on exit. `WarningCache` is what `StepContext.shared("warning_forward", ...)`
memoises, so all the warning analyses of one checkpoint share a single forward.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor


@dataclass(frozen=True)
class WarningCache:
    """Final-position activations of one checkpoint over every example, in the task's row order.

    Attributes:
        resid_pre, resid_mid, resid_post: [n_layers, batch, d_model].
        pattern: [n_layers, batch, n_heads, k_pos], the final query's attention over the keys.
        mlp_post: [n_layers, batch, d_mlp].
        unembed_in: [batch, d_model], what the unembedding reads (after ln_final, if any).
        logits: [batch, d_vocab_out], float32.
        labels: int64 [batch]; train_idx, test_idx: int64 indices into the batch axis.
    """

    resid_pre: Float[Tensor, "n_layers batch d_model"]
    resid_mid: Float[Tensor, "n_layers batch d_model"]
    resid_post: Float[Tensor, "n_layers batch d_model"]
    pattern: Float[Tensor, "n_layers batch n_heads k_pos"]
    mlp_post: Float[Tensor, "n_layers batch d_mlp"]
    unembed_in: Float[Tensor, "batch d_model"]
    logits: Float[Tensor, "batch d_vocab_out"]
    labels: Int[Tensor, "batch"]
    train_idx: Int[Tensor, "n_train"]
    test_idx: Int[Tensor, "n_test"]

    @property
    def n_layers(self) -> int:
        return self.resid_pre.shape[0]

    def log_probs(self, tau: float = 1.0) -> Float[Tensor, "batch"]:
        """log p(label | x) of the tempered logits z / tau, float32."""
        return F.log_softmax(self.logits.float() / tau, dim=-1).gather(1, self.labels[:, None])[:, 0]


_PER_LAYER = {"resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid", "resid_post": "hook_resid_post",
              "pattern": "attn.hook_pattern", "mlp_post": "mlp.hook_post"}


def warning_forward(model, task) -> WarningCache:
    """Run `model` once on every example of `task` and keep the final position of the hooks listed above.

    Duck-typed: any HookedRootModule with TransformerLens hook names, `model.blocks` and `model.hooks(...)`.
    Runs under `torch.no_grad()`; the model is not modified.

    Args:
        model: a grokinterp Transformer (or a TL HookedTransformer-like model).
        task: a ModularTask (its tokens, labels and split).

    Returns:
        A WarningCache on the model's device.
    """
    n_layers = len(model.blocks)
    device = next(model.parameters()).device
    captured: dict[str, list] = {key: [None] * n_layers for key in _PER_LAYER}
    captured["unembed_in"] = [None]

    def capture(key: str, layer: int):
        def hook(acts, hook):
            last = acts[:, :, -1, :] if key == "pattern" else acts[:, -1]
            captured[key][layer] = last.detach()
        return hook

    hooks = [(f"blocks.{layer}.{name}", capture(key, layer)) for key, name in _PER_LAYER.items()
             for layer in range(n_layers)]
    hooks.append(("unembed.hook_in", capture("unembed_in", 0)))
    tokens = task.tokens.to(device)
    kwargs = {"last_position_only": True} if "last_position_only" in inspect.signature(model.forward).parameters else {}
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(tokens, **kwargs)[:, -1]
    missing = [key for key, values in captured.items() if any(v is None for v in values)]
    if missing:
        raise ValueError(f"the model fired no hook for {missing}; warning_forward needs TransformerLens hook names "
                         f"({sorted(_PER_LAYER.values())}, unembed.hook_in)")
    stacked = {key: torch.stack(values) for key, values in captured.items() if key != "unembed_in"}
    return WarningCache(**stacked, unembed_in=captured["unembed_in"][0], logits=logits.float(),
                        labels=task.labels.to(device), train_idx=task.train_idx.to(device),
                        test_idx=task.test_idx.to(device))
