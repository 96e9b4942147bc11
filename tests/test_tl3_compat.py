"""Our Transformer against TransformerLens 3.9's HookedTransformer.

The fixtures in tests/fixtures/ were made by TL 3.9 itself (tests/fixtures/make_tl3_fixture.py,
run in .venv-tl3): 2 layers, 4 heads, every parameter random and nonzero, with and without
LayerNorm, ReLU and GELU. Here we check, per fixture: identical state_dict keys, shapes, dtypes
and buffers; strict loading; logits and every cached hook value allclose (1e-5); the same hook
names, fired and unfired. Then TL 3's init distribution (Nanda-size config) and a round trip:
a state dict we save loads with strict=True into TL 3.9 in a subprocess and gives our logits.

The round trip needs .venv-tl3 (`make tl3-venv`): it skips without it, except under CI=true,
where it fails.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from grokinterp.config import ModelConfig
from grokinterp.model import Transformer

from conftest import tl3_python  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
FIXTURE_NAMES = ["tl3_none_relu", "tl3_none_gelu", "tl3_ln_relu", "tl3_ln_gelu"]
LOAD_CHECK = FIXTURES / "tl3_load_check.py"
ATOL = RTOL = 1e-5


# ----------------------------------------------------------------------------- helpers


def load_fixture(name: str) -> dict:
    path = FIXTURES / f"{name}.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return {
        "sd": {k[len("sd/") :]: v for k, v in tensors.items() if k.startswith("sd/")},
        "hooks": {k[len("hook/") :]: v for k, v in tensors.items() if k.startswith("hook/")},
        "tokens": tensors["tokens"],
        "logits": tensors["logits"],
        "tl_config": json.loads(meta["config"]),
        "model_config": json.loads(meta["model_config"]),
        "hook_names": json.loads(meta["hook_names"]),
        "cache_names": json.loads(meta["cache_names"]),
        "buffer_names": json.loads(meta["buffer_names"]),
        "tl_version": meta["transformer_lens_version"],
    }


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request) -> dict:
    return load_fixture(request.param)


def build(model_config: dict, **overrides) -> Transformer:
    cfg = ModelConfig(**{**model_config["model"], **overrides})
    model = Transformer(
        cfg, d_vocab=model_config["d_vocab"], d_vocab_out=model_config["d_vocab_out"], n_ctx=model_config["n_ctx"]
    )
    model.eval()
    return model


def loaded(fx: dict) -> Transformer:
    model = build(fx["model_config"])
    model.load_state_dict(fx["sd"], strict=True)
    return model


def diff_report(ours: torch.Tensor, theirs: torch.Tensor) -> str:
    if ours.shape != theirs.shape:
        return f"shape ours {tuple(ours.shape)} vs TL3 {tuple(theirs.shape)}"
    finite = torch.isfinite(theirs)
    if not torch.equal(finite, torch.isfinite(ours)) or not torch.equal(ours[~finite], theirs[~finite]):
        return "non-finite entries differ (e.g. -inf in masked attention scores)"
    d = (ours[finite].double() - theirs[finite].double()).abs()
    return f"max abs diff {d.max().item():.3g} (max |TL3| {theirs[finite].abs().max().item():.3g})"


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Every parameter random and nonzero (biases and LN weights included), activations O(1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("W_E", "W_pos"):
                scale, offset = 1.0, 0.0
            elif leaf.startswith("W_"):
                scale, offset = 1.0 / math.sqrt(p.shape[-2] if p.ndim >= 2 else 1), 0.0
            elif leaf == "w":
                scale, offset = 0.3, 1.0
            else:
                scale, offset = 0.3, 0.0
            values = offset + scale * torch.randn(p.shape, generator=g)
            values[values.abs() < 1e-3] = 1e-3
            p.copy_(values)


# ----------------------------------------------------------------------------- the fixture itself


def test_fixture_is_what_we_think(fixture):
    """Guards the fixture: made by TL 3.9+, every parameter nonzero, hooks cached, some unfired hooks."""
    major, minor = (int(x) for x in fixture["tl_version"].split(".")[:2])
    assert (major, minor) >= (3, 9) and major < 4
    params = {k: v for k, v in fixture["sd"].items() if k not in fixture["buffer_names"]}
    assert any(k.endswith(".b_O") for k in params) and any(k.endswith("unembed.b_U") for k in params)
    for k, v in params.items():
        assert v.dtype == torch.float32 and (v != 0).all(), f"fixture parameter {k} has zeros"
    assert sorted(fixture["hooks"]) == fixture["cache_names"]
    assert set(fixture["cache_names"]) < set(fixture["hook_names"])  # unfired hooks exist (hook_result, ...)
    assert fixture["tokens"].shape[1] == 3 and (fixture["tokens"][:, -1] == fixture["model_config"]["d_vocab"] - 1).all()


# ----------------------------------------------------------------------------- structure


def test_state_dict_keys_shapes_dtypes(fixture):
    ours = build(fixture["model_config"]).state_dict()
    theirs = fixture["sd"]
    missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
    assert not missing and not extra, f"keys missing from ours: {missing}; keys only in ours: {extra}"
    bad = [
        f"{k}: ours {tuple(ours[k].shape)} {ours[k].dtype} vs TL3 {tuple(theirs[k].shape)} {theirs[k].dtype}"
        for k in theirs
        if ours[k].shape != theirs[k].shape or ours[k].dtype != theirs[k].dtype
    ]
    assert not bad, "shape/dtype mismatches:\n" + "\n".join(bad)


def test_buffers_match(fixture):
    model = build(fixture["model_config"])
    ours = dict(model.named_buffers())
    assert sorted(ours) == fixture["buffer_names"]
    bad = [
        f"{k}: ours {ours[k].dtype}{tuple(ours[k].shape)} {ours[k].flatten()[:9].tolist()} "
        f"vs TL3 {fixture['sd'][k].dtype}{tuple(fixture['sd'][k].shape)} {fixture['sd'][k].flatten()[:9].tolist()}"
        for k in fixture["buffer_names"]
        if ours[k].shape != fixture["sd"][k].shape or not torch.equal(ours[k], fixture["sd"][k])
    ]
    assert not bad, "buffer mismatches:\n" + "\n".join(bad)


@pytest.mark.parametrize("init", ["tl", "nanda"])
@pytest.mark.parametrize("train_biases", ["all", "mlp", "none"])
def test_state_dict_keys_independent_of_init_and_train_biases(init, train_biases):
    """A checkpoint is a HookedTransformer state dict whatever the init or which biases train."""
    for name in ("tl3_none_relu", "tl3_ln_gelu"):
        fx = load_fixture(name)
        model = build(fx["model_config"], init=init, train_biases=train_biases)
        ours = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
        theirs = {k: (tuple(v.shape), v.dtype) for k, v in fx["sd"].items()}
        assert ours == theirs
        model.load_state_dict(fx["sd"], strict=True)


def test_hook_names_equal(fixture):
    ours = sorted(build(fixture["model_config"]).hook_dict)
    theirs = fixture["hook_names"]
    assert ours == theirs, (
        f"hooks only in TL3: {sorted(set(theirs) - set(ours))}; hooks only in ours: {sorted(set(ours) - set(theirs))}"
    )


# ----------------------------------------------------------------------------- values


def test_load_strict_and_logits(fixture):
    model = loaded(fixture)
    with torch.no_grad():
        logits = model(fixture["tokens"])
    assert logits.shape == fixture["logits"].shape
    assert torch.allclose(logits, fixture["logits"], rtol=RTOL, atol=ATOL), diff_report(logits, fixture["logits"])


def test_cache_fires_same_hooks(fixture):
    """run_with_cache fires the hooks TL 3 fires by default, and no others."""
    with torch.no_grad():
        _, cache = loaded(fixture).run_with_cache(fixture["tokens"])
    ours, theirs = set(cache.keys()), set(fixture["cache_names"])
    assert ours == theirs, f"fired only in TL3: {sorted(theirs - ours)}; fired only in ours: {sorted(ours - theirs)}"


def test_every_hook_value(fixture):
    model = loaded(fixture)
    with torch.no_grad():
        logits, cache = model.run_with_cache(fixture["tokens"])
    assert torch.allclose(logits, fixture["logits"], rtol=RTOL, atol=ATOL), diff_report(logits, fixture["logits"])
    problems = []
    for name, theirs in sorted(fixture["hooks"].items()):
        if name not in cache:
            problems.append(f"{name}: not in our cache")
            continue
        ours = cache[name]
        if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=RTOL, atol=ATOL):
            problems.append(f"{name}: {diff_report(ours, theirs)}")
    assert not problems, f"{len(problems)} of {len(fixture['hooks'])} hooks differ:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------- init distribution


@pytest.fixture(scope="module")
def init_stats() -> dict:
    return json.loads((FIXTURES / "tl3_init_stats.json").read_text())


def _pooled_moments(arch: dict, seeds: list[int]) -> dict:
    model_config = {
        "model": dict(
            n_layers=arch["n_layers"], d_model=arch["d_model"], n_heads=arch["n_heads"], d_head=arch["d_head"],
            d_mlp=arch["d_mlp"], act_fn=arch["act_fn"], normalization_type=arch["normalization_type"],
            init="tl", train_biases="all", seed=0,
        ),
        "d_vocab": arch["d_vocab"], "d_vocab_out": arch["d_vocab_out"], "n_ctx": arch["n_ctx"],
    }
    chunks: dict[str, list[torch.Tensor]] = {}
    for seed in seeds:
        model = build(model_config, seed=seed)
        for name, p in model.named_parameters():
            chunks.setdefault(name, []).append(p.detach().flatten().double())
    out = {}
    for name, parts in chunks.items():
        x = torch.cat(parts)
        mean, std = x.mean().item(), x.std(unbiased=False).item()
        out[name] = {"mean": mean, "std": std, "numel": x.numel(), "min": x.min().item(), "max": x.max().item(),
                     "kurtosis": (((x - mean) ** 4).mean() / std**4).item() if std > 0 else None}
    return out


@pytest.mark.parametrize("which", ["nanda", "nanda_ln"])
def test_init_distribution_matches_tl3(init_stats, which):
    """init="tl": each weight's mean, std and kurtosis (normal, not uniform) match TL 3's, pooled over the same
    seeds; biases exactly zero and LN weights exactly one, as in TL 3."""
    rec = init_stats[which]
    ours = _pooled_moments(rec["config"], rec["pooled_seeds"])
    assert sorted(ours) == sorted(rec["pooled"])
    problems = []
    for name, tl in rec["pooled"].items():
        us = ours[name]
        assert us["numel"] == tl["numel"], name
        if tl["std"] == 0:  # biases (0) and LN weights (1): constant in TL 3
            if not (us["min"] == us["max"] == tl["min"] == tl["max"]):
                problems.append(f"{name}: TL3 constant {tl['min']}, ours in [{us['min']}, {us['max']}]")
            continue
        n = tl["numel"]
        # Two independent estimates of the same std: relative SE of their ratio ~ 1/sqrt(n).
        std_tol = max(0.03, 4 / math.sqrt(n))
        if abs(us["std"] / tl["std"] - 1) > std_tol:
            problems.append(f"{name}: std ours {us['std']:.5f} vs TL3 {tl['std']:.5f} (tol {std_tol:.1%})")
        mean_tol = 4 * tl["std"] * math.sqrt(2 / n)
        if abs(us["mean"] - tl["mean"]) > mean_tol:
            problems.append(f"{name}: mean ours {us['mean']:.5f} vs TL3 {tl['mean']:.5f} (tol {mean_tol:.5f})")
        kurt_tol = max(0.15, 4 * math.sqrt(2 * 24 / n))  # normal 3.0, uniform 1.8
        if abs(us["kurtosis"] - tl["kurtosis"]) > kurt_tol:
            problems.append(f"{name}: kurtosis ours {us['kurtosis']:.3f} vs TL3 {tl['kurtosis']:.3f}")
    assert not problems, "\n".join(problems)
    # And the recorded TL 3 std is the documented gpt2 init, 0.8 / sqrt(d_model).
    assert rec["initializer_range"] == pytest.approx(0.8 / math.sqrt(rec["config"]["d_model"]))


# ----------------------------------------------------------------------------- round trip through TL 3.9


ROUNDTRIP_CASES = {name: {} for name in FIXTURE_NAMES}
# A Nanda-style checkpoint: 1 layer, its own init, only MLP biases train (the others stay in the state dict).
ROUNDTRIP_CASES["nanda_init_mlp_biases"] = {"init": "nanda", "train_biases": "mlp", "n_layers": 1}


@pytest.mark.parametrize("case", sorted(ROUNDTRIP_CASES))
def test_checkpoint_loads_strict_into_tl3(case, tmp_path):
    python = tl3_python()
    overrides = ROUNDTRIP_CASES[case]
    fx = load_fixture(case if case in FIXTURE_NAMES else "tl3_none_relu")
    model = build(fx["model_config"], seed=7, **overrides)
    if case in FIXTURE_NAMES:
        randomize_(model, seed=99)  # nonzero biases and LN weights, so they must travel too
    tl_config = {**fx["tl_config"], **{k: v for k, v in overrides.items() if k == "n_layers"}}
    tokens = fx["tokens"]

    ckpt = tmp_path / "ckpt.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    config_json = tmp_path / "config.json"
    config_json.write_text(json.dumps(tl_config))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(python), str(LOAD_CHECK), str(ckpt), str(config_json), *(",".join(map(str, row)) for row in tokens.tolist())],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert proc.returncode == 0, f"TL 3 could not load our checkpoint:\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout)
    theirs = torch.tensor(result["logits"], dtype=torch.float64)
    with torch.no_grad():
        ours = model(tokens).double()
    assert theirs.shape == ours.shape
    assert torch.allclose(ours, theirs, rtol=RTOL, atol=ATOL), diff_report(ours, theirs)
    assert result["transformer_lens_version"].startswith("3.")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
