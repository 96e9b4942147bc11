"""Reproductions: their specs, and the markdown tables written from hand-made sweep directories."""

import json
import math

import pytest

from grokinterp.cli import main
from grokinterp.experiments import REPRODUCTIONS, write_reproduction_doc
from grokinterp.experiments.repro import Reproduction, cell_table, cycle_table, speedup_table
from grokinterp.experiments.repro_data import export_data, load_data
from grokinterp.runs import write_metrics_csv
from grokinterp.sweep import SweepSpec, write_sweep_file


def test_every_reproduction_builds_valid_runs():
    for name, repro in REPRODUCTIONS.items():
        runs = list(repro.spec.runs())
        assert runs, name
        assert len({r.name for r in runs}) == len(runs), name
    stencil = {r.values["arm"]: r.config for r in REPRODUCTIONS["stencil"].spec.runs()}
    assert stencil["baseline"].plugins == {}
    assert stencil["stencil_-1_+1"].plugins == {"probe_stencil": {"offsets": [-1, 1], "lamb": 0.1}}
    assert all(c.task.p == 113 and c.model.d_mlp == 512 for c in stencil.values())
    wd = REPRODUCTIONS["wd"]
    assert {r.config.optim.beta1 for r in wd.spec.runs()} == {0.0}
    assert len(list(wd.with_seeds(2).spec.runs())) == len(wd.spec.grid["optim.weight_decay"]) * 2
    # power: 30 seeds at the cells the source compares, >= 10 elsewhere
    beta1 = REPRODUCTIONS["beta1"]
    seeds = {}
    for spec in beta1.specs:
        for run in spec.runs():
            seeds.setdefault(run.values["optim.beta1"], set()).add(run.values["model.seed"])
    assert {b: len(s) for b, s in seeds.items() if b in (0.0, 0.5, 0.9)} == {0.0: 30, 0.5: 30, 0.9: 30}
    assert min(len(s) for s in seeds.values()) >= 10 and len(seeds) == 9


def _fake_sweep(tmp_path, spec, summaries, metrics=None, series=()):
    """A sweep directory of hand-made summaries (and metrics), exported and loaded back as committed data."""
    out = tmp_path / "sweep"
    write_sweep_file(out, spec)
    for run in spec.runs():
        run_dir = out / run.name
        run_dir.mkdir()
        (run_dir / "summary.json").write_text(json.dumps(summaries[run.name]))
        if metrics is not None:
            write_metrics_csv(run_dir / "metrics.csv", metrics[run.name])
    export_data("toy", out, tmp_path / "data", series)
    return load_data("toy", tmp_path / "data")


def _grokked(mem, grok, wall=10.0):
    return {"status": "grokked", "memorization_step": mem, "grokking_step": grok, "gap": grok - mem,
            "generalizes_without_memorizing": False, "wall_time_s": wall, "final_step": grok + 100}


def test_speedup_table_divides_the_baseline_grokking_step(tmp_path):
    spec = SweepSpec({}, preset="fast", arms={"baseline": {}, "fast_arm": {"optim.lr": 4e-3}})
    data = _fake_sweep(tmp_path, spec, {"arm=baseline": _grokked(100, 6000), "arm=fast_arm": _grokked(90, 2000)})
    columns, rows = speedup_table(data, {"fast_arm": "seed: 3x"})
    by_arm = {row[0]: dict(zip(columns, row)) for row in rows}
    assert by_arm["baseline"]["speed-up vs baseline"] == "1.00x"
    assert by_arm["fast_arm"]["speed-up vs baseline"] == "3.00x"
    assert by_arm["fast_arm"]["grokked"] == "2,000" and by_arm["fast_arm"]["source: epochs (speed-up)"] == "seed: 3x"


def test_cell_table_pools_seeds_and_doc_lists_every_run(tmp_path):
    spec = SweepSpec({"optim.weight_decay": [0.0, 1.0], "model.seed": [0, 1, 2]}, preset="fast")
    summaries = {}
    for run in spec.runs():
        seed, wd = run.values["model.seed"], run.values["optim.weight_decay"]
        summaries[run.name] = (_grokked(50, 350 + 100 * seed) if wd == 1.0
                               else {"status": "memorized", "memorization_step": 40, "grokking_step": None, "gap": None})
    data = _fake_sweep(tmp_path, spec, summaries)
    columns, rows = cell_table(data, {"weight_decay=1.0": "gap ~300"})
    table = {row[0]: dict(zip(columns, row)) for row in rows}
    # Wilson 95 % for 3/3 is [0.44, 1.00]; the bootstrap of gaps {300, 400, 500} spans their range
    assert table["weight_decay=1.0"]["grok rate [95% CI]"] == "3/3 = 1.00 [0.44, 1.00]"
    assert table["weight_decay=0.0"]["grok rate [95% CI]"] == "0/3 = 0.00 [0.00, 0.56]"
    assert table["weight_decay=1.0"]["median gap [CI]"] == "400 [300, 500]"
    assert table["weight_decay=1.0"]["source reports"] == "gap ~300"
    repro = Reproduction("toy", "a toy", "claims", spec, "not scaled", {"weight_decay=1.0": "gap ~300"})
    doc = write_reproduction_doc(repro, data, tmp_path / "docs", figures=False).read_text()
    assert "| weight_decay=1.0 | 3 | 3/3 = 1.00 [0.44, 1.00] | 50 [50, 50] | 450 [350, 550] | 400 [300, 500] |" in doc
    assert all(run.name in doc for run in spec.runs()) and "gap ~300" in doc
    # the page is a function of the committed data: rebuilding it gives the same text
    again = write_reproduction_doc(repro, load_data("toy", tmp_path / "data"), tmp_path / "docs2", figures=False)
    assert again.read_text() == doc


def test_cycle_table_finds_the_period_after_grokking(tmp_path):
    spec = SweepSpec({"optim.weight_decay": [1.0]}, preset="fast")
    rows = []
    for step in range(0, 3000):
        grokked = step >= 500
        acc = (0.97 + 0.03 * math.cos(2 * math.pi * step / 150)) if grokked else 0.1
        rows.append({"step": step, "train_acc": 1.0, "test_acc": min(acc + 0.02, 1.0) if step % 5 == 0 else float("nan"),
                     "weight_norm_sq": (30 + math.cos(2 * math.pi * step / 150 + 0.3)) ** 2})
    name = next(spec.runs()).name
    data = _fake_sweep(tmp_path, spec, {name: _grokked(10, 500)}, {name: rows},
                       series=("test_acc", "train_acc", "weight_norm_sq"))
    columns, table = cycle_table(data, {})
    row = dict(zip(columns, table[0]))
    assert abs(float(row["acc period"].replace(",", "")) - 150) < 8  # the Fourier grid's resolution
    norm_period = row["norm period (†: seen < 2 periods)"]
    assert "†" not in norm_period  # 4,000 steps after grokking cover ~25 periods of 150
    assert abs(float(norm_period.replace(",", "")) - 150) < 3
    assert float(row["cycle p"]) < 0.01 and float(row["PLV p"]) < 0.05
    assert float(row["PLV (norm, acc)"]) > 0.9 and row["collapses (start: min acc, re-grokked)"] == "none"


def test_repro_cli_misuse_exits_2(tmp_path, capsys):
    assert main(["repro", "nope"]) == 2
    assert "unknown reproduction 'nope'" in capsys.readouterr().err
    assert main(["repro", "wd", "--doc-only", "--data-dir", str(tmp_path / "none")]) == 2
    assert "holds no results" in capsys.readouterr().err
    assert main(["repro", "wd", "--export-only", "--out", str(tmp_path / "none")]) == 2
    assert "holds no runs" in capsys.readouterr().err
    assert main(["claims", "--data-dir", str(tmp_path / "none")]) == 2
    assert main(["repro", "wd", "--seeds", "0"]) == 2
