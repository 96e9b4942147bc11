"""The report: figure contents against the run's data, an offline page, and rendering in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from grokinterp.analysis import replay
from grokinterp.report import (
    accuracy_curves,
    analyze_run,
    key_frequency_figure,
    loss_curves,
    neuron_frequency_histogram,
    progress_curves,
    write_report,
)
from grokinterp.runs import Run

FIGURES = ["loss", "accuracy", "weight_norm", "progress", "embedding_spectrum", "key_frequencies",
           "neuron_frequencies", "gini",
           # Nanda et al.'s views (report/_nanda_views.py; tested in test_nanda_views.py)
           "trig_fit", "embedding_circles", "neuron_logit_fourier", "attention_fourier", "pair_loss",
           "logit_attribution"]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def analyzed(tiny_run, tmp_path_factory) -> tuple[Run, Path]:
    """A copy of conftest's tiny trained run (memorizes, then groks), analysed once: (run, report path)."""
    path = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(tiny_run.path, path, ignore=shutil.ignore_patterns("analysis", "report.html"))
    return Run(path), analyze_run(path, progress=False)


def test_analyze_run_writes_report_and_reuses_the_cache(analyzed):
    run, report = analyzed
    assert report == run.path / "report.html" and report.stat().st_size > 1_000_000
    cached = sorted((run.path / "analysis").rglob("*.safetensors"))
    assert len(cached) == 3 * len(run.steps)  # spectra, progress and trig_fit, one file per checkpoint
    stamps = [p.stat().st_mtime_ns for p in cached]
    result = replay(run, progress=False)
    assert result.computed == {"spectra": 0, "progress": 0, "trig_fit": 0}
    analyze_run(run.path, progress=False)
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_report_is_offline_and_holds_every_figure(analyzed):
    run, report = analyzed
    text = report.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", text), "no external scripts"
    assert not re.search(r"<link\b", text), "no linked stylesheets or icons"
    bundle = get_plotlyjs()
    assert text.count(bundle) == 1  # plotly's offline bundle, inlined once
    rest = text.replace(bundle, "")  # the bundle's own strings (e.g. map attributions) hold URLs it never loads
    assert "http://" not in rest and "https://" not in rest and "//cdn" not in rest
    for name in FIGURES:
        assert text.count(f'id="fig-{name}"') == 1, name
    summary = run.summary
    assert f"a add b mod {run.config.task.p}" in text
    assert f"<th>memorization step</th><td>{summary['memorization_step']}</td>" in text
    assert f"<th>status</th><td>{summary['status']}</td>" in text
    assert json.loads(re.search(r'id="report-meta">(.*?)</script>', text).group(1))["figures"] == FIGURES


def test_curves_hold_the_run_metrics(analyzed):
    run, _ = analyzed
    metrics = run.metrics
    fig = loss_curves(run)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    train, test = fig.data
    keep = metrics["step"] >= 1  # step 0 cannot sit on a log axis
    np.testing.assert_array_equal(train.x, metrics["step"][keep])
    np.testing.assert_array_equal(train.y, metrics["train_loss"][keep])
    evaluated = keep & np.isfinite(metrics["test_loss"])
    np.testing.assert_array_equal(test.x, metrics["step"][evaluated])
    np.testing.assert_array_equal(test.y, metrics["test_loss"][evaluated])
    mem = run.summary["memorization_step"]
    assert fig.layout.shapes[0].x0 == mem
    assert fig.layout.annotations[0].text == f"memorized {mem}"
    assert fig.layout.annotations[0].x == pytest.approx(np.log10(mem))  # log axis: annotations take log10


def test_milestone_markers_and_curves_only_report(analyzed, tmp_path):
    run, _ = analyzed
    summary = run.summary
    assert summary["status"] == "grokked", "conftest's tiny run should grok"
    mem, grok = summary["memorization_step"], summary["grokking_step"]
    fig = accuracy_curves(run)
    assert sorted(s.x0 for s in fig.layout.shapes) == [mem, grok]
    assert {a.text for a in fig.layout.annotations} == {f"memorized {mem}", f"grokked {grok}"}
    text = write_report(run, None, tmp_path / "curves_only.html").read_text()
    assert f"<th>grokking step</th><td>{grok}</td>" in text and f"<th>gap</th><td>{grok - mem}</td>" in text
    assert 'id="fig-loss"' in text and 'id="fig-progress"' not in text


def test_analysis_figures_hold_the_replayed_values(analyzed):
    run, _ = analyzed
    result = replay(run, progress=False)
    last = result.at("spectra", int(result.steps[-1]))
    hist = neuron_frequency_histogram(result)
    counts = np.asarray(hist.data[0].y) + np.asarray(hist.data[1].y)
    np.testing.assert_array_equal(counts, np.bincount(last["neuron_freq"], minlength=len(counts)))
    assert counts.sum() == run.config.model.d_mlp
    keys = result.context["progress"]["key_freqs"]
    fig = key_frequency_figure(result)
    np.testing.assert_array_equal(fig.data[0].y, last["embed_freq_norm"])
    assert fig.layout.title.text.endswith(", ".join(map(str, keys)) or "none found")
    progress = progress_curves(result, run)
    np.testing.assert_array_equal(progress.data[2].y, result["progress"]["restricted_loss"])
    np.testing.assert_array_equal(progress.data[0].x, result.steps)


def _render(html_path: Path, tmp_path: Path) -> str:
    """The DOM of `html_path` after Chromium ran its scripts, offline."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", html_path.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _line_points(section: str) -> list[int]:
    """Vertices of each rendered data line (legend swatches, in the info layer after the plot, excluded)."""
    plot = section.split('class="infolayer"')[0]
    return [len(re.findall(r"[ML]", d)) for d in re.findall(r'<path class="js-line"[^>]*\sd="([^"]*)"', plot)]


@pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("CI") != "true",
                    reason="needs /usr/bin/chromium (apt-get install chromium); required under CI=true")
def test_report_renders_in_headless_chromium(analyzed, tmp_path):
    assert CHROMIUM.exists(), "CI=true: install chromium (apt-get install -y chromium)"
    run, report = analyzed
    dom = _render(report, tmp_path)
    sections = {m.group(1): m.group(2) for m in
                re.finditer(r'<section id="section-([a-z_]+)".*?>(.*?)</section>', dom, flags=re.S)}
    assert list(sections) == FIGURES
    for name, section in sections.items():
        assert 'class="plot-container plotly"' in section and 'class="main-svg"' in section, f"{name} not rendered"
    metrics, n_ckpt = run.metrics, len(run.steps)
    logx = metrics["step"] >= 1
    n_eval = int((logx & np.isfinite(metrics["test_loss"])).sum())
    assert _line_points(sections["loss"]) == [int(logx.sum()), n_eval]
    assert _line_points(sections["accuracy"]) == [int(logx.sum()), n_eval]
    assert _line_points(sections["weight_norm"]) == [len(metrics["step"])]
    assert _line_points(sections["progress"]) == [n_ckpt] * 4
    assert _line_points(sections["gini"]) == [n_ckpt] * 3
    assert "<image" in sections["embedding_spectrum"]  # the heatmap's raster
    n_freq = run.config.task.p // 2 + 1
    assert len(re.findall(r'<g class="point"', sections["key_frequencies"])) >= n_freq
    assert re.search(r'class="point"', sections["neuron_frequencies"])
    assert "memorized" in sections["loss"]  # the milestone annotation
