"""grokinterp's TransformerLens surface (grokinterp/tl_surface.py) against TransformerLens 3.9 itself.

For 1- and 2-layer models, with and without LayerNorm, ReLU and GELU, every parameter random and nonzero,
the same state dict is loaded into our `Transformer` and (in .venv-tl3, by tests/fixtures/tl3_surface_check.py)
into TL 3.9's `HookedTransformer`; both run the same calls (tests/_tl_surface_probes.py): stacked weights,
`QK` / `OV` and FactoredMatrix methods, `cfg`, residual helpers, and every ActivationCache method under
each `use_*` switch, plus per-head patching through the switched-on hook points. Tensors agree to 1e-5,
labels exactly, and a call that raises in TL 3.9 must raise the same exception here.

Then the surface table of docs/hooks.md (grokinterp/tl_surface_table.py) against the public attributes of
TL 3.9's `HookedTransformer` and `ActivationCache` (tests/fixtures/tl3_surface.json, written by
tests/fixtures/make_tl3_surface.py): each must be supported or listed as unsupported with a reason.

Needs .venv-tl3 (`make tl3-venv`): skips without it, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import _tl_surface_probes as probes
from conftest import tl3_python
from grokinterp.config import ModelConfig
from grokinterp.model import Transformer
from grokinterp.tl_surface import SWITCHES, TLConfig

REPO = Path(__file__).resolve().parent.parent
CHECK = REPO / "tests" / "fixtures" / "tl3_surface_check.py"
ATOL = RTOL = 1e-5
P = 23
CASES = {f"{n}l_{norm or 'none'}_{act}": dict(n_layers=n, normalization_type=norm, act_fn=act)
         for n in (1, 2) for norm in (None, "LN") for act in ("relu", "gelu")}
# Where our cfg.to_dict() knowingly differs from TL 3.9's (docs/hooks.md says why).
CFG_DIFFERENCES = {"seed"}


def build(case: str, **overrides) -> Transformer:
    cfg = ModelConfig(d_model=32, n_heads=4, d_head=8, d_mlp=64, **CASES[case], **overrides)
    model = Transformer(cfg, d_vocab=P + 1, d_vocab_out=P, n_ctx=3).eval()
    g = torch.Generator().manual_seed(sorted(CASES).index(case))
    with torch.no_grad():  # every parameter random and nonzero (biases and LN weights included), activations O(1)
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            scale = 1.0 if leaf in ("W_E", "W_pos") else param.shape[-2] ** -0.5 if leaf.startswith("W_") else 0.3
            values = (1.0 if leaf == "w" else 0.0) + scale * torch.randn(param.shape, generator=g)
            param.copy_(torch.where(values.abs() < 1e-3, torch.full_like(values, 1e-3), values))
    return model


def tokens_for(case: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + sorted(CASES).index(case))
    tokens = torch.randint(0, P, (6, 3), generator=g)
    tokens[:, -1] = P  # '='
    return tokens


def tl_config(model: Transformer) -> dict:
    m = model.model_config
    return dict(n_layers=m.n_layers, d_model=m.d_model, n_heads=m.n_heads, d_head=m.d_head, d_mlp=m.d_mlp,
                act_fn=m.act_fn, normalization_type=m.normalization_type, d_vocab=model.d_vocab,
                d_vocab_out=model.d_vocab_out, n_ctx=model.n_ctx, device="cpu")


@pytest.fixture(scope="module")
def tl3(tmp_path_factory) -> dict:
    """{case: {"model": results, switch set: results}} computed by TL 3.9 in one subprocess."""
    python = tl3_python()
    root = tmp_path_factory.mktemp("tl_surface")
    for case in CASES:
        model = build(case)
        (root / case).mkdir()
        (root / case / "config.json").write_text(json.dumps(tl_config(model)))
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(root / case / "sd.safetensors"))
        save_file({"tokens": tokens_for(case)}, str(root / case / "tokens.safetensors"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(python), str(CHECK), str(root)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"TL 3.9 check failed:\n{proc.stderr[-4000:]}"
    assert json.loads(proc.stdout.strip().splitlines()[-1])["transformer_lens_version"].startswith("3.")
    return {case: {name: probes.load_results(str(root / case / "tl3" / name))
                   for name in ("model", *probes.SWITCH_SETS)} for case in CASES}


def differences(ours: dict, theirs: dict) -> list[str]:
    problems = [f"{k}: only TL 3.9 has this result" for k in sorted(set(theirs) - set(ours))]
    problems += [f"{k}: only we have this result" for k in sorted(set(ours) - set(theirs))]
    for key in sorted(set(ours) & set(theirs)):
        a, b = ours[key], theirs[key]
        if _raised(a) and _raised(b):  # both refuse the call (we may raise a clearer exception type)
            continue
        if isinstance(b, torch.Tensor) and isinstance(a, torch.Tensor):
            if a.shape != b.shape:
                problems.append(f"{key}: shape ours {tuple(a.shape)} vs TL 3.9 {tuple(b.shape)}")
            elif not torch.allclose(a.to(b.dtype), b, rtol=RTOL, atol=ATOL, equal_nan=True):
                finite = torch.isfinite(b) & torch.isfinite(a.to(b.dtype))
                diff = (a.to(b.dtype) - b)[finite].abs().max().item() if finite.any() else float("nan")
                problems.append(f"{key}: max abs diff {diff:.3g}")
        elif isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            problems.append(f"{key}: ours {_short(a)} vs TL 3.9 {_short(b)}")
        elif a != b:
            problems.append(f"{key}: ours {_short(a)} vs TL 3.9 {_short(b)}")
    return problems


def _raised(value) -> bool:
    return isinstance(value, dict) and set(value) == {"error"}


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


def report(problems: list[str], total: int) -> str:
    return f"{len(problems)} of {total} results differ from TL 3.9:\n" + "\n".join(problems[:60])


# ----------------------------------------------------------------------------- values against TL 3.9


@pytest.mark.parametrize("case", sorted(CASES))
def test_weights_circuits_and_helpers_match_tl3(tl3, case):
    ours = dict(probes.probe_model(build(case)))
    theirs = dict(tl3[case]["model"])
    ours_cfg, theirs_cfg = ours.pop("cfg.to_dict"), theirs.pop("cfg.to_dict")
    assert not differences(ours, theirs), report(differences(ours, theirs), len(theirs))
    assert sorted(ours_cfg) == sorted(theirs_cfg)
    bad = [f"cfg.{k}: ours {ours_cfg[k]!r} vs TL 3.9 {theirs_cfg[k]!r}" for k in theirs_cfg
           if k not in CFG_DIFFERENCES and ours_cfg[k] != pytest.approx(theirs_cfg[k])
           and not (ours_cfg[k] is None and theirs_cfg[k] is None)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("switch_set", list(probes.SWITCH_SETS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_cache_methods_and_patching_match_tl3(tl3, case, switch_set):
    model, tokens = build(case), tokens_for(case)
    probes.set_switches(model, probes.SWITCH_SETS[switch_set])
    ours = probes.probe_cache(model, tokens)
    ours.update(probes.probe_patching(model, tokens, probes.SWITCH_SETS[switch_set]))
    theirs = tl3[case][switch_set]
    problems = differences(ours, theirs)
    assert not problems, report(problems, len(theirs))
    errors = sum(_raised(v) for v in theirs.values())
    assert errors < len(theirs) / 4, "most probes raise: the comparison would be empty"
