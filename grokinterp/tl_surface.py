"""The `HookedTransformer` surface of grokinterp's model: TL 3's `cfg`, stacked weights, circuits and switches.

TransformerLens users reach for more than hook names: `model.W_Q` stacked over layers, `model.OV` as a
`FactoredMatrix`, `model.cfg.n_layers`, `cache.decompose_resid()` (which reads `model.cfg`,
`model.accumulated_bias` and `model.tokens_to_residual_directions`), `model.set_use_attn_result(True)`.
`HookedTransformerSurface` gives `grokinterp.model.Transformer` that surface with TL 3.9's names, shapes
and semantics; `TLConfig` is its `cfg`. docs/hooks.md ("TransformerLens surface") lists what is and
is not supported; tests/test_tl_surface.py compares every value with TL 3.9's `HookedTransformer`.

>>> from grokinterp.config import ModelConfig
>>> from grokinterp.model import Transformer
>>> model = Transformer(ModelConfig(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64), d_vocab=24, d_vocab_out=23)
>>> model.W_Q.shape, model.OV.AB.shape, model.cfg.d_vocab, model.cfg.use_attn_result
(torch.Size([2, 4, 32, 8]), torch.Size([2, 4, 32, 32]), 24, False)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix

from .config import ModelConfig

# The switches that make TL fire its optional hook points (all off by default, as in TL 3).
SWITCHES = ("use_attn_result", "use_split_qkv_input", "use_attn_in", "use_hook_mlp_in")

# The per-block parameters that HookedTransformerSurface stacks over layers (model.W_Q, ...).
STACKED = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_in", "W_out", "b_in", "b_out")

# Fields of ModelConfig that TL's HookedTransformerConfig has under the same name and meaning.
_FROM_MODEL_CONFIG = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "act_fn", "normalization_type")

# Every other field of TL 3.9's HookedTransformerConfig, with the value TL 3.9 gives it for this
# architecture (a standard-position, pre-LN or LN-free, causal, non-gated transformer without a tokenizer).
# tests/test_tl_surface.py compares the whole `cfg.to_dict()` with TL 3.9's for the same architecture.
_TL_CONSTANTS: dict[str, Any] = dict(
    default_prepend_bos=True, positional_embedding_type="standard", n_key_value_heads=None, attn_only=False,
    gated_mlp=False, uses_rms_norm=False, eps=1e-5, layer_norm_folding=False, num_experts=None,
    experts_per_token=None, final_rms=False, model_name="custom", use_attn_scale=True, use_qk_norm=False,
    clip_qkv=None, use_logn_attn=False, train_seq_length=None, use_dynamic_ntk_rope=False, use_local_attn=False,
    ungroup_grouped_query_attention=False, original_architecture=None, from_checkpoint=False,
    checkpoint_index=None, checkpoint_label_type=None, checkpoint_value=None, tokenizer_name=None,
    window_size=None, attn_types=None, n_devices=1, attention_dir="causal", init_weights=True,
    scale_attn_by_inverse_layer_idx=False, parallel_attn_mlp=False, rotary_dim=None, use_hook_tokens=False,
    tokenizer_prepends_bos=None, post_embedding_ln=False, rotary_base=10000, rotary_base_local=None,
    rotary_scaling_factor=1.0, trust_remote_code=False, rotary_adjacent_pairs=False, load_in_4bit=False,
    quantization_method=None, relative_attention_max_distance=None, relative_attention_num_buckets=None,
    decoder_start_token_id=None, tie_word_embeddings=False, use_normalization_before_and_after=False,
    attn_scores_soft_cap=-1.0, output_logits_soft_cap=-1.0, use_NTK_by_parts_rope=False,
    NTK_by_parts_low_freq_factor=1.0, NTK_by_parts_high_freq_factor=4.0, NTK_by_parts_factor=8.0,
    NTK_original_ctx_len=8192, use_yarn_rope=False, yarn_factor=1.0, yarn_attention_factor=1.0,
    yarn_beta_fast=32.0, yarn_beta_slow=1.0, yarn_original_max_position_embeddings=4096, yarn_truncate=True,
    yarn_global_attn_only=False, use_attention_sinks=False, norm_topk_prob=False,
)


class TLConfig:
    """`model.cfg`: every field of TL 3.9's `HookedTransformerConfig`, read from grokinterp's `ModelConfig`.

    The `ModelConfig` (`model.model_config`, frozen) stays the source of truth: the architecture fields
    (`n_layers`, `d_model`, ..., and `init`, `train_biases`, `seed`) are read-only views of it, so they
    cannot drift. `d_vocab`, `d_vocab_out` and `n_ctx` come from the model; `device` and `dtype` follow
    `model.to(...)`; `attn_scale`, `initializer_range` and `n_params` are derived as TL derives them.
    The switches (`use_attn_result`, `use_split_qkv_input`, `use_attn_in`, `use_hook_mlp_in`) are
    settable, directly or with `model.set_use_*`, as in TL. The other fields hold TL 3.9's values for this
    architecture; they describe it and changing them changes nothing, as in TL after construction.

    Differences from TL 3.9: `seed` is grokinterp's init seed (TL's default is None) and `init_mode` is
    "gpt2" for `init="tl"` (TL 3's gpt2 init) but "nanda" for Nanda et al.'s init, which TL lacks.

    Args:
        model_config: grokinterp's architecture and init.
        d_vocab, d_vocab_out, n_ctx: the model's vocabularies and context length.
    """

    def __init__(self, model_config: ModelConfig, d_vocab: int, d_vocab_out: int, n_ctx: int):
        if not isinstance(model_config, ModelConfig):
            raise TypeError(f"TLConfig needs a grokinterp ModelConfig, got {type(model_config).__name__}")
        d = self.__dict__
        d["model_config"] = model_config
        d["d_vocab"], d["d_vocab_out"], d["n_ctx"] = d_vocab, d_vocab_out, n_ctx
        d["device"], d["dtype"] = "cpu", torch.float32
        d.update(_TL_CONSTANTS)
        d.update(dict.fromkeys(SWITCHES, False))

    # ----- the architecture, read from ModelConfig (read-only)
    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: ModelConfig's fields (n_layers, ..., init, train_biases, seed).
        if name.startswith("__") or "model_config" not in self.__dict__:
            raise AttributeError(name)
        source = self.__dict__["model_config"]
        if name in ModelConfig.__dataclass_fields__:
            return getattr(source, name)
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ModelConfig.__dataclass_fields__ or name in ("model_config", "d_vocab", "d_vocab_out", "n_ctx"):
            raise AttributeError(f"cfg.{name} is read from the model's ModelConfig (model.model_config, frozen): "
                                 f"build a new Transformer to change the architecture")
        if name in SWITCHES:
            value = bool(value)
        self.__dict__[name] = value

    @property
    def attn_scale(self) -> float:
        return math.sqrt(self.d_head)

    @property
    def initializer_range(self) -> float:
        return 0.8 / math.sqrt(self.d_model)  # TL 3's gpt2 init std (what init="tl" draws)

    @property
    def init_mode(self) -> str:
        return "gpt2" if self.model_config.init == "tl" else self.model_config.init

    @property
    def n_params(self) -> int:
        """TL's count of hidden weights (attention and MLP matrices; no embeddings, biases or LN)."""
        return self.n_layers * (4 * self.d_model * self.d_head * self.n_heads + 2 * self.d_model * self.d_mlp)

    # ----- TL's config API
    def to_dict(self) -> dict[str, Any]:
        """Every HookedTransformerConfig field and its value, as TL's `cfg.to_dict()`."""
        out = {name: getattr(self, name) for name in _FROM_MODEL_CONFIG}
        out.update(d_vocab=self.d_vocab, d_vocab_out=self.d_vocab_out, n_ctx=self.n_ctx, device=self.device,
                   dtype=self.dtype, attn_scale=self.attn_scale, initializer_range=self.initializer_range,
                   init_mode=self.init_mode, n_params=self.n_params, seed=self.seed)
        out.update({k: v for k, v in self.__dict__.items() if k not in ("model_config", *out)})
        return out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ModelConfig):  # code written when model.cfg was the ModelConfig keeps working
            return self.model_config == other
        if isinstance(other, TLConfig):
            return self.__dict__ == other.__dict__
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.model_config, self.d_vocab, self.d_vocab_out, self.n_ctx))

    def __repr__(self) -> str:
        switches = ", ".join(f"{k}={self.__dict__[k]}" for k in SWITCHES if self.__dict__[k])
        return (f"TLConfig({self.model_config!r}, d_vocab={self.d_vocab}, d_vocab_out={self.d_vocab_out}, "
                f"n_ctx={self.n_ctx}{', ' + switches if switches else ''})")


_HOOK_SWITCH = {"attn.hook_result": "use_attn_result", "hook_q_input": "use_split_qkv_input",
                "hook_k_input": "use_split_qkv_input", "hook_v_input": "use_split_qkv_input",
                "hook_attn_in": "use_attn_in", "hook_mlp_in": "use_hook_mlp_in"}


def switch_of(hook_name: str) -> str | None:
    """The TL switch (cfg field) a hook point fires behind, e.g. "use_attn_result" for blocks.0.attn.hook_result."""
    return next((switch for suffix, switch in _HOOK_SWITCH.items() if hook_name.endswith(suffix)), None)


class HookedTransformerSurface:
    """TL 3.9's `HookedTransformer` properties and methods that apply to grokinterp's architecture.

    Mixed into `grokinterp.model.Transformer`, which provides `cfg` (a `TLConfig`), `embed`, `pos_embed`,
    `blocks` and `unembed`. Stacked properties are `[n_layers, ...]` tensors built on each access (they
    share storage with nothing; gradients flow to the parameters), as in TL.
    """

    tokenizer = None  # as TL's HookedTransformer built without tokenizer_name: tokens are ids (residues and '=')

    # ----- switches (TL 3.9 names and semantics; off by default)
    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """Compute each head's output z W_O separately and fire `blocks.L.attn.hook_result`
        [batch, pos, n_heads, d_model] (attn_out is then their sum plus b_O)."""
        self.cfg.use_attn_result = use_attn_result

    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """Give each head its own copy of the residual as query, key and value input: fires
        `blocks.L.hook_q_input` / `hook_k_input` / `hook_v_input` [batch, pos, n_heads, d_model]."""
        self.cfg.use_split_qkv_input = use_split_qkv_input

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        """Give each head its own copy of the residual as attention input: fires `blocks.L.hook_attn_in`
        [batch, pos, n_heads, d_model]."""
        self.cfg.use_attn_in = use_attn_in

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        """Fire `blocks.L.hook_mlp_in` [batch, pos, d_model], the MLP's input before ln2."""
        self.cfg.use_hook_mlp_in = use_hook_mlp_in

    def check_hooks_to_add(self, hook_point, hook_point_name: str, hook, dir="fwd", is_permanent=False,
                           prepend=False) -> None:
        """Called by `add_hook`: a hook on a switched-off hook point would never run, so refuse it, as TL does
        (ValueError here; TL 3.9 raises AssertionError)."""
        switch = switch_of(hook_point_name)
        if switch is not None and not getattr(self.cfg, switch):
            raise ValueError(f"{hook_point_name} does not fire while cfg.{switch} is False: "
                             f"call model.set_{switch}(True) first")

    # ----- embeddings and unembedding
    @property
    def W_E(self) -> Float[Tensor, "d_vocab d_model"]:
        return self.embed.W_E

    @property
    def W_pos(self) -> Float[Tensor, "n_ctx d_model"]:
        return self.pos_embed.W_pos

    @property
    def W_E_pos(self) -> Float[Tensor, "d_vocab_plus_n_ctx d_model"]:
        """W_E and W_pos stacked: an overcomplete basis of the input space (full QK and OV circuits)."""
        return torch.cat([self.W_E, self.W_pos], dim=0)

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab_out"]:
        return self.unembed.W_U

    @property
    def b_U(self) -> Float[Tensor, "d_vocab_out"]:
        return self.unembed.b_U

    # ----- per-block parameters stacked over layers
    def _stacked(self, module: str, name: str) -> Tensor:
        return torch.stack([getattr(getattr(block, module), name) for block in self.blocks], dim=0)

    def stack(self, name: str) -> Tensor:
        """A per-block parameter stacked over layers by name: `model.stack("W_in")` is `model.W_in`."""
        if name not in STACKED:
            raise ValueError(f"unknown block parameter {name!r}; choose one of {sorted(STACKED)}")
        return getattr(self, name)

    W_Q = property(lambda self: self._stacked("attn", "W_Q"), doc="[n_layers, n_heads, d_model, d_head]")
    W_K = property(lambda self: self._stacked("attn", "W_K"), doc="[n_layers, n_heads, d_model, d_head]")
    W_V = property(lambda self: self._stacked("attn", "W_V"), doc="[n_layers, n_heads, d_model, d_head]")
    W_O = property(lambda self: self._stacked("attn", "W_O"), doc="[n_layers, n_heads, d_head, d_model]")
    b_Q = property(lambda self: self._stacked("attn", "b_Q"), doc="[n_layers, n_heads, d_head]")
    b_K = property(lambda self: self._stacked("attn", "b_K"), doc="[n_layers, n_heads, d_head]")
    b_V = property(lambda self: self._stacked("attn", "b_V"), doc="[n_layers, n_heads, d_head]")
    b_O = property(lambda self: self._stacked("attn", "b_O"), doc="[n_layers, d_model]")
    W_in = property(lambda self: self._stacked("mlp", "W_in"), doc="[n_layers, d_model, d_mlp]")
    W_out = property(lambda self: self._stacked("mlp", "W_out"), doc="[n_layers, d_mlp, d_model]")
    b_in = property(lambda self: self._stacked("mlp", "b_in"), doc="[n_layers, d_mlp]")
    b_out = property(lambda self: self._stacked("mlp", "b_out"), doc="[n_layers, d_model]")

    @property
    def W_gate(self) -> None:
        """None: the MLP is not gated (as TL 3.9 for a non-gated model)."""
        return None

    # ----- circuits
    @property
    def QK(self) -> FactoredMatrix:
        """Per-head QK circuit W_Q W_K^T as a TransformerLens FactoredMatrix, [n_layers, n_heads, d_model, d_model]."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    @property
    def OV(self) -> FactoredMatrix:
        """Per-head OV circuit W_V W_O as a TransformerLens FactoredMatrix, [n_layers, n_heads, d_model, d_model]."""
        return FactoredMatrix(self.W_V, self.W_O)

    def all_composition_scores(self, mode: str) -> Float[Tensor, "n_layers n_heads n_layers n_heads"]:
        """Q-, K- or V-composition scores of every pair of heads (Elhage et al. 2021, "A Mathematical Framework
        for Transformer Circuits"), zero unless the second head is in a later layer; as TL 3.9."""
        from transformer_lens.utilities import composition_scores

        right = {"Q": lambda: self.QK, "K": lambda: self.QK.T, "V": lambda: self.OV}.get(mode)
        if right is None:
            raise ValueError(f"mode must be one of ['Q', 'K', 'V'] not {mode}")
        scores = composition_scores(self.OV, right(), broadcast_dims=True)
        layers = torch.arange(self.cfg.n_layers, device=scores.device)
        mask = layers[:, None, None, None] < layers[None, None, :, None]
        return torch.where(mask, scores, torch.zeros_like(scores))

    def all_head_labels(self) -> list[str]:
        """["L0H0", "L0H1", ...]: every head, layer-major."""
        return [f"L{l}H{h}" for l in range(self.cfg.n_layers) for h in range(self.cfg.n_heads)]

    # ----- residual-stream helpers that ActivationCache calls
    def tokens_to_residual_directions(
        self, tokens: int | Int[Tensor, ""] | Int[Tensor, "pos"] | Int[Tensor, "batch pos"]
    ) -> Float[Tensor, "... d_model"]:
        """The unembedding column W_U[:, t] of each output token t: [d_model] for one token, else
        [..., d_model]. Strings need a tokenizer, which this model has not (pass token ids)."""
        if isinstance(tokens, Tensor) and tokens.numel() > 1:
            return torch.movedim(self.W_U[:, tokens], 0, -1)
        if isinstance(tokens, Tensor) and tokens.numel() == 1:
            tokens = tokens.item()
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise ValueError(f"tokens must be token ids (an int or an integer tensor), not {type(tokens).__name__}: "
                             "grokinterp's models have no tokenizer")
        return self.W_U[:, tokens]

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True
                         ) -> Float[Tensor, "d_model"]:
        """Sum of the output biases (b_O, and b_out unless include_mlp_biases=False) of blocks 0 .. layer-1,
        plus block `layer`'s b_O when mlp_input; layer in [0, n_layers]."""
        total = torch.zeros(self.cfg.d_model, device=self.W_E.device, dtype=self.W_E.dtype)
        for block in self.blocks[:layer]:
            total = total + block.attn.b_O
            if include_mlp_biases:
                total = total + block.mlp.b_out
        if mlp_input:
            if layer >= self.cfg.n_layers:
                raise ValueError(f"mlp_input needs a layer below n_layers={self.cfg.n_layers}, got layer={layer}")
            total = total + self.blocks[layer].attn.b_O
        return total

    def loss_fn(self, logits: Float[Tensor, "batch pos d_vocab_out"], tokens: Int[Tensor, "batch pos"],
                per_token: bool = False) -> Tensor:
        """TL's next-token cross-entropy (logits at position i predict tokens[i + 1]); for the modular-arithmetic
        loss on the final position, use `grokinterp.train`'s."""
        from transformer_lens.utilities import lm_cross_entropy_loss

        return lm_cross_entropy_loss(logits, tokens, per_token=per_token)

    # ----- weight processing on state dicts (the model itself keeps its trained weights)
    def fold_layer_norm(self, state_dict: dict[str, Tensor], fold_biases: bool = True, center_weights: bool = True
                        ) -> dict[str, Tensor]:
        """TL's LayerNorm folding of a state dict (TransformerLens' ProcessWeights, as TL 3.9 calls it). The
        result is for a LNPre model (TL's `fold_ln=True`), which grokinterp does not build: analyse it as weights."""
        from transformer_lens.weight_processing import ProcessWeights

        return ProcessWeights.fold_layer_norm(state_dict, self.cfg, fold_biases, center_weights)

    def center_writing_weights(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Subtract the d_model mean from every weight that writes to the residual (W_E, W_pos, W_O, W_out, ...)."""
        from transformer_lens.weight_processing import ProcessWeights

        return ProcessWeights.center_writing_weights(state_dict, self.cfg)

    def center_unembed(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Subtract the mean over output tokens from W_U and b_U (log-probabilities unchanged)."""
        from transformer_lens.weight_processing import ProcessWeights

        return ProcessWeights.center_unembed(state_dict)

    def fold_value_biases(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """b_O += sum over heads of b_V W_O, b_V = 0 (the forward is unchanged: patterns sum to 1)."""
        from transformer_lens.weight_processing import ProcessWeights

        return ProcessWeights.fold_value_biases(state_dict, self.cfg)

    def refactor_factored_attn_matrices(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Refactor W_Q W_K^T and W_V W_O by their SVDs (Elhage et al. 2021), biases folded; same forward."""
        from transformer_lens.weight_processing import ProcessWeights

        return ProcessWeights.refactor_factored_attn_matrices(state_dict, self.cfg)

    @property
    def n_params_total(self) -> int:
        """Every parameter's element count (embeddings, biases and LN weights included)."""
        return sum(p.numel() for p in self.parameters())

    def mps(self):
        """`model.to("mps")`, as TL 3.9's."""
        return self.to(torch.device("mps"))

    def _apply(self, fn, *args, **kwargs):
        # model.to(device or dtype), .cuda(), .double(), ...: keep cfg.device and cfg.dtype current, as TL does.
        out = super()._apply(fn, *args, **kwargs)
        if isinstance(getattr(self, "cfg", None), TLConfig):
            self.cfg.device, self.cfg.dtype = str(self.embed.W_E.device), self.embed.W_E.dtype
        return out
