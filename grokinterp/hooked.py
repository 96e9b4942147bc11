"""One view of the three kinds of model the analyses accept: weights under TL 3 names, activations by hook name.

- grokinterp's `Transformer` and TransformerLens 3's `HookedTransformer` already use TL 3's parameter
  names (`embed.W_E`, `blocks.0.mlp.W_in` as [d_model, d_mlp], ...) and hook names.
- A TransformerLens 4 `TransformerBridge` (`grokinterp.bridge.to_bridge`) has the same hook names but
  stores `nn.Linear` weights (`blocks.0.mlp.in.weight` as [d_mlp, d_model], the unembed bias as a
  buffer); `as_hooked` converts them back to TL 3 names and shapes.
- Anything else that has `hooks(fwd_hooks=...)`, a forward from tokens to logits and TL 3-named
  parameters works too (duck typing).

    hooked = as_hooked(model)
    hooked.weight("blocks.0.mlp.W_in").shape  # [d_model, d_mlp]
    logits, acts = hooked.run_with_cache(tokens, ["blocks.0.mlp.hook_post"])

Sits beside `model` in the layering (analyses import it); it imports nothing from TransformerLens 4.
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .bridge import is_bridge, tl_state_dict_from_bridge


class HookedModel:
    """A model seen through TL 3 names (see the module docstring). Build it with `as_hooked`.

    Attributes:
        model: the wrapped module (not copied, never modified by this view).
        kind: "bridge" for a TransformerLens 4 bridge, "tl3_names" for every model with TL 3 parameter names.
    """

    def __init__(self, model, kind: str):
        self.model, self.kind = model, kind

    def __repr__(self) -> str:
        return f"HookedModel({type(self.model).__name__}, kind={self.kind!r})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def n_layers(self) -> int:
        return len(self.model.blocks)

    def weights(self) -> dict[str, Tensor]:
        """Every parameter under its TL 3 name and shape (buffers such as TL 3's `mask` excluded).

        For TL 3-named models these are the live parameters, in `named_parameters()` order; for a bridge,
        converted copies (its unembed bias, a buffer there, is included as `unembed.b_U`).
        """
        if self.kind == "bridge":
            return tl_state_dict_from_bridge(self.model.state_dict(), self.model.cfg.n_heads)
        return dict(self.model.named_parameters())

    def weight(self, name: str) -> Tensor:
        """One parameter by TL 3 name, e.g. "embed.W_E" [d_vocab, d_model] or "blocks.0.mlp.W_in" [d_model, d_mlp]."""
        weights = self.weights()
        if name not in weights:
            raise KeyError(f"{type(self.model).__name__} has no parameter {name!r} under TL 3 names; "
                           f"it has {sorted(weights)}")
        return weights[name]

    def hooks(self, fwd_hooks: Sequence[tuple[str, Callable]]):
        """The model's own context manager: hooks added for the block, removed on exit, user hooks left alone."""
        return self.model.hooks(fwd_hooks=list(fwd_hooks))

    def forward(
        self, tokens: Int[Tensor, "batch pos"], last_position_only: bool = False
    ) -> Float[Tensor, "batch pos d_vocab_out"]:
        """Logits; `last_position_only` uses the model's final-position forward when it has one
        (grokinterp's: same final-position logits and activations), else the full forward."""
        if last_position_only and "last_position_only" in inspect.signature(self.model.forward).parameters:
            return self.model(tokens, last_position_only=True)
        return self.model(tokens)

    def run_with_cache(
        self, tokens: Int[Tensor, "batch pos"], names: Sequence[str], last_position_only: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(logits, {hook name: activation}) for the named hooks, detached; the capture hooks live only
        inside this call. A name the model does not fire raises KeyError naming it."""
        store: dict[str, Tensor] = {}
        # One capture per name asked for: a bridge may resolve a name to an aliased hook point.
        with self.hooks([(name, _capture_into(store, name)) for name in names]):
            logits = self.forward(tokens, last_position_only=last_position_only)
        unfired = [n for n in names if n not in store]
        if unfired:
            raise KeyError(f"hook(s) {unfired} did not fire in {type(self.model).__name__}'s forward")
        return logits, {n: store[n] for n in names}


def _capture_into(store: dict[str, Tensor], name: str) -> Callable:
    def capture(acts: Tensor, hook) -> None:
        store[name] = acts.detach()

    return capture


def as_hooked(model) -> HookedModel:
    """The `HookedModel` view of a grokinterp model, a TransformerLens 4 bridge or a TL 3 HookedTransformer
    (or any model with TL 3 parameter names and `hooks(...)`); a `HookedModel` is returned as it is."""
    if isinstance(model, HookedModel):
        return model
    if not callable(getattr(model, "hooks", None)):
        raise TypeError(f"{type(model).__name__} has no hooks(fwd_hooks=...) context manager: analyses need a "
                        "grokinterp Transformer, a TransformerLens 4 bridge or a TL 3 HookedTransformer")
    return HookedModel(model, "bridge" if is_bridge(model) else "tl3_names")
