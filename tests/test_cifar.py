import json

import numpy as np
import pytest
import torch

from grokinterp.runs import Run
from grokinterp.vision import (
    TEST_FILES,
    TRAIN_FILES,
    TinyViT,
    ViTConfig,
    VisionRunConfig,
    read_cifar10,
    read_cifar10_file,
    train_vision,
    write_cifar10_file,
)


def synthetic_cifar(folder, per_file=20, seed=0):
    """CIFAR-10-format files with random images; the label is written into the first pixel of each channel."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in TRAIN_FILES + TEST_FILES:
        images = rng.integers(0, 256, size=(per_file, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_file)
        images[:, :, 0, 0] = labels[:, None] * 25
        write_cifar10_file(folder / name, images, labels)
        made[name] = (images, labels)
    return made


def test_binary_records_are_label_byte_then_planar_rgb(tmp_path):
    image = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    image[0, 0, 0, 1] = 7  # red, row 0, column 1
    image[0, 2, 31, 31] = 9  # blue, last pixel
    write_cifar10_file(tmp_path / "one.bin", image, np.array([3]))
    raw = (tmp_path / "one.bin").read_bytes()
    assert len(raw) == 3073 and raw[0] == 3 and raw[1 + 1] == 7 and raw[3072] == 9
    images, labels = read_cifar10_file(tmp_path / "one.bin")
    assert images.dtype == np.uint8 and images.shape == (1, 3, 32, 32) and np.array_equal(images, image)
    assert labels.tolist() == [3]


def test_reader_returns_the_files_in_order(tmp_path):
    made = synthetic_cifar(tmp_path / "cifar-10-batches-bin")
    x, y = read_cifar10(tmp_path, "train")  # the parent of cifar-10-batches-bin works too
    assert x.shape == (100, 3, 32, 32) and y.dtype == np.int64
    assert np.array_equal(x[20:40], made["data_batch_2.bin"][0]) and np.array_equal(y[-20:], made["data_batch_5.bin"][1])
    x, y = read_cifar10(tmp_path / "cifar-10-batches-bin", "test", limit=7)
    assert np.array_equal(x, made["test_batch.bin"][0][:7]) and len(y) == 7
    x, _ = read_cifar10(tmp_path, "train", limit=30)
    assert np.array_equal(x[20:], made["data_batch_2.bin"][0][:10])


def test_missing_or_malformed_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1\.bin.*test_batch\.bin"):
        read_cifar10(tmp_path, "train")
    synthetic_cifar(tmp_path)
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing \['data_batch_3.bin'\]"):
        read_cifar10(tmp_path, "train")
    read_cifar10(tmp_path, "test")  # the test split is still there
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(ValueError, match="not a positive multiple of 3073"):
        read_cifar10(tmp_path, "test")
    (tmp_path / "test_batch.bin").write_bytes(bytes([12]) + b"\x00" * 3072)
    with pytest.raises(ValueError, match="label 12"):
        read_cifar10(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        read_cifar10(tmp_path, "val")


def test_tiny_vit_has_about_0_8m_parameters_and_tl_hooks():
    model = TinyViT(ViTConfig())
    assert 0.75e6 < sum(p.numel() for p in model.parameters()) < 0.85e6
    assert model.blocks[0].attn.W_Q.shape == (4, 128, 32)
    small = TinyViT(ViTConfig(d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    x = torch.randn(2, 3, 32, 32)
    logits, cache = small.run_with_cache(x)
    assert logits.shape == (2, 10)
    assert cache["blocks.0.attn.hook_pattern"].shape == (2, 2, 65, 65)
    assert torch.allclose(cache["blocks.0.attn.hook_pattern"].sum(-1), torch.ones(2, 2, 65))
    assert cache["blocks.0.mlp.hook_post"].shape == (2, 65, 32)
    ablated = small.run_with_hooks(x, fwd_hooks=[("blocks.0.hook_mlp_out", lambda v, hook: v * 0)])
    assert not torch.allclose(ablated, logits)
    assert small.hook_dict["blocks.0.hook_mlp_out"].fwd_hooks == []  # hooks are gone afterwards
    same_seed = TinyViT(ViTConfig(d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    assert all(torch.equal(a, b) for a, b in zip(small.state_dict().values(), same_seed.state_dict().values()))


def _vit_by_hand(sd: dict, cfg: ViTConfig, images: torch.Tensor) -> torch.Tensor:
    """A plain-torch forward of the tiny ViT from its state dict: patches (row-major, channel-major inside a
    patch) times W_patch, class token first, learned positions, pre-LN blocks with bidirectional softmax
    attention and a GELU MLP, final LN, class-token logits."""
    def ln(x, prefix):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt() * sd[prefix + ".w"] + sd[prefix + ".b"]

    batch, p = images.shape[0], cfg.patch_size
    grid = cfg.image_size // p
    patches = images.reshape(batch, cfg.channels, grid, p, grid, p).permute(0, 2, 4, 1, 3, 5).reshape(batch, grid * grid, -1)
    x = patches @ sd["embed.W_patch"] + sd["embed.b_patch"]
    x = torch.cat([sd["embed.cls_token"].expand(batch, 1, -1), x], dim=1) + sd["embed.W_pos"]
    for layer in range(cfg.n_layers):
        a = f"blocks.{layer}.attn."
        h = ln(x, f"blocks.{layer}.ln1")
        q, k, v = (torch.einsum("bpd,hde->bphe", h, sd[a + "W_" + n]) + sd[a + "b_" + n] for n in "QKV")
        pattern = torch.softmax(torch.einsum("bqhe,bkhe->bhqk", q, k) / cfg.d_head**0.5, dim=-1)
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        x = x + torch.einsum("bqhe,hed->bqd", z, sd[a + "W_O"]) + sd[a + "b_O"]
        m = f"blocks.{layer}.mlp."
        h = ln(x, f"blocks.{layer}.ln2")
        x = x + torch.nn.functional.gelu(h @ sd[m + "W_in"] + sd[m + "b_in"]) @ sd[m + "W_out"] + sd[m + "b_out"]
    return ln(x, "ln_final")[:, 0] @ sd["head.W_U"] + sd["head.b_U"]


def test_tiny_vit_forward_matches_a_hand_written_reference(generator):
    cfg = ViTConfig(image_size=8, patch_size=4, d_model=12, n_layers=2, n_heads=3, d_head=4, d_mlp=20, n_classes=5)
    model = TinyViT(cfg).double()
    with torch.no_grad():
        for param in model.parameters():  # nonzero biases and LayerNorm affines, so every term is exercised
            param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float64) * 0.5)
    images = torch.randn(4, 3, 8, 8, generator=generator, dtype=torch.float64)
    expected = _vit_by_hand({k: v for k, v in model.state_dict().items()}, cfg, images)
    torch.testing.assert_close(model(images), expected, rtol=1e-10, atol=1e-10)


def test_training_writes_an_ordinary_run_directory(tmp_path):
    synthetic_cifar(tmp_path / "data")
    config = VisionRunConfig(vit=ViTConfig(d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32), n_train=60,
                             n_test=20, batch_size=20, steps=6, eval_every=3, ckpt_every=3, lr=3e-3)
    out = train_vision(config, tmp_path / "data", tmp_path / "run", progress=False)
    assert {"config.json", "metrics.csv", "summary.json", "ckpt"} <= {p.name for p in out.iterdir()}
    stored = json.loads((out / "config.json").read_text())
    assert stored["config"]["kind"] == "vision" and VisionRunConfig.from_dict(
        {k: v for k, v in stored["config"].items() if k != "data_dir"}) == config
    assert "torch" in stored["versions"]
    run = Run(out)
    assert run.steps == [0, 3, 6]
    m = run.metrics
    assert m["step"].tolist() == list(range(7))
    assert np.isfinite(m["test_acc"][[0, 3, 6]]).all() and np.isnan(m["test_acc"][[1, 2, 4, 5]]).all()
    assert np.isfinite(m["batch_loss"][:6]).all() and (m["weight_norm_sq"] > 0).all()
    assert run.summary["status"] in ("memorized", "not_learned", "grokked") and run.summary["final_step"] == 6
    state = run.state_dict(6)
    model = TinyViT(config.vit)
    model.load_state_dict(state, strict=True)
    before = (out / "summary.json").read_text()
    assert train_vision(config, tmp_path / "data", out, progress=False) == out  # finished: returned as is
    assert (out / "summary.json").read_text() == before
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin"):
        train_vision(config, tmp_path / "nowhere", tmp_path / "run2", progress=False)
    assert not (tmp_path / "run2").exists()
