"""A TransformerLens-native transformer for modular arithmetic.

Parameter names, shapes, buffers, hook names and initialisation are those of
TransformerLens 3's `HookedTransformer` for the same config, so a state dict
saved here loads into it with `strict=True` and hook code written for it runs
unchanged. Built on `HookedRootModule` / `HookPoint`, which TransformerLens 4 keeps.

Two forwards share the weights and the hooks:
- `forward(tokens)`: every position, every hook (analyses use this).
- `forward(tokens, last_position_only=True)`: the query, MLP and unembed at the
  final position only (the loss reads nothing else). Same logits and gradients;
  hooks fire with a position axis of length 1 (keys and values keep all positions).
  For a 1-layer model keys and values come from per-token tables of d_vocab rows,
  since at layer 0 position i holds only W_E[token] + W_pos[i].

TL's optional hook points fire behind TL's switches (`model.set_use_attn_result(True)`, ...; all off by
default, and free when off), in both forwards. The rest of TL 3's `HookedTransformer` surface (`model.cfg`
as a `HookedTransformerConfig`, `model.W_Q`, `model.OV`, `accumulated_bias`, ...) is in `tl_surface`.
"""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import ActivationCache, HookedRootModule
from transformer_lens.hook_points import HookPoint

from .config import ModelConfig, RunConfig
from .tl_surface import HookedTransformerSurface, TLConfig


class Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(d_vocab, d_model))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(tokens, self.W_E)


class PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(n_ctx, d_model))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        n_pos = tokens.shape[-1]
        return einops.repeat(self.W_pos[:n_pos], "pos d_model -> batch pos d_model", batch=tokens.shape[0])


class LayerNorm(nn.Module):
    """TL's "LN": centre, divide by sqrt(mean square + eps), then affine."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale) * self.w + self.b  # TL hooks before the affine


class Attention(nn.Module):
    def __init__(self, cfg: TLConfig, n_ctx: int):
        super().__init__()
        self.cfg = cfg  # shared with the root: its switches are read at forward time
        h, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        # Registration order follows TL 3 (AbstractAttention, then Attention): it fixes the init's RNG order.
        self.W_Q = nn.Parameter(torch.empty(h, d, dh))
        self.W_O = nn.Parameter(torch.empty(h, dh, d))
        self.b_Q = nn.Parameter(torch.zeros(h, dh))
        self.b_O = nn.Parameter(torch.zeros(d))
        # TL 3.9 keeps `mask` as an empty buffer and builds the causal mask at forward time.
        self.register_buffer("mask", torch.empty((0, 0), dtype=torch.bool))
        self.register_buffer("IGNORE", torch.tensor(-torch.inf))
        self.attn_scale = math.sqrt(dh)
        self.hook_k = HookPoint()  # [batch, k_pos, n_heads, d_head]
        self.hook_q = HookPoint()  # [batch, q_pos, n_heads, d_head]
        self.hook_v = HookPoint()  # [batch, k_pos, n_heads, d_head]
        self.hook_z = HookPoint()  # [batch, q_pos, n_heads, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, n_heads, q_pos, k_pos]
        self.hook_pattern = HookPoint()  # [batch, n_heads, q_pos, k_pos]
        self.hook_result = HookPoint()  # [batch, q_pos, n_heads, d_model] (fires with cfg.use_attn_result)
        self.W_K = nn.Parameter(torch.empty(h, d, dh))
        self.W_V = nn.Parameter(torch.empty(h, d, dh))
        self.b_K = nn.Parameter(torch.zeros(h, dh))
        self.b_V = nn.Parameter(torch.zeros(h, dh))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Older TL 3 checkpoints saved an [n_ctx, n_ctx] mask; like TL 3.9, keep our own buffer.
        key = prefix + "mask"
        if key in state_dict and state_dict[key].shape != self.mask.shape:
            state_dict[key] = self.mask
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @staticmethod
    def project(x: Float[Tensor, "... d_model"], W: Tensor, b: Tensor, per_head: bool = False
                ) -> Float[Tensor, "... n_heads d_head"]:
        """x W + b for every head; with per_head, x is [..., n_heads, d_model] (each head its own input)."""
        return torch.einsum("...hm,hmd->...hd" if per_head else "...m,hmd->...hd", x, W) + b

    def attend(
        self,
        q: Float[Tensor, "batch q_pos n_heads d_head"],
        k: Float[Tensor, "batch k_pos n_heads d_head"],
        v: Float[Tensor, "batch k_pos n_heads d_head"],
    ) -> Float[Tensor, "batch q_pos d_model"]:
        """Causal attention of queries at the last q_pos positions over all k_pos positions."""
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        q_pos, k_pos = q.shape[1], k.shape[1]
        if q_pos == 1:  # one query: a broadcast product beats many tiny matmuls on CPU
            scores = einops.rearrange((q * k).sum(-1), "b k h -> b h 1 k") / self.attn_scale
        else:
            scores = einops.einsum(q, k, "b q h d, b k h d -> b h q k") / self.attn_scale
        causal = torch.ones(k_pos, k_pos, dtype=torch.bool, device=scores.device).tril()[k_pos - q_pos :]
        scores = torch.where(causal, scores, self.IGNORE)
        pattern = self.hook_pattern(F.softmax(self.hook_attn_scores(scores), dim=-1))
        if q_pos == 1:
            z = (einops.rearrange(pattern, "b h 1 k -> b k h 1") * v).sum(1, keepdim=True)
        else:
            z = einops.einsum(pattern, v, "b h q k, b k h d -> b q h d")
        z = self.hook_z(z)
        if self.cfg.use_attn_result:  # each head's output z W_O, then their sum; TL's order of operations
            # [batch, q_pos, n_heads, d_head, d_model], summed over d_head
            per_head = einops.rearrange(z, "b q h d -> b q h d 1") * self.W_O
            result = self.hook_result(per_head.sum(-2))
            return result.sum(-2) + self.b_O
        W_O = einops.rearrange(self.W_O, "h d m -> (h d) m")
        return einops.rearrange(z, "b q h d -> b q (h d)") @ W_O + self.b_O

    def forward(
        self,
        query_input: Float[Tensor, "batch q_pos d_model"],
        key_input: Float[Tensor, "batch k_pos d_model"],
        value_input: Tensor | None = None,
        per_head: bool = False,
    ) -> Float[Tensor, "batch q_pos d_model"]:
        """Inputs [batch, pos, d_model], or [batch, pos, n_heads, d_model] with per_head; value_input
        defaults to key_input."""
        value_input = key_input if value_input is None else value_input
        q = self.project(query_input, self.W_Q, self.b_Q, per_head)
        k = self.project(key_input, self.W_K, self.b_K, per_head)
        v = self.project(value_input, self.W_V, self.b_V, per_head)
        return self.attend(q, k, v)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act_fn = F.relu if cfg.act_fn == "relu" else F.gelu  # TL's "gelu" is the exact erf GELU
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        post = self.hook_post(self.act_fn(pre))
        return post @ self.W_out + self.b_out


class TransformerBlock(nn.Module):
    def __init__(self, cfg: TLConfig, n_ctx: int):
        super().__init__()
        self.cfg = cfg  # shared with the root: its switches are read at forward time
        norm = (lambda: LayerNorm(cfg.d_model)) if cfg.normalization_type == "LN" else nn.Identity
        self.ln1 = norm()
        self.ln2 = norm()
        self.attn = Attention(cfg, n_ctx)
        self.mlp = MLP(cfg)
        self.hook_attn_in = HookPoint()  # [batch, pos, n_heads, d_model] (fires with cfg.use_attn_in)
        self.hook_q_input = HookPoint()  # [batch, pos, n_heads, d_model] (these three: cfg.use_split_qkv_input)
        self.hook_k_input = HookPoint()  # [batch, pos, n_heads, d_model]
        self.hook_v_input = HookPoint()  # [batch, pos, n_heads, d_model]
        self.hook_mlp_in = HookPoint()  # [batch, pos, d_model] (fires with cfg.use_hook_mlp_in)
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_mid = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def finish(self, resid_pre: Tensor, attn_out: Tensor) -> Tensor:
        """Everything after attention: residual, MLP, residual."""
        resid_mid = self.hook_resid_mid(resid_pre + self.hook_attn_out(attn_out))
        mlp_in = self.hook_mlp_in(resid_mid.clone()) if self.cfg.use_hook_mlp_in else resid_mid
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(mlp_in)))
        return self.hook_resid_post(resid_mid + mlp_out)

    def forward(self, resid_pre: Float[Tensor, "batch pos d_model"], last_position_only: bool = False) -> Tensor:
        resid_pre = self.hook_resid_pre(resid_pre)
        if self.cfg.use_attn_in or self.cfg.use_split_qkv_input:
            attn_out = self.attend_per_head(resid_pre, last_position_only)
        else:
            normed = self.ln1(resid_pre)
            query_input = normed[:, -1:] if last_position_only else normed
            attn_out = self.attn(query_input, normed)
        return self.finish(resid_pre[:, -1:] if last_position_only else resid_pre, attn_out)

    def attend_per_head(self, resid_pre: Float[Tensor, "batch pos d_model"], last_position_only: bool) -> Tensor:
        """TL's use_attn_in / use_split_qkv_input: each head reads its own copy of the residual, hooked
        [batch, pos, n_heads, d_model] (the query side at the final position only with last_position_only)."""
        def per_head(x: Tensor) -> Tensor:  # a copy, so a hook may edit one head's input in place
            return einops.repeat(x, "b p m -> b p h m", h=self.cfg.n_heads).clone()

        if self.cfg.use_attn_in:
            query_input = key_input = value_input = self.hook_attn_in(per_head(resid_pre))
        if self.cfg.use_split_qkv_input:  # takes precedence over use_attn_in, as in TL
            query_input = self.hook_q_input(per_head(resid_pre[:, -1:] if last_position_only else resid_pre))
            key_input = self.hook_k_input(per_head(resid_pre))
            value_input = self.hook_v_input(per_head(resid_pre))
        elif last_position_only:
            query_input = query_input[:, -1:]
        return self.attn(self.ln1(query_input), self.ln1(key_input), self.ln1(value_input), per_head=True)


class Unembed(nn.Module):
    def __init__(self, d_model: int, d_vocab_out: int):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(d_model, d_vocab_out))
        self.b_U = nn.Parameter(torch.zeros(d_vocab_out))
        self.hook_in = HookPoint()  # [batch, pos, d_model]
        self.hook_out = HookPoint()  # [batch, pos, d_vocab_out]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab_out"]:
        return self.hook_out(self.hook_in(x) @ self.W_U + self.b_U)


class Transformer(HookedTransformerSurface, HookedRootModule):
    """HookedTransformer-compatible model. Input tokens [batch, pos]; output logits [batch, pos, d_vocab_out].

    `model.model_config` is the `ModelConfig` it was built from; `model.cfg` is TL's view of it (`TLConfig`:
    every `HookedTransformerConfig` field, and TL's switches).

    Args:
        cfg: architecture, init and which biases train (a `TLConfig` is read as its `model_config`).
        d_vocab: input vocabulary (p + 1: residues and '=').
        d_vocab_out: output vocabulary (p).
        n_ctx: context length (3: a, b, =).
    """

    def __init__(self, cfg: ModelConfig, d_vocab: int, d_vocab_out: int, n_ctx: int = 3):
        super().__init__()
        cfg = cfg.model_config if isinstance(cfg, TLConfig) else cfg
        self.model_config, self.d_vocab, self.d_vocab_out, self.n_ctx = cfg, d_vocab, d_vocab_out, n_ctx
        self.cfg = TLConfig(cfg, d_vocab, d_vocab_out, n_ctx)
        self.embed = Embed(d_vocab, cfg.d_model)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.pos_embed = PosEmbed(n_ctx, cfg.d_model)
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        self.blocks = nn.ModuleList([TransformerBlock(self.cfg, n_ctx) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg.d_model) if cfg.normalization_type == "LN" else nn.Identity()
        self.unembed = Unembed(cfg.d_model, d_vocab_out)
        self.init_weights()
        self.setup()

    def init_weights(self) -> None:
        """Initialise from `cfg.seed`; biases zero, LN weights one.

        - "tl": TL 3's gpt2 init: every W_ ~ N(0, 0.8/sqrt(d_model)), drawn in named_parameters order
          (bit-identical to TL 3.9's HookedTransformer for the same seed).
        - "nanda": Nanda et al.'s original code (progress-measures paper): W_ ~ N(0, 1/d_model), W_U ~
          N(0, 1/d_vocab_out), drawn in their module order and their shapes (W_E [d_model, d_vocab],
          W_K/W_Q/W_V [heads, d_head, d_model], W_O [d_model, heads*d_head], W_in [d_mlp, d_model],
          W_out [d_model, d_mlp]) and transposed into TL's layout, so the same seed gives their weights.
        """
        generator = torch.Generator().manual_seed(self.cfg.seed)
        with torch.no_grad():
            if self.cfg.init == "tl":
                std = 0.8 / math.sqrt(self.cfg.d_model)
                for name, param in self.named_parameters():
                    if "W_" in name:
                        param.copy_(torch.randn(param.shape, generator=generator) * std)
            else:
                for param, value in self._nanda_init_draws(generator):
                    param.copy_(value)
        trained = {"all": ("b_",), "mlp": ("mlp.b_",), "none": ()}[self.cfg.train_biases]
        for name, param in self.named_parameters():
            is_bias = name.rsplit(".", 1)[-1].startswith("b_")
            if is_bias and not any(t in name for t in trained):
                param.requires_grad_(False)

    def _nanda_init_draws(self, generator: torch.Generator):
        """(parameter, value) pairs in the order Nanda et al.'s modules draw them."""
        d_model, scale = self.cfg.d_model, 1 / math.sqrt(self.cfg.d_model)

        def randn(*shape: int) -> Tensor:
            return torch.randn(shape, generator=generator)

        yield self.embed.W_E, randn(d_model, self.d_vocab).T * scale
        yield self.pos_embed.W_pos, randn(self.n_ctx, d_model) * scale
        for block in self.blocks:
            attn, (h, d_head) = block.attn, block.attn.W_Q.shape[::2]
            for W in (attn.W_K, attn.W_Q, attn.W_V):  # their order: K, Q, V, O
                yield W, randn(h, d_head, d_model).transpose(1, 2) * scale
            yield attn.W_O, einops.rearrange(randn(d_model, h * d_head), "m (h d) -> h d m", h=h) * scale
            yield block.mlp.W_in, randn(self.cfg.d_mlp, d_model).T * scale
            yield block.mlp.W_out, randn(d_model, self.cfg.d_mlp).T * scale
        yield self.unembed.W_U, randn(d_model, self.d_vocab_out) / math.sqrt(self.d_vocab_out)

    def forward(
        self, tokens: Int[Tensor, "batch pos"], last_position_only: bool = False
    ) -> Float[Tensor, "batch pos d_vocab_out"]:
        """Logits for every position, or for the final one only ([batch, 1, d_vocab_out])."""
        per_example_attn_input = self.cfg.use_split_qkv_input or self.cfg.use_attn_in  # no token tables then
        if last_position_only and len(self.blocks) == 1 and not per_example_attn_input:
            resid = self._last_position_single_layer(tokens)
        else:
            resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
            for i, block in enumerate(self.blocks):
                resid = block(resid, last_position_only=last_position_only and i == len(self.blocks) - 1)
        return self.unembed(self.ln_final(resid))

    def _last_position_single_layer(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch 1 d_model"]:
        """Layer 0 at the final position: q, k, v gathered from per-(position, token) tables."""
        block, attn = self.blocks[0], self.blocks[0].attn
        n_pos = tokens.shape[1]
        table = self.embed.W_E[None] + self.pos_embed.W_pos[:n_pos, None]  # [pos, d_vocab, d_model]
        normed_table = block.ln1(table)
        # Row index of (position i, token t) in the flattened tables; F.embedding has a fast backward.
        rows = tokens + self.d_vocab * torch.arange(n_pos, device=tokens.device)

        def gather(W: Tensor, b: Tensor, table: Tensor, index: Tensor) -> Tensor:
            projected = attn.project(table, W, b)  # [..., d_vocab, n_heads, d_head]
            flat = einops.rearrange(projected, "... t h d -> (... t) (h d)")
            return einops.rearrange(F.embedding(index, flat), "b p (h d) -> b p h d", h=attn.W_Q.shape[0])

        k = gather(attn.W_K, attn.b_K, normed_table, rows)  # [batch, pos, n_heads, d_head]
        v = gather(attn.W_V, attn.b_V, normed_table, rows)
        q = gather(attn.W_Q, attn.b_Q, normed_table[-1], tokens[:, -1:])  # [batch, 1, n_heads, d_head]
        embed = self.hook_embed(F.embedding(tokens[:, -1:], self.embed.W_E))
        pos_embed = self.hook_pos_embed(self.pos_embed.W_pos[n_pos - 1 : n_pos].expand(len(tokens), 1, -1))
        resid_pre = block.hook_resid_pre(embed + pos_embed)
        return block.finish(resid_pre, attn.attend(q, k, v))

    def run_with_cache(self, *args, return_cache_object: bool = True, remove_batch_dim: bool = False, **kwargs):
        """As HookedTransformer.run_with_cache: (logits, ActivationCache), or a plain dict on request."""
        out, cache = super().run_with_cache(*args, remove_batch_dim=remove_batch_dim, **kwargs)
        if return_cache_object:
            cache = ActivationCache(cache, self, has_batch_dim=not remove_batch_dim)
        return out, cache


def build_model(config: RunConfig) -> Transformer:
    """The (freshly initialised) Transformer that a run's config describes: its model section, with the
    vocabulary sizes of its task (`d_vocab = p + 1` for the `=` token, `d_vocab_out = p`)."""
    return Transformer(config.model, d_vocab=config.task.d_vocab, d_vocab_out=config.task.d_vocab_out)
