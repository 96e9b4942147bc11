"""Nanda et al. 2023's views (analysis/_nanda.py, report/_nanda_views.py) against exact references:
synthetic trig-identity logits, noise, hand-computed attention and neuron-logit maps, the logit attribution
identity, and rendering in headless Chromium."""

from __future__ import annotations

import math
import os
import re
import shutil

import numpy as np
import pytest
import torch

from grokinterp.analysis import replay
from grokinterp.analysis.fourier import (
    attention_to_operands,
    embedding_circles,
    fourier_transform_2d,
    nanda_views,
    neuron_clusters,
    neuron_logit_attribution,
    neuron_logit_map,
    pair_loss_grid,
    per_example_loss,
    trig_fit_of,
    trig_identity_fit,
)
from grokinterp.config import TaskConfig
from grokinterp.report import nanda_figures, offline_page, views_of
from grokinterp.runs import Run
from grokinterp.tasks import make_task
from grokinterp.model import build_model

from conftest import tiny_config
from test_report import CHROMIUM, _line_points, _render

VIEWS = ["trig_fit", "embedding_circles", "neuron_logit_fourier", "attention_fourier", "pair_loss", "logit_attribution"]


def _waves(n: int, freqs: list[int], alpha: list[float], sign: int = 1) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    s = (i[:, None, None] + sign * i[None, :, None] - i[None, None, :]) % n
    return sum(a * torch.cos(2 * math.pi * k * s / n) for k, a in zip(freqs, alpha))


@pytest.mark.parametrize("n, freqs, sign", [(23, [2, 5, 9], 1), (23, [4, 11], -1), (22, [3, 11], 1)])
def test_trig_fit_recovers_synthetic_amplitudes(n, freqs, sign, generator):
    alpha = [1.7, -0.6, 0.25][: len(freqs)]
    offset = torch.randn(n, n, 1, generator=generator, dtype=torch.float64)  # per-pair shift: softmax ignores it
    fit = trig_identity_fit((_waves(n, freqs, alpha, sign) + offset).float(), freqs, sign)
    assert fit.key_freqs == sorted(freqs)
    np.testing.assert_allclose(fit.alpha.numpy(), alpha, atol=1e-5)  # float32 logits: 1e-5 absolute
    assert fit.frac_explained == pytest.approx(1.0, abs=1e-9)
    # a strict subset of the frequencies explains exactly its share of the sum of squares
    part = trig_identity_fit(_waves(n, freqs, alpha, sign), freqs[:1], sign)
    share = alpha[0] ** 2 * (1 if 2 * freqs[0] == n else 0.5) / sum(
        a * a * (1 if 2 * k == n else 0.5) for k, a in zip(freqs, alpha))
    assert part.frac_explained == pytest.approx(share, abs=1e-12)


def test_trig_fit_explains_nothing_of_noise(generator):
    n = 23
    noise = torch.randn(n, n, n, generator=generator)
    fit = trig_identity_fit(noise, [2, 5, 9])
    # 3 directions of the n^2 (n - 1) of centred logits: expected share 3 / (n^2 (n - 1)) = 2.6e-4
    assert 0.0 <= fit.frac_explained < 3e-3
    assert trig_identity_fit(noise, []).frac_explained == 0.0
    with pytest.raises(ValueError, match="key frequencies \\[12\\] must lie in 1..11"):
        trig_identity_fit(noise, [12])


def _basis_row(n: int, r: int, x: int) -> float:
    """Row r of the orthonormal Fourier basis at x, from its formula."""
    if r == 0:
        return 1 / math.sqrt(n)
    k = (r + 1) // 2
    if 2 * k == n:
        return math.cos(math.pi * x) / math.sqrt(n)
    return math.sqrt(2 / n) * (math.cos if r % 2 else math.sin)(2 * math.pi * k * x / n)


@pytest.fixture
def hand_model(generator):
    """p = 7, 2 heads of 4, d_mlp 16; every parameter (biases included) random."""
    config = tiny_config(task__p=7, model__d_model=8, model__n_heads=2, model__d_head=4, model__d_mlp=16)
    model = build_model(config)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.7)
    return model, make_task(config.task)


def test_attention_and_neuron_logit_maps_equal_a_direct_computation(hand_model):
    model, task = hand_model
    p, attn = task.p, model.blocks[0].attn
    W_E, W_pos = model.embed.W_E.detach().double(), model.pos_embed.W_pos.detach().double()
    direct = torch.zeros(2, 2, p, p, dtype=torch.float64)  # [target, head, a, b]
    with torch.no_grad():  # the parameters require grad
        for a in range(p):
            for b in range(p):
                x = torch.stack([W_E[a] + W_pos[0], W_E[b] + W_pos[1], W_E[p] + W_pos[2]])  # no LayerNorm
                for h in range(2):
                    q = x[2] @ attn.W_Q[h].double() + attn.b_Q[h].double()
                    k = x @ attn.W_K[h].double() + attn.b_K[h].double()
                    weights = torch.softmax(k @ q / math.sqrt(4), 0)
                    direct[:, h, a, b] = weights[:2]
    pattern, _ = attention_to_operands(model, task)
    torch.testing.assert_close(pattern.double(), direct, atol=1e-5, rtol=0)
    coeffs = torch.tensor([[[[sum(_basis_row(p, r, a) * _basis_row(p, c, b) * float(direct[t, h, a, b])
                                  for a in range(p) for b in range(p)) for c in range(p)] for r in range(p)]
                            for h in range(2)] for t in range(2)], dtype=torch.float64)
    views = nanda_views(model, task, key_freqs=[1, 3])
    torch.testing.assert_close(views.attention_fourier, coeffs, atol=1e-5, rtol=0)
    torch.testing.assert_close(fourier_transform_2d(direct), coeffs, atol=1e-10, rtol=0)

    W_L = model.blocks[0].mlp.W_out.detach().double() @ model.unembed.W_U.detach().double()
    expected = torch.tensor([[sum(float(W_L[j, c]) * _basis_row(p, r, c) for c in range(p)) for r in range(p)]
                             for j in range(16)], dtype=torch.float64)
    torch.testing.assert_close(neuron_logit_map(model.blocks[0].mlp.W_out, model.unembed.W_U, p), expected,
                               atol=1e-10, rtol=0)
    torch.testing.assert_close(views.neuron_logit_fourier, expected, atol=1e-10, rtol=0)


def test_logit_attribution_by_cluster_sums_to_the_neurons_total(hand_model):
    model, task = hand_model
    _, cache = model.run_with_cache(task.tokens)
    post = cache["blocks.0.mlp.hook_post"][:, -1].double()  # [examples, d_mlp]
    W_L = model.blocks[0].mlp.W_out.detach().double() @ model.unembed.W_U.detach().double()
    neuron_logits = post @ W_L  # the neurons' direct part of the logits
    total = (neuron_logits.gather(1, task.labels[:, None])[:, 0] - neuron_logits.mean(1)).mean()
    views = nanda_views(model, task, key_freqs=[1, 2, 3], threshold=0.0)  # every live neuron in some cluster
    assert views.clusters.names == ["freq 1", "freq 2", "freq 3", "other"]
    assert float(views.dla.sum()) == pytest.approx(float(total), abs=1e-9)
    assert views.dla_total == pytest.approx(float(total), abs=1e-9)
    # each cluster is the sum of its own neurons' contributions
    assignment = torch.tensor([0] * 5 + [1] * 11)
    dla, _ = neuron_logit_attribution(post, model.blocks[0].mlp.W_out, model.unembed.W_U, task.labels, assignment, 2)
    centred = W_L - W_L.mean(1, keepdim=True)
    first = (post[:, :5] * centred[:5, task.labels].T).sum(1).mean()
    assert float(dla[0]) == pytest.approx(float(first), abs=1e-9)
    clusters = neuron_clusters(torch.tensor([2, 2, 5, 0]), torch.tensor([0.9, 0.3, 0.8, 0.0]), [5, 2])
    assert clusters.assignment.tolist() == [0, 2, 1, 2] and clusters.freqs == [2, 5, 0]


def test_embedding_circles_and_pair_loss(generator):
    p, k, d = 11, 3, 6
    u, v = torch.linalg.qr(torch.randn(d, 2, generator=generator, dtype=torch.float64))[0].T * 2.5
    a = torch.arange(p + 1, dtype=torch.float64)
    W_E = torch.outer(torch.cos(2 * math.pi * k * a / p), u) + torch.outer(torch.sin(2 * math.pi * k * a / p), v)
    W_E[p] = 9.0  # the `=` row is not a residue
    [points] = embedding_circles(W_E, p, [k])
    radius = points.norm(dim=1)
    torch.testing.assert_close(radius, torch.full((p,), 2.5, dtype=torch.float64), atol=1e-10, rtol=0)
    step = torch.atan2(points[1:, 1], points[1:, 0]) - torch.atan2(points[:-1, 1], points[:-1, 0])
    turn = torch.remainder(step.abs(), 2 * math.pi)
    assert torch.allclose(torch.minimum(turn, 2 * math.pi - turn), torch.full_like(turn, 2 * math.pi * k / p))

    task = make_task(TaskConfig(p=7, op="div", frac_train=0.5))
    logits = torch.randn(7, 7, 7, generator=generator)
    grid = pair_loss_grid(logits, task)
    assert torch.isnan(grid[:, 0]).all() and not torch.isnan(grid[:, 1:]).any()  # div: b = 0 has no example
    expected = per_example_loss(logits[task.a, task.b], task.labels)
    torch.testing.assert_close(grid[task.a, task.b], expected)


@pytest.fixture(scope="module")
def analyzed(tiny_run, tmp_path_factory) -> Run:
    path = tmp_path_factory.mktemp("nanda") / "run"
    shutil.copytree(tiny_run.path, path, ignore=shutil.ignore_patterns("analysis", "report.html"))
    return Run(path)


def test_trig_fit_is_a_replayed_standard_analysis(analyzed):
    result = replay(analyzed, progress=False)
    assert "trig_fit" in result.data
    fit = result["trig_fit"]
    keys = result.context["trig_fit"]["key_freqs"]
    assert keys == result.context["progress"]["key_freqs"]
    assert fit["frac_explained"].shape == result.steps.shape and fit["alpha"].shape == (len(result.steps), len(keys))
    last = int(result.steps[-1])
    direct = trig_fit_of(analyzed.model(last), analyzed.task, keys)
    assert fit["frac_explained"][-1] == pytest.approx(direct["frac_explained"], abs=1e-12)
    assert np.all((fit["frac_explained"] >= 0) & (fit["frac_explained"] <= 1))


def test_report_figures_hold_the_views(analyzed):
    result = replay(analyzed, progress=False)
    figures = nanda_figures(analyzed, result)
    assert list(figures) == VIEWS
    views = views_of(analyzed, result)
    assert views.step == int(result.steps[-1]) and views.key_freqs == result.context["progress"]["key_freqs"]
    np.testing.assert_array_equal(figures["trig_fit"].data[0].y, result["trig_fit"]["frac_explained"])
    np.testing.assert_array_equal(figures["logit_attribution"].data[0].y, views.dla.numpy())
    assert len(figures["attention_fourier"].data) == 2 * analyzed.config.model.n_heads
    assert len(figures["embedding_circles"].data) == len(views.circle_freqs)
    for trace, points in zip(figures["embedding_circles"].data, views.circles):
        np.testing.assert_array_equal(trace.x, points[:, 0].numpy())


@pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("CI") != "true",
                    reason="needs /usr/bin/chromium (apt-get install chromium); required under CI=true")
def test_views_render_in_headless_chromium(analyzed, tmp_path):
    assert CHROMIUM.exists(), "CI=true: install chromium (apt-get install -y chromium)"
    result = replay(analyzed, progress=False)
    figures = nanda_figures(analyzed, result)
    page = tmp_path / "views.html"
    page.write_text(offline_page("views", "<h1>views</h1>", figures, {"figures": list(figures)}))
    dom = _render(page, tmp_path)
    sections = {m.group(1): m.group(2) for m in
                re.finditer(r'<section id="section-([a-z_]+)".*?>(.*?)</section>', dom, flags=re.S)}
    assert list(sections) == VIEWS
    for name, section in sections.items():
        assert 'class="plot-container plotly"' in section and 'class="main-svg"' in section, f"{name} not rendered"
    n_keys = len(result.context["trig_fit"]["key_freqs"])
    assert _line_points(sections["trig_fit"]) == [len(result.steps)] * (1 + n_keys)
    heads = analyzed.config.model.n_heads
    for name, n_maps in (("neuron_logit_fourier", 1), ("attention_fourier", 2 * heads), ("pair_loss", 1)):
        rasters = re.findall(r'<image[^>]*\bheight="([^"]+)" width="([^"]+)"', sections[name])
        assert len(rasters) == n_maps and all(float(h) > 0 and float(w) > 0 for h, w in rasters), (name, rasters)
    placed = re.findall(r'<path class="point" transform="translate\(([-\d.]+),([-\d.]+)\)', sections["embedding_circles"])
    assert len(placed) == len(views_of(analyzed, result).circle_freqs) * analyzed.config.task.p
    bars = re.findall(r'<g class="point"><path d="([^"]*)"', sections["logit_attribution"])
    assert len(bars) == n_keys + 1 and all(d != "M0,0Z" for d in bars), bars  # every bar drawn, none collapsed
