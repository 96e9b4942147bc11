"""Comparing runs (`grokinterp compare RUN1 RUN2 ... --out FILE.html`): a parent and its fork on one axis,
the summary table, offline rendering in headless Chromium, and CLI errors."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from grokinterp.analysis import replay
from grokinterp.cli import main
from grokinterp.experiments import fork_run
from grokinterp.runs import train_run
from grokinterp.report import comparison_figures, summary_rows, write_comparison
from grokinterp.runs import Run

from conftest import tiny_config
from test_report import CHROMIUM, _line_points, _render

FORK_STEP = 100
METRICS = ["train_loss", "test_loss", "train_acc", "test_acc", "weight_norm"]
REPLAYED = ["restricted_loss", "excluded_loss", "trig_fit"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Run, Run]:
    """A 200-step tiny parent and its fork at step 100 without weight decay, both replayed."""
    root = tmp_path_factory.mktemp("compare")
    parent = train_run(tiny_config(train__steps=200, train__ckpt_every=20, train__state_every=60), root / "parent",
                       progress=False)
    fork = fork_run(parent, FORK_STEP, root / "fork_wd0", {"optim.weight_decay": 0.0}, progress=False)
    for run in (parent, fork):
        replay(run, ["progress", "trig_fit"], progress=False)
    return parent, fork


def test_figures_overlay_every_series_and_the_fork_starts_at_its_step(pair):
    parent, fork = pair
    figures = comparison_figures([parent, fork])
    assert list(figures) == METRICS + REPLAYED
    for name, fig in figures.items():
        assert [t.name for t in fig.data] == ["parent", "fork_wd0"], name  # one trace per run per series
        assert fig.data[1].x[0] >= FORK_STEP and fig.data[0].x[0] < FORK_STEP, name
        assert [s.x0 for s in fig.layout.shapes] == [FORK_STEP]
        assert fig.layout.annotations[0].text == "fork of parent"
    loss = figures["train_loss"].data
    m = parent.metrics
    keep = m["step"] >= 1
    np.testing.assert_array_equal(loss[0].x, m["step"][keep])
    np.testing.assert_array_equal(loss[0].y, m["train_loss"][keep])
    f = fork.metrics
    np.testing.assert_array_equal(loss[1].x, f["step"][f["step"] >= FORK_STEP])
    restricted = figures["restricted_loss"].data
    np.testing.assert_array_equal(restricted[0].x, parent.steps)
    np.testing.assert_array_equal(restricted[1].x, fork.steps)  # the fork's checkpoints start at its step
    # without its parent on the page, a fork is drawn whole (it holds the parent's rows up to the fork step)
    alone = comparison_figures([fork])["train_loss"].data
    assert len(alone) == 1 and alone[0].x[0] == 1 and not comparison_figures([fork])["train_loss"].layout.shapes


def test_summary_table(pair):
    parent, fork = pair
    columns, rows = summary_rows([parent, fork])
    assert columns[:11] == ["run", "status", "memorization step", "grokking step", "gap", "stable grokking step",
                            "final step", "final test acc", "key frequencies", "wall time (s)", "forked from"]
    assert columns[11:] == ["optim.weight_decay"]  # the only setting that differs
    assert [r["optim.weight_decay"] for r in rows] == [1.0, 0.0]
    assert rows[0]["forked from"] is None and rows[1]["forked from"] == f"parent at {FORK_STEP}"
    for row, run in zip(rows, (parent, fork)):
        assert row["status"] == run.summary["status"] and row["final step"] == run.summary["final_step"]
        assert row["memorization step"] == run.summary["memorization_step"]
        assert row["key frequencies"] == replay(run, ["progress"], progress=False).context["progress"]["key_freqs"]


@pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("CI") != "true",
                    reason="needs /usr/bin/chromium (apt-get install chromium); required under CI=true")
def test_comparison_page_renders_offline_with_one_trace_per_run(pair, tmp_path, capsys):
    assert CHROMIUM.exists(), "CI=true: install chromium (apt-get install -y chromium)"
    parent, fork = pair
    out = tmp_path / "compare.html"
    assert main(["compare", str(parent.path), str(fork.path), "--out", str(out)]) == 0
    assert f"comparison written to {out}" in capsys.readouterr().out
    text = out.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", text) and not re.search(r"<link\b", text)
    assert "<td>parent at 100</td>" in text
    dom = _render(out, tmp_path)
    sections = {m.group(1): m.group(2) for m in
                re.finditer(r'<section id="section-([a-z_]+)".*?>(.*?)</section>', dom, flags=re.S)}
    assert list(sections) == METRICS + REPLAYED
    pm, fm = parent.metrics, fork.metrics
    for name, column in [("train_loss", "train_loss"), ("test_loss", "test_loss"), ("train_acc", "train_acc"),
                         ("test_acc", "test_acc"), ("weight_norm", "weight_norm_sq")]:
        low = 1 if name != "weight_norm" else 0  # log step axes start at step 1
        expected = [int((np.isfinite(pm[column]) & (pm["step"] >= low)).sum()),
                    int((np.isfinite(fm[column]) & (fm["step"] >= FORK_STEP)).sum())]
        assert _line_points(sections[name]) == expected, name
    for name in REPLAYED:
        assert _line_points(sections[name]) == [len(parent.steps), len(fork.steps)], name


def test_unknown_run_directory_exits_2(pair, tmp_path, capsys):
    parent, _ = pair
    out = tmp_path / "compare.html"
    assert main(["report", str(parent.path), str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grokinterp report: error: not a run directory (no config.json): ")
    assert str(tmp_path / "nowhere") in err and not out.exists()
    with pytest.raises(SystemExit) as no_run:  # no run at all: argparse's usage error
        main(["report", "--out", str(out)])
    assert no_run.value.code == 2 and "the following arguments are required: runs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no runs to compare"):
        write_comparison([], out)
