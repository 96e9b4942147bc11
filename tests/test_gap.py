"""Gap prediction: Pearson r with a Fisher-z interval, and dips planted in hand-made agreement series."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from grokinterp.runs import write_metrics_csv
from grokinterp.sweep import SweepSpec, write_sweep_file
from grokinterp.sweep._gap import gap_prediction, gap_scatter_figure, pearson_with_ci


def test_pearson_ci_matches_fisher_z_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = 0.8 * x + 0.6 * rng.normal(size=30)
    c = pearson_with_ci(x, y)
    r = np.corrcoef(x, y)[0, 1]
    half = 1.959963984540054 / math.sqrt(27)
    assert c.r == pytest.approx(r, abs=1e-12) and c.n == 30
    assert c.ci_low == pytest.approx(math.tanh(math.atanh(r) - half), abs=1e-9)
    assert c.ci_high == pytest.approx(math.tanh(math.atanh(r) + half), abs=1e-9)
    assert c.p_value == pytest.approx(stats.pearsonr(x, y)[1], rel=1e-9)
    with pytest.raises(ValueError, match="at least 4"):
        pearson_with_ci([1, 2, 3], [1, 2, 3])


def test_planted_dips_predict_the_gap(tmp_path):
    spec = SweepSpec({"model.seed": list(range(6))}, preset="fast")
    write_sweep_file(tmp_path, spec)
    rng = np.random.default_rng(1)
    planted = {}
    for k, run in enumerate(spec.runs()):
        mem, n_dips = 50, k + 1
        grok = mem + 200 + 150 * n_dips
        steps = np.arange(0, grok + 200)
        agreement = 0.3 + 0.002 * rng.normal(size=len(steps))
        for j in range(n_dips):  # one sharp dip every 150 steps after memorization
            agreement[mem + 100 + 150 * j] -= 0.2  # even step: mem and 150*j are even
        agreement[grok + 100] -= 0.2  # after grokking: not counted
        run_dir = tmp_path / run.name
        run_dir.mkdir()
        write_metrics_csv(run_dir / "metrics.csv", [
            {"step": int(s), "grad_agreement": float(a) if s % 2 == 0 else float("nan")}
            for s, a in zip(steps, agreement)])
        # dips land on even steps, so the every-2-steps sampling sees them
        (run_dir / "summary.json").write_text(json.dumps({"status": "grokked", "memorization_step": mem,
                                                          "grokking_step": grok, "gap": grok - mem}))
        planted[run.name] = n_dips
    pred = gap_prediction(tmp_path, window=50, threshold=6.0, min_separation=20)
    assert dict(zip(pred.runs, pred.dips.astype(int).tolist())) == planted
    assert pred.count_vs_gap.r == pytest.approx(1.0, abs=1e-9) and pred.count_vs_gap.n == 6
    assert len(pred.sensitivity) == 27 and not pred.skipped
    assert len(gap_scatter_figure(pred).data[0].x) == 6
