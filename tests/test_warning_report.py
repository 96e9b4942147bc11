"""The report's "Early warning" section: its figures hold the diagnostics' values, it appears only when the
warning analysis was replayed, and it renders in headless Chromium with one point per checkpoint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from grokinterp.analysis import replay
from grokinterp.analysis.warning import WARNING_ANALYSES, warning_diagnostics
from grokinterp.report import run_figures, warning_signals_figure, write_report
from grokinterp.runs import Run

CHROMIUM = Path("/usr/bin/chromium")
SECTION = ["warning_signals", "warning_csd", "warning_bifurcation"]


@pytest.fixture(scope="module")
def reported(tiny_run, tmp_path_factory):
    """A copy of the tiny run, replayed with the standard and warning analyses, and its report."""
    path = tmp_path_factory.mktemp("warn_report") / "run"
    shutil.copytree(tiny_run.path, path, ignore=shutil.ignore_patterns("analysis", "report.html"))
    run = Run(path)
    result = replay(run, ["spectra", "progress", *WARNING_ANALYSES], progress=False)
    return run, result, write_report(run, result)


def test_section_appears_only_with_the_warning_analysis(reported):
    run, result, report = reported
    assert list(run_figures(run, result))[-3:] == SECTION
    standard = replay(run, progress=False)
    assert not set(SECTION) & set(run_figures(run, standard))
    text = report.read_text()
    for name in SECTION:
        assert f'id="section-{name}"' in text


def test_signals_figure_holds_the_diagnostics(reported):
    run, result, _ = reported
    d = warning_diagnostics(run, result, progress=False)
    fig = warning_signals_figure(d)
    by_name = {trace.name: trace for trace in fig.data}
    np.testing.assert_array_equal(by_name["test acc"].x, d.steps)
    np.testing.assert_array_equal(by_name["test acc"].y, d.series["test_acc"])
    np.testing.assert_array_equal(by_name["log-alignment ratio"].y, d.series["lar"])
    np.testing.assert_array_equal(by_name["||θ|| (every step)"].x, run.metrics["step"])
    milestones = [shape.x0 for shape in fig.layout.shapes]
    assert run.summary["memorization_step"] in milestones


def _line_points(section: str) -> list[int]:
    plot = section.split('class="infolayer"')[0]
    return [len(re.findall(r"[ML]", d)) for d in re.findall(r'<path class="js-line"[^>]*\sd="([^"]*)"', plot)]


@pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("CI") != "true",
                    reason="needs /usr/bin/chromium (apt-get install chromium); required under CI=true")
def test_section_renders_in_headless_chromium(reported, tmp_path):
    assert CHROMIUM.exists(), "CI=true: install chromium (apt-get install -y chromium)"
    run, _, report = reported
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", report.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    sections = {m.group(1): m.group(2) for m in
                re.finditer(r'<section id="section-([a-z_]+)".*?>(.*?)</section>', out.stdout, flags=re.S)}
    for name in SECTION:
        assert 'class="main-svg"' in sections[name], f"{name} not rendered"
    points = _line_points(sections["warning_signals"])
    n_ckpt = len(run.steps)
    assert points[:2] == [n_ckpt, n_ckpt]  # train and test accuracy: one point per checkpoint
    assert points[-1] == len(run.metrics["step"])  # the weight norm: one per metrics row
