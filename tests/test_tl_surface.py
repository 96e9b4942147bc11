"""grokinterp's TransformerLens surface (grokinterp/tl_surface.py) against TransformerLens 3.9 itself.

For 1- and 2-layer models, with and without LayerNorm, ReLU and GELU, every parameter random and nonzero,
the same state dict is loaded into our `Transformer` and (in .venv-tl3, by tests/fixtures/tl3_surface_check.py)
into TL 3.9's `HookedTransformer`; both run the same calls (tests/_tl_surface_probes.py): stacked weights,
`QK` / `OV` and FactoredMatrix methods, `cfg`, residual helpers, and every ActivationCache method under
each `use_*` switch, plus per-head patching through the switched-on hook points. Tensors agree to 1e-5,
labels exactly, and a call that raises in TL 3.9 must raise the same exception here.

Then the surface table of docs/hooks.md (grokinterp/tl_surface_table.py) against the public attributes of
TL 3.9's `HookedTransformer` and `ActivationCache`, listed by TL 3.9 itself: each must be supported or listed
as unsupported with a reason.

Last, a TL 3.9 user's one-layer modular-addition notebook (tests/_tl_notebook.py) runs unchanged on a trained
grokinterp run and on TL 3.9 loaded from the run's checkpoint file, with the same values.

Needs .venv-tl3 (`make tl3-venv`): skips without it, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import _tl_notebook
import _tl_surface_probes as probes
from conftest import tl3_python
from grokinterp.config import ModelConfig
from grokinterp.model import Transformer
from grokinterp.runs import step_filename
from grokinterp.tl_surface import STACKED, SWITCHES, TLConfig

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


def run_tl3(root: Path, *args: str) -> None:
    """tests/fixtures/tl3_surface_check.py on the case folders under `root`, in TL 3.9's venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(tl3_python()), str(CHECK), str(root), *args], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, f"TL 3.9 check failed:\n{proc.stderr[-4000:]}"
    assert json.loads(proc.stdout.strip().splitlines()[-1])["transformer_lens_version"].startswith("3.")


@pytest.fixture(scope="module")
def tl3(tmp_path_factory) -> dict:
    """{case: {"model": results, switch set: results}} computed by TL 3.9 in one subprocess."""
    tl3_python()  # skips (or fails under CI) before building anything
    root = tmp_path_factory.mktemp("tl_surface")
    for case in CASES:
        model = build(case)
        (root / case).mkdir()
        (root / case / "config.json").write_text(json.dumps(tl_config(model)))
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(root / case / "sd.safetensors"))
        save_file({"tokens": tokens_for(case)}, str(root / case / "tokens.safetensors"))
    run_tl3(root)
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


# ----------------------------------------------------------------------------- the table against TL 3.9's names


def test_every_public_name_of_tl3_is_in_the_table(tmp_path):
    """A public name of TL 3.9's HookedTransformer or ActivationCache that is not torch.nn.Module's own must be
    supported or listed as unsupported (with a reason) in docs/hooks.md's TransformerLens surface table."""
    from grokinterp import tl_surface_table as table

    run_tl3(tmp_path, "--names")
    surface = json.loads((tmp_path / "names.json").read_text())
    assert len(surface["HookedTransformer"]) > 100 and "decompose_resid" in surface["ActivationCache"]
    missing = [f"HookedTransformer.{name}" for name, origin in surface["HookedTransformer"].items()
               if origin != "Module" and name not in table.MODEL]
    missing += [f"ActivationCache.{name}" for name in surface["ActivationCache"] if name not in table.CACHE]
    assert not missing, f"public in TL 3.9 but not in grokinterp/tl_surface_table.py: {missing}"
    for name, (status, note) in {**table.MODEL, **table.CACHE}.items():
        assert status in (table.YES, table.DIFFERS, table.NO, table.NA), name
        assert note or status == table.YES, f"{name}: a '{status}' row must say why"


def test_supported_names_exist_and_unsupported_ones_are_documented():
    from grokinterp import hook_reference
    from grokinterp import tl_surface_table as table

    model = build("2l_LN_relu")
    _, cache = model.run_with_cache(tokens_for("2l_LN_relu"))
    absent = [f"model.{n}" for n, (s, _) in table.MODEL.items() if s in (table.YES, table.DIFFERS)
              and not hasattr(model, n)]
    absent += [f"cache.{n}" for n, (s, _) in table.CACHE.items() if s in (table.YES, table.DIFFERS)
               and not hasattr(cache, n)]
    assert not absent, f"listed as supported but missing: {absent}"
    supported, applicable = table.counts()
    text = hook_reference.DOC.read_text()
    assert f"Supported: {supported} of {applicable} applicable names." in text
    for name in table.MODEL:
        assert f"| `{name}` |" in text, name


# ----------------------------------------------------------------------------- switches, fast path, cfg


@pytest.mark.parametrize("switch_set", [s for s in probes.SWITCH_SETS if s != "default"])
@pytest.mark.parametrize("case", ["1l_none_relu", "1l_LN_gelu", "2l_LN_relu", "2l_none_gelu"])
def test_last_position_forward_honours_the_switches(case, switch_set):
    """`last_position_only=True` (training's forward) gives the full forward's final-position logits and fires
    every switched-on hook point: query-side hooks with the final position, key/value-side ones with all."""
    model, tokens = build(case), tokens_for(case)
    probes.set_switches(model, probes.SWITCH_SETS[switch_set])
    switched = [n for n in model.hook_dict if n.endswith(("hook_result", "_input", "hook_attn_in", "hook_mlp_in"))
                and getattr(model.cfg, {"hook_result": "use_attn_result", "_input": "use_split_qkv_input",
                                        "hook_attn_in": "use_attn_in", "hook_mlp_in": "use_hook_mlp_in"}[
                    next(s for s in ("hook_result", "_input", "hook_attn_in", "hook_mlp_in") if n.endswith(s))])]
    assert switched
    with torch.no_grad():
        full_logits, full = model.run_with_cache(tokens)
        fast_logits, fast = model.run_with_cache(tokens, last_position_only=True)
    assert torch.allclose(fast_logits, full_logits[:, -1:], atol=1e-5)
    for name in switched:
        assert name in fast, f"{name} did not fire in the last-position forward"
        key_side = name.endswith(("hook_k_input", "hook_v_input", "hook_attn_in"))
        in_last_block = name.startswith(f"blocks.{model.cfg.n_layers - 1}.")  # earlier blocks run every position
        expected = full[name][:, -1:] if in_last_block and not key_side else full[name]
        assert torch.allclose(fast[name], expected, atol=1e-5), name


def test_switches_are_off_by_default_and_free():
    model, tokens = build("1l_none_relu"), tokens_for("1l_none_relu")
    assert not any(getattr(model.cfg, s) for s in SWITCHES)
    _, cache = model.run_with_cache(tokens)
    assert not [n for n in cache.keys() if n.endswith(("hook_result", "_input", "hook_attn_in", "hook_mlp_in"))]
    with pytest.raises(ValueError, match="set_use_attn_result"):
        model.add_hook("blocks.0.attn.hook_result", lambda acts, hook: acts)
    model.cfg.use_attn_result = True  # directly on cfg works too, as in TL
    seen = []
    model.add_hook("blocks.0.attn.hook_result", lambda acts, hook: seen.append(acts.shape))
    model(tokens)
    model.reset_hooks()
    assert seen == [torch.Size([6, 3, 4, 32])]


def test_stack_by_name_is_the_stacked_property():
    model = build("2l_none_gelu")
    for name in STACKED:
        assert torch.equal(model.stack(name), getattr(model, name))
    assert model.stack("W_in").shape == (2, 32, 64) and torch.equal(model.W_in[1], model.blocks[1].mlp.W_in)
    with pytest.raises(ValueError, match="W_gate"):
        model.stack("W_gate")


def test_cfg_is_a_read_only_view_of_model_config():
    model = build("2l_LN_gelu")
    cfg = model.cfg
    assert isinstance(cfg, TLConfig) and cfg.model_config is model.model_config
    assert (cfg.n_layers, cfg.d_vocab, cfg.d_vocab_out, cfg.n_ctx, cfg.act_fn) == (2, P + 1, P, 3, "gelu")
    assert cfg == model.model_config and cfg.init == "tl" and cfg.seed == model.model_config.seed
    with pytest.raises(AttributeError, match="model_config"):
        cfg.n_layers = 3
    again = Transformer(cfg, model.d_vocab, model.d_vocab_out, model.n_ctx)  # a TLConfig is read as its ModelConfig
    assert again.model_config is model.model_config and again.cfg == cfg
    assert all(block.cfg is cfg and block.attn.cfg is cfg for block in model.blocks)
    model.double()
    assert cfg.dtype == torch.float64 and cfg.device == "cpu"
    assert cfg.to_dict()["dtype"] == torch.float64 and "model_config" not in cfg.to_dict()


# ----------------------------------------------------------------------------- a TL user's notebook


def test_a_tl_notebook_runs_unchanged_on_a_grokinterp_run(tiny_run, tmp_path):
    """A TL 3.9 user's one-layer modular-addition notebook (tests/_tl_notebook.py: weights, circuits, cache
    decompositions, head results, head ablation) runs unchanged on a trained grokinterp run's model, and on TL 3.9's
    HookedTransformer loaded from the run's checkpoint file; every value agrees."""
    model = tiny_run.model()
    case = tmp_path / "notebook"
    case.mkdir()
    (case / "config.json").write_text(json.dumps(tl_config(model)))
    shutil.copy(tiny_run.path / "ckpt" / step_filename(tiny_run.steps[-1]), case / "sd.safetensors")
    ours = _tl_notebook.notebook(model)
    run_tl3(tmp_path, "--notebook")
    theirs = probes.load_results(str(case / "tl3" / "notebook"))
    problems = differences(ours, theirs)
    assert not problems, report(problems, len(theirs))
    assert not model.cfg.use_attn_result and not model.hook_dict["blocks.0.attn.hook_z"].fwd_hooks
    # what the notebook's values mean, on a run that grokked
    p, n_heads, d_mlp = model.cfg.d_vocab_out, model.cfg.n_heads, model.cfg.d_mlp
    assert ours["accuracy"] > 0.99 and ours["W_neur"].shape == (n_heads, p, d_mlp)
    assert ours["resid labels"] == ["embed", "pos_embed", "0_attn_out", "0_mlp_out"]
    assert torch.allclose(ours["decompose_resid"].sum(0), ours["resid_post"], atol=1e-4)
    assert torch.allclose(ours["full decomposition"].sum(0), ours["resid_post"], atol=1e-3)
    assert len(ours["full labels"]) == n_heads + d_mlp + 3
    assert torch.allclose(ours["hook_result"], ours["stack_head_results"].transpose(0, 1), atol=1e-5)
    assert not torch.allclose(ours["ablate result"], ours["logits"], atol=1e-2)  # the ablation did something
    assert torch.allclose(ours["ablate result"], ours["ablate z"], atol=1e-4)  # z W_O of head 0 is its result
