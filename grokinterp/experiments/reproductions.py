"""The registry of reproductions (see `repro.py`): each seed experiment, scaled to a 2-core CPU."""

from __future__ import annotations

from ..sweep import SweepSpec
from .repro import Reproduction, cycle_figures, cycle_table, gap_figures, gap_table, speedup_table, transplant_table

STENCILS = {"baseline": None, "stencil_-1_0_+1": [-1, 0, 1], "stencil_0": [0], "stencil_-1": [-1],
            "stencil_-1_+1": [-1, 1], "stencil_-1_0": [-1, 0]}


def _stencil_arms() -> dict:
    return {label: ({} if offsets is None else {"plugins.probe_stencil": {"offsets": offsets, "lamb": 0.1}})
            for label, offsets in STENCILS.items()}


REPRODUCTIONS: dict[str, Reproduction] = {}


def _register(repro: Reproduction) -> None:
    REPRODUCTIONS[repro.name] = repro


_register(Reproduction(
    name="stencil",
    title="probe stencil ablation (seed 001)",
    claim="On the Nanda configuration the baseline groks at 5,760 epochs; the probe stencil [-1,0,+1] at 1,920 "
          "(3.00x); k=0 alone 2.55x, k=-1 alone 1.52x, [-1,+1] 3.08x, [-1,0] 2.88x.",
    spec=SweepSpec({}, preset="nanda", overrides={"train.early_stop_after": 100}, arms=_stencil_arms()),
    scale="None in the configuration (the `nanda` preset, one seed as in the seed); runs stop 100 steps after "
          "grokking instead of training to 25,000 epochs.",
    reference={"baseline": "5,760 (1.00x)", "stencil_-1_0_+1": "1,920 (3.00x)", "stencil_0": "2,259 (2.55x)",
               "stencil_-1": "3,789 (1.52x)", "stencil_-1_+1": "1,870 (3.08x)", "stencil_-1_0": "2,000 (2.88x)"},
    table=speedup_table,
))

_register(Reproduction(
    name="beta1",
    title="grokking gap vs Adam beta1 (seed 000)",
    claim="390 runs (13 beta1 values x 30 seeds): the median gap is flat at ~280-345 steps for beta1 < 0.5 and rises "
          "2-3x above; beta1 = 0 still has a ~300-step gap.",
    spec=SweepSpec({"optim.beta1": [0.0, 0.3, 0.5, 0.7, 0.9, 0.95], "model.seed": list(range(5))}, preset="fast"),
    scale="6 beta1 values x 5 seeds of the `fast` preset (p 53, 1 layer, 40% train, lr 3e-3, 3,000-step budget) "
          "instead of 13 x 30 on seed 000's mod-113 2-layer model.",
    reference={"beta1=0.0": "~280-345", "beta1=0.3": "~280-345", "beta1=0.5": "rising", "beta1=0.7": "2-3x the flat gap",
               "beta1=0.9": "2-3x the flat gap", "beta1=0.95": "2-3x the flat gap"},
    x_key="optim.beta1",
))

_register(Reproduction(
    name="wd",
    title="grokking vs weight decay at beta1 = 0 (seed 000)",
    claim="270 runs (9 weight decays x 30 seeds, beta1 = 0, 3,000 steps): wd 0 groks in 5/30 seeds; wd 1 in all, gap "
          "~300; wd 2 generalizes without memorizing; wd 5 learns nothing.",
    spec=SweepSpec({"optim.weight_decay": [0.0, 0.25, 0.5, 1.0, 2.0, 5.0], "model.seed": list(range(5))},
                   preset="fast", overrides={"optim.beta1": 0.0}),
    scale="6 weight decays x 5 seeds of the `fast` preset (3,000-step budget as the seed) instead of 9 x 30.",
    reference={"weight_decay=0.0": "grok rate 5/30", "weight_decay=1.0": "grok rate 30/30, gap ~300",
               "weight_decay=2.0": "generalizes without memorizing", "weight_decay=5.0": "nothing learns"},
    x_key="optim.weight_decay",
))

_register(Reproduction(
    name="grokfast",
    title="Grokfast vs beta1 = 0.5 vs both (seed 000)",
    claim="Grokfast with default Adam groks at ~800 steps, beta1 = 0.5 alone at ~700; both together is worse than "
          "either: the two are redundant.",
    spec=SweepSpec({"model.seed": list(range(5))}, preset="fast", arms={
        "baseline": {}, "grokfast": {"plugins.grokfast_ema": {"alpha": 0.98, "lamb": 2.0}},
        "beta1_0.5": {"optim.beta1": 0.5},
        "both": {"optim.beta1": 0.5, "plugins.grokfast_ema": {"alpha": 0.98, "lamb": 2.0}}}),
    scale="5 seeds of the `fast` preset; Grokfast EMA with the paper's alpha 0.98, lambda 2.",
    reference={"grokfast": "groks ~800", "beta1_0.5": "groks ~700", "both": "worse than either"},
))

_register(Reproduction(
    name="cycle",
    title="post-grokking limit cycle, collapses and hovering vs weight decay (seed 000)",
    claim="At wd 1 accuracy oscillates with a period of ~150 steps and the weight norm is a sinusoid correlated with "
          "it; at wd 0.25 collapses to ~0.25 accuracy and re-grokking; at wd 2 gentle hovering, no crashes.",
    spec=SweepSpec({"optim.weight_decay": [0.25, 1.0, 2.0]}, preset="fast",
                   overrides={"train.steps": 4000, "train.early_stop_after": None, "train.eval_every": 5}),
    scale="One seed per weight decay of the `fast` preset, trained to 4,000 steps with test accuracy every 5 steps "
          "(so a 150-step period has 30 samples).",
    reference={"weight_decay=1.0": "period ~150, norm locked to accuracy", "weight_decay=0.25": "collapse to ~0.25, re-grok",
               "weight_decay=2.0": "hovering, no crashes"},
    table=cycle_table,
    figures=cycle_figures,
))

_register(Reproduction(
    name="gap",
    title="agreement dips predict the grokking gap (seed 000)",
    claim="The number of half-batch gradient-agreement dips during training predicts the grokking gap with "
          "r = 0.896 (n = 30, p < 0.0001).",
    spec=SweepSpec({"model.seed": list(range(12))}, preset="fast", overrides={"plugins.grad_agreement": {"every": 2}}),
    scale="12 seeds of the `fast` preset instead of 30; agreement every 2 steps (the plug-in, while training).",
    reference={"count": "r = 0.896 (n = 30)"},
    table=gap_table,
    figures=gap_figures,
))


def _transplants(out, progress: bool) -> None:
    from .transplant import transplant_study

    transplant_study(out, step=100, donor_seed=0, progress=progress)


_register(Reproduction(
    name="transplant",
    title="Fourier-neuron transplants into a memorizing model (seed 000)",
    claim="Injecting a grokked model's Fourier neurons into a memorizing model does not speed up grokking: the "
          "transplanted neurons neither help nor hurt; the features are already present by step ~700.",
    spec=SweepSpec({"model.seed": list(range(5))}, preset="fast"),
    scale="`fast` preset, 5 seeds: seed 0 is the donor (its Fourier neurons at its last checkpoint), seeds 1-4 "
          "the recipients, transplanted at step 100 (after memorization, long before grokking); weights mode "
          "and activations mode (donor activations patched for 300 steps).",
    reference={"all": "no speed-up (neither help nor hurt)"},
    table=transplant_table,
    post=_transplants,
))
