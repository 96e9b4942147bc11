"""Seed 002's training plug-ins: the weight-norm clamp (D8b), injected gradient noise (D8d) and the logit
temperature (D1), each checked against what it must do to the model, the gradient or the loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from grokinterp.config import ConfigError
from grokinterp.tasks import make_task
from grokinterp.train import build_plugins, make_trainer
from conftest import tiny_config


def _norm(trainer) -> float:
    return math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in trainer.params.values()))


def test_norm_clamp_holds_the_norm_at_rho_times_the_initial_norm():
    config = tiny_config(optim__weight_decay=0.0)
    task = make_task(config.task)
    initial = _norm(make_trainer(config, task))
    clamped = make_trainer(tiny_config(optim__weight_decay=0.0, plugins={"norm_clamp": {"rho": 1.5}}), task)
    assert _norm(clamped) == pytest.approx(1.5 * initial, rel=1e-6)  # applied at set-up (float32 parameters): the step-0 checkpoint
    for _ in range(5):
        row = clamped.train_step()
        assert _norm(clamped) == pytest.approx(1.5 * initial, rel=1e-6)
    assert row["norm_clamp/scale"] != 1.0
    fixed = make_trainer(tiny_config(optim__weight_decay=0.0, plugins={"norm_clamp": {"rho": 2.0, "norm": 10.0}}), task)
    assert _norm(fixed) == pytest.approx(20.0, rel=1e-6)
    assert float(fixed.plugins[0].state_dict()["reference"]) == 10.0


def test_gradient_noise_adds_sigma_times_seeded_gaussian_noise():
    sigma = 0.05
    config = tiny_config(plugins={"gradient_noise": {"sigma": sigma}})
    trainer = make_trainer(config, make_task(config.task))
    plugin = trainer.plugins[0]
    logits = trainer.model(trainer.train_tokens, last_position_only=True)[:, -1]
    F.cross_entropy(logits, trainer.train_labels).backward()
    clean = {n: p.grad.clone() for n, p in trainer.params.items()}
    replay = torch.Generator().manual_seed(0)
    replay.set_state(trainer.generator.get_state())
    plugin.after_backward(trainer)
    for name, p in trainer.params.items():
        expected = torch.add(clean[name], torch.randn(p.shape, generator=replay, dtype=p.dtype), alpha=sigma)
        assert torch.equal(p.grad, expected), name
    assert plugin.metrics()["gradient_noise/temperature"] == pytest.approx(trainer.lr_at(0) * sigma**2)


def test_logit_temperature_divides_the_training_logits():
    tau = 2.0
    config = tiny_config(plugins={"logit_temperature": {"tau": tau}})
    trainer = make_trainer(config, make_task(config.task))
    with torch.no_grad():
        logits = trainer.model(trainer.train_tokens, last_position_only=True)[:, -1]
    row = trainer.train_step()
    assert row["train_loss"] == pytest.approx(float(F.cross_entropy(logits / tau, trainer.train_labels)), rel=1e-6)


@pytest.mark.parametrize("plugins", [{"norm_clamp": {"rho": 0}}, {"gradient_noise": {"sigma": -1.0}},
                                     {"logit_temperature": {"tau": 0.0}}, {"norm_clamp": {"rho": 1.0, "norm": -2.0}}])
def test_bad_plugin_arguments_are_config_errors(plugins):
    with pytest.raises(ConfigError, match="must be"):
        build_plugins(tiny_config(plugins=plugins))
