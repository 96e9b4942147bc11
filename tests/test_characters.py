"""Primitive roots, discrete logs and character spectra, checked against `pow` and hand-built signals."""

import math

import numpy as np
import pytest
import torch

from grokinterp.analysis.fourier import (
    character_basis,
    discrete_log,
    group_indexing,
    group_law_labels,
    log_reindex,
    multiplicative_order,
    prime_factors,
    primitive_root,
)
from grokinterp.analysis.fourier import (
    checkpoint_spectra,
    embedding_spectrum,
    fourier_basis,
    frequency_norms,
    gini,
    group_grid,
    neuron_frequencies,
)
from grokinterp.config import ModelConfig, RunConfig, TaskConfig
from grokinterp.tasks import apply_op, make_task
from grokinterp.model import build_model

PRIMES_BELOW_200 = [n for n in range(2, 200) if all(n % d for d in range(2, int(n**0.5) + 1))]


def test_prime_factors_reconstruct_every_number():
    for n in range(1, 500):
        factors = prime_factors(n)
        assert factors == sorted(set(factors))
        assert all(f in PRIMES_BELOW_200 or all(f % d for d in range(2, f)) for f in factors)
        m = n
        for f in factors:
            while m % f == 0:
                m //= f
        assert m == 1


@pytest.mark.parametrize("p", PRIMES_BELOW_200)
def test_primitive_root_and_discrete_logs_against_pow(p):
    g = primitive_root(p)
    assert multiplicative_order(g, p) == p - 1
    # The smallest: no g' < g generates the group.
    assert all(multiplicative_order(h, p) < p - 1 for h in range(2, g))
    table = discrete_log(p)
    assert table.g == g and table.log[0].item() == -1
    for r in range(1, p):
        assert pow(g, int(table.log[r]), p) == r
    assert [pow(g, i, p) for i in range(p - 1)] == table.exp.tolist()
    assert sorted(table.exp.tolist()) == list(range(1, p))


def test_known_primitive_roots_and_errors():
    assert [primitive_root(p) for p in (3, 7, 23, 59, 113, 191)] == [2, 3, 5, 2, 3, 19]
    for bad in (1, 4, 100, 113 * 3):
        with pytest.raises(ValueError, match="not prime"):
            primitive_root(bad)


@pytest.mark.parametrize("p", [5, 13, 59])
def test_character_basis_is_the_fourier_basis_on_logs(p):
    table = discrete_log(p)
    chars = character_basis(p, dtype=torch.float64)
    assert torch.allclose(chars, fourier_basis(p - 1, torch.float64)[:, table.log[1:]], atol=1e-12)
    assert torch.allclose(chars @ chars.T, torch.eye(p - 1, dtype=torch.float64), atol=1e-12)
    # Nyquist character is the Legendre symbol r^((p-1)/2) mod p = +-1.
    legendre = torch.tensor([1.0 if pow(r, (p - 1) // 2, p) == 1 else -1.0 for r in range(1, p)], dtype=torch.float64)
    assert torch.allclose(chars[-1] * math.sqrt(p - 1), legendre)


def test_log_reindex_and_group_labels_agree_with_the_task_ops():
    p = 13
    x = torch.arange(p * p).reshape(p, p)
    table = discrete_log(p)
    y = log_reindex(x, p, dims=(0, 1))
    assert y.shape == (p - 1, p - 1)
    assert y[2, 5].item() == x[table.exp[2], table.exp[5]].item()
    for op in ("add", "sub", "mul", "div"):
        indexing = group_indexing(p, op)
        r = indexing.residues
        a, b = r[:, None].expand(-1, indexing.n), r[None, :].expand(indexing.n, -1)
        expected = apply_op(op, a.reshape(-1), b.reshape(-1), p).reshape(indexing.n, indexing.n)
        assert torch.equal(group_law_labels(indexing), expected)
    assert group_indexing(p, "x2+y2").sign is None


def multiplicative_signal(p: int, k: int, phase: float = 0.0) -> torch.Tensor:
    """cos(2 pi k log(r) / (p - 1) + phase) at r = 0..p-1 (r = 0, which has no log, set to 0)."""
    log = discrete_log(p).log.to(torch.float64)
    out = torch.cos(2 * math.pi * k * log / (p - 1) + phase)
    out[0] = 0.0
    return out


@pytest.mark.parametrize("k", [1, 6, 14])
def test_character_spectrum_of_a_multiplicative_signal_returns_its_frequency(k):
    p = 29  # Z_28: k = 14 is the Nyquist character
    W = torch.stack([multiplicative_signal(p, k), multiplicative_signal(p, k, 0.7), torch.zeros(p)], 1)
    W = torch.cat([W, torch.ones(1, 3)])  # the '=' row is not a residue
    char = embedding_spectrum(W, p, "mul")
    assert char.shape == ((p - 1) // 2 + 1,)
    assert torch.nonzero(char > 1e-9).flatten().tolist() == [k]
    # Under the additive basis the same signal is spread over many frequencies.
    additive = embedding_spectrum(W, p, "add")
    assert (additive[1:] > 1e-3).sum() > 5
    assert gini(char[1:]) > 0.9 > gini(additive[1:]) + 0.3


def test_character_neuron_frequency_of_a_multiplicative_neuron():
    p = 31
    indexing = group_indexing(p, "mul")
    log = indexing.position.to(torch.float64)
    acts = torch.cos(2 * math.pi * 4 * (log[:, None] + log[None, :]) / (p - 1))[..., None]
    acts[0, :] = acts[:, 0] = 5.0  # pairs with a zero are outside the character analysis
    result = neuron_frequencies(group_grid(acts, indexing.residues))
    assert result.freq.item() == 4 and result.frac_explained.item() == pytest.approx(1.0, abs=1e-9)


def test_checkpoint_spectra_of_a_mul_task_run_over_characters():
    p = 23
    config = RunConfig(task=TaskConfig(p=p, op="mul", frac_train=0.3), model=ModelConfig(d_model=16, n_heads=2, d_head=8, d_mlp=32))
    model, task = build_model(config).eval(), make_task(config.task)
    with torch.no_grad():
        model.embed.W_E.zero_()
        model.embed.W_E[:p, 0] = multiplicative_signal(p, 5).float()
        model.embed.W_E[:p, 1] = multiplicative_signal(p, 5, 1.0).float()
    out = checkpoint_spectra(model, task)
    n_freq = (p - 1) // 2 + 1
    assert out["embed_freq_norm"].shape == out["key_freq_mask"].shape == (n_freq,)
    assert np.flatnonzero(out["embed_freq_norm"] > 1e-5).tolist() == [5]
    assert out["embed_gini"] == pytest.approx(1 - 1 / (n_freq - 1), abs=1e-6)
    assert np.allclose(out["embed_freq_norm"], frequency_norms(log_reindex(model.embed.W_E.detach()[:p], p)).numpy(), atol=1e-6)
