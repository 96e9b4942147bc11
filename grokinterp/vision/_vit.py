"""A tiny Vision Transformer (about 0.8M parameters) with TransformerLens hook points.

The Grokking Dynamics write-up's control: a 0.8M-parameter ViT on 5,000 CIFAR-10 images shows neither grokking nor oscillation.
Pre-LayerNorm blocks with TL-style names and shapes (`blocks.0.attn.W_Q` is [n_heads, d_model, d_head],
`blocks.0.mlp.hook_post` is [batch, pos, d_mlp]); position 0 is a learned class token, positions
1..n_patches the 4x4 patches in row-major order. Attention is bidirectional.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from ..config import ModelConfig
from ..model import MLP, LayerNorm


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of the tiny ViT; the defaults have about 0.81M parameters."""

    image_size: int = 32
    patch_size: int = 4
    channels: int = 3
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    n_classes: int = 10
    seed: int = 0  # init seed

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}")
        for name in ("patch_size", "d_model", "n_layers", "n_heads", "d_head", "d_mlp", "n_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"vit.{name}={getattr(self, name)} must be a positive integer")

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def n_ctx(self) -> int:
        return self.n_patches + 1  # class token first

    @property
    def d_patch(self) -> int:
        return self.channels * self.patch_size**2

    def to_dict(self) -> dict:
        return asdict(self)

    def block_config(self) -> ModelConfig:
        """The arithmetic model's config for the parts the ViT shares with it (LayerNorm, the GELU MLP)."""
        return ModelConfig(n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads, d_head=self.d_head,
                           d_mlp=self.d_mlp, act_fn="gelu", normalization_type="LN")


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.W_patch = nn.Parameter(torch.empty(cfg.d_patch, cfg.d_model))
        self.b_patch = nn.Parameter(torch.zeros(cfg.d_model))
        self.cls_token = nn.Parameter(torch.empty(cfg.d_model))
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))

    def forward(self, images: Float[Tensor, "batch channel height width"]) -> Float[Tensor, "batch pos d_model"]:
        patches = einops.rearrange(images, "batch c (h ph) (w pw) -> batch (h w) (c ph pw)",
                                   ph=self.patch_size, pw=self.patch_size)
        x = patches @ self.W_patch + self.b_patch
        cls = einops.repeat(self.cls_token, "d_model -> batch 1 d_model", batch=x.shape[0])
        return torch.cat([cls, x], dim=1) + self.W_pos


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        h, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q, self.W_K, self.W_V = (nn.Parameter(torch.empty(h, d, dh)) for _ in range(3))
        self.W_O = nn.Parameter(torch.empty(h, dh, d))
        self.b_Q, self.b_K, self.b_V = (nn.Parameter(torch.zeros(h, dh)) for _ in range(3))
        self.b_O = nn.Parameter(torch.zeros(d))
        self.attn_scale = math.sqrt(dh)
        self.hook_q = HookPoint()  # [batch, pos, n_heads, d_head]
        self.hook_k = HookPoint()  # [batch, pos, n_heads, d_head]
        self.hook_v = HookPoint()  # [batch, pos, n_heads, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, n_heads, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, n_heads, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, n_heads, d_head]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        proj = lambda W, b: einops.einsum(x, W, "batch pos d_model, n_heads d_model d_head -> batch pos n_heads d_head") + b  # noqa: E731
        q = self.hook_q(proj(self.W_Q, self.b_Q))
        k = self.hook_k(proj(self.W_K, self.b_K))
        v = self.hook_v(proj(self.W_V, self.b_V))
        scores = einops.einsum(q, k, "batch q n_heads d_head, batch k n_heads d_head -> batch n_heads q k")
        pattern = self.hook_pattern(F.softmax(self.hook_attn_scores(scores / self.attn_scale), dim=-1))
        z = self.hook_z(einops.einsum(pattern, v, "batch n_heads q k, batch k n_heads d_head -> batch q n_heads d_head"))
        return einops.einsum(z, self.W_O, "batch pos n_heads d_head, n_heads d_head d_model -> batch pos d_model") + self.b_O


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.ln1 = LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.block_config())  # the arithmetic model's MLP: same names, hooks and GELU
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_mid = HookPoint()  # [batch, pos, d_model]
        self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(self.ln1(x))))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln2(x))))


class Head(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.n_classes))
        self.b_U = nn.Parameter(torch.zeros(cfg.n_classes))

    def forward(self, x: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch n_classes"]:
        return x @ self.W_U + self.b_U


class TinyViT(HookedRootModule):
    """Images [batch, 3, 32, 32] (float, normalized) -> class logits [batch, n_classes], read at the class token.

    >>> model = TinyViT(ViTConfig())
    >>> sum(p.numel() for p in model.parameters())
    809354
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = PatchEmbed(cfg)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg.d_model)
        self.head = Head(cfg)
        self.init_weights()
        self.setup()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Truncation-free ViT init: weights N(0, 0.02^2) from the config's seed, biases 0, LayerNorm 1/0."""
        generator = torch.Generator().manual_seed(self.cfg.seed)
        for name, param in self.named_parameters():
            if name.endswith((".w",)):
                param.fill_(1.0)
            elif name.split(".")[-1].startswith("b_") or name.endswith(".b"):
                param.zero_()
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)

    def forward(self, images: Float[Tensor, "batch channel height width"]) -> Float[Tensor, "batch n_classes"]:
        x = self.hook_embed(self.embed(images))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_final(x)[:, 0])
