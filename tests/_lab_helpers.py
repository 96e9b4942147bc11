"""Helpers of the live lab's tests (not a test module): a hand-built model with known neuron frequencies,
and the tiny config as `--KEY=VALUE` text for the launch form."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from grokinterp.config import preset
from grokinterp.runs import Run, save_tensors, step_filename

HAND_P = 13
HAND_FREQS = (1, 2, 5)  # features cos/sin(w_k x) for these k
# neuron j reads feature (k, phase): its activation is cos(w_k a + phi) + cos(w_k b + phi) + 3, one pure frequency
HAND_NEURONS = [(5, "cos"), (1, "sin"), (2, "cos"), (1, "cos"), (5, "sin"), (2, "sin"),
                (2, "cos"), (1, "cos"), (5, "cos"), (5, "sin"), (1, "sin"), (2, "cos")]
HAND_CONFIG = dict(task__p=HAND_P, model__d_model=8, model__n_heads=1, model__d_head=8, model__d_mlp=len(HAND_NEURONS),
                   train__steps=1, train__ckpt_every=1, train__state_every=1, train__early_stop_after=None,
                   train__threads=1, optim__warmup_steps=0)

# conftest's tiny config as the launch form's override text (relative to the `quick` preset)
TINY_OVERRIDES = ("--task.p=23 --task.frac_train=0.6 --model.d_model=32 --model.d_head=8 --model.d_mlp=64 "
                  "--optim.lr=1e-2 --optim.warmup_steps=0 --train.ckpt_every=10 --train.state_every=50 "
                  "--train.early_stop_after=None --train.eval_every=5 --train.threads=1")


def hand_built_state(model) -> dict[str, torch.Tensor]:
    """Uniform attention that adds E[a] + E[b] to the last position; E[x] = (cos, sin)(w_k x) for k in HAND_FREQS;
    MLP neuron j reads one feature with bias 3 (so the ReLU never clips): neuron j has frequency HAND_NEURONS[j][0]."""
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    state["blocks.0.attn.IGNORE"] = model.state_dict()["blocks.0.attn.IGNORE"].clone()
    state["blocks.0.attn.mask"] = model.state_dict()["blocks.0.attn.mask"].clone()
    x = torch.arange(HAND_P, dtype=torch.float32)
    for i, k in enumerate(HAND_FREQS):
        state["embed.W_E"][:HAND_P, 2 * i] = torch.cos(2 * math.pi * k * x / HAND_P)
        state["embed.W_E"][:HAND_P, 2 * i + 1] = torch.sin(2 * math.pi * k * x / HAND_P)
    state["blocks.0.attn.W_V"][0] = torch.eye(8)
    state["blocks.0.attn.W_O"][0] = 3 * torch.eye(8)  # attention averages 3 positions: x3 gives E[a] + E[b] + E[=]
    for j, (k, phase) in enumerate(HAND_NEURONS):
        state["blocks.0.mlp.W_in"][2 * HAND_FREQS.index(k) + (phase == "sin"), j] = 1.0
    state["blocks.0.mlp.b_in"][:] = 3.0
    state["unembed.W_U"][:6, :6] = torch.eye(6)
    return state


def hand_built_run(out: Path) -> Run:
    """A run directory whose checkpoints (steps 0 and 1) hold the hand-built model."""
    from grokinterp.runs import train_run

    config = preset("quick", **HAND_CONFIG)
    run = train_run(config, out, progress=False)
    state = hand_built_state(run.model(0))
    for step in run.steps:
        save_tensors(out / "ckpt" / step_filename(step), state)
    return Run(out)
