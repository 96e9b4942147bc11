"""Fourier-neuron transplants: the activation plug-in patches exactly the chosen neurons, only while active."""

import json

import numpy as np
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


def test_random_neurons_are_a_seeded_uniform_draw_of_the_same_count():
    from grokinterp.experiments.transplant import random_neurons

    a = random_neurons(512, 40, seed=3)
    assert len(a) == len(set(a)) == 40 and a == sorted(a) and all(0 <= i < 512 for i in a)
    assert a == random_neurons(512, 40, seed=3) and a != random_neurons(512, 40, seed=4)
    hits = np.zeros(64)
    for seed in range(400):
        hits[random_neurons(64, 8, seed)] += 1
    assert hits.min() > 20 and hits.max() < 80  # every neuron drawn about 400 * 8 / 64 = 50 times


def test_controlled_study_arms_move_exactly_what_they_say(tmp_path):
    """noop changes nothing; self moves the recipient's own final Fourier neurons; other the donor's; random the
    same count of seeded random donor neurons."""
    from grokinterp.experiments.transplant import TRANSPLANT_FILE, donor_neurons, random_neurons, transplant_study
    from grokinterp.runs import Run
    from grokinterp.sweep import SweepSpec, run_sweep

    tiny = {"task.p": 23, "task.frac_train": 0.8, "model.d_model": 32, "model.d_head": 8, "model.d_mlp": 64,
            "optim.lr": 1e-2, "optim.warmup_steps": 0, "optim.weight_decay": 1.0, "train.steps": 600, "train.ckpt_every": 20,
            "train.state_every": 40, "train.early_stop_after": 20, "train.eval_every": 5}
    spec = SweepSpec({"model.seed": [0, 1]}, preset="quick", overrides=tiny)
    run_sweep(spec, tmp_path, workers=1, progress=False)
    donor, recipient = Run(tmp_path / "model.seed=0"), Run(tmp_path / "model.seed=1")
    assert donor.summary["status"] == recipient.summary["status"] == "grokked"
    folder = transplant_study(tmp_path, step=40, donor_seed=0, progress=False)
    start = {arm: Run(folder / f"model.seed=1__{arm}").model(40).blocks[0].mlp
             for arm in ("noop", "self", "other", "random")}
    own, final_own = recipient.model(40).blocks[0].mlp, recipient.model(recipient.steps[-1]).blocks[0].mlp
    final_donor = donor.model(donor.steps[-1]).blocks[0].mlp
    assert all(torch.equal(getattr(start["noop"], w), getattr(own, w)) for w in ("W_in", "b_in", "W_out"))
    chosen = {"self": (donor_neurons(recipient), final_own), "other": (donor_neurons(donor), final_donor),
              "random": (random_neurons(64, len(donor_neurons(donor)), 1), final_donor)}
    for arm, (neurons, source) in chosen.items():
        info = json.loads((folder / f"model.seed=1__{arm}" / TRANSPLANT_FILE).read_text())
        assert info["neurons"] == neurons and neurons
        rest = [j for j in range(64) if j not in neurons]
        assert torch.equal(start[arm].W_in[:, neurons], source.W_in[:, neurons])
        assert torch.equal(start[arm].W_out[neurons], source.W_out[neurons])
        assert torch.equal(start[arm].W_in[:, rest], own.W_in[:, rest])
    noop = Run(folder / "model.seed=1__noop")
    assert noop.summary["grokking_step"] == recipient.summary["grokking_step"]  # the no-op fork is the recipient
