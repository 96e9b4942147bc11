"""Gradient geometry against loops of single backward passes and hand-made references; the
grad_agreement plug-in leaves training bit-identical and records what a replay computes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grokinterp.analysis.curvature import (
    agreement_dips,
    effective_rank,
    gradient_effective_rank,
    half_batch_agreement,
    half_batch_split,
    per_sample_gradients,
    rank_sample,
    singular_values,
)
from grokinterp.config import ConfigError, TaskConfig
from grokinterp.runs import train_run
from grokinterp.report import agreement_figure
from grokinterp.runs import load_tensors
from grokinterp.tasks import make_task

from conftest import tiny_config
from test_curvature import MODELS, tiny_model


@pytest.fixture(scope="module")
def data():
    task = make_task(TaskConfig(p=5, frac_train=0.6))
    return task.train_tokens, task.train_labels


def backward_gradient(model, tokens, labels, names) -> torch.Tensor:
    """The reference: loss.backward() on a copy of the model, gradients read from .grad."""
    clone = copy.deepcopy(model)
    F.cross_entropy(clone(tokens)[:, -1], labels).backward()
    params = dict(clone.named_parameters())
    return torch.cat([params[n].grad.reshape(-1) for n in names])


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("params", [None, "blocks.0.mlp"])
def test_per_sample_gradients_equal_single_example_backward_passes(data, kind, params):
    model = tiny_model(**MODELS[kind])
    tokens, labels = data
    names = [n for n, p in model.named_parameters() if params is None or n.startswith(params + ".")]
    rows = per_sample_gradients(model, tokens, labels, params=params)
    expected = torch.stack([backward_gradient(model, tokens[i:i + 1], labels[i:i + 1], names)
                            for i in range(len(tokens))])
    torch.testing.assert_close(rows, expected, rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in model.parameters())


def test_half_batch_agreement_is_the_cosine_of_the_halves_gradients(data):
    model = tiny_model(n_layers=2, act_fn="gelu", norm="LN")
    tokens, labels = data
    names = [n for n, _ in model.named_parameters()]
    rng_before = torch.get_rng_state()
    result = half_batch_agreement(model, tokens, labels, seed=7, step=120)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the torch RNG is not drawn from
    a, b = half_batch_split(len(tokens), seed=7, step=120)
    g_a = backward_gradient(model, tokens[a], labels[a], names)
    g_b = backward_gradient(model, tokens[b], labels[b], names)
    assert result.cosine == pytest.approx(float(F.cosine_similarity(g_a, g_b, dim=0)), rel=1e-10)
    g = backward_gradient(model, tokens, labels, names)
    assert result.grad_norm == pytest.approx(float(g.norm()), rel=1e-10)
    assert result.cosine == half_batch_agreement(model, tokens, labels, seed=7, step=120).cosine  # per step
    assert sorted([*a, *b]) == list(range(len(tokens))) and abs(len(a) - len(b)) <= 1
    other_a, _ = half_batch_split(len(tokens), seed=7, step=121)
    assert not np.array_equal(a, other_a)  # another step draws other halves


def test_effective_rank_of_known_singular_values():
    assert effective_rank(torch.linalg.svdvals(torch.eye(6)[:4])) == pytest.approx(4.0)  # identity k -> k
    assert effective_rank(np.array([2.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_rank(np.zeros(3)) == 0.0
    s = np.array([4.0, 2.0, 1.0, 1.0])
    p = s / s.sum()
    assert effective_rank(s) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert effective_rank(10 * s) == pytest.approx(effective_rank(s))  # scale-invariant
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(40, 5, generator=g, dtype=torch.float64))
    matrix = u @ torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0], dtype=torch.float64)) @ v.T  # [5, 40]
    torch.testing.assert_close(singular_values(matrix), torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0], dtype=torch.float64),
                               rtol=0, atol=1e-7)
    torch.testing.assert_close(singular_values(matrix.T), singular_values(matrix))
    with pytest.raises(ValueError):
        effective_rank(np.array([1.0, -1.0]))


def test_gradient_effective_rank_uses_a_fixed_subset(data):
    model = tiny_model()
    tokens, labels = data
    idx = rank_sample(len(tokens), 6, seed=2)
    assert np.array_equal(idx, rank_sample(len(tokens), 6, seed=2)) and len(set(idx)) == 6
    rows = per_sample_gradients(model, tokens[idx], labels[idx])
    expected = effective_rank(torch.linalg.svdvals(rows))
    assert gradient_effective_rank(model, tokens, labels, n_samples=6, seed=2) == pytest.approx(expected, rel=1e-9)
    assert 1.0 <= expected <= 6.0


def dip(steps, at, depth, half_width=15):
    return -depth * np.clip(1 - np.abs(steps - at) / half_width, 0, None)


def test_dips_on_a_hand_made_series():
    steps = np.arange(0, 2001, 10, dtype=np.float64)
    noise = np.random.default_rng(0).uniform(-0.005, 0.005, len(steps))  # bounded: no 3-SD excursion by chance
    base = 0.3 + 2e-4 * steps + 0.005 * np.sin(steps / 37.0) + noise  # a ramp (detrended away), a wiggle, noise
    series = base + dip(steps, 300, 0.2) + dip(steps, 800, 0.15) + dip(steps, 820, 0.2) + dip(steps, 1500, 0.3)
    series += dip(steps, 1200, 0.005)  # about one robust SD: not a dip
    found = agreement_dips(steps, series)
    assert found.steps.tolist() == [300, 820, 1500] and found.count == 3  # 800 and 820 are 20 < 50 steps apart
    assert 0.002 < found.scale < 0.01 and (found.depths > 3.0).all()
    np.testing.assert_allclose(found.depths * found.scale, [0.2, 0.2, 0.3], rtol=0.1)
    assert agreement_dips(steps, series, min_separation=0).steps.tolist() == [300, 800, 820, 1500]
    assert agreement_dips(steps, series, threshold=0.99 * found.depths.max()).steps.tolist() == [1500]
    assert agreement_dips(steps, series, stop=1000).steps.tolist() == [300, 820]
    assert agreement_dips(steps, base).count == 0
    # A plug-in column is NaN between measurements: the NaN rows are dropped.
    dense = np.arange(0, 2001, dtype=np.float64)
    column = np.full(len(dense), np.nan)
    column[::10] = series
    assert agreement_dips(dense, column).steps.tolist() == [300, 820, 1500]


# ----- the grad_agreement plug-in ---------------------------------------------------------------------


AGREEMENT = {"every": 5, "seed": 3}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same short tiny run trained with and without the plug-in."""
    root = tmp_path_factory.mktemp("agreement")
    config = tiny_config(train__steps=60, train__ckpt_every=20, train__state_every=20)
    plain = train_run(config, root / "plain", progress=False)
    with_plugin = train_run(tiny_config(train__steps=60, train__ckpt_every=20, train__state_every=20,
                                        plugins={"grad_agreement": AGREEMENT}), root / "agreement", progress=False)
    return plain, with_plugin


def test_plugin_leaves_training_bit_identical(runs):
    plain, with_plugin = runs
    assert plain.steps == with_plugin.steps and plain.state_steps == with_plugin.state_steps
    for step in plain.steps:
        a, b = plain.state_dict(step), with_plugin.state_dict(step)
        assert all(torch.equal(a[k], b[k]) for k in a), step
    for step in plain.state_steps:
        a = load_tensors(plain.path / "state" / f"step_{step:07d}.safetensors")
        b = load_tensors(with_plugin.path / "state" / f"step_{step:07d}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("trainer/wall")), step
    metrics, other = plain.metrics, with_plugin.metrics
    assert set(other) - set(metrics) == {"grad_agreement"}
    for column in metrics:
        np.testing.assert_array_equal(metrics[column], other[column], err_msg=column)


def test_plugin_column_equals_the_replayed_agreement(runs):
    _, run = runs
    steps, column = run.metrics["step"], run.metrics["grad_agreement"]
    measured = (steps % AGREEMENT["every"] == 0) & (steps < steps[-1])  # the closing row has no plug-in metrics
    assert np.isfinite(column[measured]).all() and np.isnan(column[~measured]).all()
    task = run.task
    for step in run.steps[:-1]:
        value = half_batch_agreement(run.model(step), task.train_tokens, task.train_labels, seed=AGREEMENT["seed"],
                                     step=step).cosine
        assert column[steps == step][0] == pytest.approx(value, rel=1e-6, abs=1e-7), step
    fig = agreement_figure(run)
    found = agreement_dips(steps, column)
    assert fig.data[-1].name == f"dips ({found.count})"
    np.testing.assert_array_equal(fig.data[1].x, steps[measured].astype(np.int64))


def test_plugin_rejects_bad_arguments():
    from grokinterp.plugins import GradAgreement

    with pytest.raises(ConfigError, match="every"):
        GradAgreement(every=0)
    with pytest.raises(ConfigError, match="seed"):
        GradAgreement(seed=-1)
