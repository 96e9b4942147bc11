import math

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import ActivationCache

from grokinterp.config import ModelConfig, TaskConfig
from grokinterp.model import Transformer
from grokinterp.tasks import make_task

P = 23


def make_model(dtype=torch.float32, **kw):
    cfg = ModelConfig(**{"d_model": 32, "n_heads": 4, "d_head": 8, "d_mlp": 64, "seed": 1, **kw})
    model = Transformer(cfg, d_vocab=P + 1, d_vocab_out=P).to(dtype)
    with torch.no_grad():  # nonzero biases and LN weights so every term is exercised
        gen = torch.Generator().manual_seed(2)
        for name, param in model.named_parameters():
            if not name.endswith(".W_E") and "W_" not in name:
                param.add_(0.3 * torch.randn(param.shape, generator=gen, dtype=dtype))
    return model


def grads(model, logits, labels):
    loss = F.cross_entropy(logits, labels)
    return torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("norm, act", [(None, "relu"), ("LN", "gelu")])
def test_last_position_forward_matches_full_forward(dtype, tol, n_layers, norm, act):
    model = make_model(dtype, n_layers=n_layers, normalization_type=norm, act_fn=act)
    task = make_task(TaskConfig(p=P, frac_train=0.5))
    full = model(task.train_tokens)[:, -1]
    fast = model(task.train_tokens, last_position_only=True)
    assert fast.shape == (len(task.train_idx), 1, P)
    torch.testing.assert_close(fast[:, -1], full, atol=tol, rtol=tol)
    for g_fast, g_full in zip(grads(model, fast[:, -1], task.train_labels), grads(model, full, task.train_labels)):
        torch.testing.assert_close(g_fast, g_full, atol=tol, rtol=tol)


def test_fast_path_fires_hooks_with_a_position_axis_of_length_one():
    model = make_model()
    tokens = make_task(TaskConfig(p=P)).tokens[:10]
    seen = {}
    hooks = [(name, lambda x, hook: seen.__setitem__(hook.name, x.shape)) for name in
             ("hook_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k",
              "blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_post", "blocks.0.hook_resid_post")]
    model.run_with_hooks(tokens, last_position_only=True, fwd_hooks=hooks)
    assert seen["hook_embed"] == (10, 1, 32) and seen["blocks.0.mlp.hook_post"] == (10, 1, 64)
    assert seen["blocks.0.attn.hook_q"] == (10, 1, 4, 8) and seen["blocks.0.attn.hook_k"] == (10, 3, 4, 8)
    assert seen["blocks.0.attn.hook_pattern"] == (10, 4, 1, 3)


def test_patching_a_hook_in_the_fast_path_changes_the_output_like_the_full_path():
    model = make_model()
    tokens = make_task(TaskConfig(p=P)).tokens[:20]

    def zero_neuron(x, hook):
        return x * (torch.arange(x.shape[-1]) % 2)  # knock out every even neuron

    full = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.mlp.hook_post", zero_neuron)])[:, -1]
    fast = model.run_with_hooks(tokens, last_position_only=True, fwd_hooks=[("blocks.0.mlp.hook_post", zero_neuron)])
    torch.testing.assert_close(fast[:, -1], full, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(full, model(tokens)[:, -1])


def test_run_with_cache_returns_an_activation_cache_and_hooks_are_removed():
    model = make_model()
    tokens = make_task(TaskConfig(p=P)).tokens[:7]
    logits, cache = model.run_with_cache(tokens)
    assert isinstance(cache, ActivationCache)
    post = cache["blocks.0.mlp.hook_post"]
    manual = F.relu(cache["blocks.0.hook_resid_mid"] @ model.blocks[0].mlp.W_in + model.blocks[0].mlp.b_in)
    torch.testing.assert_close(post, manual)
    torch.testing.assert_close(cache["unembed.hook_out"], logits)
    assert not any(h._forward_hooks for h in model.hook_dict.values())


def test_hooks_context_removes_hooks_even_on_error():
    model = make_model()
    tokens = make_task(TaskConfig(p=P)).tokens[:3]
    with pytest.raises(RuntimeError):
        with model.hooks(fwd_hooks=[("blocks.0.hook_mlp_out", lambda x, hook: x * 0)]):
            raise RuntimeError("boom")
    assert not any(h._forward_hooks for h in model.hook_dict.values())
    assert torch.equal(model(tokens), model(tokens))


def test_nanda_init_and_frozen_biases():
    cfg = ModelConfig(init="nanda", train_biases="mlp")
    model = Transformer(cfg, d_vocab=114, d_vocab_out=113)
    assert abs(model.embed.W_E.std().item() - 1 / math.sqrt(128)) < 0.003
    assert abs(model.unembed.W_U.std().item() - 1 / math.sqrt(113)) < 0.005
    assert abs(model.blocks[0].mlp.W_in.std().item() - 1 / math.sqrt(128)) < 0.002
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and ".b_" in n}
    assert trainable == {"blocks.0.mlp.b_in", "blocks.0.mlp.b_out"}
    assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if ".b_" in n)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b = Transformer(ModelConfig(seed=5), 24, 23), Transformer(ModelConfig(seed=5), 24, 23)
    c = Transformer(ModelConfig(seed=6), 24, 23)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.embed.W_E, c.embed.W_E)


def test_nanda_init_draws_nanda_et_al_shapes_in_their_order():
    """Same seed, same weights as Nanda et al.'s modules (their shapes and order), moved into TL's layout."""
    cfg = ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, init="nanda", seed=7)
    model = Transformer(cfg, d_vocab=14, d_vocab_out=13)
    g = torch.Generator().manual_seed(7)
    s = 1 / math.sqrt(16)
    W_E, W_pos = torch.randn(16, 14, generator=g) * s, torch.randn(3, 16, generator=g) * s
    assert torch.equal(model.embed.W_E, W_E.T) and torch.equal(model.pos_embed.W_pos, W_pos)
    for block in model.blocks:
        W_K, W_Q, W_V = (torch.randn(2, 8, 16, generator=g) * s for _ in range(3))
        W_O = torch.randn(16, 16, generator=g) * s
        W_in, W_out = torch.randn(32, 16, generator=g) * s, torch.randn(16, 32, generator=g) * s
        x = torch.randn(5, 16)
        z = torch.randn(5, 2, 8)  # per-head outputs, flattened (head, d_head) as in their W_O
        assert torch.equal(block.attn.W_Q, W_Q.transpose(1, 2)) and torch.equal(block.attn.W_K, W_K.transpose(1, 2))
        assert torch.equal(block.attn.W_V, W_V.transpose(1, 2))
        assert torch.allclose(torch.einsum("bhd,hdm->bm", z, block.attn.W_O), z.reshape(5, 16) @ W_O.T, atol=1e-6)
        assert torch.allclose(x @ block.mlp.W_in, x @ W_in.T) and torch.equal(block.mlp.W_out, W_out.T)
    assert torch.equal(model.unembed.W_U, torch.randn(16, 13, generator=g) / math.sqrt(13))
