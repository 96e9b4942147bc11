"""Restricted and excluded loss on hand-built "ideal Fourier" logits (Nanda et al. 2023), and the weight norm."""

import math

import pytest
import torch
import torch.nn.functional as F

from grokinterp.analysis.fourier import group_indexing, group_law_labels
from grokinterp.analysis.fourier import GridForward, grid_forward
from grokinterp.analysis.fourier import (
    excluded_logits,
    excluded_loss,
    key_directions,
    key_projection,
    per_example_loss,
    progress_measures,
    restricted_logits,
    restricted_loss,
    weight_norm_sq,
)
from grokinterp.config import ModelConfig, RunConfig, TaskConfig
from grokinterp.tasks import make_task
from grokinterp.model import build_model

P, KEYS, SCALE = 23, [2, 5, 9], 6.0


def clock_logits(n: int, keys: list[int], scale: float, sign: int = 1) -> torch.Tensor:
    """L[i, j, c] = scale * sum_k cos(w_k (i + sign j - c)): the ideal clock over Z_n."""
    i, j, c = torch.meshgrid(*(torch.arange(n, dtype=torch.float64),) * 3, indexing="ij")
    return scale * sum(torch.cos(2 * math.pi * k * (i + sign * j - c) / n) for k in keys)


def ce(logits: torch.Tensor, labels: torch.Tensor) -> float:
    n = logits.shape[0]
    return F.cross_entropy(logits.reshape(n * n, -1), labels.reshape(-1)).item()


def test_per_example_loss_keeps_tiny_losses_precise(generator):
    labels = torch.randint(0, 50, (40,), generator=generator)
    for margin in (0.0, 5.0, 20.0, 40.0):  # losses from ~log(50) down to ~1e-16
        logits = torch.randn(40, 50, generator=generator, dtype=torch.float64) * 3
        logits[torch.arange(40), labels] += margin
        # Reference row by row in plain Python: log(sum_c exp(x_c - x_y)) = log1p(sum_{c != y} exp(x_c - x_y)).
        reference = torch.tensor([
            math.log1p(math.fsum(math.exp(v - row[y]) for c, v in enumerate(row) if c != y))
            for row, y in zip(logits.tolist(), labels.tolist())
        ], dtype=torch.float64)
        assert torch.allclose(per_example_loss(logits, labels), reference, rtol=1e-12, atol=0)
        # float32 logits: float32 relative precision even where the loss is far below float32's eps.
        ours32 = per_example_loss(logits.float(), labels)
        reference32 = per_example_loss(logits.float().double(), labels)
        assert torch.allclose(ours32, reference32, rtol=5e-5, atol=0)
        if margin == 0.0:
            assert torch.allclose(reference, F.cross_entropy(logits, labels, reduction="none"), rtol=1e-12)


@pytest.mark.parametrize("n, sign", [(23, 1), (22, 1), (22, -1)])
def test_key_directions_are_orthonormal(n, sign):
    keys = [1, 4, n // 2]
    D = key_directions(n, keys, sign)
    assert D.shape == (2 * len(keys) - (n % 2 == 0), n * n)
    assert torch.allclose(D @ D.T, torch.eye(len(D), dtype=torch.float64), atol=1e-10)
    assert torch.allclose(D.sum(1), torch.zeros(len(D), dtype=torch.float64), atol=1e-9)  # orthogonal to the constant
    with pytest.raises(ValueError, match="out of range"):
        key_directions(n, [n // 2 + 1])


def test_ideal_clock_restricted_loss_equals_full_loss_and_excluded_is_large(generator):
    labels = group_law_labels(group_indexing(P, "add"))
    logits = clock_logits(P, KEYS, SCALE)
    full = ce(logits, labels)
    assert full < 0.01  # the clock solves the task
    assert restricted_loss(logits, labels, KEYS) == pytest.approx(full, abs=1e-9)
    train = torch.randperm(P * P, generator=generator)[: P * P // 3]
    excluded = excluded_loss(logits, labels, KEYS, train)
    assert excluded == pytest.approx(math.log(P), abs=1e-9)  # nothing but the per-output constant is left
    # Removing only some of the key frequencies hurts less than removing all.
    assert full < excluded_loss(logits, labels, KEYS[:1], train) < excluded


def test_restricted_loss_removes_memorization_noise(generator):
    labels = group_law_labels(group_indexing(P, "add"))
    clean = clock_logits(P, KEYS, 1.5)
    noise = torch.randn(P, P, P, generator=generator, dtype=torch.float64) * 2.0
    noisy = clean + noise
    # The restricted logits of clock + noise keep the clock plus the noise's own key-direction components.
    assert restricted_loss(noisy, labels, KEYS) < ce(noisy, labels)
    assert restricted_loss(noisy, labels, KEYS) == pytest.approx(ce(restricted_logits(noisy, KEYS), labels))
    # Decomposition: restricted + excluded = logits + per-output mean; the projection is idempotent.
    mean = noisy.mean((0, 1), keepdim=True)
    assert torch.allclose(restricted_logits(noisy, KEYS) + excluded_logits(noisy, KEYS), noisy + mean, atol=1e-10)
    proj = key_projection(noisy, KEYS)
    assert torch.allclose(key_projection(proj, KEYS), proj, atol=1e-10)
    # The constant term is kept: a per-output bias survives restriction untouched.
    bias = torch.randn(P, generator=generator, dtype=torch.float64)
    assert torch.allclose(restricted_logits(clean + bias, KEYS), clean + bias, atol=1e-10)


def test_restriction_is_the_2d_dft_on_cos_sin_of_a_plus_b():
    """Reference by explicit vectors: project each output's [p, p] slice on cos/sin(w_k (a + b))."""
    n, keys = 11, [3]
    logits = torch.randn(n, n, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a, b = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    expected = logits.mean((0, 1), keepdim=True).clone().expand(n, n, n).clone()
    for f in (torch.cos, torch.sin):
        v = f(2 * math.pi * 3 * (a + b) / n)
        coeff = torch.einsum("abc,ab->c", logits, v) / (v**2).sum()
        expected += v[..., None] * coeff
    assert torch.allclose(restricted_logits(logits, keys), expected, atol=1e-10)


def small(op: str, p: int = P):
    config = RunConfig(task=TaskConfig(p=p, op=op, frac_train=0.3), model=ModelConfig(d_model=16, n_heads=2, d_head=8, d_mlp=32))
    return build_model(config).eval(), make_task(config.task)


def test_progress_measures_on_an_ideal_add_model():
    model, task = small("add")
    logits = clock_logits(P, KEYS, SCALE).float()
    grid = GridForward(logits=logits, neuron_acts=torch.zeros(P, P, 32), layer=0)
    out = progress_measures(model, task, KEYS, grid=grid)
    assert set(out) == {"restricted_loss", "excluded_loss", "train_loss", "test_loss", "weight_norm_sq"}
    flat = logits.reshape(P * P, P)
    assert out["train_loss"] == pytest.approx(F.cross_entropy(flat[task.train_idx].double(), task.train_labels).item(), rel=1e-5)
    assert out["test_loss"] == pytest.approx(F.cross_entropy(flat[task.test_idx].double(), task.test_labels).item(), rel=1e-5)
    assert out["restricted_loss"] == pytest.approx(ce(logits.double(), group_law_labels(group_indexing(P, "add"))), abs=1e-6)
    assert out["excluded_loss"] == pytest.approx(math.log(P), abs=1e-5)
    assert out["excluded_loss"] > 100 * out["train_loss"]


def test_progress_measures_on_an_ideal_mul_model_use_discrete_logs():
    model, task = small("mul")
    indexing = group_indexing(P, "mul")
    n = P - 1
    keys = [3, 7, 11]  # 11 = (p-1)/2: the Nyquist character, cos only
    clock = clock_logits(n, keys, 10.0)  # over log a, log b, log c
    logits = torch.full((P, P, P), -20.0, dtype=torch.float64)
    logits[:, 0, 0] = logits[0, :, 0] = 20.0  # a or b = 0: answer 0
    r = indexing.residues
    logits[r[:, None, None], r[None, :, None], r[None, None, :]] = clock
    logits = logits.float()
    out = progress_measures(model, task, keys, grid=GridForward(logits=logits, neuron_acts=torch.zeros(P, P, 32), layer=0))
    assert out["train_loss"] < 0.01 and out["test_loss"] < 0.01
    labels = group_law_labels(indexing)
    inner = logits[r][:, r].double()
    assert out["restricted_loss"] == pytest.approx(ce(inner, labels), abs=1e-6)
    assert out["excluded_loss"] > 1.0
    # The additive reading of the same model finds no such structure: restricting to cos/sin(w_k (a + b)) fails.
    a = torch.arange(P)
    mul_labels = (a[:, None] * a[None, :]) % P
    assert restricted_loss(logits.double(), mul_labels, keys) > 2.0


def test_progress_measures_of_a_real_model_match_its_forward():
    model, task = small("sub")
    out = progress_measures(model, task, [1, 4])
    with torch.no_grad():
        logits = model(task.tokens)[:, -1]
    assert out["train_loss"] == pytest.approx(F.cross_entropy(logits[task.train_idx], task.train_labels).item(), rel=1e-5)
    assert out["test_loss"] == pytest.approx(F.cross_entropy(logits[task.test_idx], task.test_labels).item(), rel=1e-5)
    expected_norm = sum((p.detach().double() ** 2).sum().item() for p in model.parameters())
    assert out["weight_norm_sq"] == pytest.approx(expected_norm, rel=1e-12)
    assert weight_norm_sq(model) == out["weight_norm_sq"]
    grid = grid_forward(model, task)
    assert progress_measures(model, task, [1, 4], grid=grid) == out
    nongroup_model, nongroup_task = small("x2+y2")
    other = progress_measures(nongroup_model, nongroup_task, [1])
    assert math.isnan(other["restricted_loss"]) and math.isnan(other["excluded_loss"])
    assert other["train_loss"] > 0
