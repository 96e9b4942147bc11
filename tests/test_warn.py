"""The alarm benchmark on hand-made series with known alarm and grokking steps, D8's delay-law fits on
synthetic data from each law (1% noise, parameters within 2%), and `grokinterp warn` end to end."""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from grokinterp.analysis import replay
from grokinterp.analysis.warning import WARNING_ANALYSES
from grokinterp.cli import main
from grokinterp.runs import Run, RunWriter
from grokinterp.sweep import SweepSpec, write_sweep_file
from grokinterp.experiments.warning import (
    ALARM_RULES,
    RunSignal,
    alarm_step,
    alarm_table,
    auroc,
    max_level,
    benchmark_alarm,
    first_passage_run,
    fit_exponential_law,
    fit_first_passage,
    fit_power_law,
    predict_gap,
    prediction_error,
    running_drawdown,
    running_rise,
    shift_since,
    load_warn_result,
    warn_sweep,
)
from grokinterp.experiments.warning._sweep import WarnRun, logit_scale_mediation

STEPS = np.arange(0, 1001, 10)


def _signal(name, t_mem, t_grok, pieces, base=0.0):
    """A step-function signal on STEPS: `base`, then value v from step s on, for each (s, v) in `pieces`."""
    values = np.full(len(STEPS), base)
    for start, value in pieces:
        values[STEPS >= start] = value
    return RunSignal(name, STEPS, values, t_mem, t_grok)


@pytest.fixture
def hand_made():
    controls = [
        _signal("c1", 100, None, [(100, 1.0)], base=5.0),  # 5.0 before T_mem lies outside its window
        _signal("c2", 100, None, [(500, 2.0), (510, 0.5)], base=0.5),  # one sample at 2.0
        _signal("c3", 100, None, [], base=1.5),
    ]
    grokking = [
        _signal("g1", 100, 800, [(500, 3.0)]),  # alarm 500, lead 300
        _signal("g2", 100, 600, [(550, 3.0)]),  # alarm 550, lead 50
        _signal("g3", 100, 400, [(400, 3.0)]),  # rises at the grokking step: too late
        _signal("g4", 200, 700, [(150, 3.0)]),  # above before T_mem: alarm at T_mem = 200, lead 500
    ]
    return grokking, controls


def test_alarm_benchmark_on_hand_made_series(hand_made):
    grokking, controls = hand_made
    stats = benchmark_alarm(grokking, controls)
    assert stats.threshold == 2.0
    assert {k: stats.alarm_steps[k] for k in ("g1", "g2", "g3", "g4")} == {"g1": 500, "g2": 550, "g3": None, "g4": 200}
    assert (stats.n_fired, stats.n_grokking) == (3, 4) and stats.fired_fraction == 0.75
    assert sorted(stats.leads) == [50.0, 300.0, 500.0]
    assert stats.median_lead == 300.0 and stats.lead_quantile(0.25) == 175.0 and stats.lead_quantile(0.75) == 400.0
    # leave-one-out: c2 (max 2.0) alarms against max(c1, c3) = 1.5; c1 and c3 stay under 2.0
    assert (stats.n_false_alarms, stats.n_controls) == (1, 3)
    assert stats.alarm_steps["c2"] == 500 and stats.alarm_steps["c1"] is None
    # windows: g3 peaks at 0 before its grok, every other grokking run at 3; controls at 1, 2, 1.5
    assert stats.auroc == pytest.approx(9 / 12)


def test_persistence_needs_consecutive_samples(hand_made):
    grokking, controls = hand_made
    stats = benchmark_alarm(grokking, controls, persist=3)
    assert stats.threshold == 1.5  # c2's single spike no longer counts: its level is 0.5
    assert stats.alarm_steps["g1"] == 520 and stats.alarm_steps["g4"] == 220
    assert sorted(stats.leads) == [30.0, 280.0, 480.0]


def test_alarm_rules_without_controls_never_fire():
    g = _signal("g", 0, 500, [(100, 1.0)])
    assert alarm_step(g, math.nan) is None
    assert benchmark_alarm([g], []).n_fired == 0


def test_auroc_ties_and_missing_scores():
    assert auroc([1.0, 2.0], [1.0]) == 0.75
    assert auroc([float("nan")], [float("nan")]) == 0.5
    with pytest.raises(ValueError, match="grokking step"):
        benchmark_alarm([_signal("x", 0, None, [])], [])


def test_signal_transforms_are_causal():
    steps = np.arange(6)
    v = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(running_drawdown(steps, v, start=1), [np.nan, 0, 0, 0.5, 0.25, 0])
    np.testing.assert_allclose(running_drawdown(steps, v, start=1, log=True), [np.nan, 0, 0, math.log(2), math.log(4 / 3), 0])
    np.testing.assert_allclose(running_rise(steps, v, start=2), [np.nan, np.nan, 0, 0, 1, 4])
    np.testing.assert_allclose(shift_since(steps, v, start=3), [np.nan] * 3 + [0, 1, 4])
    # a value at t never changes when later samples are appended
    np.testing.assert_allclose(running_drawdown(steps[:4], v[:4], start=1), running_drawdown(steps, v, start=1)[:4])


# ----- D8: delay laws ------------------------------------------------------------------------------------


def _first_passage_runs(rng, kappa=0.8, v_star=900.0, lr=1e-3, wd=1.0, n=12):
    runs = []
    rate = 2 * kappa * lr * wd
    for _ in range(n):
        t_mem, v_mem = 100, rng.uniform(1500, 3000)
        t_grok = int(round(t_mem + math.log(v_mem / v_star) / rate))
        steps = np.arange(0, t_grok + 200)
        v = v_mem * np.exp(-rate * (steps - t_mem)) * (1 + 0.01 * rng.standard_normal(len(steps)))
        runs.append(first_passage_run(steps, v, t_mem, t_grok, lr, wd))
    return runs


def test_first_passage_law_recovered_from_synthetic_runs():
    runs = _first_passage_runs(np.random.default_rng(0))
    fit = fit_first_passage(runs, n_boot=300)
    assert fit.params["kappa"] == pytest.approx(0.8, rel=0.02)
    assert fit.params["v_star"] == pytest.approx(900.0, rel=0.02)
    lo, hi = fit.ci["kappa"]
    assert lo <= 0.8 <= hi or abs(fit.params["kappa"] - 0.8) < 0.01
    other = _first_passage_runs(np.random.default_rng(1), lr=2e-3, wd=0.5)  # another cell, same law
    assert prediction_error(fit, other) < 0.02
    assert predict_gap(0.8, 900.0, 1800.0, 1e-3, 0.0) == math.inf  # no decay: never groks


def _noisy(values, seed):
    return np.asarray(values) * np.exp(0.01 * np.random.default_rng(seed).standard_normal(len(values)))


def test_exponential_laws_recovered():
    rho = np.linspace(0.5, 1.5, 10)
    clamp = fit_exponential_law(rho, _noisy(50 * np.exp(7.5 * rho), 0), n_boot=300)
    assert clamp.params["alpha"] == pytest.approx(7.5, rel=0.02) and clamp.params["A"] == pytest.approx(50, rel=0.02)
    assert clamp.ci["alpha"][0] < clamp.params["alpha"] < clamp.ci["alpha"][1] and clamp.r2 > 0.99
    temperature = np.linspace(2e-3, 1e-2, 10)  # D8d: gap = A exp(Delta E / D)
    arrhenius = fit_exponential_law(1 / temperature, _noisy(30 * np.exp(0.01 / temperature), 1), n_boot=300)
    assert arrhenius.params["alpha"] == pytest.approx(0.01, rel=0.02)


def test_power_law_recovered_with_fixed_and_fitted_critical_decay():
    lam = np.array([0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0])
    fixed = fit_power_law(lam, _noisy(1000 * lam**-0.757, 2), lam_c=0.0, n_boot=200)
    assert fixed.params["nu"] == pytest.approx(0.757, rel=0.02) and fixed.params["A"] == pytest.approx(1000, rel=0.02)
    fitted = fit_power_law(lam, _noisy(1000 * (lam - 0.0158) ** -0.757, 0), lam_c=None, n_boot=100)
    for key, value in (("nu", 0.757), ("A", 1000.0), ("lambda_c", 0.0158)):
        assert fitted.params[key] == pytest.approx(value, rel=0.02), key


def test_delay_laws_reject_too_little_data():
    with pytest.raises(ValueError, match="at least 3 runs"):
        fit_exponential_law([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="T_mem < T_grok"):
        first_passage_run(np.arange(10), np.ones(10), 5, 5, 1e-3, 1.0)


def test_logit_scale_mediation_compares_two_regressions(tmp_path):
    rng = np.random.default_rng(0)
    runs = []
    for i, s_eff in enumerate([2.0, 3.0, 5.0, 8.0, 13.0]):
        gap = int(round(40 * s_eff**1.5))
        runs.append(WarnRun(f"r{i}", tmp_path, "grokking", "grokked", 100, 100 + gap,
                            facts={"s_eff_at_memorization": s_eff, "weight_norm_at_memorization": float(rng.uniform(30, 60))}))
    out = logit_scale_mediation(runs)
    assert out["n"] == 5 and out["r2_s_eff"] == pytest.approx(1.0, abs=1e-4) and out["r2_weight_norm"] < 0.9
    assert logit_scale_mediation(runs[:2]) == {}


# ----- `grokinterp warn` end to end ----------------------------------------------------------------------


def rewrite_json(path, obj) -> None:
    """Fabricate a run by editing its JSON: rewritten through the run's writer, which records the new hash."""
    with RunWriter(path.parent) as writer:
        writer.write_json(path.name, obj, sort_keys=False)


def fabricate_sweep(source, sweep, grid: dict, label) -> Path:
    """A sweep directory of copies of the replayed run `source`, one per grid point; `label(i, values)` returns
    (config edits {section: {key: value}}, summary edits) for run i. Exercises the pipeline, not the science."""
    data = write_sweep_file(sweep, SweepSpec(grid, preset="quick"))
    for i, entry in enumerate(data["runs"]):
        path = sweep / entry["name"]
        shutil.copytree(source, path)
        config = json.loads((path / "config.json").read_text())
        summary = json.loads((path / "summary.json").read_text())
        config_edits, summary_edits = label(i, entry["values"])
        for section, edits in config_edits.items():
            config["config"][section].update(edits)
        summary.update(summary_edits)
        grok = summary.get("grokking_step")
        summary["gap"] = grok - summary["memorization_step"] if grok is not None else None
        rewrite_json(path / "config.json", config)
        rewrite_json(path / "summary.json", summary)
    return sweep


@pytest.fixture(scope="module")
def replayed_source(tiny_run, tmp_path_factory):
    """A copy of the tiny run with the warning analyses replayed (cached in it)."""
    source = tmp_path_factory.mktemp("warn_source") / "source"
    shutil.copytree(tiny_run.path, source, ignore=shutil.ignore_patterns("analysis", "report.html"))
    replay(source, WARNING_ANALYSES, progress=False)
    return source


def _grokked_at_wd1(i, values):
    """wd 1 runs grok (a grokking step set by hand); wd 0 runs only memorize."""
    wd = values["optim.weight_decay"]
    if wd > 0:
        grok = 400 + 100 * (i % 3)
        return {"optim": {"weight_decay": wd}}, {"status": "grokked", "grokking_step": grok}
    return {"optim": {"weight_decay": wd}}, {"status": "memorized", "grokking_step": None}


@pytest.fixture(scope="module")
def fake_sweep(replayed_source, tmp_path_factory):
    """3 runs labelled grokked (wd 1) and 3 controls (wd 0, memorized)."""
    root = tmp_path_factory.mktemp("warn_sweep")
    return fabricate_sweep(replayed_source, root / "sweep", {"optim.weight_decay": [1.0, 0.0], "model.seed": [0, 1, 2]},
                           _grokked_at_wd1)


def test_warn_command_writes_the_table_and_the_figure(fake_sweep, tmp_path):
    out = tmp_path / "docs" / "warn.md"
    assert main(["warn", str(fake_sweep), "--out", str(out), "--no-progress"]) == 0
    text = out.read_text()
    figure = out.with_name("warn_lead_times.svg")
    ET.parse(figure)  # well-formed SVG
    assert "![lead time per diagnostic across seeds](warn_lead_times.svg)" in text
    result = warn_sweep([fake_sweep], progress=False)  # everything is cached now
    assert alarm_table(result) in text
    assert [len(r.signals) for r in result.runs] == [len(ALARM_RULES)] * 6
    assert {r.role for r in result.runs} == {"grokking", "control"}
    for rule in ALARM_RULES:
        stats = result.stats[rule.name]
        assert (stats.n_grokking, stats.n_controls) == (3, 3)
        assert f"| {rule.name} |" in text
    assert "first_passage" in result.delay_laws and "D8a first passage" in text
    for run in result.runs:  # each rule's signal lies on its own step axis
        for sig in run.signals.values():
            assert sig.steps.shape == sig.values.shape


def test_warn_command_misuse_exits_2(fake_sweep, tmp_path, capsys):
    assert main(["warn", str(tmp_path / "missing")]) == 2
    assert main(["warn", str(fake_sweep), "--out", str(tmp_path / "warn.txt")]) == 2
    assert main(["warn", str(fake_sweep), "--controls", "weight_decay", "--out", str(tmp_path / "w.md")]) == 2
    assert main(["warn", str(fake_sweep), "--controls", "optim.weight_decay=5", "--out", str(tmp_path / "w.md"),
                 "--no-progress"]) == 2
    assert "needs grokking runs and control runs" in capsys.readouterr().err
    assert main(["warn"]) == 2  # neither sweeps nor --doc-only
    with pytest.raises(SystemExit) as e:
        main(["warn", "--workers"])
    assert e.value.code == 2
    assert not (tmp_path / "w.md").exists()


def test_controls_can_be_a_directory(fake_sweep, tmp_path):
    controls = [p for p in fake_sweep.iterdir() if p.name.startswith("optim.weight_decay=0.0")]
    grokking = [p for p in fake_sweep.iterdir() if p.name.startswith("optim.weight_decay=1.0")]
    result = warn_sweep(grokking, controls=[str(c) for c in controls], progress=False)
    assert sorted(r.role for r in result.runs) == ["control"] * 3 + ["grokking"] * 3
    assert Run(controls[0]).summary["status"] == "memorized"


def test_matched_controls_get_their_own_thresholds_and_say_what_differs(fake_sweep, tmp_path):
    """A second control group (here: the grokking runs' own copies relabelled as the random-table task that
    never grokked) is benchmarked on its own; the table names what each group differs in; --data-dir writes
    one row per rule and group."""
    grokking = sorted(p for p in fake_sweep.iterdir() if p.name.startswith("optim.weight_decay=1.0"))
    matched = tmp_path / "matched"
    matched.mkdir()
    for p in grokking:
        copy = matched / p.name
        shutil.copytree(p, copy)
        config = json.loads((copy / "config.json").read_text())
        config["config"]["task"]["op"] = "random"
        summary = json.loads((copy / "summary.json").read_text())
        summary.update(status="memorized", grokking_step=None, gap=None)
        rewrite_json(copy / "config.json", config)
        rewrite_json(copy / "summary.json", summary)
    copies = [str(c) for c in sorted(matched.iterdir())]
    result = warn_sweep([fake_sweep], progress=False, matched_controls=copies)
    assert sorted(r.role for r in result.runs) == ["control"] * 3 + ["grokking"] * 3 + ["matched"] * 3
    assert result.differences == {"control": ["optim.weight_decay"], "matched": ["task.op"]}
    for rule in ALARM_RULES:
        s, m = result.stats[rule.name], result.matched_stats[rule.name]
        assert (m.n_grokking, m.n_controls) == (3, 3)
        grok_levels = [max_level(r.signals[rule.name], rule.persist) for r in result.of_role("grokking")]
        ctrl_levels = [max_level(r.signals[rule.name], rule.persist, stop_at_grok=False) for r in result.of_role("matched")]
        assert m.auroc == pytest.approx(auroc(grok_levels, ctrl_levels))
        assert m.auroc_interval.low <= m.auroc <= m.auroc_interval.high
        assert s.auroc_interval is not None
    table = alarm_table(result)
    assert "differ in: optim.weight_decay" in table and "differ in: task.op" in table
    data_dir = tmp_path / "data"
    out = tmp_path / "warn.md"
    flags = [arg for c in copies for arg in ("--matched-controls", c)]
    assert main(["warn", str(fake_sweep), *flags, "--out", str(out), "--data-dir", str(data_dir), "--no-progress"]) == 0
    rows = (data_dir / "alarms.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * len(ALARM_RULES) and rows[0].startswith("diagnostic,controls,differ_in")
    assert "matched controls" in out.read_text()
    meta = json.loads((data_dir / "sweep.json").read_text())  # what the committed rows are, not older rows
    assert meta["scored"]["matched"] == len(result.of_role("matched")) and "--data-dir" in meta["written_by"]
    assert "## Claims and verdicts" in out.read_text() and "| rel-norm-peak |" in out.read_text()
    assert (data_dir / "delays.csv").read_text().startswith("run,memorization_step,grokking_step,s_eff_at_memorization")
    assert main(["warn", str(fake_sweep), "--matched-controls", "optim.weight_decay=1.0", "--out", str(out),
                 "--no-progress"]) == 2  # the scored runs themselves cannot be matched controls


def test_doc_only_rewrites_the_page_from_the_data_alone(fake_sweep, tmp_path):
    """--data-dir keeps every scored run's signals on its window; the benchmark recomputed from them equals
    the one computed from the run directories, and --doc-only rewrites page and figure byte for byte."""
    data_dir, out = tmp_path / "data", tmp_path / "warn.md"
    assert main(["warn", str(fake_sweep), "--out", str(out), "--data-dir", str(data_dir), "--no-progress"]) == 0
    page, figure = out.read_text(), out.with_name("warn_lead_times.svg").read_text()
    direct = warn_sweep([fake_sweep], progress=False)
    rebuilt = load_warn_result(data_dir)
    assert [(r.name, r.role, r.memorization_step, r.grokking_step) for r in rebuilt.runs] == \
        [(r.name, r.role, r.memorization_step, r.grokking_step) for r in direct.runs]
    for rule in ALARM_RULES:
        a, b = direct.stats[rule.name], rebuilt.stats[rule.name]
        np.testing.assert_equal([a.threshold, a.auroc], [b.threshold, b.auroc])  # NaN equals NaN here
        assert (a.n_fired, a.leads, a.n_false_alarms, a.alarm_steps) == (b.n_fired, b.leads, b.n_false_alarms, b.alarm_steps)
    assert rebuilt.delay_laws["first_passage"].params == direct.delay_laws["first_passage"].params
    out.unlink()
    assert main(["warn", "--doc-only", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert out.read_text() == page and out.with_name("warn_lead_times.svg").read_text() == figure
    signals = sorted(p.name for p in (data_dir / "signals").iterdir())
    assert len(signals) == len([r for r in direct.runs if r.role in ("grokking", "control")])
    grok = direct.of_role("grokking")[0]  # only the window [T_mem, T_grok) is kept
    steps = [int(line.split(",")[0]) for line in (data_dir / "signals" / f"{grok.name}.csv").read_text().splitlines()[1:]]
    assert min(steps) >= grok.memorization_step and max(steps) < grok.grokking_step


def test_doc_only_misuse_exits_2(fake_sweep, tmp_path, capsys):
    assert main(["warn", "--doc-only", str(fake_sweep), "--out", str(tmp_path / "w.md")]) == 2
    assert main(["warn", "--out", str(tmp_path / "w.md")]) == 2
    assert main(["warn", "--doc-only", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "w.md")]) == 2
    assert "no alarm-benchmark data" in capsys.readouterr().err
    data = tmp_path / "data"
    assert main(["warn", str(fake_sweep), "--out", str(tmp_path / "ok.md"), "--data-dir", str(data), "--no-progress"]) == 0
    runs = data / "benchmark_runs.csv"
    runs.write_text(runs.read_text().replace(",grokked,", ",grokked,x", 1))  # a memorization step that is no number
    assert main(["warn", "--doc-only", "--data-dir", str(data), "--out", str(tmp_path / "w.md")]) == 2
    assert "does not parse" in capsys.readouterr().err
    runs.write_text(runs.read_text().replace(",grokked,x", ",grokked,", 1))
    missing = sorted((data / "signals").iterdir())[0]
    missing.unlink()
    assert main(["warn", "--doc-only", "--data-dir", str(data), "--out", str(tmp_path / "w.md")]) == 2
    assert f"{missing} is missing" in capsys.readouterr().err
    assert not (tmp_path / "w.md").exists()


def test_repro_warn_export_only_scores_both_control_groups_and_rebuilds(replayed_source, tmp_path, monkeypatch):
    """`grokinterp repro warn --export-only` on existing sweeps: <out> (grokking runs and wd-0 controls) and
    <out>_controls (random-table controls at wd 1) scored, the data written, then `--doc-only` rewrites the page."""
    sweep = tmp_path / "checkpoints" / "repro_warn"
    fabricate_sweep(replayed_source, sweep, {"optim.weight_decay": [1.0, 0.0], "model.seed": [0, 1, 2]},
                    _grokked_at_wd1)
    fabricate_sweep(replayed_source, sweep.with_name("repro_warn_controls"), {"model.seed": [0, 1, 2]},
                    lambda i, v: ({"task": {"op": "random"}, "optim": {"weight_decay": 1.0}},
                                  {"status": "memorized", "grokking_step": None}))
    monkeypatch.chdir(tmp_path)
    docs, data = tmp_path / "docs", tmp_path / "data"
    argv = ["repro", "warn", "--out", str(sweep), "--docs-dir", str(docs), "--data-dir", str(data), "--no-progress"]
    assert main([*argv, "--export-only"]) == 0
    meta = json.loads((data / "sweep.json").read_text())
    assert meta["scored"] == {"grokking": 3, "control": 3, "matched": 3}
    assert meta["differences"] == {"control": ["optim.weight_decay"], "matched": ["task.op"]}
    page = (docs / "warn.md").read_text()
    (docs / "warn.md").unlink()
    assert main(["repro", "warn", "--doc-only", "--docs-dir", str(docs), "--data-dir", str(data)]) == 0
    assert (docs / "warn.md").read_text() == page
    assert main([*argv, "--export-only", "--seeds", "3"]) == 2
