"""Importers: synthetic files in exactly the structures of Nanda et al.'s full-run file and of the TL
Grokking_Demo's saved file become run directories that replay; imported logits equal a forward of the
original weights; bad shapes are named; classes other than the allowed config record are refused."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import einops
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from grokinterp.analysis import replay
from grokinterp.analysis.fourier import checkpoint_spectra
from grokinterp.cli import main
from grokinterp.config import ModelConfig
from grokinterp.importers import ImportFormatError, import_nanda, import_tl_demo, load_torch_file
from grokinterp.model import Transformer
from grokinterp.runs import Run
from grokinterp.tasks import make_split

from conftest import tl3_python  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
P, D_MODEL, N_HEADS, D_MLP = 13, 16, 4, 32
SUMMARY_KEYS = {"status", "memorization_step", "grokking_step", "gap", "stable_grokking_step",
                "generalizes_without_memorizing", "diverged_step", "final_step", "final_train_acc", "final_test_acc",
                "wall_time_s", "steps_per_s"}


# ----------------------------------------------------------------------------- Nanda et al.'s layout


def nanda_snapshot(seed: int, p=P, d_model=D_MODEL, n_heads=N_HEADS, d_mlp=D_MLP) -> dict[str, torch.Tensor]:
    """Random weights in their layout (their transformers.py), plus their attention mask buffer."""
    g = torch.Generator().manual_seed(seed)
    d_head = d_model // n_heads

    def randn(*shape):
        return torch.randn(shape, generator=g) / math.sqrt(shape[-1])

    return {
        "embed.W_E": randn(d_model, p + 1), "pos_embed.W_pos": randn(3, d_model),
        "blocks.0.attn.W_K": randn(n_heads, d_head, d_model), "blocks.0.attn.W_Q": randn(n_heads, d_head, d_model),
        "blocks.0.attn.W_V": randn(n_heads, d_head, d_model), "blocks.0.attn.W_O": randn(d_model, n_heads * d_head),
        "blocks.0.attn.mask": torch.tril(torch.ones(3, 3)),
        "blocks.0.mlp.W_in": randn(d_mlp, d_model), "blocks.0.mlp.b_in": 0.1 * randn(d_mlp),
        "blocks.0.mlp.W_out": randn(d_model, d_mlp), "blocks.0.mlp.b_out": 0.1 * randn(d_model),
        "unembed.W_U": randn(d_model, p + 1),
    }


def nanda_forward(sd: dict[str, torch.Tensor], tokens: torch.Tensor, n_heads=N_HEADS) -> torch.Tensor:
    """Their model's forward, written out by hand in their layout: logits [batch, pos, p + 1]."""
    x = sd["embed.W_E"][:, tokens].permute(1, 2, 0) + sd["pos_embed.W_pos"][: tokens.shape[1]]
    d_head = sd["blocks.0.attn.W_K"].shape[1]
    k, q, v = (torch.einsum("ihd,bpd->biph", sd[f"blocks.0.attn.W_{n}"], x) for n in "KQV")
    scores = torch.einsum("biph,biqh->biqp", k, q) / math.sqrt(d_head)
    n = tokens.shape[1]
    scores = torch.tril(scores) - 1e10 * (1 - torch.tril(torch.ones(n, n)))
    z = torch.einsum("biph,biqp->biqh", v, F.softmax(scores, dim=-1))
    x = x + torch.einsum("df,bqf->bqd", sd["blocks.0.attn.W_O"], einops.rearrange(z, "b i q h -> b q (i h)"))
    post = F.relu(torch.einsum("md,bpd->bpm", sd["blocks.0.mlp.W_in"], x) + sd["blocks.0.mlp.b_in"])
    x = x + torch.einsum("dm,bpm->bpd", sd["blocks.0.mlp.W_out"], post) + sd["blocks.0.mlp.b_out"]
    return x @ sd["unembed.W_U"]


NANDA_CONFIG = {"lr": 1e-3, "weight_decay": 1.0, "p": P, "d_model": D_MODEL, "fn_name": "add", "frac_train": 0.3,
                "num_epochs": 250, "save_every": 100, "stopping_thresh": -1, "seed": 3, "num_layers": 1,
                "batch_style": "full", "d_vocab": P + 1, "n_ctx": 3, "d_mlp": D_MLP, "num_heads": N_HEADS,
                "act_type": "ReLU", "use_ln": False, "take_metrics_every_n_epochs": 1000}


def write_nanda_file(path: Path, snapshots=None, config=NANDA_CONFIG, epochs=(0, 100, 200), **extra) -> dict:
    data = {
        "state_dicts": snapshots if snapshots is not None else [nanda_snapshot(i) for i in range(len(epochs))],
        "epochs": list(epochs),
        "train_losses": [2.6 * math.exp(-e / 60) for e in range(250)],
        "test_losses": [2.6 + e / 100 for e in range(250)],
        "config": config,
        **extra,
    }
    torch.save(data, path)
    return data


def test_nanda_file_imports_replays_and_keeps_the_weights(tmp_path):
    final = nanda_snapshot(9)
    data = write_nanda_file(tmp_path / "full_run_data.pth", model=final, epoch=250)
    run = import_nanda(tmp_path / "full_run_data.pth", tmp_path / "run", progress=False)
    config = run.config
    assert run.steps == [0, 100, 200, 250]  # the final 'model' after 'epoch' epochs closes the series
    assert (config.task.p, config.task.op, config.task.shuffle, config.task.seed) == (P, "add", "python", 3)
    assert (config.model.d_model, config.model.d_head, config.model.d_mlp, config.model.train_biases) == (16, 4, 32, "mlp")
    # Their split: random.seed(seed); random.shuffle(pairs); the first floor(0.3 p^2) train.
    train_idx, test_idx = make_split(P * P, 0.3, 3, "python")
    assert torch.equal(run.task.train_idx, train_idx) and torch.equal(run.task.test_idx, test_idx)

    tokens = run.task.tokens
    for step, snapshot in zip(run.steps, data["state_dicts"] + [final]):
        expected = nanda_forward(snapshot, tokens)[..., :P]  # their '=' output column dropped
        with torch.no_grad():
            torch.testing.assert_close(run.model(step)(tokens), expected, rtol=1e-5, atol=1e-5)
            # The measured accuracy is the hand forward's at the final position.
            labels = run.task.labels
            acc = (expected[:, -1].argmax(-1) == labels)[run.task.test_idx].double().mean().item()
        assert run.metrics["test_acc"][step] == pytest.approx(acc, abs=1e-6)

    metrics = run.metrics
    assert metrics["step"].tolist() == list(range(251))
    assert metrics["train_loss"][:250].tolist() == data["train_losses"]  # exactly as the file has them
    assert metrics["test_loss"][:250].tolist() == data["test_losses"]
    assert np.isnan(metrics["train_loss"][250]) and not np.isnan(metrics["test_acc"][250])
    assert np.isnan(metrics["train_acc"][1]) and not np.isnan(metrics["weight_norm_sq"][100])
    summary = run.summary
    assert SUMMARY_KEYS <= set(summary) and summary["final_step"] == 250 and summary["milestone_resolution"] == 100
    assert summary["source"]["importer"] == "nanda" and summary["source"]["assumed"] == {}

    result = replay(run, progress=False)
    assert list(result.steps) == run.steps
    for i, step in enumerate(run.steps):
        direct = checkpoint_spectra(run.model(step), run.task)
        np.testing.assert_allclose(result["spectra"]["embed_freq_norm"][i], direct["embed_freq_norm"], rtol=1e-6)
    assert np.isfinite(result["progress"]["restricted_loss"]).all()


def test_nanda_file_without_config_reads_the_architecture_from_the_shapes(tmp_path):
    write_nanda_file(tmp_path / "f.pth", config=None)
    data = torch.load(tmp_path / "f.pth", weights_only=True)
    del data["config"], data["epochs"]
    torch.save(data, tmp_path / "f.pth")
    run = import_nanda(tmp_path / "f.pth", tmp_path / "run", progress=False)
    assert (run.config.task.p, run.config.model.d_model, run.config.model.d_mlp) == (P, D_MODEL, D_MLP)
    assert run.steps == [0, 100, 200]  # save_every apart, their default
    assert {"p", "d_model", "d_mlp", "seed", "epochs"} <= set(run.summary["source"]["assumed"])


def test_nanda_config_saved_as_their_config_class_is_read_as_a_record(tmp_path, monkeypatch):
    """Their config may be an instance of their own frozen dataclass `Config` (module transformers.py)."""
    fields = [(k, type(v), v) for k, v in NANDA_CONFIG.items()] + [("device", torch.device, torch.device("cpu"))]
    Config = dataclasses.make_dataclass("Config", [(k, t, dataclasses.field(default=v)) for k, t, v in fields], frozen=True)
    Config.__module__ = "grokking.transformers"
    module = types.ModuleType("grokking.transformers")
    module.Config = Config
    monkeypatch.setitem(sys.modules, "grokking", types.ModuleType("grokking"))
    monkeypatch.setitem(sys.modules, "grokking.transformers", module)
    write_nanda_file(tmp_path / "f.pth", config=Config(seed=5))
    run = import_nanda(tmp_path / "f.pth", tmp_path / "run", progress=False)
    assert run.config.task.seed == 5 and run.summary["source"]["assumed"] == {}


@pytest.mark.parametrize("damage,message", [
    (lambda sd: sd.update({"blocks.0.mlp.W_in": sd["blocks.0.mlp.W_in"].T}), r"blocks\.0\.mlp\.W_in has shape \(16, 32\)"),
    (lambda sd: sd.update({"unembed.W_U": sd["unembed.W_U"][:, :P]}), r"unembed\.W_U has shape \(16, 13\).*\(16, 14\)"),
    (lambda sd: sd.pop("blocks.0.attn.W_O"), r"key blocks\.0\.attn\.W_O is missing"),
    (lambda sd: sd.update({"blocks.0.ln1.w_ln": torch.ones(D_MODEL)}), r"unexpected key\(s\) \['blocks\.0\.ln1\.w_ln'\]"),
])
def test_a_bad_nanda_state_dict_is_refused_naming_the_key(tmp_path, damage, message):
    snapshots = [nanda_snapshot(i) for i in range(3)]
    damage(snapshots[1])
    write_nanda_file(tmp_path / "f.pth", snapshots=snapshots)
    with pytest.raises(ImportFormatError, match=message) as info:
        import_nanda(tmp_path / "f.pth", tmp_path / "run", progress=False)
    assert "state_dicts[1] (epoch 100)" in str(info.value)
    assert not (tmp_path / "run" / "config.json").exists()


# ----------------------------------------------------------------------------- only data is unpickled


class Payload:
    """Unpickling this would run a shell command (what a full unpickle of an untrusted file can do)."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class SomeOtherClass:
    def __init__(self):
        self.value = 1


def test_a_file_with_any_other_class_is_refused_without_running_it(tmp_path):
    sentinel = tmp_path / "ran"
    write_nanda_file(tmp_path / "evil.pth", extra_object=Payload(sentinel))
    with pytest.raises(ImportFormatError, match=r"class (posix|os)\.system.*never unpickles"):
        import_nanda(tmp_path / "evil.pth", tmp_path / "run", progress=False)
    assert not sentinel.exists()
    torch.save({"model": {}, "config": SomeOtherClass()}, tmp_path / "other.pth")
    with pytest.raises(ImportFormatError, match=r"test_importers\.SomeOtherClass"):
        import_tl_demo(tmp_path / "other.pth", tmp_path / "run", progress=False)
    with pytest.raises(ImportFormatError, match="test_importers.SomeOtherClass"):
        load_torch_file(tmp_path / "other.pth", record_classes=["test_importers.Payload"])
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ImportFormatError, match="not a readable torch-saved file|needs code to be unpickled"):
        load_torch_file(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError):
        load_torch_file(tmp_path / "missing.pth")


# ----------------------------------------------------------------------------- the TL Grokking_Demo's file

TL3_CONFIG_MODULE = "transformer_lens.config.hooked_transformer_config"


@pytest.fixture
def fake_hooked_transformer_config(monkeypatch):
    """A class pickled under TL 3's path for HookedTransformerConfig (TL 4 has none), with TL 3's fields."""

    @dataclasses.dataclass
    class HookedTransformerConfig:
        n_layers: int
        d_model: int
        n_ctx: int
        d_head: int
        d_mlp: int
        n_heads: int
        d_vocab: int
        d_vocab_out: int
        act_fn: str
        normalization_type: str | None
        seed: int
        initializer_range: float
        dtype: torch.dtype = torch.float32
        device: str = "cpu"
        attn_only: bool = False
        positional_embedding_type: str = "standard"

    HookedTransformerConfig.__module__ = TL3_CONFIG_MODULE
    HookedTransformerConfig.__qualname__ = "HookedTransformerConfig"
    module = types.ModuleType(TL3_CONFIG_MODULE)
    module.HookedTransformerConfig = HookedTransformerConfig
    monkeypatch.setitem(sys.modules, TL3_CONFIG_MODULE, module)
    return HookedTransformerConfig


def write_demo_file(path: Path, cfg_class, n_epochs=30, every=10, p=P) -> dict:
    """The notebook's saved dict, made by grokinterp's Transformer (a TL 3 state dict, TL 3 init)."""
    cfg = cfg_class(n_layers=1, d_model=32, n_ctx=3, d_head=8, d_mlp=64, n_heads=4, d_vocab=p + 1, d_vocab_out=p,
                    act_fn="relu", normalization_type=None, seed=999, initializer_range=np.float64(0.8 / math.sqrt(32)))
    model = Transformer(ModelConfig(d_model=32, d_head=8, d_mlp=64, seed=999), p + 1, p)
    g = torch.Generator().manual_seed(0)
    checkpoints, epochs = [], []
    for epoch in range(every - 1, n_epochs, every):
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn(param.shape, generator=g))
        epochs.append(epoch)
        checkpoints.append({k: v.clone() for k, v in model.state_dict().items()})
    torch.manual_seed(598)
    indices = torch.randperm(p * p)
    cutoff = int(p * p * 0.3)
    data = {"model": model.state_dict(), "config": cfg, "checkpoints": checkpoints, "checkpoint_epochs": epochs,
            "test_losses": [3.0 - e / 100 for e in range(n_epochs)], "train_losses": [2.0 - e / 50 for e in range(n_epochs)],
            "train_indices": indices[:cutoff], "test_indices": indices[cutoff:]}
    torch.save(data, path)
    return data


def test_tl_demo_file_imports_replays_and_keeps_the_weights(tmp_path, fake_hooked_transformer_config):
    data = write_demo_file(tmp_path / "grokking_demo.pth", fake_hooked_transformer_config)
    run = import_tl_demo(tmp_path / "grokking_demo.pth", tmp_path / "run", progress=False)
    assert run.steps == [10, 20, 30]  # the checkpoint of epoch e holds the weights after its update: step e + 1
    config = run.config
    assert (config.task.p, config.task.frac_train, config.model.d_model, config.model.seed) == (P, 0.3, 32, 999)
    assert (config.model.init, config.model.train_biases, config.train.ckpt_every) == ("tl", "none", 10)
    assert torch.equal(run.task.train_idx, data["train_indices"].sort().values)
    for step, state_dict in zip(run.steps, data["checkpoints"]):
        stored = run.state_dict(step)
        assert all(torch.equal(stored[k], state_dict[k]) for k in state_dict)
    metrics = run.metrics
    assert metrics["train_loss"][:30].tolist() == data["train_losses"]  # loss of theta_e, before update e
    assert metrics["test_loss"][1:31].tolist() == data["test_losses"]  # measured after update e: theta_{e+1}
    assert np.isnan(metrics["test_loss"][0]) and np.isnan(metrics["train_loss"][30])
    assert run.summary["source"]["importer"] == "tl-demo"
    result = replay(run, progress=False)
    assert list(result.steps) == [10, 20, 30] and result["progress"]["weight_norm_sq"].shape == (3,)


def test_a_bad_tl_demo_shape_is_refused_naming_the_key(tmp_path, fake_hooked_transformer_config):
    data = write_demo_file(tmp_path / "f.pth", fake_hooked_transformer_config)
    data["checkpoints"][1]["blocks.0.attn.W_Q"] = torch.zeros(4, 8, 32)
    torch.save(data, tmp_path / "f.pth")
    message = r"checkpoint of epoch 19: blocks\.0\.attn\.W_Q has shape \(4, 8, 32\).*\(4, 32, 8\)"
    with pytest.raises(ImportFormatError, match=message):
        import_tl_demo(tmp_path / "f.pth", tmp_path / "run", progress=False)


def test_tl_demo_config_record_is_plain_data(tmp_path, fake_hooked_transformer_config):
    write_demo_file(tmp_path / "f.pth", fake_hooked_transformer_config)
    with pytest.raises(ImportFormatError, match="HookedTransformerConfig"):
        load_torch_file(tmp_path / "f.pth")  # not admitted unless asked for by name
    data = load_torch_file(tmp_path / "f.pth", record_classes=[f"{TL3_CONFIG_MODULE}.HookedTransformerConfig"])
    cfg = data["config"]
    assert type(cfg) is dict and cfg["d_model"] == 32 and cfg["dtype"] is torch.float32
    assert type(cfg["initializer_range"]) is float and cfg["initializer_range"] == 0.8 / math.sqrt(32)


def test_a_real_tl3_grokking_demo_file_imports_with_tl3s_logits(tmp_path):
    """The file made by TL 3.9 itself (its HookedTransformerConfig pickled under its real path)."""
    python = tl3_python()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(python), str(REPO / "tests" / "fixtures" / "make_tl_demo_file.py"),
                           str(tmp_path / "demo.pth"), str(tmp_path / "logits.safetensors")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = import_tl_demo(tmp_path / "demo.pth", tmp_path / "run", progress=False)
    assert run.steps == [10, 20, 30, 40]
    with torch.no_grad():
        ours = run.model()(run.task.tokens)
    torch.testing.assert_close(ours, load_file(tmp_path / "logits.safetensors")["logits"], rtol=1e-5, atol=1e-5)
    assert list(replay(run, progress=False).steps) == run.steps


# ----------------------------------------------------------------------------- the command line


def test_cli_import(tmp_path, capsys):
    write_nanda_file(tmp_path / "f.pth")
    assert main(["import", "nanda", str(tmp_path / "f.pth"), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert Run(tmp_path / "run").steps == [0, 100, 200]
    assert main(["import", "nanda", str(tmp_path / "f.pth"), "--out", str(tmp_path / "run")]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["import", "nanda", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "r2")]) == 2
    assert main(["import", "tl-demo", str(tmp_path / "f.pth"), "--out", str(tmp_path / "r3")]) == 1
    assert "not the Grokking_Demo's saved file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "other", str(tmp_path / "f.pth"), "--out", str(tmp_path / "r4")])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "--help"])
    assert exit_info.value.code == 0 and "weights_only=True" in capsys.readouterr().out


# ----------------------------------------------------------------------------- bounded inputs (issue 17)


def test_a_broadcast_view_cannot_make_the_importer_allocate(tmp_path):
    """A few-KB file whose tensor is a stride-0 view of 10^9 elements: refused before any copy of it."""
    write_nanda_file(tmp_path / "view.pth", extra_view=torch.zeros(1).expand(10**9))
    assert (tmp_path / "view.pth").stat().st_size < 100_000
    with pytest.raises(ImportFormatError, match=r"strides \(0,\).*broadcast view"):
        load_torch_file(tmp_path / "view.pth")


def test_a_file_declaring_endless_epochs_is_refused_before_rows_are_built(tmp_path):
    write_nanda_file(tmp_path / "long.pth", epochs=(0, 100, 10**12))
    with pytest.raises(ImportFormatError, match="step 1,000,000,000,000; an import holds at most 10,000,000"):
        import_nanda(tmp_path / "long.pth", tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_refusals_do_not_repeat_torchs_weights_only_advice(tmp_path, capsys):
    from grokinterp.cli import main

    write_nanda_file(tmp_path / "evil.pth", extra_object=Payload(tmp_path / "ran"))
    assert main(["import", "nanda", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "weights_only=False" not in err and len(err.strip().splitlines()) == 1 and "evil.pth" in err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "run").exists()


def test_layer_indices_of_a_state_dict_are_bounded_by_its_keys():
    from grokinterp.bridge import architecture_from_state_dict

    sd = {"embed.W_E": torch.zeros(P + 1, D_MODEL), "pos_embed.W_pos": torch.zeros(3, D_MODEL),
          "unembed.W_U": torch.zeros(D_MODEL, P), "blocks.0.attn.W_Q": torch.zeros(4, D_MODEL, 8),
          "blocks.0.mlp.W_in": torch.zeros(D_MODEL, D_MLP), "blocks.50000000.x": torch.zeros(1)}
    with pytest.raises(ValueError, match="layer indices .* are not 0..1"):
        architecture_from_state_dict(sd)
    del sd["blocks.50000000.x"]
    assert architecture_from_state_dict(sd)[0].n_layers == 1
