"""Fourier-neuron transplants: the activation plug-in patches exactly the chosen neurons, only while active."""

import pytest
import torch
from safetensors.torch import save_file

import grokinterp.plugins  # noqa: F401  (registers the plug-ins)
from grokinterp.config import ConfigError
from grokinterp.model import Transformer
from grokinterp.plugins import ActivationTransplant
from grokinterp.tasks import make_task
from grokinterp.train import make_trainer

from conftest import tiny_config

NEURONS = [1, 5, 30]


@pytest.fixture()
def donor_file(tmp_path):
    config = tiny_config(model__seed=123)
    donor = Transformer(config.model, config.task.d_vocab, config.task.d_vocab_out)
    path = tmp_path / "donor.safetensors"
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(path))
    return donor, path


def _trainer(path, **kwargs):
    config = tiny_config(plugins={"activation_transplant": {"donor": str(path), "neurons": NEURONS, **kwargs}})
    return make_trainer(config, make_task(config.task))


def _post_under_plugin_hooks(trainer):
    plugin = next(p for p in trainer.plugins if isinstance(p, ActivationTransplant))
    seen = {}
    capture = ("blocks.0.mlp.hook_post", lambda acts, hook: seen.setdefault("post", acts.detach().clone()))
    with trainer.model.hooks(fwd_hooks=plugin.forward_hooks(trainer) + [capture]):
        trainer.forward_last(trainer.train_tokens)
    return seen["post"][:, -1]


def test_patch_replaces_exactly_the_chosen_neurons_with_the_donors(donor_file):
    donor, path = donor_file
    trainer = _trainer(path, stop=3)
    _, donor_cache = donor.run_with_cache(trainer.train_tokens)
    _, own_cache = trainer.model.run_with_cache(trainer.train_tokens)
    patched = _post_under_plugin_hooks(trainer)
    others = [j for j in range(64) if j not in NEURONS]
    assert torch.allclose(patched[:, NEURONS], donor_cache["blocks.0.mlp.hook_post"][:, -1, NEURONS], atol=1e-6)
    assert torch.allclose(patched[:, others], own_cache["blocks.0.mlp.hook_post"][:, -1, others], atol=1e-6)
    assert not torch.allclose(patched[:, NEURONS], own_cache["blocks.0.mlp.hook_post"][:, -1, NEURONS])
    for _ in range(3):
        trainer.train_step()
    plugin = next(p for p in trainer.plugins if isinstance(p, ActivationTransplant))
    assert trainer.step == 3 and plugin.forward_hooks(trainer) == []  # stop reached: no patch
    assert not any(h._forward_hooks for h in trainer.model.hook_dict.values())  # nothing left behind


def test_patched_training_differs_and_is_deterministic(donor_file):
    _, path = donor_file
    a, b = _trainer(path, stop=5), _trainer(path, stop=5)
    config = tiny_config()
    plain = make_trainer(config, make_task(config.task))
    for _ in range(5):
        a.train_step(), b.train_step(), plain.train_step()
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))
    assert not torch.equal(a.model.blocks[0].mlp.W_out, plain.model.blocks[0].mlp.W_out)


def test_bad_donor_is_a_clear_config_error(tmp_path, donor_file):
    _, path = donor_file
    with pytest.raises(ConfigError, match="does not exist"):
        _trainer(tmp_path / "missing.safetensors")
    wrong = tiny_config(model__d_mlp=32)
    other = Transformer(wrong.model, wrong.task.d_vocab, wrong.task.d_vocab_out)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ConfigError, match="does not fit"):
        _trainer(tmp_path / "wrong.safetensors")
    with pytest.raises(ConfigError, match="0..63"):
        config = tiny_config(plugins={"activation_transplant": {"donor": str(path), "neurons": [64]}})
        make_trainer(config, make_task(config.task))


def test_weight_transplant_fork_is_a_replayable_run_with_exactly_the_neurons_moved(tiny_run, tmp_path):
    from grokinterp.analysis import replay
    from grokinterp.experiments.transplant import TRANSPLANT_FILE, donor_neurons, transplant_run
    from grokinterp.runs import Run

    neurons = donor_neurons(tiny_run)
    assert neurons, "the grokked tiny run has Fourier neurons"
    run = transplant_run(tiny_run, 40, tiny_run, tmp_path / "t", mode="weights", progress=False)
    start, recipient, donor = run.model(40), tiny_run.model(40), tiny_run.model(tiny_run.steps[-1])
    mlp, rec, don = start.blocks[0].mlp, recipient.blocks[0].mlp, donor.blocks[0].mlp
    others = [j for j in range(64) if j not in neurons]
    assert torch.equal(mlp.W_in[:, neurons], don.W_in[:, neurons]) and torch.equal(mlp.W_out[neurons], don.W_out[neurons])
    assert torch.equal(mlp.W_in[:, others], rec.W_in[:, others]) and torch.equal(mlp.b_in[others], rec.b_in[others])
    assert torch.equal(start.embed.W_E, recipient.embed.W_E)
    assert (tmp_path / "t" / TRANSPLANT_FILE).is_file() and run.summary["forked_from"]["step"] == 40
    assert run.summary["status"] in ("grokked", "memorized")
    result = replay(Run(tmp_path / "t"), ["progress"], stride=10, progress=False)
    assert len(result.steps) >= 2 and result["progress"]["excluded_loss"].shape == result.steps.shape
