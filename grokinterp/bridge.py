"""TransformerLens 4 bridge: a grokinterp model or checkpoint as a `TransformerBridge`, and back.

A grokinterp checkpoint is a TL 3 `HookedTransformer` state dict. TransformerLens 4.3 converts such a
state dict with `transformer_lens.conversion_utils.convert_tl_checkpoint(sd, cfg)` and loads it with
`strict=True` into `TransformerBridge.boot_native(cfg)`, whose hook names are TL 3's
(`blocks.0.mlp.hook_post`, `blocks.0.attn.hook_pattern`, `hook_embed`, ...). `from_bridge` reverses it:
the bridge's `nn.Linear`-layout weights back to TL 3 names and shapes, in a grokinterp `Transformer`.

    bridge = to_bridge(Run("checkpoints/quick"))  # a run: its last checkpoint
    logits, cache = bridge.run_with_cache(tokens)
    model = from_bridge(bridge)  # a grokinterp Transformer again

Sits beside `model` in the layering: it imports `model` only (the caller reads a run directory: `Run(path)`).
TransformerLens 4's bridge modules are imported only when a bridge is built (they take seconds).
One known difference (TransformerLens 4.3.0): the native bridge fires `blocks.L.attn.hook_attn_scores`
with the softmax pattern, not the pre-softmax scores; every other shared hook carries the same values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import einops
from torch import Tensor

from .config import ModelConfig
from .model import Transformer

# Bridge (nn.Linear) layout -> TL 3 layout of each TL 3 leaf; h = n_heads, d = d_head, m = d_model, f = d_mlp.
_TO_TL_LAYOUT = {
    "W_Q": "(h d) m -> h m d", "W_K": "(h d) m -> h m d", "W_V": "(h d) m -> h m d", "W_O": "m (h d) -> h d m",
    "b_Q": "(h d) -> h d", "b_K": "(h d) -> h d", "b_V": "(h d) -> h d",
    "W_in": "f m -> m f", "W_out": "m f -> f m", "W_U": "v m -> m v",
}
_OWNER_LEAVES = {"embed": ("W_E", None), "pos_embed": ("W_pos", None), "unembed": ("W_U", "b_U"),
                 "ln1": ("w", "b"), "ln2": ("w", "b"), "ln_final": ("w", "b")}
BUFFERS = ("mask", "IGNORE")  # TL 3 attention buffers; the bridge has none


def is_bridge(model) -> bool:
    """True for a TransformerLens 4 `TransformerBridge` (checked without importing TransformerLens 4)."""
    return any(cls.__name__ == "TransformerBridge" and cls.__module__.startswith("transformer_lens.model_bridge")
               for cls in type(model).__mro__)


def bridge_config(model_config: ModelConfig, d_vocab: int, d_vocab_out: int, n_ctx: int = 3):
    """The `TransformerBridgeConfig` of a grokinterp architecture (a TL-native model, standard positions)."""
    from transformer_lens.config import TransformerBridgeConfig

    return TransformerBridgeConfig(
        d_model=model_config.d_model, n_layers=model_config.n_layers, n_heads=model_config.n_heads,
        d_head=model_config.d_head, d_mlp=model_config.d_mlp, act_fn=model_config.act_fn,
        normalization_type=model_config.normalization_type, d_vocab=d_vocab, d_vocab_out=d_vocab_out, n_ctx=n_ctx,
        positional_embedding_type="standard", architecture="TransformerLensNative",
    )


def architecture_from_state_dict(state_dict: dict[str, Tensor], act_fn: str = "relu") -> tuple[ModelConfig, int, int, int]:
    """(ModelConfig, d_vocab, d_vocab_out, n_ctx) read off a TL 3 state dict's shapes.

    The activation cannot be read from weights: pass `act_fn` ("relu" or "gelu"). Init, seed and which
    biases train keep their defaults (they do not change the forward).
    """
    missing = [k for k in ("embed.W_E", "pos_embed.W_pos", "unembed.W_U", "blocks.0.attn.W_Q", "blocks.0.mlp.W_in")
               if k not in state_dict]
    if missing:
        raise ValueError(f"not a TL 3 HookedTransformer state dict: keys {missing} are missing")
    d_vocab, d_model = state_dict["embed.W_E"].shape
    n_heads, _, d_head = state_dict["blocks.0.attn.W_Q"].shape
    layers = {k.split(".")[1] for k in state_dict if k.startswith("blocks.")}
    if layers != {str(i) for i in range(len(layers))}:
        shown = sorted(layers, key=lambda x: (len(x), x))[:5]
        raise ValueError(f"state dict's layer indices {shown}... are not 0..{len(layers) - 1}; not a TL 3 "
                         "HookedTransformer state dict")
    n_layers = len(layers)
    config = ModelConfig(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_head,
        d_mlp=state_dict["blocks.0.mlp.W_in"].shape[1], act_fn=act_fn,
        normalization_type="LN" if "blocks.0.ln1.w" in state_dict else None,
    )
    return config, d_vocab, state_dict["unembed.W_U"].shape[1], state_dict["pos_embed.W_pos"].shape[0]


def _load(source, step: int | None, act_fn: str) -> Transformer:
    """A grokinterp Transformer from a model, a `Run` (its checkpoint `step`, default the last), or a TL 3
    state dict. Paths are read by the caller (`Run(path)`, `runs.load_tensors(file)`): the bridge sits
    beside the model and does not read run directories."""
    if isinstance(source, Transformer):
        return source
    if isinstance(source, dict):
        config, d_vocab, d_vocab_out, n_ctx = architecture_from_state_dict(source, act_fn)
        model = Transformer(config, d_vocab, d_vocab_out, n_ctx)
        model.load_state_dict(source, strict=True)
        return model.eval()
    if callable(getattr(source, "model", None)) and hasattr(source, "steps"):  # a grokinterp Run
        return source.model(step)
    hint = " (for a run directory pass Run(path); for a checkpoint file, runs.load_tensors(path))" \
        if isinstance(source, (str, Path)) else ""
    raise ValueError(f"cannot make a bridge from {source!r}: pass a grokinterp Transformer, a Run or a TL 3 "
                     f"state dict{hint}")


def to_bridge(source, step: int | None = None, act_fn: str = "relu"):
    """A TransformerLens 4 `TransformerBridge` with the weights of a grokinterp model or checkpoint.

    Built by `TransformerBridge.boot_native(bridge_config(...))` and loaded with `strict=True` from
    `convert_tl_checkpoint(state_dict, cfg)`; logits and hook values equal the model's (see module note).

    Args:
        source: a grokinterp `Transformer`; a `Run` (checkpoint `step`, default the last); or a TL 3 state
            dict (architecture read off its shapes), e.g. `runs.load_tensors("<run>/ckpt/step_N.safetensors")`.
        act_fn: the activation, for a bare state dict only ("relu" or "gelu").

    Returns:
        A `TransformerBridge` in eval mode, on the model's device.
    """
    from transformer_lens.conversion_utils import convert_tl_checkpoint
    from transformer_lens.model_bridge import TransformerBridge

    model = _load(source, step, act_fn)
    cfg = bridge_config(model.cfg, model.d_vocab, model.d_vocab_out, model.n_ctx)
    device = next(model.parameters()).device
    bridge = TransformerBridge.boot_native(cfg, device=device)
    result = bridge.load_state_dict(convert_tl_checkpoint(model.state_dict(), cfg), strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    return bridge.eval()


def tl_state_dict_from_bridge(bridge_state: dict[str, Tensor], n_heads: int) -> dict[str, Tensor]:
    """A bridge's state dict (`blocks.0.attn.q.weight`, ...) in TL 3 names and layouts (`blocks.0.attn.W_Q`, ...).

    The inverse of `convert_tl_checkpoint` on grokinterp's architectures; parameters only (TL 3's `mask`
    and `IGNORE` buffers have no bridge counterpart). A key it does not know raises ValueError naming it.
    """
    out = {}
    for key, tensor in bridge_state.items():
        tl_key = _tl_key(key)
        pattern = _TO_TL_LAYOUT.get(tl_key.rsplit(".", 1)[-1])
        if pattern is not None:
            tensor = einops.rearrange(tensor, pattern, **({"h": n_heads} if "h" in pattern else {})).contiguous()
        out[tl_key] = tensor
    return out


def _tl_key(bridge_key: str) -> str:
    """`blocks.0.attn.q.weight` -> `blocks.0.attn.W_Q`, `blocks.0.mlp.in.bias` -> `blocks.0.mlp.b_in`, ..."""
    module, _, leaf = bridge_key.rpartition(".")
    parent, _, name = module.rpartition(".")
    kind = {"weight": 0, "bias": 1}.get(leaf)
    if kind is not None and name in ("q", "k", "v", "o"):
        return f"{parent}.{('W_', 'b_')[kind]}{name.upper()}"
    if kind is not None and name in ("in", "out"):
        return f"{parent}.{('W_', 'b_')[kind]}{name}"
    if kind is not None and name in _OWNER_LEAVES and _OWNER_LEAVES[name][kind] is not None:
        return f"{module}.{_OWNER_LEAVES[name][kind]}"
    raise ValueError(f"bridge state dict key {bridge_key!r} has no TL 3 counterpart in grokinterp's architectures")


def from_bridge(bridge, model_config: ModelConfig | None = None) -> Transformer:
    """A grokinterp `Transformer` with a bridge's weights (strict load; the bridge is not changed).

    Args:
        bridge: a TL-native `TransformerBridge` (e.g. from `to_bridge`).
        model_config: the init / seed / trained-bias settings to record (default: ModelConfig's); the
            architecture always comes from `bridge.cfg` and must agree with it.
    """
    cfg = bridge.cfg
    arch = dict(n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head,
                d_mlp=cfg.d_mlp, act_fn=cfg.act_fn, normalization_type=cfg.normalization_type)
    model_config = getattr(model_config, "model_config", model_config)  # a model's TL view (model.cfg) works too
    if model_config is not None:
        differ = {k: (getattr(model_config, k), v) for k, v in arch.items() if getattr(model_config, k) != v}
        if differ:
            raise ValueError(f"model_config disagrees with the bridge's architecture: {differ} (ours, bridge's)")
    config = ModelConfig(**{**(dataclasses.asdict(model_config) if model_config else {}), **arch})
    model = Transformer(config, cfg.d_vocab, cfg.d_vocab_out, cfg.n_ctx)
    state = tl_state_dict_from_bridge(bridge.state_dict(), cfg.n_heads)
    state.update({k: v for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] in BUFFERS})
    model.load_state_dict(state, strict=True)
    return model.to(next(bridge.parameters()).device).eval()
