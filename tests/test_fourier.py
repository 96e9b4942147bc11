"""Fourier analysis over Z_n: checked against the explicit basis, hand-built signals and brute force."""

import math

import numpy as np
import pytest
import torch

from grokinterp.analysis.fourier import (
    basis_frequencies,
    basis_names,
    checkpoint_spectra,
    diagonal_sums,
    embedding_spectrum,
    fourier_basis,
    frequency_energy,
    frequency_norms,
    gini,
    grid_forward,
    inverse_participation_ratio,
    key_frequencies,
    key_frequency_mask,
    logit_input_spectrum,
    logit_output_spectrum,
    n_frequencies,
    neuron_frequencies,
    pair_frequency_energy,
)
from grokinterp.config import ModelConfig, RunConfig, TaskConfig
from grokinterp.tasks import make_task
from grokinterp.model import build_model


def wave(k: int, x: torch.Tensor, n: int, phase: float = 0.0) -> torch.Tensor:
    return torch.cos(2 * math.pi * k * x / n + phase)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7, 12, 112, 113])
def test_basis_is_orthonormal_and_named(n):
    B = fourier_basis(n, dtype=torch.float64)
    assert torch.allclose(B @ B.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    names = basis_names(n)
    assert len(names) == n and names[0] == "const"
    assert basis_frequencies(n).max().item() == n // 2 and n_frequencies(n) == n // 2 + 1
    if n == 7:
        assert names == ["const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3", "sin 3"]
        x = torch.arange(7, dtype=torch.float64)
        assert torch.allclose(B[5], math.sqrt(2 / 7) * wave(3, x, 7))
    if n == 6:
        assert names[-1] == "cos 3"
        assert torch.allclose(B[-1], torch.tensor([1.0, -1, 1, -1, 1, -1], dtype=torch.float64) / math.sqrt(6))


def energy_by_basis(x: torch.Tensor) -> torch.Tensor:
    """Reference: squared coefficients in the explicit basis, summed per frequency. x: [n, d] -> [d, n_freq]."""
    n = x.shape[0]
    coeffs = fourier_basis(n, torch.float64) @ x.to(torch.float64)
    out = torch.zeros(x.shape[1], n_frequencies(n), dtype=torch.float64)
    return out.index_add_(1, basis_frequencies(n), (coeffs**2).T)


@pytest.mark.parametrize("n", [5, 8, 113])
def test_frequency_energy_equals_explicit_basis(n, generator):
    x = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    assert torch.allclose(frequency_energy(x, dim=0), energy_by_basis(x), atol=1e-10)
    # Parseval: nothing lost.
    assert torch.allclose(frequency_energy(x, dim=0).sum(-1), (x**2).sum(0))


def test_known_frequencies_come_back_exactly():
    p = 113
    x = torch.arange(p, dtype=torch.float64)
    signal = torch.stack([3 * wave(5, x, p), 2 * wave(17, x, p, phase=0.3) + 0.5 * wave(41, x, p, 1.0)], 1)
    norms = frequency_norms(signal)
    found = torch.nonzero(norms > 1e-6).flatten().tolist()
    assert found == [5, 17, 41]
    # Amplitude A of a cosine over Z_p has norm A sqrt(p / 2).
    assert norms[5].item() == pytest.approx(3 * math.sqrt(p / 2), rel=1e-9)
    assert norms[41].item() == pytest.approx(0.5 * math.sqrt(p / 2), rel=1e-9)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_diagonal_sums_match_brute_force(n, generator):
    grid = torch.randn(n, n, 3, 2, generator=generator, dtype=torch.float64)
    for sign in (1, -1):
        expected = torch.zeros(n, 3, 2, dtype=torch.float64)
        for i in range(n):
            for j in range(n):
                expected[(i + sign * j) % n] += grid[i, j]
        assert torch.allclose(diagonal_sums(grid, sign), expected, atol=1e-12)
    assert diagonal_sums(grid[..., 0, 0]).shape == (n,)


def pair_energy_by_basis(grid: torch.Tensor) -> torch.Tensor:
    """Reference 2D transform C = B A B^T; frequency k gets rows/cols of frequency in {0, k}, minus (0, 0)."""
    n = grid.shape[0]
    B = fourier_basis(n, torch.float64)
    coeffs = torch.einsum("ia,abd,jb->dij", B, grid.to(torch.float64), B)
    f = basis_frequencies(n)
    out = torch.zeros(grid.shape[2], n_frequencies(n), dtype=torch.float64)
    out[:, 0] = coeffs[:, 0, 0] ** 2
    for k in range(1, n // 2 + 1):
        sel = (f == 0) | (f == k)
        block = coeffs[:, sel][:, :, sel] ** 2
        out[:, k] = block.sum((1, 2)) - coeffs[:, 0, 0] ** 2
    return out


@pytest.mark.parametrize("n", [7, 8, 23])
def test_pair_frequency_energy_equals_2d_basis(n, generator):
    grid = torch.randn(n, n, 5, generator=generator, dtype=torch.float64)
    assert torch.allclose(pair_frequency_energy(grid), pair_energy_by_basis(grid), atol=1e-9)


def test_neuron_of_one_frequency_is_fully_explained():
    p = 59
    a = torch.arange(p, dtype=torch.float64)[:, None]
    b = torch.arange(p, dtype=torch.float64)[None, :]
    neurons = [
        wave(7, a + b, p),  # cos(w_k a + w_k b)
        wave(20, a + b, p, phase=1.1),
        wave(3, a, p) + 2 * wave(3, b, p, 0.4),  # cos(w_3 a) + cos(w_3 b)
        wave(12, a, p) * wave(12, b, p) + 0.2,  # product term plus a constant
        torch.full((p, p), 2.0),  # constant: a dead neuron
    ]
    acts = torch.stack([x.expand(p, p) for x in neurons], -1).to(torch.float32)
    result = neuron_frequencies(acts)
    assert result.freq.tolist() == [7, 20, 3, 12, 0]
    assert torch.allclose(result.frac_explained[:4], torch.ones(4, dtype=torch.float64), atol=1e-5)
    assert result.frac_explained[4].item() == 0.0
    # A ReLU of such a neuron keeps its frequency as the dominant one, with harmonics taking the rest.
    relu = neuron_frequencies(torch.relu(acts[..., :1]))
    assert relu.freq.item() == 7 and 0.5 < relu.frac_explained.item() < 1.0


def test_key_frequency_mask_finds_the_planted_frequencies(generator):
    p = 31
    a = torch.arange(p, dtype=torch.float64)[:, None]
    b = torch.arange(p, dtype=torch.float64)[None, :]
    planted = [2, 9, 14]
    phases = torch.rand(96, generator=generator, dtype=torch.float64) * 6.28
    clean = [torch.relu(wave(planted[j % 3], a + b, p, phases[j].item())) for j in range(96)]
    noise = [torch.randn(p, p, generator=generator, dtype=torch.float64) * 0.3 for _ in range(32)]
    acts = torch.stack(clean + noise, -1)
    mask = key_frequency_mask(neuron_frequencies(acts))
    assert torch.nonzero(mask).flatten().tolist() == planted
    # Pure noise has no key frequency.
    assert not key_frequency_mask(neuron_frequencies(torch.stack(noise, -1))).any()


def test_gini_and_ipr_references(generator):
    n = 10
    one_hot = torch.zeros(n)
    one_hot[3] = 2.5
    assert gini(one_hot) == pytest.approx(1 - 1 / n)
    assert gini(torch.full((n,), 0.7)) == pytest.approx(0.0, abs=1e-12)
    assert inverse_participation_ratio(one_hot) == pytest.approx(1.0)
    assert inverse_participation_ratio(torch.full((n,), 0.7)) == pytest.approx(1 / n)
    x = torch.rand(17, generator=generator, dtype=torch.float64)
    brute = (x[:, None] - x[None, :]).abs().sum() / (2 * len(x) * x.sum())
    assert gini(x) == pytest.approx(brute.item(), rel=1e-12)
    ipr = (x**4).sum() / (x**2).sum() ** 2
    assert inverse_participation_ratio(x) == pytest.approx(ipr.item(), rel=1e-12)


def small_model(p: int = 23, op: str = "add", d_mlp: int = 64):
    config = RunConfig(task=TaskConfig(p=p, op=op, frac_train=0.3), model=ModelConfig(d_model=32, n_heads=2, d_head=16, d_mlp=d_mlp))
    return build_model(config).eval(), make_task(config.task)


def test_grid_forward_matches_the_full_forward_cache():
    model, task = small_model(op="div")
    grid = grid_forward(model, task)
    p = task.p
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    tokens = torch.stack([a, b, torch.full_like(a, p)], 1)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)  # every position, no fast path
    assert torch.allclose(grid.logits, logits[:, -1].reshape(p, p, -1), atol=1e-5)
    assert torch.allclose(grid.neuron_acts, cache["blocks.0.mlp.hook_post"][:, -1].reshape(p, p, -1), atol=1e-5)
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())  # the capture hook is gone

    class PlainForward(type(model)):  # a HookedTransformer-like model without the fast path
        def forward(self, tokens):
            return super().forward(tokens)

    plain = PlainForward(model.cfg, model.d_vocab, model.d_vocab_out)
    plain.load_state_dict(model.state_dict())
    slow = grid_forward(plain, task)
    assert torch.allclose(slow.logits, grid.logits, atol=1e-5)
    assert torch.allclose(slow.neuron_acts, grid.neuron_acts, atol=1e-5)


def test_checkpoint_spectra_keys_and_references():
    model, task = small_model()
    p, n_freq = task.p, (task.p - 1) // 2 + 1
    x = torch.arange(p, dtype=torch.float32)
    with torch.no_grad():  # a hand-set embedding with frequencies 4 and 9 only
        W = torch.zeros_like(model.embed.W_E)
        W[:p, 0], W[:p, 1], W[:p, 2] = wave(4, x, p), torch.sin(2 * math.pi * 4 * x / p), 0.3 * wave(9, x, p)
        model.embed.W_E.copy_(W)
    grid = grid_forward(model, task)
    out = checkpoint_spectra(model, task, grid=grid)
    shapes = {"embed_freq_norm": (n_freq,), "logit_freq_norm": (n_freq,), "neuron_freq": (64,),
              "neuron_frac_explained": (64,), "key_freq_mask": (n_freq,)}
    assert {k: v.shape for k, v in out.items() if isinstance(v, np.ndarray)} == shapes
    assert out["neuron_freq"].dtype == np.int64 and out["key_freq_mask"].dtype == np.bool_
    assert {"embed_gini", "embed_ipr", "neuron_gini", "logit_gini"} <= {k for k, v in out.items() if isinstance(v, float)}
    assert np.flatnonzero(out["embed_freq_norm"] > 1e-4).tolist() == [4, 9]
    assert out["embed_gini"] > 0.85  # two of eleven nonzero frequencies
    reference = neuron_frequencies(grid.neuron_acts)
    assert np.array_equal(out["neuron_freq"], reference.freq.numpy())
    expected_logit = frequency_norms(grid.logits.reshape(p * p, p).T)
    assert np.allclose(out["logit_freq_norm"], expected_logit.numpy(), rtol=1e-4)
    assert key_frequencies(model, task, grid=grid) == np.flatnonzero(out["key_freq_mask"]).tolist()
    again = checkpoint_spectra(model, task)  # without a precomputed grid
    assert np.allclose(again["logit_freq_norm"], out["logit_freq_norm"])


def test_logit_spectra_of_an_ideal_clock():
    p, keys = 29, [3, 11]
    a, b, c = torch.meshgrid(*(torch.arange(p, dtype=torch.float64),) * 3, indexing="ij")
    logits = sum(wave(k, a + b - c, p) for k in keys)
    out = logit_output_spectrum(logits, torch.arange(p))
    assert torch.nonzero(out > 1e-6).flatten().tolist() == keys
    inputs = logit_input_spectrum(logits)
    assert torch.nonzero(inputs > 1e-6).flatten().tolist() == keys


def test_embedding_spectrum_of_additive_model_matches_frequency_norms(generator):
    W = torch.randn(24, 8, generator=generator)
    assert torch.allclose(embedding_spectrum(W, 23, "add"), frequency_norms(W[:23]))
