"""Curvature against exact Hessians of tiny models (a few hundred parameters, float64), Adam's real
preconditioner, and the "curvature" replay with its report figures on conftest's tiny run."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

from grokinterp.analysis import replay
from grokinterp.analysis.curvature import (
    HessianVectorProduct,
    adam_preconditioner,
    adaptive_eos_threshold,
    curvature_measures,
    hessian_trace,
    lanczos,
    preconditioned_sharpness,
    spectral_density,
    top_eigenvalues,
)
from grokinterp.analysis.curvature._hessian import tridiagonal_quadrature
from grokinterp.config import ModelConfig, TaskConfig
from grokinterp.model import Transformer
from grokinterp.report import curvature_figures, render_report
from grokinterp.runs import Run
from grokinterp.tasks import make_task
from grokinterp.train import make_trainer

from conftest import tiny_config

CHROMIUM = Path("/usr/bin/chromium")


def tiny_model(n_layers: int = 1, act_fn: str = "relu", norm: str | None = None, seed: int = 0) -> Transformer:
    """p = 5: 217 parameters with one layer (about 450 with two and LayerNorm), float64, all biases trained."""
    cfg = ModelConfig(n_layers=n_layers, d_model=4, n_heads=1, d_head=4, d_mlp=8, act_fn=act_fn,
                      normalization_type=norm, init="nanda", seed=seed)
    model = Transformer(cfg, d_vocab=6, d_vocab_out=5).double()
    with torch.no_grad():  # larger weights than the init: a Hessian far from the small-weight regime
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=p.dtype))
    return model


@pytest.fixture(scope="module")
def data():
    task = make_task(TaskConfig(p=5, frac_train=0.6))
    return task.train_tokens, task.train_labels


def exact_hessian(model, tokens, labels, names) -> torch.Tensor:
    """torch.func.hessian of the loss of the full (all positions) forward, flat over `names`."""
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss(theta):
        pieces = {n: t.view(s) for n, t, s in zip(names, theta.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, pieces, (tokens,))[:, -1], labels)

    return hessian(loss)(flat)


MODELS = {"1 layer relu": dict(), "2 layers LN gelu": dict(n_layers=2, act_fn="gelu", norm="LN")}


@pytest.mark.parametrize("last_position_only", [True, False])
@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("params", [None, "blocks.0.mlp", ["unembed.W_U", "embed.W_E"]])
def test_hvp_equals_the_exact_hessian_times_v(data, kind, last_position_only, params):
    model = tiny_model(**MODELS[kind])
    tokens, labels = data
    before = copy.deepcopy(model.state_dict())
    hvp = HessianVectorProduct(model, tokens, labels, params=params, last_position_only=last_position_only)
    H = exact_hessian(model, tokens, labels, hvp.names)
    assert H.shape == (hvp.n, hvp.n) and (hvp.n > 200 if params is None else hvp.n < 100)
    v = torch.randn(hvp.n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(hvp(v), H @ v, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        loss = float(F.cross_entropy(model(tokens)[:, -1], labels))
    assert hvp.loss == pytest.approx(loss, rel=1e-12)
    # The model is left as found: no .grad, same weights, same trainable set.
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_hvp_rejects_unknown_and_frozen_parameters(data):
    model = tiny_model()
    model.unembed.b_U.requires_grad_(False)
    with pytest.raises(ValueError, match="names no trainable parameter"):
        HessianVectorProduct(model, *data, params="blocks.0.mpl")
    with pytest.raises(ValueError, match="frozen"):
        HessianVectorProduct(model, *data, params="unembed.b_U")
    assert "unembed.b_U" not in HessianVectorProduct(model, *data).names  # frozen ones are left out


@pytest.mark.parametrize("kind", list(MODELS))
def test_top_eigenvalues_match_eigvalsh(data, kind):
    model = tiny_model(**MODELS[kind])
    hvp = HessianVectorProduct(model, *data)
    exact = torch.linalg.eigvalsh(exact_hessian(model, *data, hvp.names)).flip(0).numpy()
    tight = top_eigenvalues(hvp, k=4, tol=1e-12, return_vectors=True)
    np.testing.assert_allclose(tight.values, exact[:4], rtol=1e-9)
    for value, vector in zip(tight.values, tight.vectors):  # unit eigenvectors: H u = lambda u
        u = torch.from_numpy(vector)
        torch.testing.assert_close(hvp(u), value * u, rtol=0, atol=1e-8 * abs(exact[0]))
    # The default tol bounds the residual by tol * |lambda|, hence the error (Kahan): check that bound.
    default = top_eigenvalues(hvp, k=1)
    assert abs(default.values[0] - exact[0]) <= 1e-3 * abs(exact[0])
    assert default.n_matvec < hvp.n  # Lanczos, not a dense reconstruction
    np.testing.assert_array_equal(top_eigenvalues(hvp, k=1, seed=5).values, top_eigenvalues(hvp, k=1, seed=5).values)


def test_hutchinson_trace_within_its_exact_standard_error(data):
    model = tiny_model(n_layers=2, act_fn="gelu", norm="LN")
    hvp = HessianVectorProduct(model, *data)
    H = exact_hessian(model, *data, hvp.names)
    n_probes = 120
    # Var(z^T H z) for Rademacher z is 2 (||H||_F^2 - sum_i H_ii^2): the exact standard error.
    sd = float(torch.sqrt(2 * (H.pow(2).sum() - H.diagonal().pow(2).sum())))
    est = hessian_trace(hvp, n_probes=n_probes, seed=1)
    assert abs(est.estimate - float(H.trace())) < 4 * sd / np.sqrt(n_probes)
    assert 0.6 < est.stderr / (sd / np.sqrt(n_probes)) < 1.4
    assert est.samples.shape == (n_probes,)
    diagonal = torch.diag(torch.arange(1.0, 8.0, dtype=torch.float64))  # z^T D z = tr D for every probe
    exact = hessian_trace(diagonal, n_probes=5)
    assert exact.estimate == pytest.approx(28.0, abs=1e-12) and exact.stderr == pytest.approx(0.0, abs=1e-12)


def test_lanczos_quadrature_is_exact_for_low_degree_moments(data):
    model = tiny_model()
    hvp = HessianVectorProduct(model, *data)
    H = exact_hessian(model, *data, hvp.names)
    v = torch.randn(hvp.n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = 5
    nodes, weights = tridiagonal_quadrature(*lanczos(hvp, v, m))
    assert torch.allclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    u, Hk_u = v / v.norm(), v / v.norm()
    for k in range(1, 2 * m):  # Gauss quadrature with m nodes is exact up to degree 2m - 1
        Hk_u = H @ Hk_u
        exact = float(u @ Hk_u)
        assert float((weights * nodes**k).sum()) == pytest.approx(exact, rel=1e-8, abs=1e-10 * float(H.norm()) ** k)


def test_full_lanczos_nodes_are_the_eigenvalues():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    eigenvalues = torch.linspace(-2.0, 5.0, 30, dtype=torch.float64)
    A = q @ torch.diag(eigenvalues) @ q.T
    nodes, _ = tridiagonal_quadrature(*lanczos(A, torch.randn(30, generator=g, dtype=torch.float64), 30))
    torch.testing.assert_close(nodes, eigenvalues, rtol=0, atol=1e-9)  # no ghost copies: full reorthogonalisation


def test_spectral_density_moments_match_the_exact_hessian(data):
    model = tiny_model()
    hvp = HessianVectorProduct(model, *data)
    H = exact_hessian(model, *data, hvp.names)
    n, n_probes = hvp.n, 40
    density = spectral_density(hvp, n_probes=n_probes, n_steps=8, seed=4)
    assert density.nodes.shape == density.weights.shape == (n_probes, 8)
    np.testing.assert_allclose(density.weights.sum(1), 1.0, rtol=1e-10)
    for k, A in ((1, H), (2, H @ H)):
        # moment k of a normalised probe is z^T H^k z / n: Hutchinson's error divided by n.
        sd = float(torch.sqrt(2 * (A.pow(2).sum() - A.diagonal().pow(2).sum()))) / n
        assert abs(density.moment(k) - float(A.trace()) / n) < 4 * sd / np.sqrt(n_probes), k
    # The smoothed density integrates to 1, has the quadrature's mean and its variance plus sigma^2.
    x, rho, step = density.grid, density.density, density.grid[1] - density.grid[0]
    assert rho.sum() * step == pytest.approx(1.0, abs=2e-3)
    mean = (x * rho).sum() * step
    assert mean == pytest.approx(density.moment(1), abs=1e-3 * abs(x).max())
    variance = ((x - mean) ** 2 * rho).sum() * step
    assert variance == pytest.approx(density.moment(2) - density.moment(1) ** 2 + density.sigma**2, rel=1e-2)


@pytest.fixture(scope="module")
def adam_trainer():
    """A real Trainer on a tiny model (p = 5, AdamW), after 4 updates."""
    config = tiny_config(task__p=5, model__d_model=4, model__n_heads=1, model__d_head=4, model__d_mlp=8,
                         optim__lr=3e-2)
    trainer = make_trainer(config, make_task(config.task))
    for _ in range(4):
        trainer.train_step()
    return trainer


def test_adam_preconditioner_is_the_denominator_of_torchs_update(adam_trainer):
    trainer = copy.deepcopy(adam_trainer)
    optim = trainer.config.optim
    names = list(trainer.params)
    before = {n: p.detach().clone() for n, p in trainer.params.items()}
    trainer.train_step()
    state = trainer.state_dict()
    P = adam_preconditioner(state, names, optim.beta2, optim.eps)
    # AdamW: theta' = theta (1 - lr wd) - lr / (1 - beta1^t) * m / P, with the moments after the step.
    t = float(state[f"optim/{names[0]}/step"])
    lr = trainer.lr_at(trainer.step - 1)
    m = torch.cat([state[f"optim/{n}/exp_avg"].double().reshape(-1) for n in names])
    shrunk = torch.cat([(before[n].double() * (1 - lr * optim.weight_decay)).reshape(-1) for n in names])
    after = torch.cat([trainer.params[n].detach().double().reshape(-1) for n in names])
    torch.testing.assert_close((shrunk - after) * (1 - optim.beta1**t) / lr, m / P, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="has not updated"):
        adam_preconditioner({}, names, optim.beta2, optim.eps)


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_preconditioned_sharpness_matches_the_dense_matrix(adam_trainer, l2):
    model = copy.deepcopy(adam_trainer.model).double()
    tokens, labels = adam_trainer.train_tokens, adam_trainer.train_labels
    optim, state = adam_trainer.config.optim, adam_trainer.state_dict()
    hvp = HessianVectorProduct(model, tokens, labels)
    P = adam_preconditioner(state, hvp.names, optim.beta2, optim.eps)
    H = exact_hessian(model, tokens, labels, hvp.names)
    s = P.rsqrt()
    dense = s[:, None] * (H + l2 * torch.eye(hvp.n, dtype=H.dtype)) * s[None, :]
    exact = float(torch.linalg.eigvalsh(dense)[-1])
    assert preconditioned_sharpness(hvp, P, l2=l2, tol=1e-12) == pytest.approx(exact, rel=1e-9)
    assert preconditioned_sharpness(hvp, P, l2=l2) == pytest.approx(exact, rel=1e-3)  # default tol
    assert exact > 10 * float(torch.linalg.eigvalsh(H)[-1])  # P << 1: preconditioning sharpens a lot


def test_adaptive_eos_threshold():
    assert adaptive_eos_threshold(1e-3, 0.9) == pytest.approx(38_000)
    assert adaptive_eos_threshold(0.01, 0.0) == pytest.approx(2 / 0.01)  # beta1 = 0: gradient descent's 2 / lr
    with pytest.raises(ValueError):
        adaptive_eos_threshold(0.0, 0.9)


# ----- replay on conftest's tiny run, and its figures --------------------------------------------------


@pytest.fixture(scope="module")
def replayed(tiny_run, tmp_path_factory):
    """A copy of the tiny run, "curvature" and "gradients" replayed at a few checkpoints (with and without
    optimizer state)."""
    path = tmp_path_factory.mktemp("curvature") / "run"
    shutil.copytree(tiny_run.path, path, ignore=shutil.ignore_patterns("analysis", "report.html"))
    run = Run(path)
    steps = run.steps
    chosen = sorted({steps[0], steps[1], *[s for s in run.state_steps if s in steps][1:4], *steps[2::4], steps[-1]})
    return run, replay(run, ["curvature", "gradients"], steps=chosen, progress=False)


def test_curvature_replay_values_cache_and_optimizer_state(replayed):
    run, result = replayed
    curv, steps = result["curvature"], result.steps
    assert curv["top_eigenvalues"].shape == (len(steps), 3)
    assert (np.diff(curv["top_eigenvalues"], axis=1) <= 0).all()
    has_moments = np.array([s in run.state_steps and s > 0 for s in steps])
    assert has_moments.any() and (~has_moments).any()
    assert np.isfinite(curv["preconditioned_sharpness"][has_moments]).all()
    assert np.isnan(curv["preconditioned_sharpness"][~has_moments]).all()
    optim = run.config.optim
    np.testing.assert_allclose(curv["eos_threshold"], (2 + 2 * optim.beta1) / (optim.lr * (1 - optim.beta1)))
    step = int(steps[has_moments][0])
    direct = curvature_measures(run.model(step), run.task.train_tokens, run.task.train_labels,
                                optimizer_state=run.optimizer_state(step), beta2=optim.beta2, eps=optim.eps)
    at = result.at("curvature", step)
    for key in ("top_eigenvalues", "trace", "preconditioned_sharpness", "train_loss"):
        np.testing.assert_allclose(at[key], direct[key], rtol=1e-6, err_msg=key)
    again = replay(run, ["curvature", "gradients"], steps=list(steps), progress=False)
    assert again.computed == {"curvature": 0, "gradients": 0}
    np.testing.assert_array_equal(again["curvature"]["trace"], curv["trace"])


def test_hessian_density_replay_is_a_quadrature_of_the_checkpoints_hessian(replayed):
    run, _ = replayed
    step = run.steps[-1]
    result = replay(run, ["hessian_density"], steps=[step], progress=False)
    at = result.at("hessian_density", step)
    assert at["nodes"].shape == at["weights"].shape == (4, 24)
    np.testing.assert_allclose(at["weights"].sum(1), 1.0, rtol=1e-9)
    model, task = run.model(step), run.task
    direct = spectral_density(HessianVectorProduct(model, task.train_tokens, task.train_labels), n_probes=4,
                              n_steps=24, seed=0)
    np.testing.assert_allclose(at["nodes"], direct.nodes, rtol=1e-6, atol=1e-9 * np.abs(direct.nodes).max())
    assert at["moment1"] == pytest.approx(direct.moment(1), rel=1e-6)
    # The extreme nodes approach the extreme eigenvalues: the largest node is the top eigenvalue.
    top = top_eigenvalues(HessianVectorProduct(model, task.train_tokens, task.train_labels), k=1, tol=1e-8)
    assert at["nodes"].max() == pytest.approx(top.values[0], rel=1e-3)


def test_report_section_holds_the_replayed_values(replayed):
    run, result = replayed
    figures = curvature_figures(run, result)
    assert list(figures) == ["top_eigenvalue", "hessian_trace", "preconditioned_sharpness", "grad_agreement",
                             "effective_rank"]
    top = figures["top_eigenvalue"]
    assert top.layout.yaxis.type == "log" and len(top.data) == 3
    eig = result["curvature"]["top_eigenvalues"][:, 0]
    np.testing.assert_array_equal(top.data[0].x, result.steps)
    np.testing.assert_array_equal(top.data[0].y, np.where(eig > 0, eig, np.nan))
    summary = run.summary
    milestones = [summary[k] for k in ("memorization_step", "grokking_step") if summary.get(k) is not None]
    assert milestones and sorted(s.x0 for s in top.layout.shapes) == milestones
    sharp = figures["preconditioned_sharpness"]
    finite = np.isfinite(result["curvature"]["preconditioned_sharpness"])
    np.testing.assert_array_equal(sharp.data[0].x, result.steps[finite])
    np.testing.assert_array_equal(sharp.data[1].y, result["curvature"]["eos_threshold"])
    np.testing.assert_array_equal(figures["effective_rank"].data[0].y, result["gradients"]["effective_rank"])
    assert curvature_figures(run, None) == {}  # no plug-in column, nothing replayed: no section


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_report_section_renders_in_headless_chromium(replayed, tmp_path):
    run, result = replayed
    figures = curvature_figures(run, result)
    page = tmp_path / "curvature.html"
    page.write_text(render_report(run, result, figures=figures))
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
           page.resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    sections = dict(re.findall(r'<section id="section-([a-z_]+)".*?>(.*?)</section>', dom, flags=re.S))
    assert list(sections) == list(figures)
    for name, section in sections.items():
        assert 'class="main-svg"' in section, f"{name} not rendered"
    plot = sections["effective_rank"].split('class="infolayer"')[0]
    lines = [len(re.findall(r"[ML]", d)) for d in re.findall(r'<path class="js-line"[^>]*\sd="([^"]*)"', plot)]
    assert lines == [len(result.steps)]  # one point per replayed checkpoint
