"""The registry of reproductions (see `repro.py`), each source experiment scaled to a 2-core CPU, and
`run_reproduction`, which trains, exports the committed data and writes the page.

Power (DESIGN.md): 30 seeds per cell where the source used 30, at least at the cells it compares; at
least 10 at the other cells of a grid. The model is scaled down (`fast`) where the CPU requires it, never
the statistics.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..config import ConfigError
from ..sweep import SweepSpec, is_finished, run_sweep, sweep_report, write_sweep_file
from .repro import (
    DOCS_DIR,
    Reproduction,
    calibration_table,
    cycle_figures,
    cycle_table,
    gap_figures,
    gap_table,
    speedup_ci_table,
    speedup_table,
    transplant_table,
    write_reproduction_doc,
)
from .repro_data import DATA_DIR, export_data, load_data, write_rows

STENCILS = {"baseline": None, "stencil_-1_0_+1": [-1, 0, 1], "stencil_0": [0], "stencil_-1": [-1],
            "stencil_-1_+1": [-1, 1], "stencil_-1_0": [-1, 0]}
GROKFAST = {"plugins.grokfast_ema": {"alpha": 0.98, "lamb": 2.0}}  # Lee et al. 2024's EMA filter, their defaults
DYNAMICS = "the grokking-dynamics write-up (\"Grokking Dynamics\")"
STENCIL_DOC = "the probe-stencil write-up (\"Grokking as Manifold Selection Under Constraint\")"
RELATED = "the related-work abstracts"


def _stencil_arms(sum_arm: bool = False) -> dict:
    arms = {label: ({} if offsets is None else {"plugins.probe_stencil": {"offsets": offsets, "lamb": 0.1}})
            for label, offsets in STENCILS.items()}
    if sum_arm:  # the write-up's ‖·‖² read literally: summed over the 512 units (see ProbeStencil's reduction)
        arms["stencil_-1_0_+1_sum"] = {"plugins.probe_stencil": {"offsets": [-1, 0, 1], "lamb": 0.1, "reduction": "sum"}}
    return arms


STENCIL_REFERENCE = {"baseline": "5,760 (1.00x)", "stencil_-1_0_+1": "1,920 (3.00x)", "stencil_0": "2,259 (2.55x)",
                     "stencil_-1": "3,789 (1.52x)", "stencil_-1_+1": "1,870 (3.08x)", "stencil_-1_0": "2,000 (2.88x)",
                     "stencil_-1_0_+1_sum": "1,920 (3.00x)"}


REPRODUCTIONS: dict[str, Reproduction] = {}


def _register(repro: Reproduction) -> None:
    REPRODUCTIONS[repro.name] = repro


_register(Reproduction(
    name="stencil",
    title=f"probe stencil ablation ({STENCIL_DOC})",
    claim="On the Nanda configuration the baseline groks at 5,760 epochs; the probe stencil [-1,0,+1] at 1,920 "
          "(3.00x); k=0 alone 2.55x, k=-1 alone 1.52x, [-1,+1] 3.08x, [-1,0] 2.88x. The regularizer "
          "0.1·‖f(mlp_in) − mlp_hidden‖² is implemented as a mean over examples and units (`probe_stencil`).",
    spec=SweepSpec({}, preset="nanda", overrides={"train.early_stop_after": 100}, arms=_stencil_arms(sum_arm=True)),
    scale="None in the configuration (the `nanda` preset, one seed per arm as in the source); runs stop 100 steps "
          "after grokking instead of training to 25,000 epochs. The full stencil also runs with the squared norm "
          "summed over units (`reduction: sum`, arm `stencil_-1_0_+1_sum`).",
    reference=STENCIL_REFERENCE,
    table=speedup_table,
))

_register(Reproduction(
    name="stencil_seeds",
    title=f"probe stencil ablation with error bars ({STENCIL_DOC})",
    claim="The stencil speeds grokking up: [-1,0,+1] 3.00x, k=0 2.55x, k=-1 1.52x, [-1,+1] 3.08x (the fastest "
          "pair), [-1,0] 2.88x (one run per arm in the source).",
    spec=SweepSpec({"model.seed": list(range(10))}, preset="quick", overrides={"train.early_stop_after": 100},
                   arms=_stencil_arms()),
    scale="10 seeds (model init) per arm of the `quick` preset (p 59, 1 layer, 40% train, lr 3e-3; a run takes "
          "1-3 minutes on one thread here) instead of one `nanda` run per arm; λ 0.1, mean reduction.",
    reference={k: v.split(" ")[-1].strip("()") for k, v in STENCIL_REFERENCE.items()},
    table=speedup_ci_table,
))

_register(Reproduction(
    name="beta1",
    title=f"grokking gap vs Adam β1 ({DYNAMICS})",
    claim="390 runs (13 β1 values x 30 seeds): the median gap is flat at ~280-345 steps for β1 < 0.5 and rises "
          "2-3x above; β1 = 0 still has a ~300-step gap.",
    spec=SweepSpec({"optim.beta1": [0.0, 0.5, 0.9], "model.seed": list(range(30))}, preset="fast"),
    parts=(SweepSpec({"optim.beta1": [0.2, 0.4, 0.6, 0.7, 0.8, 0.95], "model.seed": list(range(10))}, preset="fast"),),
    scale="The `fast` preset (p 53, 1 layer, 40% train, lr 3e-3, 3,000-step budget) instead of the write-up's "
          "mod-113 2-layer model; 30 seeds at the compared cells β1 ∈ {0, 0.5, 0.9}, 10 at the other 6.",
    reference={"beta1=0.0": "~280-345", "beta1=0.2": "~280-345", "beta1=0.4": "~280-345", "beta1=0.5": "rising",
               "beta1=0.9": "2-3x the flat gap", "beta1=0.95": "2-3x the flat gap"},
    x_key="optim.beta1",
))

_register(Reproduction(
    name="wd",
    title=f"grokking vs weight decay at β1 = 0 ({DYNAMICS})",
    claim="270 runs (9 weight decays x 30 seeds, β1 = 0, 3,000 steps): wd 0 groks in 5/30 seeds; wd 1 in all, gap "
          "~300; wd 2 generalizes without memorizing; wd 5 learns nothing.",
    spec=SweepSpec({"optim.weight_decay": [0.0, 1.0, 2.0, 5.0], "model.seed": list(range(30))},
                   preset="fast", overrides={"optim.beta1": 0.0}),
    parts=(SweepSpec({"optim.weight_decay": [0.25, 0.5], "model.seed": list(range(10))}, preset="fast",
                     overrides={"optim.beta1": 0.0}),),
    reuse=("beta1",),
    scale="The `fast` preset (3,000-step budget as the source); 30 seeds at wd ∈ {0, 1, 2, 5}, 10 at 0.25 and 0.5. "
          "The wd = 1 runs are the β1 = 0 runs of the β1 reproduction (the same configuration).",
    reference={"weight_decay=0.0": "grok rate 5/30", "weight_decay=1.0": "grok rate 30/30, gap ~300",
               "weight_decay=2.0": "generalizes without memorizing", "weight_decay=5.0": "nothing learns"},
    x_key="optim.weight_decay",
))

_register(Reproduction(
    name="grokfast",
    title=f"Grokfast vs β1 = 0.5 vs both ({DYNAMICS})",
    claim="Grokfast with default Adam groks at ~800 steps, β1 = 0.5 alone at ~700; both together is worse than "
          "either: the two are redundant.",
    spec=SweepSpec({"model.seed": list(range(30))}, preset="fast", arms={
        "baseline": {}, "grokfast": GROKFAST, "beta1_0.5": {"optim.beta1": 0.5},
        "both": {"optim.beta1": 0.5, **GROKFAST}}),
    reuse=("beta1",),
    scale="30 seeds of the `fast` preset per arm; Grokfast EMA with the paper's α 0.98, λ 2. The baseline and "
          "β1 = 0.5 arms are the β1 = 0.9 and 0.5 runs of the β1 reproduction (the same configurations).",
    reference={"baseline": "–", "grokfast": "groks ~800", "beta1_0.5": "groks ~700", "both": "worse than either"},
))

CYCLE_OVERRIDES = {"train.steps": 4000, "train.early_stop_after": None, "train.eval_every": 5}
CYCLE_REFERENCE = {"weight_decay=1.0": "period ~150, norm locked to accuracy",
                   "weight_decay=0.25": "collapse to ~0.25, re-grok", "weight_decay=2.0": "hovering, no crashes"}
CYCLE_SERIES = ("test_acc", "train_acc", "weight_norm_sq")

def _cycle_reproduction(name: str, title: str, claim: str, scale: str, overrides: dict, seeds: int,
                        wd1_seeds: int | None = None) -> Reproduction:
    """The post-grokking dynamics sweep: `seeds` seeds × wd {0.25, 1, 2} of the `fast` preset, 4,000 steps, and
    wd 1 (where the limit cycle is claimed) up to `wd1_seeds` seeds."""
    overrides = {**CYCLE_OVERRIDES, **overrides}
    more = range(seeds, wd1_seeds or seeds)
    return Reproduction(
        name=name, title=title, claim=claim, scale=scale, reference=CYCLE_REFERENCE, table=cycle_table,
        figures=cycle_figures, series=CYCLE_SERIES,
        spec=SweepSpec({"optim.weight_decay": [0.25, 1.0, 2.0], "model.seed": list(range(seeds))},
                       preset="fast", overrides=overrides),
        parts=(SweepSpec({"optim.weight_decay": [1.0], "model.seed": list(more)}, preset="fast",
                         overrides=overrides),) if more else ())


_register(_cycle_reproduction(
    "cycle", f"post-grokking limit cycle, collapses and hovering vs weight decay ({DYNAMICS})",
    claim="At wd 1 accuracy oscillates with a period of ~150 steps and the weight norm is a sinusoid correlated with "
          "it; at wd 0.25 collapses to ~0.25 accuracy and re-grokking; at wd 2 gentle hovering, no crashes.",
    scale="30 seeds at wd 1, where the limit cycle is claimed, and 15 at wd 0.25 and 2, of the `fast` preset at "
          "β1 0 (the write-up's weight-decay sweep, 30 seeds per value, is at β1 0), 4,000 steps with test "
          "accuracy every 5 steps (a 150-step period has 30 samples). A cycle counts only with its test's "
          "p < 0.05. The same sweep at the preset's default β1 0.9 (5 seeds): cycle_beta09.md.",
    overrides={"optim.beta1": 0.0}, seeds=15, wd1_seeds=30))

_register(_cycle_reproduction(
    "cycle_beta09", f"post-grokking dynamics vs weight decay at β1 0.9 ({DYNAMICS}; the write-up's sweep is at β1 0)",
    claim="As cycle.md, whose claims are made at β1 0; this page asks whether they also hold under default "
          "AdamW momentum.",
    scale="5 seeds per weight decay of the `fast` preset at its default β1 0.9, 4,000 steps with test accuracy "
          "every 5 steps. A cycle counts only with its test's p < 0.05. No ledger rows: the claims are read at β1 0.",
    overrides={}, seeds=5))

_register(Reproduction(
    name="gap",
    title=f"agreement dips predict the grokking gap ({DYNAMICS})",
    claim="The number of half-batch gradient-agreement dips during training predicts the grokking gap with "
          "r = 0.896 (n = 30, p < 0.0001).",
    spec=SweepSpec({"model.seed": list(range(30))}, preset="fast", overrides={"plugins.grad_agreement": {"every": 2}}),
    scale="30 seeds of the `fast` preset; agreement every 2 steps (the `grad_agreement` plug-in, while training).",
    reference={"count": "r = 0.896 (n = 30)"},
    table=gap_table,
    figures=gap_figures,
    series=("grad_agreement",),
))


def _transplants(out, progress: bool) -> None:
    from .transplant import transplant_study

    transplant_study(out, step=100, donor_seed=0, progress=progress)


def _export_transplants(out: Path, data_dir: Path) -> None:
    """transplants.csv: one row per fork, with how many neurons it moved and, for the random arm, how many of
    those are also in the donor's Fourier set (the `other` arm's neurons)."""
    rows, infos = [], {}
    for run_dir in sorted((out / "transplants").glob("*__*")):
        summary_path, info_path = run_dir / "summary.json", run_dir / "transplant.json"
        if not (summary_path.is_file() and info_path.is_file()):
            continue
        summary, info = json.loads(summary_path.read_text()), json.loads(info_path.read_text())
        recipient, mode = run_dir.name.rsplit("__", 1)
        infos[recipient, mode] = info
        rows.append([recipient, mode, summary.get("grokking_step"), len(info["neurons"]), summary.get("wall_time_s")])
    for row in rows:
        other = infos.get((row[0], "other"))
        chosen = infos[row[0], row[1]]["neurons"]
        row.append(len(set(chosen) & set(other["neurons"])) if other is not None and row[1] == "random" else None)
    write_rows(data_dir / "transplants.csv",
               ["recipient", "mode", "grokking_step", "neurons", "wall_time_s", "fourier_overlap"], rows)


_register(Reproduction(
    name="transplant",
    title=f"Fourier-neuron transplants into a memorizing model ({DYNAMICS})",
    claim="Injecting a grokked model's Fourier neurons into a memorizing model does not speed up grokking: the "
          "transplanted neurons neither help nor hurt; the features are already present by step ~700.",
    spec=SweepSpec({"model.seed": list(range(11))}, preset="fast"),
    scale="`fast` preset, 11 seeds: seed 0 is the donor, seeds 1-10 the recipients, each forked at step 100 "
          "(after memorization, long before grokking) four ways: `noop` (nothing changed: the control, "
          "bit-identical to the recipient's own run), `self` (the Fourier neurons of the recipient's own final "
          "checkpoint: the same init seed, grokked), `other` (the donor's Fourier neurons) and `random` (as many "
          "neurons as `other` moves, drawn at random, from the donor). Fourier neurons: those whose activation's "
          "dominant frequency is a key frequency and explains at least half its variance (`fourier_neurons`, "
          "Nanda et al. 2023). Δ = fork's grokking step − "
          "the noop fork's, paired per recipient. The donor has 404 Fourier neurons of 512, so a random draw "
          "of 404 shares ~319 with them by chance (404²/512; the last column counts them): at this scale the "
          "random arm cannot separate \"Fourier\" from \"any trained neurons\".",
    reference={"all": "no speed-up (neither help nor hurt)"},
    table=transplant_table,
    post=_transplants,
    export_extra=_export_transplants,
    reuse=("beta1",),
))


def _geometry_post(out, progress: bool) -> None:
    from .geometry import replay_geometry

    replay_geometry(out, progress)


def _geometry_export(out: Path, data_dir: Path) -> None:
    from .geometry import export_geometry

    export_geometry(out, data_dir)


def _geometry_table(data, reference):
    from .geometry import geometry_table

    return geometry_table(data, reference)


def _geometry_figures(data):
    from .geometry import geometry_figures

    return geometry_figures(data)


_register(Reproduction(
    name="geometry",
    title=f"the geometry of the transition on the write-up's own model ({DYNAMICS})",
    claim="On a+b mod 113 with a 2-layer transformer: the top Hessian eigenvalue spikes ~20x during memorization "
          "and declines from ~step 600; test accuracy follows the decline almost at once at β1 = 0 and ~400 steps "
          "later at β1 = 0.9; agreement rises during memorization; the momentum–gradient cosine is −0.1 to −0.3 "
          "after memorization; the effective rank of per-sample gradients drops 30–40 % at grokking; Fourier "
          "features are present by step 700.",
    # seed-major: each seed's two β1 runs train back to back, so a partial sweep already compares them
    spec=SweepSpec({"model.seed": list(range(5)), "optim.beta1": [0.0, 0.9]}, preset="twolayer",
                   overrides={"train.ckpt_every": 25, "train.state_every": 500, "train.early_stop_after": 500,
                              "plugins.grad_agreement": {"every": 10}}),
    scale="The `twolayer` preset (the write-up's architecture; train fraction and learning rate from "
          "calibration.md), 5 seeds per β1, each until 500 steps after grokking; checkpoints every 25 steps, "
          "replayed every 25 steps to step 300, every 50 to step 1,000 and every 100 after (top eigenvalue by Lanczos, tol 1e-3; effective rank of 128 per-sample gradients).",
    reference={"spike_factor": "~20x", "decline_step": "~600", "lag": "β1 0: ~0; β1 0.9: ~400",
               "agreement_slope": "rises (> 0)", "mom_cos": "−0.1 to −0.3", "rank_drop": "0.30–0.40",
               "share_ratio": "present by 700", "gini_ratio": "present by 700"},
    table=_geometry_table,
    figures=_geometry_figures,
    post=_geometry_post,
    export_extra=_geometry_export,
    series=("test_acc", "train_acc", "grad_agreement", "mom_grad_cos"),
    series_every=5,
    definitions="Per run, then the median and range over seeds (`analysis.transitions`). Spike factor: the largest "
                "top Hessian eigenvalue up to the grokking step (the whole run if it never groks) ÷ its value at step "
                "0. Decline starts: the first replayed step after the peak where the eigenvalue is down by a quarter. "
                "Lag: (first step where test accuracy is halfway from its first value to its maximum) − (first step "
                "after the peak where the eigenvalue is halfway down on a log scale); negative when accuracy rises "
                "first. Agreement slope: OLS slope of half-batch gradient agreement from step 0 to memorization, per "
                "1k steps. Momentum–gradient cosine: median over (memorization, grokking) of the cosine between "
                "Adam's first moment and the gradient (at β1 0 the first moment is the last gradient). Effective-rank "
                "drop: 1 − min over [grokking, grokking + 500] ÷ median over [memorization, grokking) of the "
                "per-sample gradients' effective rank. Fourier ratios: the key-frequency share of the last MLP and "
                "the embedding's Fourier Gini at step 700 ÷ at the last checkpoint. A run that never groks has no "
                "decline, lag, rank drop or Fourier ratio.",
))


CALIBRATION_ARMS = {"frac0.5_lr1e-3": {"task.frac_train": 0.5, "optim.lr": 1e-3},
                    "frac0.4_lr3e-3": {"task.frac_train": 0.4, "optim.lr": 3e-3},
                    "frac0.3_lr3e-3": {"task.frac_train": 0.3, "optim.lr": 3e-3}}

_register(Reproduction(
    name="calibration",
    title=f"calibrating the `twolayer` preset to the write-up's timescales ({DYNAMICS})",
    claim="The write-up's 2-layer a+b mod 113 transformer memorizes first and shows its \"phase transition\" near "
          "step 1,500 under default AdamW (β1 0.9, wd 1) within a 3,000-step budget; at β1 = 0 a gap of a few "
          "hundred steps remains. It does not state its train fraction or learning rate: they are chosen here.",
    # the base is the preset as it stood before calibration (40 % train, lr 1e-3); every arm overrides both
    spec=SweepSpec({"model.seed": [0, 1, 2]}, preset="twolayer", arms=CALIBRATION_ARMS,
                   overrides={"train.early_stop_after": 100, "task.frac_train": 0.4, "optim.lr": 1e-3}),
    scale="Candidates (train fraction, learning rate) on the write-up's architecture (Nanda et al.'s init and "
          "biases), three seeds each at β1 0.9, stopping 100 steps after grokking. Chosen: 30 % train, lr 3e-3, "
          "picked on seed 0 alone (its grokking step was the nearest to the write-up's ~1,500; see Every run) "
          "before seeds 1 and 2 ran, so the three-seed medians below test that choice rather than make it; as "
          "measured here they favour 50 % train at lr 1e-3 (median 1,670 against 1,210, intervals overlapping), "
          "which costs three times the CPU per step: the geometry study had already run at 30 % / 3e-3 and was "
          "kept, and a rerun at 50 % / 1e-3 is left open. The "
          "chosen setting's runs at β1 0.9 and β1 0 are the geometry reproduction's (last rows; same config with "
          "denser checkpoints). At β1 = 0 it trains unstably: training accuracy falls back from 1.0 again and "
          "again, and a run that reaches grokking does not hold it (the \"held to the end\" column), so the "
          "write-up's steady β1 = 0 gap is not reproduced at lr 3e-3; a lower learning rate at β1 = 0 was not "
          "tried. One torch thread per run on a shared 2-core machine: wall times are upper bounds; "
          "`bench/bench_loop.py --preset twolayer` measured 396 CPU ms per loop step on one thread (357 the bare "
          "step, 39 the test evaluation's share), so a 3,000-step budget is ~20 CPU minutes; on both cores of the "
          "idle machine (2 threads, OMP_WAIT_POLICY=PASSIVE) `Trainer.train_step` with its evaluation every 10 "
          "steps took 209 ms per step against 373 on one thread (40 steps each).",
    reference={arm: "memorize first, grok ≈ 1,500" for arm in CALIBRATION_ARMS},
    table=calibration_table,
))


def _characters_export(out: Path, data_dir: Path) -> None:
    from .characters import export_characters

    export_characters(out, data_dir)


def _characters_table(data, reference):
    from .characters import characters_table

    return characters_table(data, reference)


_register(Reproduction(
    name="characters",
    title=f"multiplicative-character sparsity of a·b mod p ({RELATED})",
    claim="For a·b mod p, a grokked network's representation is sparse in the multiplicative characters of "
          "Z_p^* (Fourier modes of the discrete logarithm); the dense spectrum seen before is an artifact of "
          "the additive Fourier transform.",
    spec=SweepSpec({"model.seed": list(range(12))}, preset="fast", overrides={"task.op": "mul"}),
    scale="The `fast` preset (p 53, 1 layer) on a·b, 12 seeds (10 planned; one of them did not grok within the budget, so two were added to reach the ledger's minimum of 10 grokked runs); the Gini coefficient of each spectrum without "
          "its constant (embedding, MLP neurons, logits) in the character basis and in the additive Fourier "
          "basis, of the same checkpoints: step 0 and the last. The abstract gives no number: \"sparse\" is read "
          "as a Gini above 0.5, and \"artifact\" as the character Gini exceeding the additive one run by run.",
    reference={"char_final": "sparse", "add_final": "dense"},
    table=_characters_table,
    figures=lambda data: {},
    export_extra=_characters_export,
))


def get(name: str) -> Reproduction:
    if name not in REPRODUCTIONS:
        raise ConfigError(f"unknown reproduction {name!r}; choose one of {sorted(REPRODUCTIONS)}")
    return REPRODUCTIONS[name]


def reuse_identical_runs(repro: Reproduction, out: Path, checkpoints: Path) -> int:
    """Copy (hard links) finished runs of the reproductions in `repro.reuse` whose resolved config equals one
    of this reproduction's runs; returns how many. A run is a function of its config, so this is exact."""
    wanted = {json.dumps(run.config.to_dict(), sort_keys=True): run.name for spec in repro.specs for run in spec.runs()}
    copied = 0
    for source in repro.reuse:
        src = checkpoints / f"repro_{source}"
        if not src.is_dir():
            continue
        for run_dir in sorted(p for p in src.iterdir() if p.is_dir() and is_finished(p)):
            config = json.loads((run_dir / "config.json").read_text())["config"]
            name = wanted.get(json.dumps(config, sort_keys=True))
            if name is not None and not (out / name).exists():
                out.mkdir(parents=True, exist_ok=True)
                shutil.copytree(run_dir, out / name, copy_function=os.link, ignore=shutil.ignore_patterns("LOCK"))
                copied += 1
    return copied


def export_reproduction(repro: Reproduction, out: Path, data_dir: Path | None = None) -> Path:
    """Export the committed data of `repro` from its sweep directory `out`."""
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR / repro.name
    export_data(repro.name, out, data_dir, repro.series, repro.series_every)
    if repro.export_extra is not None:
        repro.export_extra(out, data_dir)
    return data_dir


def run_reproduction(name: str, out: str | Path | None = None, workers: int | None = None, seeds: int | None = None,
                     docs_dir: str | Path = DOCS_DIR, data_dir: str | Path | None = None, progress: bool = True,
                     train: bool = True) -> Path:
    """Run (or finish) reproduction `name`, export its data and write its page; returns the page's path.

    Args:
        name: a key of REPRODUCTIONS.
        out: the sweep directory; default `checkpoints/repro_<name>`.
        workers: parallel runs (default: every core).
        seeds: replicate seeds per cell (default: the reproduction's own number).
        docs_dir, data_dir: where the page and the committed data go.
        train: False exports and writes the page from the runs already under `out` (a partial sweep included).
    """
    repro = get(name)
    if seeds is not None:
        repro = repro.with_seeds(seeds)
    out = Path(out) if out is not None else Path("checkpoints") / f"repro_{name}"
    if train:
        reused = reuse_identical_runs(repro, out, out.parent)
        if reused:
            print(f"repro {name}: reused {reused} finished run(s) with identical configs from {list(repro.reuse)}")
        failed = []
        for spec in repro.specs:
            failed += run_sweep(spec, out, workers=workers, progress=progress).failed
        sweep_report(out, x_key=repro.x_key)
        if repro.post is not None:
            repro.post(out, progress)
        if failed:
            print(f"repro {name}: {len(failed)} run(s) failed: {failed}")
    else:
        if not (out / "sweep.json").is_file():
            raise ConfigError(f"{out} holds no runs of reproduction {name!r}; run `grokinterp repro {name}` first")
        for spec in repro.specs:  # list every planned run, so the page counts what is still to run
            write_sweep_file(out, spec)
    data_dir = export_reproduction(repro, out, data_dir)
    return write_reproduction_doc(repro, load_data(name, data_dir), Path(docs_dir))
