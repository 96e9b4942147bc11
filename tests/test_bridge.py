"""TransformerLens 4 bridge and the TL 3-name adapter: a grokinterp checkpoint as a TransformerBridge gives
the same logits and hook values, survives the round trip bit for bit, and every analysis gives the same
results on a grokinterp model, a bridge, a minimal object with TL 3 names, and (in .venv-tl3) TL 3's
HookedTransformer."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from grokinterp.analysis.fourier import (
    checkpoint_spectra,
    grid_forward,
    key_frequencies,
    neuron_frequencies,
    progress_measures,
    weight_norm_sq,
)
from grokinterp.analysis.interventions import (
    ablate_neurons,
    neuron_intervention_metrics,
    neuron_patch,
    patch_neurons,
    transplant_neuron_weights,
)
from grokinterp.bridge import from_bridge, is_bridge, to_bridge, tl_state_dict_from_bridge
from grokinterp.config import ModelConfig
from grokinterp.hooked import as_hooked
from grokinterp.model import Transformer
from grokinterp.runs import load_tensors

from conftest import tl3_python  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ATOL = RTOL = 1e-5
ARCHS = [(None, "relu"), (None, "gelu"), ("LN", "relu"), ("LN", "gelu")]
NEURONS = [1, 4, 9, 30]


def random_model(normalization_type=None, act_fn="relu", n_layers=2, seed=0) -> Transformer:
    """Every parameter random and nonzero (biases and LN weights too), so that each must travel."""
    config = ModelConfig(n_layers=n_layers, d_model=32, n_heads=4, d_head=8, d_mlp=64, act_fn=act_fn,
                         normalization_type=normalization_type, seed=seed)
    model = Transformer(config, d_vocab=24, d_vocab_out=23).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def tokens(n=40, p=23, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, p, (n, 3), generator=g)
    t[:, 2] = p
    return t


# ----------------------------------------------------------------------------- logits and hooks


@pytest.mark.parametrize("normalization_type,act_fn", ARCHS)
def test_bridge_logits_and_every_shared_hook(normalization_type, act_fn):
    model = random_model(normalization_type, act_fn)
    bridge = to_bridge(model)
    assert is_bridge(bridge) and not is_bridge(model)
    x = tokens()
    with torch.no_grad():
        ours_logits, ours = model.run_with_cache(x)
        theirs_logits, theirs = bridge.run_with_cache(x)
    torch.testing.assert_close(theirs_logits, ours_logits, rtol=RTOL, atol=ATOL)

    shared = set(ours.keys()) & set(theirs.keys())
    for required in ("hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_q",
                     "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z", "blocks.0.hook_attn_out",
                     "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post", "blocks.1.hook_resid_post"):
        assert required in shared, f"{required} is not fired by both"
    # Every hook grokinterp fires (as TL 3 does), the bridge fires too, and every hook point name exists there.
    assert set(ours.keys()) <= set(theirs.keys()), sorted(set(ours.keys()) - set(theirs.keys()))
    assert set(model.hook_dict) <= set(bridge.hook_dict), sorted(set(model.hook_dict) - set(bridge.hook_dict))
    assert len(shared) == (40 if normalization_type else 30)

    problems = []
    for name in sorted(shared):
        a, b = ours[name], theirs[name]
        if name.endswith("attn.hook_attn_scores"):
            # TransformerLens 4.3.0's native bridge fires this hook with the softmax pattern. Accept that, or
            # (once fixed) the scores themselves on the causal entries; masked entries then are huge negative.
            causal = torch.isfinite(a)
            if torch.allclose(b, ours[name.replace("attn_scores", "pattern")], rtol=RTOL, atol=ATOL):
                continue
            if torch.allclose(b[causal], a[causal], rtol=RTOL, atol=ATOL) and (b[~causal] < -1e30).all():
                continue
        elif a.shape == b.shape and torch.allclose(b, a, rtol=RTOL, atol=ATOL):
            continue
        problems.append(f"{name}: ours {tuple(a.shape)} vs bridge {tuple(b.shape)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("normalization_type,act_fn", ARCHS)
def test_round_trip_gives_an_identical_state_dict(normalization_type, act_fn):
    model = random_model(normalization_type, act_fn)
    back = from_bridge(to_bridge(model), model.cfg)
    ours, theirs = model.state_dict(), back.state_dict()
    assert list(theirs) == list(ours)
    unequal = [k for k in ours if ours[k].dtype != theirs[k].dtype or not torch.equal(ours[k], theirs[k])]
    assert not unequal, unequal
    assert back.cfg == model.cfg and (back.d_vocab, back.d_vocab_out, back.n_ctx) == (24, 23, 3)


def test_bridge_weights_under_tl3_names_are_ours():
    model = random_model("LN", "relu")
    bridge = to_bridge(model)
    theirs = as_hooked(bridge).weights()
    ours = dict(model.named_parameters())
    assert sorted(theirs) == sorted(ours)  # the unembed bias included (a buffer on the bridge)
    assert all(torch.equal(theirs[k], ours[k].detach()) for k in ours)
    assert as_hooked(bridge).weight("blocks.1.mlp.W_in").shape == (32, 64)
    assert weight_norm_sq(bridge) == pytest.approx(weight_norm_sq(model), rel=1e-12)
    with pytest.raises(KeyError, match="blocks.7.mlp.W_in"):
        as_hooked(bridge).weight("blocks.7.mlp.W_in")
    with pytest.raises(ValueError, match="blocks.0.attn.qkv.weight"):
        tl_state_dict_from_bridge({"blocks.0.attn.qkv.weight": torch.zeros(3)}, n_heads=4)
    with pytest.raises(TypeError, match="hooks"):
        as_hooked(torch.nn.Linear(2, 2))


def test_to_bridge_from_a_run_a_checkpoint_file_and_a_state_dict(tiny_run):
    step = tiny_run.steps[len(tiny_run.steps) // 2]
    model = tiny_run.model(step)
    x = tiny_run.task.tokens[:50]
    with torch.no_grad():
        expected = model(x)
        last = tiny_run.model()(x)
        for source in (load_tensors(tiny_run.path / "ckpt" / f"step_{step:07d}.safetensors"), tiny_run.state_dict(step)):
            torch.testing.assert_close(to_bridge(source)(x), expected, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(to_bridge(tiny_run, step=step)(x), expected, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(to_bridge(tiny_run)(x), last, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="cannot make a bridge"):
        to_bridge(12)
    with pytest.raises(ValueError, match="Run\\(path\\)"):
        to_bridge(tiny_run.path)
    with pytest.raises(ValueError, match="missing"):
        to_bridge({"embed.W_E": torch.zeros(3, 4)})


# ----------------------------------------------------------------------------- analyses on every kind of model


class MinimalTL3(torch.nn.Module):
    """Only what TL 3's HookedTransformer offers by name: TL 3-named parameters and hook points, `blocks`,
    `hooks(...)`, `reset_hooks` and a full forward; no `last_position_only`, no grokinterp helpers."""

    def __init__(self, model: Transformer):
        super().__init__()
        for name in ("embed", "hook_embed", "pos_embed", "hook_pos_embed", "blocks", "ln_final", "unembed"):
            setattr(self, name, getattr(model, name))  # shared modules: names and hook points are the model's
        self._impl = (model,)  # a tuple hides it from nn.Module registration

    def forward(self, tokens):
        return self._impl[0](tokens)

    def hooks(self, fwd_hooks=(), **kwargs):
        return self._impl[0].hooks(fwd_hooks=fwd_hooks, **kwargs)

    def reset_hooks(self, **kwargs):
        return self._impl[0].reset_hooks(**kwargs)


def analyses(model, task, donor, key_freqs) -> dict:
    with torch.no_grad():
        grid = grid_forward(model, task)
        return {
            "spectra": checkpoint_spectra(model, task),
            "key_frequencies": key_frequencies(model, task),
            "neuron_freq": neuron_frequencies(grid.neuron_acts).freq.numpy(),
            "progress": progress_measures(model, task, key_freqs),
            "zero_ablation": ablate_neurons(model, task.tokens[:30], NEURONS, "zero"),
            "mean_ablation": neuron_intervention_metrics(model, task, NEURONS, "mean"),
            "patch": patch_neurons(model, donor, task.tokens[:30], NEURONS),
            "transplant": neuron_intervention_metrics(transplant_neuron_weights(model, donor, NEURONS), task),
        }


def assert_same(ours: dict, theirs: dict, path: str = "") -> None:
    assert set(ours) == set(theirs), path
    for key in ours:
        a, b = ours[key], theirs[key]
        where = f"{path}{key}"
        if isinstance(a, dict):
            assert_same(a, b, where + ".")
        elif isinstance(a, (list, int)):
            assert a == b, where
        elif isinstance(a, float):
            assert (math.isnan(a) and math.isnan(b)) or b == pytest.approx(a, rel=1e-5, abs=1e-6), where
        elif isinstance(a, torch.Tensor):
            torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL, msg=where)
        else:
            a, b = np.asarray(a), np.asarray(b)
            if a.dtype.kind in "biu":
                np.testing.assert_array_equal(b, a, err_msg=where)
            else:
                np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL, err_msg=where)


@pytest.fixture(scope="module")
def grokinterp_reference(tiny_run):
    model, donor = tiny_run.model(), tiny_run.model(tiny_run.steps[0])
    key_freqs = key_frequencies(model, tiny_run.task)
    assert key_freqs, "the tiny run's final checkpoint should have key frequencies"
    return model, donor, key_freqs, analyses(model, tiny_run.task, donor, key_freqs)


def test_every_analysis_of_a_bridge_equals_the_grokinterp_models(tiny_run, grokinterp_reference):
    model, donor, key_freqs, expected = grokinterp_reference
    bridge, bridge_donor = to_bridge(model), to_bridge(donor)
    assert_same(expected, analyses(bridge, tiny_run.task, bridge_donor, key_freqs))
    # The spectra are not merely close: the bridge's forward gives the same numbers here.
    spectra = checkpoint_spectra(bridge, tiny_run.task)
    assert all(np.array_equal(spectra[k], expected["spectra"][k]) for k in ("neuron_freq", "key_freq_mask"))


def test_every_analysis_of_a_minimal_tl3_named_object_equals_the_grokinterp_models(tiny_run, grokinterp_reference):
    model, donor, key_freqs, expected = grokinterp_reference
    fake, fake_donor = MinimalTL3(copy.deepcopy(model)), MinimalTL3(copy.deepcopy(donor))
    assert sorted(dict(fake.named_parameters())) == sorted(dict(model.named_parameters()))
    assert_same(expected, analyses(fake, tiny_run.task, fake_donor, key_freqs))


def test_intervention_hooks_on_a_bridge_are_gone_after_even_on_error_and_user_hooks_survive(tiny_run):
    bridge = to_bridge(tiny_run.model())
    post = "blocks.0.mlp.hook_post"
    seen = []
    bridge.add_hook(post, lambda acts, hook: seen.append(acts.shape))  # the user's own hook
    n_handles = len(bridge.hook_dict[post].fwd_hooks)
    x = tiny_run.task.tokens[:10]
    with pytest.raises(KeyError):
        with neuron_patch(bridge, NEURONS, torch.zeros(len(NEURONS))):
            assert len(bridge.hook_dict[post].fwd_hooks) == n_handles + 1
            raise KeyError("user code fails inside the block")
    assert len(bridge.hook_dict[post].fwd_hooks) == n_handles
    ablate_neurons(bridge, x, NEURONS, "mean")
    assert len(bridge.hook_dict[post].fwd_hooks) == n_handles
    before = len(seen)
    bridge(x)
    assert len(seen) == before + 1  # the user's hook still fires


def test_every_analysis_of_a_tl3_hooked_transformer_equals_the_grokinterp_models(tiny_run, grokinterp_reference):
    """The analyses, run inside .venv-tl3 on TL 3.9's own HookedTransformer (duck-typed, by hook names)."""
    python = tl3_python()
    model, donor, key_freqs, expected = grokinterp_reference
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [str(python), str(REPO / "tests" / "fixtures" / "tl3_analyses_check.py"), str(tiny_run.path),
         str(tiny_run.steps[-1]), ",".join(map(str, key_freqs)), ",".join(map(str, NEURONS))],
        capture_output=True, text=True, env=env, timeout=300)
    hint = "\n(a ModuleNotFoundError: add grokinterp's missing dependency to TL3_EXTRAS in mk/tl3.mk)"
    assert proc.returncode == 0, proc.stderr[-4000:] + hint
    theirs = json.loads(proc.stdout)
    assert theirs.pop("transformer_lens_version").startswith("3.")
    ours = {k: expected[k] for k in ("spectra", "key_frequencies", "progress", "mean_ablation")}
    with torch.no_grad():
        ours["patch"] = neuron_intervention_metrics(model, tiny_run.task, NEURONS, "patch", donor=donor)
        ours["transplant"] = neuron_intervention_metrics(transplant_neuron_weights(model, donor, NEURONS), tiny_run.task)
    ours["spectra"] = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in ours["spectra"].items()}
    theirs["spectra"] = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in theirs["spectra"].items()}
    ours["spectra"] = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in ours["spectra"].items()}
    assert_same(ours, theirs)
