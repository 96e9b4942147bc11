"""Grokfast filters against their closed forms on known gradient sequences; state round trips; a resumed run."""

import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load, save

import grokinterp.plugins  # noqa: F401  (registers the plug-ins)
from grokinterp.config import ConfigError
from grokinterp.runs import train_run
from grokinterp.plugins import GrokfastEMA, GrokfastMA
from grokinterp.runs import load_tensors, read_metrics_csv, step_filename
from grokinterp.tasks import make_task
from grokinterp.train import Plugin, make_trainer

from conftest import tiny_config

SHAPES = {"w": (3, 4), "b": (5,)}


def gradient_sequence(n, generator):
    return [{name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()} for _ in range(n)]


def set_up(plugin):
    """The plug-in set up on a stand-in trainer holding parameters of SHAPES."""
    trainer = SimpleNamespace(params={name: torch.nn.Parameter(torch.zeros(shape)) for name, shape in SHAPES.items()})
    plugin.setup(trainer)
    return trainer


def filtered(plugin, grads, trainer=None):
    """Feed raw gradients through `plugin.after_backward` as the loop would; return the filtered ones."""
    trainer = set_up(plugin) if trainer is None else trainer
    params = trainer.params
    out = []
    for g in grads:
        for name, p in params.items():
            p.grad = g[name].clone()
        plugin.after_backward(trainer)
        out.append({name: p.grad.clone() for name, p in params.items()})
    return out


def test_ema_matches_closed_form(generator):
    alpha, lamb, n = 0.8, 2.0, 12
    grads = gradient_sequence(n, generator)
    out = filtered(GrokfastEMA(alpha=alpha, lamb=lamb), grads)
    for t in range(n):
        for name in SHAPES:
            g = [grads[s][name].double() for s in range(t + 1)]
            # h_{-1} = g_0 (the paper's code), so h_t = alpha^{t+1} g_0 + (1 - alpha) sum_s alpha^{t-s} g_s
            h = alpha ** (t + 1) * g[0] + (1 - alpha) * sum(alpha ** (t - s) * g[s] for s in range(t + 1))
            torch.testing.assert_close(out[t][name].double(), g[t] + lamb * h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("filter_", ["mean", "median", "sum"])
@pytest.mark.parametrize("warmup", [True, False])
def test_ma_matches_closed_form(generator, filter_, warmup):
    window, lamb, n = 4, 5.0, 11
    grads = gradient_sequence(n, generator)
    out = filtered(GrokfastMA(window=window, lamb=lamb, filter=filter_, warmup=warmup), grads)
    reduce = {"mean": lambda x: x.mean(0), "sum": lambda x: x.sum(0), "median": lambda x: x.median(0).values}[filter_]
    for t in range(n):
        for name in SHAPES:
            g = grads[t][name]
            last = torch.stack([grads[s][name] for s in range(max(0, t - window + 1), t + 1)])
            expected = g if warmup and t + 1 < window else g + lamb * reduce(last)
            torch.testing.assert_close(out[t][name], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[0]["w"], grads[0]["w"]) == warmup  # warm-up: untouched until the window is full


def safetensors_round_trip(state):
    return load(save({k: v.contiguous() for k, v in state.items()}))


@pytest.mark.parametrize("make", [lambda: GrokfastEMA(alpha=0.9, lamb=2.0),
                                  lambda: GrokfastMA(window=3, lamb=5.0, filter="median")])
def test_state_round_trip_continues_identically(generator, make):
    grads = gradient_sequence(9, generator)
    straight = make()
    expected = filtered(straight, grads)[5:]
    first = make()
    filtered(first, grads[:5])
    second = make()
    trainer = set_up(second)
    second.load_state_dict(safetensors_round_trip(first.state_dict()))
    got = filtered(second, grads[5:], trainer)
    for e, g in zip(expected, got):
        for name in SHAPES:
            assert torch.equal(e[name], g[name])


@pytest.mark.parametrize("optim", ["adamw", "adam"])
@pytest.mark.parametrize("beta1", [0.0, 0.5])
def test_the_optimizer_steps_on_the_filtered_gradient(optim, beta1):
    """First step: h_0 = g_0, so the filtered gradient is (1 + lamb) g_0; Adam's exp_avg is (1 - beta1) times it,
    plus (for coupled `adam`) the weight-decay term the optimizer adds after the filter."""
    lamb = 2.0
    config = tiny_config(optim__name=optim, optim__beta1=beta1, plugins={"grokfast_ema": {"alpha": 0.9, "lamb": lamb}})
    trainer = make_trainer(config, make_task(config.task))
    raw = {}

    class Capture(Plugin):
        def after_backward(self, trainer):
            raw.update({n: p.grad.clone() for n, p in trainer.params.items()})

    trainer.plugins.insert(0, Capture())
    theta = {n: p.detach().clone() for n, p in trainer.params.items()}
    trainer.train_step()
    wd = config.optim.weight_decay if optim == "adam" else 0.0
    for name, p in trainer.params.items():
        expected = (1 - beta1) * ((1 + lamb) * raw[name] + wd * theta[name])
        torch.testing.assert_close(trainer.optimizer.state[p]["exp_avg"], expected, rtol=1e-4, atol=1e-7)


def test_bad_arguments_are_config_errors():
    for plugins in ({"grokfast_ema": {"alpha": 1.0}}, {"grokfast_ma": {"window": 0}},
                    {"grokfast_ma": {"filter": "mode"}}, {"grokfast_ema": {"beta": 0.9}}):
        with pytest.raises(ConfigError):
            config = tiny_config(plugins=plugins)
            make_trainer(config, make_task(config.task))


def assert_resume_is_bit_identical(tmp_path, config, cut):
    """Train straight through; copy the run, delete everything after step `cut`, resume: same files, bit for bit."""
    full = train_run(config, tmp_path / "full", progress=False)
    part = tmp_path / "part"
    shutil.copytree(full.path, part)
    for folder in ("ckpt", "state"):
        for step in full.steps if folder == "ckpt" else full.state_steps:
            if step > cut:
                (part / folder / step_filename(step)).unlink()
    resumed = train_run(config, part, resume=True, progress=False)
    assert resumed.steps == full.steps and resumed.state_steps == full.state_steps
    for step in full.steps:
        a, b = full.state_dict(step), resumed.state_dict(step)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for step in full.state_steps:
        a, b = (load_tensors(r.path / "state" / step_filename(step)) for r in (full, resumed))
        a.pop("trainer/wall_time_s"), b.pop("trainer/wall_time_s")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    rows_a, rows_b = (read_metrics_csv(r.path / "metrics.csv") for r in (full, resumed))
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b):
        assert ra.keys() == rb.keys()
        assert all(ra[k] == rb[k] or (ra[k] != ra[k] and rb[k] != rb[k]) for k in ra)
    return full


def test_resume_is_bit_identical_with_filters_and_stencil(tmp_path):
    plugins = {"grokfast_ema": {"alpha": 0.9, "lamb": 1.0}, "grokfast_ma": {"window": 4, "lamb": 1.0},
               "probe_stencil": {"offsets": [-1, 0, 1]}}
    config = tiny_config(plugins=plugins, train__steps=16, train__ckpt_every=4, train__state_every=8)
    full = assert_resume_is_bit_identical(tmp_path, config, cut=8)
    state = load_tensors(full.path / "state" / step_filename(8))
    assert int(state["plugin/grokfast_ma/count/embed.W_E"]) == 8
    assert "plugin/grokfast_ema/ema/blocks.0.mlp.W_in" in state and "plugin/probe_stencil/buffer/hidden" in state
