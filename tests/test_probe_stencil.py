"""The probe stencil (the probe-stencil write-up): time offsets, the two-phase update, the regularizer's gradient, a tiny run."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import grokinterp.plugins  # noqa: F401  (registers the plug-ins)
from grokinterp.config import ConfigError
from grokinterp.runs import train_run
from grokinterp.plugins import ActivationBuffer, ProbeStencil, stencil_pairs
from grokinterp.runs import load_tensors, step_filename
from grokinterp.tasks import make_task
from grokinterp.train import Plugin, make_trainer

from conftest import tiny_config


def trainer_for(**plugin_kwargs):
    config = tiny_config(plugins={"probe_stencil": plugin_kwargs})
    return make_trainer(config, make_task(config.task))


def stencil_of(trainer) -> ProbeStencil:
    return next(p for p in trainer.plugins if isinstance(p, ProbeStencil))


def hand_made(t, n=3):
    """Epoch t's activations: mlp_in filled with t, mlp_hidden with 100 + t."""
    return torch.full((n, 2), float(t)), torch.full((n, 5), 100.0 + t)


def epochs_of(pairs):
    """offset -> (epoch of the probe input, epoch of the target), read back from the hand-made values."""
    return {k: (int(x[0, 0]), int(y[0, 0]) - 100) for k, (x, y) in pairs.items()}


def test_offsets_pair_the_right_epochs():
    buffer = ActivationBuffer(depth=1, n=3, d_model=2, d_mlp=5, device=torch.device("cpu"))
    assert epochs_of(stencil_pairs([-1, 0, 1], 0, *hand_made(0), buffer)) == {0: (0, 0)}  # nothing before epoch 0
    for t in range(5):
        buffer.push(t, *hand_made(t))
    pairs = stencil_pairs([-1, 0, 1], 5, *hand_made(5), buffer)
    # k=-1: mlp_in(t) -> mlp_hidden(t-1); k=0: mlp_in(t) -> mlp_hidden(t); k=+1: mlp_in(t-1) -> mlp_hidden(t)
    assert epochs_of(pairs) == {-1: (5, 4), 0: (5, 5), 1: (4, 5)}
    assert epochs_of(stencil_pairs([-1, 1], 7, *hand_made(7), buffer)) == {}  # epoch 6 was never pushed

    deep = ActivationBuffer(depth=2, n=3, d_model=2, d_mlp=5, device=torch.device("cpu"))
    for t in range(4):
        deep.push(t, *hand_made(t))
    assert epochs_of(stencil_pairs([-2, -1, 2], 4, *hand_made(4), deep)) == {-2: (4, 2), -1: (4, 3), 2: (2, 4)}
    assert deep.get(1) is None and deep.get(-1) is None  # overwritten; before the start


class Spy(Plugin):
    """Records, each step, the model and probe as phase 2 sees them, and the gradients the optimizer gets."""

    def __init__(self, stencil):
        self.stencil, self.models, self.probes, self.grads, self.probe_grads = stencil, [], [], [], []

    def before_forward(self, trainer):  # runs after the stencil's phase 1
        self.models.append(copy.deepcopy(trainer.model))
        self.probes.append(copy.deepcopy(self.stencil.probe))

    def after_backward(self, trainer):
        self.grads.append({n: p.grad.clone() for n, p in trainer.params.items()})
        self.probe_grads.append([p.grad for p in self.stencil.probe.parameters()])


def mlp_activations(model, tokens):
    """Full forward; (mlp_in, mlp_hidden) at the last position with their graph, and the last logits."""
    store = {}
    capture = lambda name: lambda acts, hook: store.__setitem__(name, acts[:, -1])  # noqa: E731
    with model.hooks(fwd_hooks=[(n, capture(n)) for n in ("blocks.0.hook_resid_mid", "blocks.0.mlp.hook_post")]):
        logits = model(tokens)[:, -1]
    return store["blocks.0.hook_resid_mid"], store["blocks.0.mlp.hook_post"], logits


def test_probe_is_frozen_during_the_model_step():
    t = trainer_for()
    stencil = stencil_of(t)
    spy = Spy(stencil)
    t.plugins.append(spy)
    before_phase1 = copy.deepcopy(stencil.probe)
    t.train_step()
    after_phase1, after_step = spy.probes[0], stencil.probe
    changed = lambda a, b: any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # noqa: E731
    assert changed(before_phase1, after_phase1)  # phase 1 trained the probe
    assert not changed(after_phase1, after_step)  # phase 2's model step left it alone
    assert all(g is None for g in spy.probe_grads[0])  # no probe gradients in the model's backward
    assert not any(p.requires_grad for p in stencil.probe.parameters())
    assert changed(spy.models[0], t.model)  # the model did step
    assert not any(k.startswith("probe") for k in t.model.state_dict())  # the probe is no part of the model


@pytest.mark.parametrize("offsets,reduction", [([-1, 0, 1], "mean"), ([-1], "mean"), ([1], "mean"),
                                               ([-1, 0, 1], "sum")])
def test_regularizer_gradient_is_lambda_times_its_loss_gradient(offsets, reduction):
    """Step 2's gradient reaching the model = task gradient + lamb * grad of mean_k MSE_k, all computed here
    independently: theta_1 (the buffer's epoch) and theta_2 from snapshots, full forwards, the phase-1 probe."""
    lamb = 0.3
    t = trainer_for(offsets=offsets, lamb=lamb, reduction=reduction)
    spy = Spy(stencil_of(t))
    t.plugins.append(spy)
    for _ in range(3):
        t.train_step()
    prev, model, probe = spy.models[1], spy.models[2], spy.probes[2]
    tokens, labels = t.train_tokens, t.train_labels
    with torch.no_grad():
        x_prev, y_prev, _ = mlp_activations(prev, tokens)
    x, y, logits = mlp_activations(model, tokens)
    sources = {-1: (x, y_prev), 0: (x, y), 1: (x_prev, y)}
    def err(k):  # "mean": over examples and units; "sum": the squared norm per example, mean over examples
        sq = (probe(sources[k][0]) - sources[k][1]).pow(2)
        return sq.mean() if reduction == "mean" else sq.sum(-1).mean()

    probe_loss = torch.stack([err(k) for k in offsets]).mean()
    task_loss = F.cross_entropy(logits, labels)
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    probe_grad = torch.autograd.grad(probe_loss, params, retain_graph=True, allow_unused=True)
    task_grad = torch.autograd.grad(task_loss, params)
    total_sq = 0.0
    for name, gp, gt in zip(names, probe_grad, task_grad):
        gp = torch.zeros_like(gt) if gp is None else gp
        total_sq += gp.pow(2).sum().item()
        torch.testing.assert_close(spy.grads[2][name] - gt, lamb * gp, rtol=1e-4, atol=1e-7)
    assert total_sq > 0  # the regularizer does reach the model


def test_reusing_the_training_forward_gives_the_same_run():
    fresh, reused = trainer_for(fresh_forward=True), trainer_for(fresh_forward=False)
    for _ in range(4):
        rows = fresh.train_step(), reused.train_step()
    for a, b in ((fresh.model, reused.model), (stencil_of(fresh).probe, stencil_of(reused).probe)):
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)  # same parameters theta_t, same ops: the same numbers
    assert rows[0]["probe/loss_k-1"] == rows[1]["probe/loss_k-1"]


def test_probe_input_is_the_mlp_input_with_layernorm():
    config = tiny_config(model__normalization_type="LN", plugins={"probe_stencil": {}})
    t = make_trainer(config, make_task(config.task))
    stencil = stencil_of(t)
    stencil.before_forward(t)
    _, cache = t.model.run_with_cache(t.train_tokens)
    ln2 = t.model.blocks[0].ln2
    torch.testing.assert_close(stencil._current[0], ln2(cache["blocks.0.hook_resid_mid"])[:, -1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stencil._current[1], cache["blocks.0.mlp.hook_post"][:, -1], rtol=1e-5, atol=1e-6)


def test_probe_init_comes_from_the_trainer_generator():
    a, b, c = trainer_for(), trainer_for(), make_trainer(*(lambda cf: (cf, make_task(cf.task)))(
        tiny_config(model__seed=5, plugins={"probe_stencil": {}})))
    pa, pb, pc = (stencil_of(t).probe.W_1 for t in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_bad_arguments_are_config_errors():
    for kwargs in ({"offsets": []}, {"offsets": [0, 0]}, {"offsets": [0.5]}, {"lamb": -1.0}, {"layer": 3}, {"reduction": "norm"},
                   {"hidden": 0}, {"nope": 1}):
        with pytest.raises(ConfigError):
            trainer_for(**kwargs)


def test_tiny_run_writes_probe_loss_columns(tmp_path):
    config = tiny_config(plugins={"probe_stencil": {"offsets": [-1, 0, 1]}}, train__steps=30, train__ckpt_every=10,
                         train__state_every=10)
    run = train_run(config, tmp_path / "stencil", progress=False)
    m = run.metrics
    columns = ["probe/loss_k-1", "probe/loss_k0", "probe/loss_k+1", "probe/reg", "probe/fit_loss"]
    assert all(c in m for c in columns)
    trained = m["step"] < 30  # the final row describes theta_30 without a step: no probe columns
    assert math.isnan(m["probe/loss_k-1"][0]) and math.isnan(m["probe/loss_k+1"][0])  # no epoch -1
    assert (m["probe/loss_k0"][trained] > 0).all() and (m["probe/loss_k-1"][trained][1:] > 0).all()
    assert m["probe/loss_k0"][0] < m["probe/fit_loss"][0]  # epoch 0: phase 2 sees the probe after its update
    mean_k = np.nanmean(np.stack([m[c][trained] for c in columns[:3]]), axis=0)
    np.testing.assert_allclose(m["probe/reg"][trained], 0.1 * mean_k, rtol=1e-6)  # lamb x mean over available k
    assert run.state_dict(30).keys() == run.model().state_dict().keys()  # ckpt/ holds the model only
    state = load_tensors(run.path / "state" / step_filename(30))
    assert int(state["plugin/probe_stencil/buffer/steps"][0]) == 29
    assert "plugin/probe_stencil/probe/W_1" in state and "plugin/probe_stencil/adam/0/exp_avg" in state


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_plugins_run_and_resume_on_cuda():
    plugins = {"grokfast_ema": {}, "grokfast_ma": {"window": 3}, "probe_stencil": {}}
    config = tiny_config(plugins=plugins, train__device="cuda")
    a = make_trainer(config, make_task(config.task))
    for _ in range(4):
        a.train_step()
    b = make_trainer(config, make_task(config.task))
    b.model.load_state_dict({k: v.cpu() for k, v in a.model.state_dict().items()})
    # plug-in state as read from a state file (on the CPU); the rest as it is
    b.load_state_dict({k: v.cpu() if k.startswith("plugin/") else v for k, v in a.state_dict().items()})
    rows = a.train_step(), b.train_step()
    assert rows[0]["probe/loss_k-1"] == rows[1]["probe/loss_k-1"]
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
