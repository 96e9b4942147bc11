"""The claims ledger: its verdict rule, its measurements, and the committed pages and ledger equal their
rebuilds from the committed data."""

import json
import math
from pathlib import Path

import pytest

from grokinterp.experiments.claims import (
    CLAIMS,
    Claim,
    above,
    around,
    between,
    evaluate,
    median_ratio,
    rate,
    reported_correlation,
    reported_rate,
    verdict,
    write_ledger,
)
from grokinterp.experiments.repro import write_reproduction_doc
from grokinterp.experiments.repro_data import DATA_DIR, load_data, write_rows
from grokinterp.experiments.reproductions import REPRODUCTIONS
from grokinterp.stats import Estimate

ROOT = Path(__file__).resolve().parents[1]


def E(value, low, high, n=30):
    return Estimate(value, low, high, n)


def test_verdict_rule_each_case():
    t = between(2.0, 3.0, "2-3x")
    assert verdict(None, t) == "not measured"
    assert verdict(E(math.nan, math.nan, math.nan), t) == "not measured"
    assert verdict(E(2.5, 2.2, 2.8, n=5), t) == "inconclusive"  # too few runs, whatever the interval
    assert verdict(E(2.5, 2.2, 2.8), t) == "holds"  # estimate inside the source's range
    assert verdict(E(1.5, 1.3, 1.7), t) == "does not hold"  # interval entirely below
    assert verdict(E(3.5, 3.1, 3.9), t) == "does not hold"  # entirely above
    assert verdict(E(1.8, 1.4, 2.3), t) == "inconclusive"  # reaches the range, estimate outside
    d = above(0.0, "> 0")
    assert verdict(E(50, 10, 90), d) == "holds"
    assert verdict(E(50, -10, 90), d) == "inconclusive"
    assert verdict(E(-50, -90, -10), d) == "does not hold"
    assert verdict(E(2.5, 2.2, 2.8, n=5), t, n_min=5) == "holds"  # a claim may state its own minimum


def test_source_numbers_become_regions():
    a = around(300, "~300")
    assert (a.low, a.high) == (240, 360) and not a.directional
    r = reported_rate(5, 30, "5/30")
    assert (r.low, r.high) == pytest.approx((0.0734, 0.3365), abs=1e-3)
    c = reported_correlation(0.896, 30, "r")
    assert (c.low, c.high) == pytest.approx((0.791, 0.950), abs=1e-3)
    assert above(0.5, "x").directional


def _fake_data(root: Path, name: str, cells: dict) -> None:
    """cells: value of optim.beta1 -> list of gaps (None: memorized, never grokked)."""
    runs, rows = [], []
    for b1, gaps in cells.items():
        for seed, gap in enumerate(gaps):
            run = f"optim.beta1={b1}__model.seed={seed}"
            runs.append({"name": run, "values": {"optim.beta1": b1, "model.seed": seed}})
            rows.append([run, "grokked" if gap is not None else "memorized", 40, None if gap is None else 40 + gap, gap])
    (root / name).mkdir(parents=True)
    (root / name / "sweep.json").write_text(json.dumps({"name": name, "runs": runs, "cell_keys": ["optim.beta1"],
                                                        "axes": ["optim.beta1", "model.seed"], "steps": 3000,
                                                        "machine": "test"}))
    write_rows(root / name / "runs.csv", ["run", "status", "memorization_step", "grokking_step", "gap"], rows)


def test_claims_measure_planted_effects(tmp_path):
    _fake_data(tmp_path, "toy", {0.0: [300 + 10 * (i % 5) for i in range(30)],
                                 0.9: [750 + 25 * (i % 5) for i in range(24)] + [None] * 6})
    amplifies = Claim("x", "doc", "amplifies 2-3x", between(2, 3, "2-3x"), "ratio", "toy",
                      median_ratio("gap", {"beta1": 0.9}, {"beta1": 0.0}))
    estimate, v = evaluate(amplifies, tmp_path)
    assert estimate.value == pytest.approx(800 / 320) and v == "holds"
    always = Claim("y", "doc", "always groks", reported_rate(30, 30, "30/30"), "rate", "toy",
                   rate(lambda s: s["status"] == "grokked", beta1=0.9))
    estimate, v = evaluate(always, tmp_path)
    # 24/30 = 0.80 lies outside the source's 30/30 interval [0.89, 1], but its own [0.63, 0.90] reaches it
    assert (estimate.value, estimate.n) == (24 / 30, 30) and v == "inconclusive"
    missing = Claim("z", "doc", "on another page", above(0, ">0"), "q", "absent", rate(bool))
    assert evaluate(missing, tmp_path) == (None, "not measured")


def test_every_claim_is_well_formed():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    pages = set(REPRODUCTIONS) | {"geometry", "warn"}
    for c in CLAIMS:
        assert c.target.low <= c.target.high, c.id
        assert c.page is None or c.page in pages, c.id
        assert "seed 00" not in c.text


def _committed_pages():
    return [name for name in REPRODUCTIONS if (ROOT / DATA_DIR / name / "sweep.json").is_file()]


@pytest.mark.parametrize("name", _committed_pages())
def test_committed_page_equals_its_rebuild_from_committed_data(name, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = write_reproduction_doc(REPRODUCTIONS[name], load_data(name), tmp_path, figures=False)
    assert path.read_text() == (ROOT / "docs/reproductions" / f"{name}.md").read_text(), (
        f"docs/reproductions/{name}.md is stale: run `grokinterp repro {name} --doc-only`")


def test_committed_warn_page_equals_its_rebuild_from_committed_data(tmp_path, monkeypatch):
    """The alarm benchmark's page and figure, recomputed from docs/reproductions/data/warn alone."""
    from grokinterp.cli import main

    monkeypatch.chdir(ROOT)
    out, figure = tmp_path / "warn.md", tmp_path / "warn_lead_times.svg"
    assert main(["warn", "--doc-only", "--out", str(out)]) == 0
    page = out.read_text().replace(f"`{figure}`", "`docs/reproductions/warn_lead_times.svg`")  # where it was written
    assert page == (ROOT / "docs/reproductions/warn.md").read_text(), (
        "docs/reproductions/warn.md is stale: run `grokinterp warn --doc-only`")
    assert figure.read_text() == (ROOT / "docs/reproductions/warn_lead_times.svg").read_text()


def test_committed_ledger_equals_its_rebuild(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = write_ledger(tmp_path / "claims.md")
    committed = (ROOT / "docs/claims.md").read_text()
    assert path.read_text() == committed, "docs/claims.md is stale: run `grokinterp claims`"
    for verdict_name in ("holds", "does not hold", "inconclusive", "not measured"):
        assert f"{verdict_name}:" in committed
    assert all(f"| {c.id} |" in committed for c in CLAIMS)  # every claim listed, measured or not


def test_repro_geometry_end_to_end_on_a_tiny_preset(tmp_path, monkeypatch):
    """Trains two tiny 2-layer runs, replays them, exports the data, writes the page with every claim's row,
    and the page rebuilt from the exported data alone is identical."""
    from dataclasses import replace

    from grokinterp.experiments import reproductions
    from grokinterp.sweep import SweepSpec

    tiny = {"task.p": 23, "task.frac_train": 0.6, "model.n_layers": 2, "model.d_model": 32, "model.d_head": 8,
            "model.d_mlp": 64, "optim.lr": 1e-2, "optim.warmup_steps": 0, "train.steps": 300, "train.ckpt_every": 25,
            "train.state_every": 100, "train.early_stop_after": None, "train.eval_every": 5,
            "plugins.grad_agreement": {"every": 10}}
    geometry = reproductions.REPRODUCTIONS["geometry"]
    monkeypatch.setitem(reproductions.REPRODUCTIONS, "geometry", replace(
        geometry, spec=SweepSpec({"optim.beta1": [0.0, 0.9], "model.seed": [0]}, preset="quick", overrides=tiny)))
    page = reproductions.run_reproduction("geometry", out=tmp_path / "runs", workers=1, docs_dir=tmp_path / "docs",
                                          data_dir=tmp_path / "data", progress=False)
    text = page.read_text()
    assert all(f"| {c.id} |" in text for c in CLAIMS if c.page == "geometry")
    geometry_files = sorted((tmp_path / "data" / "geometry").glob("*.csv"))
    assert len(geometry_files) == 2
    rows = geometry_files[0].read_text().splitlines()
    assert rows[0] == "step,top_eigenvalue,effective_rank,key_share,embed_gini" and len(rows) == 1 + 13
    again = write_reproduction_doc(reproductions.REPRODUCTIONS["geometry"], load_data("geometry", tmp_path / "data"),
                                   tmp_path / "docs2", figures=False)
    assert again.read_text() == text
    assert "| spike factor (max ÷ init) | " in text and " (1) | " in text  # one seed per β1 here


def test_repro_characters_end_to_end_matches_the_spectra_of_each_checkpoint(tmp_path, monkeypatch):
    """Two tiny a·b runs: characters.csv holds, for step 0 and the last checkpoint, the Gini coefficients that
    `checkpoint_spectra` gives in the character basis (op mul) and the additive one (op add); the page has both
    ledger rows, and rebuilding it from the data alone gives the same page."""
    from dataclasses import replace

    import torch

    from grokinterp.analysis.fourier import checkpoint_spectra
    from grokinterp.experiments import reproductions
    from grokinterp.runs import Run
    from grokinterp.sweep import SweepSpec

    tiny = {"task.op": "mul", "task.p": 23, "task.frac_train": 0.6, "model.d_model": 32, "model.d_head": 8,
            "model.d_mlp": 64, "optim.lr": 1e-2, "optim.warmup_steps": 0, "train.steps": 60, "train.ckpt_every": 20,
            "train.state_every": 60, "train.early_stop_after": None}
    chars = reproductions.REPRODUCTIONS["characters"]
    monkeypatch.setitem(reproductions.REPRODUCTIONS, "characters", replace(
        chars, spec=SweepSpec({"model.seed": [0, 1]}, preset="quick", overrides=tiny)))
    page = reproductions.run_reproduction("characters", out=tmp_path / "runs", workers=1, docs_dir=tmp_path / "docs",
                                          data_dir=tmp_path / "data", progress=False)
    data = load_data("characters", tmp_path / "data")
    rows = data.extras["characters"]
    assert [(r["run"], int(r["step"])) for r in rows] == [("model.seed=0", 0), ("model.seed=0", 60),
                                                          ("model.seed=1", 0), ("model.seed=1", 60)]
    run = Run(tmp_path / "runs" / "model.seed=1")
    for op, prefix in (("mul", "char"), ("add", "add")):
        task = replace(run.task, config=replace(run.task.config, op=op))
        with torch.no_grad():
            spectra = checkpoint_spectra(run.model(60), task)
        for part in ("embed_gini", "neuron_gini", "logit_gini"):
            assert float(rows[3][f"{prefix}_{part}"]) == pytest.approx(float(spectra[part]), abs=1e-6)
    assert rows[3]["char_embed_gini"] != rows[3]["add_embed_gini"]  # two different bases, two different numbers
    text = page.read_text()
    assert "| rel-characters |" in text and "| rel-characters-vs-fourier |" in text
    again = write_reproduction_doc(reproductions.REPRODUCTIONS["characters"], data, tmp_path / "docs2", figures=False)
    assert again.read_text() == text


def test_cycle_fractions_count_only_runs_that_grokked(tmp_path):
    """A run that never grokked has no post-grokking phase: a memorized run whose accuracy never left chance
    must not count as a run "without a collapse". Two grokked runs (one with a planted collapse to 0.2, one
    steady) and one memorized run: collapse fraction 1/2, not 1/3."""
    import numpy as np

    from grokinterp.experiments.claims import cycle_fraction

    steps = np.arange(0, 2000, 5)
    steady = np.where(steps >= 500, 1.0, 0.1)
    collapsed = steady.copy()
    collapsed[(steps >= 1200) & (steps < 1300)] = 0.2
    series = {"steady": steady, "collapsed": collapsed, "memorized": np.full_like(steady, 0.05)}
    runs, rows = [], []
    for seed, (name, acc) in enumerate(series.items()):
        run = f"optim.weight_decay=0.25__model.seed={seed}"
        runs.append({"name": run, "values": {"optim.weight_decay": 0.25, "model.seed": seed}})
        grok = None if name == "memorized" else 500
        rows.append([run, "memorized" if grok is None else "grokked", 40, grok, None if grok is None else grok - 40])
        write_rows(tmp_path / "cycle" / "series" / f"{run}.csv", ["step", "test_acc", "train_acc"],
                   [[int(s), float(a), 1.0] for s, a in zip(steps, acc)])
    (tmp_path / "cycle" / "sweep.json").write_text(json.dumps({
        "name": "cycle", "runs": runs, "cell_keys": ["optim.weight_decay"], "axes": ["optim.weight_decay", "model.seed"],
        "steps": 2000, "machine": "test"}))
    write_rows(tmp_path / "cycle" / "runs.csv", ["run", "status", "memorization_step", "grokking_step", "gap"], rows)
    estimate = cycle_fraction("collapse", 0.25)(load_data("cycle", tmp_path / "cycle"))
    assert estimate.n == 2 and estimate.value == pytest.approx(0.5)


def _delays_data(tmp_path, rows):
    from grokinterp.experiments.warning._report import DELAY_DATA_COLUMNS

    (tmp_path / "warn").mkdir(parents=True)
    (tmp_path / "warn" / "sweep.json").write_text(json.dumps({"name": "warn", "runs": [], "cell_keys": [], "axes": [],
                                                              "steps": 0, "machine": "test"}))
    write_rows(tmp_path / "warn" / "delays.csv", DELAY_DATA_COLUMNS, rows)
    return load_data("warn", tmp_path / "warn")


def test_delay_law_claims_refit_from_committed_rows(tmp_path):
    """Planted laws: gaps that are exactly a power of the logit scale give R² = 1; runs generated by one
    first-passage law (same kappa and V*) are predicted exactly by leave-one-out, MAPE 0. Scrambling the gaps
    breaks both."""
    import numpy as np

    from grokinterp.experiments.claims import first_passage_mape, logit_scale_r2
    from grokinterp.experiments.warning import predict_gap

    kappa, v_star, lr, wd = 0.8, 40.0, 1e-3, 1.0
    rows = []
    for i, (s_eff, v_mem) in enumerate(zip(np.linspace(2, 9, 8), np.linspace(60, 140, 8))):
        gap = predict_gap(kappa, v_star, v_mem, lr, wd)
        rows.append([f"run{i}", 40, 40 + gap, s_eff, 10.0, -0.1, kappa, v_mem, v_star, gap, lr, wd])
    r2, mape = logit_scale_r2(_delays_data(tmp_path / "a", rows)), first_passage_mape(_delays_data(tmp_path / "a2", rows))
    assert r2.n == 8 and r2.value == pytest.approx(np.corrcoef(np.log(np.linspace(2, 9, 8)),
                                                               np.log([r[9] for r in rows]))[0, 1] ** 2)
    assert mape.n == 8 and mape.value == pytest.approx(0.0, abs=1e-6)  # the CSV keeps 6 decimals
    power = [[*r[:2], 40 + 30 * r[3] ** 1.5, *r[3:]] for r in rows]  # gap = 30 s_eff^1.5 exactly
    assert logit_scale_r2(_delays_data(tmp_path / "b", power)).value == pytest.approx(1.0)
    scrambled = [[*r[:9], rows[(i * 3) % 8][9] * (1 + i), *r[10:]] for i, r in enumerate(rows)]
    assert first_passage_mape(_delays_data(tmp_path / "c", scrambled)).value > 0.3
