import argparse
import csv
import importlib
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from grokinterp.config import ConfigError, preset
from grokinterp.runs import Run, write_metrics_csv
from grokinterp.sweep import (
    SweepSpec,
    aggregate,
    aggregate_sweep,
    cell_stats,
    parse_axis_values,
    parse_grid_arg,
    read_sweep_file,
    run_curves,
    run_name,
    run_sweep,
    sweep_report,
    write_sweep_file,
)
from grokinterp.sweep.cli import add_sweep_parser, run_sweep_command

# A few-second config (p 23, d_model 32) as dotted overrides of the quick preset.
TINY = {"task.p": 23, "task.frac_train": 0.6, "model.d_model": 32, "model.d_head": 8, "model.d_mlp": 64,
        "optim.lr": 1e-2, "optim.warmup_steps": 0, "train.steps": 60, "train.ckpt_every": 20,
        "train.state_every": 20, "train.early_stop_after": None, "train.eval_every": 5}


def optional(module: str):
    """Import an optional backend; skip without it, except under CI=true where it must be installed."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def tiny_spec(seeds=(0, 1), **grid) -> SweepSpec:
    return SweepSpec({**grid, "model.seed": list(seeds)}, preset="quick", overrides=TINY)


# ----- grid -----
def test_axis_values_parse_lists_ranges_and_literals():
    assert parse_axis_values("model.seed", "0:4") == [0, 1, 2, 3]
    assert parse_axis_values("model.seed", "2:10:3") == [2, 5, 8]
    assert parse_axis_values("model.seed", "range(3)") == [0, 1, 2]
    assert parse_axis_values("model.seed", {"range": [1, 3]}) == [1, 2]
    assert parse_axis_values("optim.beta1", "0,0.5,0.9") == [0, 0.5, 0.9]
    assert parse_axis_values("model.act_fn", "relu,gelu") == ["relu", "gelu"]
    assert parse_axis_values("train.early_stop_after", "[None, 100]") == [None, 100]
    assert parse_grid_arg("--optim.weight_decay=0,1.0") == ("optim.weight_decay", [0, 1.0])
    with pytest.raises(ConfigError, match="KEY=VALUES"):
        parse_grid_arg("beta1")
    with pytest.raises(ConfigError, match="empty"):
        parse_axis_values("model.seed", "5:2")


def test_grid_is_the_cartesian_product_in_order_with_one_thread_per_run():
    spec = SweepSpec({"optim.beta1": [0, 0.5, 0.9], "model.seed": list(range(30))}, preset="fast")
    runs = list(spec.runs())
    assert len(runs) == 90 and len({r.name for r in runs}) == 90
    assert runs[0].name == "optim.beta1=0.0__model.seed=0"  # ints coerced to the field's float type
    assert runs[1].values == {"optim.beta1": 0, "model.seed": 1}
    assert runs[31].config.optim.beta1 == 0.5 and runs[31].config.model.seed == 1
    assert all(r.config.train.threads == 1 for r in runs)
    assert all(r.config.task.p == 53 for r in runs)  # the preset is the base
    assert spec.cell_keys == ["optim.beta1"] and spec.replicate_keys == ["model.seed"]
    assert SweepSpec({"model.seed": [0], "task.seed": [1, 2]}).cell_keys == []
    assert SweepSpec({"model.seed": [0], "task.seed": [1, 2]}, seed_keys=("model.seed",)).cell_keys == ["task.seed"]


def test_bad_grids_fail_before_anything_runs():
    with pytest.raises(ConfigError, match="optim.betaa"):
        SweepSpec({"optim.betaa": [0.1]})
    with pytest.raises(ConfigError, match="not prime"):
        SweepSpec({"task.p": [53, 54]})
    with pytest.raises(ConfigError, match="repeats"):
        SweepSpec({"model.seed": [1, 1]})
    with pytest.raises(ConfigError, match="not grid axes"):
        SweepSpec({"model.seed": [1]}, seed_keys=("task.seed",))
    with pytest.raises(ConfigError, match="unknown sweep spec field"):
        SweepSpec.from_dict({"grid": {"model.seed": "0:2"}, "seeds": 3})


def test_run_names_are_file_safe():
    name = run_name({"plugins.grokfast_ema": {"alpha": 0.98}, "task.op": "x2+y2", "model.seed": 3})
    assert "/" not in name and " " not in name and name.endswith("task.op=x2+y2__model.seed=3")
    assert name != run_name({"plugins.grokfast_ema": {"alpha": 0.99}, "task.op": "x2+y2", "model.seed": 3})


def test_sweep_file_can_be_extended_but_not_changed(tmp_path):
    data = write_sweep_file(tmp_path, tiny_spec(seeds=(0, 1)))
    assert data["axes"] == ["model.seed"] and data["seed_keys"] == ["model.seed"] and len(data["runs"]) == 2
    assert data["base_config"]["train"]["threads"] == 1
    data = write_sweep_file(tmp_path, tiny_spec(seeds=(1, 2, 3)))
    assert [r["values"]["model.seed"] for r in data["runs"]] == [0, 1, 2, 3]
    assert read_sweep_file(tmp_path) == data
    two_axes = write_sweep_file(tmp_path / "b", tiny_spec(seeds=(0,), **{"optim.weight_decay": [1.0]}))
    assert list(two_axes["spec"]["grid"]) == ["optim.weight_decay", "model.seed"]  # axis order kept on disk
    assert list(read_sweep_file(tmp_path / "b")["spec"]["grid"]) == ["optim.weight_decay", "model.seed"]
    with pytest.raises(ConfigError, match="different base config"):
        write_sweep_file(tmp_path, SweepSpec({"model.seed": [0]}, preset="quick", overrides={**TINY, "optim.lr": 3e-3}))
    with pytest.raises(ConfigError, match="sweep over"):
        write_sweep_file(tmp_path, tiny_spec(seeds=(0,), **{"optim.beta1": [0.5]}))
    assert not list(tmp_path.glob(".*.tmp"))


# ----- aggregation on hand-made summaries -----
def _summary(status, mem=None, grok=None, no_mem=False):
    return {"status": status, "memorization_step": mem, "grokking_step": grok,
            "gap": None if mem is None or grok is None else grok - mem, "generalizes_without_memorizing": no_mem}


HAND_MADE = [
    ({"optim.weight_decay": 1.0, "model.seed": 0}, _summary("grokked", 100, 400)),
    ({"optim.weight_decay": 1.0, "model.seed": 1}, _summary("grokked", 120, 620)),
    ({"optim.weight_decay": 1.0, "model.seed": 2}, _summary("grokked", 90, 390)),
    ({"optim.weight_decay": 1.0, "model.seed": 3}, _summary("memorized", 110)),
    ({"optim.weight_decay": 1.0, "model.seed": 4}, {"status": "running", "final_step": 50}),
    ({"optim.weight_decay": 5.0, "model.seed": 0}, _summary("not_learned")),
    ({"optim.weight_decay": 5.0, "model.seed": 1}, _summary("not_learned")),
    ({"optim.weight_decay": 2.0, "model.seed": 0}, _summary("grokked", 60, 60, no_mem=True)),
]


def test_aggregate_per_cell_on_hand_made_summaries():
    rows = aggregate([{"values": v, "summary": s} for v, s in HAND_MADE], ["optim.weight_decay"])
    by_wd = {r["optim.weight_decay"]: r for r in rows}
    assert [r["optim.weight_decay"] for r in rows] == [1.0, 5.0, 2.0]  # first-seen order
    wd1 = by_wd[1.0]
    assert (wd1["n"], wd1["n_unfinished"], wd1["n_grokked"]) == (4, 1, 3)
    assert wd1["grok_rate"] == 0.75
    assert wd1["median_memorization_step"] == 105.0  # over the four that memorized
    assert wd1["median_grokking_step"] == 400.0
    assert wd1["median_gap"] == 300.0  # gaps 300, 500, 300
    assert (wd1["gap_q25"], wd1["gap_q75"]) == (300.0, 400.0)
    assert wd1["frac_not_learned"] == 0.0 and wd1["frac_generalizes_without_memorizing"] == 0.0
    assert by_wd[5.0]["frac_not_learned"] == 1.0 and by_wd[5.0]["grok_rate"] == 0.0
    assert by_wd[5.0]["median_gap"] is None and by_wd[5.0]["median_memorization_step"] is None
    assert by_wd[2.0]["frac_generalizes_without_memorizing"] == 1.0 and by_wd[2.0]["median_gap"] == 0.0
    pooled = aggregate([{"values": v, "summary": s} for v, s in HAND_MADE], [])
    assert len(pooled) == 1 and pooled[0]["n"] == 7
    assert cell_stats([])["grok_rate"] is None


@pytest.fixture
def hand_made_sweep(tmp_path):
    """A sweep directory of hand-written runs (summary.json, metrics.csv) with no training."""
    spec = SweepSpec({"optim.weight_decay": [1.0, 5.0, 2.0], "model.seed": [0, 1, 2, 3, 4]}, preset="fast")
    data = write_sweep_file(tmp_path, spec)
    made = {run_name(v): s for v, s in HAND_MADE}
    for run in data["runs"]:
        if run["name"] in made:
            path = tmp_path / run["name"]
            path.mkdir()
            (path / "summary.json").write_text(json.dumps(made[run["name"]]))
            steps = np.arange(0, 101)
            write_metrics_csv(path / "metrics.csv", [{"step": int(s), "train_acc": min(1.0, s / 50),
                                                      "test_acc": (s / 100) if s % 10 == 0 else float("nan")}
                                                     for s in steps])
    return tmp_path


def test_aggregate_csv_and_offline_report(hand_made_sweep):
    import plotly.offline

    rows = aggregate_sweep(hand_made_sweep)
    with open(hand_made_sweep / "aggregate.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["optim.weight_decay"] for r in table] == ["1.0", "5.0", "2.0"]
    assert table[0]["median_gap"] == "300.0" and table[0]["n_unfinished"] == "1" and table[1]["median_gap"] == ""
    assert len(rows) == 3
    page = sweep_report(hand_made_sweep).read_text()
    plotly_js = plotly.offline.get_plotlyjs()
    assert page.count(plotly_js) == 1  # plotly inlined once
    rest = page.replace(plotly_js, "")
    assert "<script src=" not in rest and "cdn.plot.ly" not in rest and "https://" not in rest
    assert page.count('class="plotly-graph-div"') == 2 + 3  # gap, rates, one curve figure per non-empty cell
    assert "Median grokking gap" in page and "<details>" in page


def test_gap_figure_has_an_iqr_band_and_run_curves_one_trace_per_run(hand_made_sweep):
    from grokinterp.sweep import gap_figure

    rows = aggregate_sweep(hand_made_sweep, write=False)
    fig = gap_figure(rows, ["optim.weight_decay"])
    band, median = fig.data[0], fig.data[1]
    assert band.fill == "toself" and list(median.x) == [1.0, 2.0, 5.0]  # sorted by the swept value
    assert median.y[0] == 300.0 and np.isnan(median.y[2])  # wd 5 never grokked
    assert list(band.x) == [1.0, 2.0, 2.0, 1.0] and list(band.y) == [400.0, 0.0, 0.0, 300.0]  # q75 out, q25 back
    fig = run_curves(hand_made_sweep, {"optim.weight_decay": 1.0})
    assert len(fig.data) == 5 * 2  # five runs with metrics (one still running), test and train accuracy
    test_trace = next(t for t in fig.data if t.name.endswith("test_acc"))
    assert len(test_trace.x) == 11  # evaluated steps only
    with pytest.raises(ValueError, match="no run"):
        run_curves(hand_made_sweep, {"optim.weight_decay": 9.0})


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("CI") != "true",
                    reason="needs /usr/bin/chromium (apt-get install chromium); required under CI=true")
def test_sweep_report_renders_in_headless_chromium(hand_made_sweep, tmp_path):
    assert CHROMIUM.exists(), "CI=true: install chromium (apt-get install -y chromium)"
    report = sweep_report(hand_made_sweep)
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", report.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = out.stdout.split('class="plot-container plotly"')[1:]
    assert len(figures) == 5 and all('class="main-svg"' in f for f in figures)  # each one drawn
    plot = lambda f: f.split('class="infolayer"')[0]  # noqa: E731  (legend swatches excluded)
    lines = lambda f: [len(re.findall(r"[ML]", d)) for d in re.findall(r'<path class="js-line"[^>]*\sd="([^"]*)"', plot(f))]  # noqa: E731
    # the IQR band's outline (wd 1 to 2 and back; its two wd-2 corners coincide), then the median gap at wd 1
    # and 2 (wd 5 never grokked)
    assert lines(figures[0]) == [3, 2]
    assert lines(figures[1]) == [3, 3, 3]  # grok rate, never learned, generalized without memorizing
    assert len(lines(figures[2])) == 5 * 2  # wd 1's five runs with metrics (one still running), test and train
    assert [len(lines(f)) for f in figures[3:]] == [2 * 2, 1 * 2]  # wd 5 and wd 2: only runs with metrics drawn
    assert 'class="fills"' in plot(figures[0])  # the IQR band


# ----- execution -----
@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "local"
    return out, run_sweep(tiny_spec(seeds=(0, 1)), out, workers=2, progress=False)


def test_local_pool_trains_ordinary_runs(local_sweep):
    out, result = local_sweep
    assert result.ok and sorted(result.trained) == ["model.seed=0", "model.seed=1"] and not result.skipped
    for name in result.trained:
        run = Run(out / name)
        assert run.summary["status"] in ("grokked", "memorized", "not_learned")
        assert run.config.train.threads == 1 and run.config.model.seed == int(name[-1])
        assert run.summary["final_step"] == 60 and run.steps == [0, 20, 40, 60]
    assert json.loads((out / "sweep.json").read_text())["spec"]["grid"] == {"model.seed": [0, 1]}


def test_finished_runs_are_skipped_and_interrupted_ones_resumed(local_sweep):
    out, _ = local_sweep
    done = out / "model.seed=0"
    before = (done / "summary.json").read_text()
    interrupted = out / "model.seed=1"
    final = json.loads((interrupted / "summary.json").read_text())
    (interrupted / "summary.json").write_text(json.dumps({"status": "running", "final_step": 40}))
    result = run_sweep(tiny_spec(seeds=(0, 1)), out, workers=1, progress=False)
    assert result.skipped == ["model.seed=0"] and result.trained == ["model.seed=1"]
    assert (done / "summary.json").read_text() == before
    resumed = json.loads((interrupted / "summary.json").read_text())
    assert resumed["status"] == final["status"] and resumed["memorization_step"] == final["memorization_step"]


def test_ray_backend_on_a_local_instance(tmp_path):
    ray = optional("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_sweep(tiny_spec(seeds=(0, 1)), tmp_path, backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert result.ok and sorted(result.trained) == ["model.seed=0", "model.seed=1"]
    assert all(Run(tmp_path / n).summary["final_step"] == 60 for n in result.trained)


def test_submitit_backend_with_its_local_executor(tmp_path):
    optional("submitit")
    result = run_sweep(tiny_spec(seeds=(0, 1)), tmp_path, backend="slurm", cluster="local", progress=False,
                       executor_params={"timeout_min": 5})
    assert result.ok, result.failed
    assert sorted(result.trained) == ["model.seed=0", "model.seed=1"]
    assert all(Run(tmp_path / n).summary["final_step"] == 60 for n in result.trained)


# ----- CLI -----
def sweep_cli(argv: list[str]) -> int:
    """`grokinterp sweep ARGV` through the main parser (adding the subcommand if cli.py does not yet)."""
    from grokinterp import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "sweep" not in sub.choices:
        add_sweep_parser(sub)
    args, extra = parser.parse_known_args(["sweep", *argv])
    try:
        return run_sweep_command(args, extra)
    except ConfigError:
        return 2


def test_cli_dry_run_report_only_and_errors(local_sweep, tmp_path, capsys):
    out, _ = local_sweep
    assert sweep_cli(["--preset", "fast", "--grid", "optim.beta1=0,0.9", "--grid", "model.seed=0:3",
                      "--out", str(tmp_path / "s"), "--dry-run", "--optim.weight_decay=0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[0].startswith("todo") and lines[0].endswith("optim.beta1=0.0__model.seed=0")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"preset": "quick", "overrides": TINY, "grid": {"model.seed": "0:2"}}))
    assert sweep_cli(["--spec", str(spec_file), "--out", str(out), "--dry-run"]) == 0
    assert all(line.startswith("done") for line in capsys.readouterr().out.splitlines())
    assert sweep_cli(["--report-only", "--out", str(out), "--no-curves"]) == 0
    assert (out / "aggregate.csv").is_file() and (out / "report.html").is_file()
    assert sweep_cli(["--grid", "optim.nope=1", "--grid", "model.seed=0:2", "--dry-run"]) == 2
    assert sweep_cli(["--grid", "model.seed=0:2", "--bogus", "--dry-run"]) == 2
    assert sweep_cli(["--out", str(tmp_path)]) == 2  # no grid
    assert sweep_cli(["--report-only", "--out", str(tmp_path / "none")]) == 2


def test_arms_are_named_conditions_crossed_with_the_grid():
    spec = SweepSpec({"model.seed": [0, 1]}, preset="fast",
                     arms={"base": {}, "both": {"optim.beta1": 0.5, "plugins.grokfast_ema": {"alpha": 0.9}}})
    runs = list(spec.runs())
    assert [r.name for r in runs] == ["arm=base__model.seed=0", "arm=base__model.seed=1",
                                      "arm=both__model.seed=0", "arm=both__model.seed=1"]
    assert runs[0].config.optim.beta1 == preset("fast").optim.beta1 and runs[0].config.plugins == preset("fast").plugins
    assert runs[3].config.optim.beta1 == 0.5 and runs[3].config.plugins["grokfast_ema"] == {"alpha": 0.9}
    assert runs[3].config.model.seed == 1 and runs[3].values == {"arm": "both", "model.seed": 1}
    assert spec.cell_keys == ["arm"] and spec.axes == ["arm", "model.seed"]
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    assert [r.name for r in SweepSpec({}, preset="fast", arms={"a": {}, "b": {"optim.lr": 2e-3}}).runs()] == ["arm=a", "arm=b"]
    with pytest.raises(ConfigError, match="file-safe"):
        SweepSpec({}, preset="fast", arms={"a b": {}})
    with pytest.raises(ConfigError, match="unknown config key 'optim.nope'"):
        SweepSpec({}, preset="fast", arms={"a": {"optim.nope": 1}})
