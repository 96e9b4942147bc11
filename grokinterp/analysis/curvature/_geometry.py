"""Replayed analyses of loss-landscape curvature and gradient geometry (the Grokking Dynamics write-up), registered by name.

Not among the standard analyses (each costs seconds per Nanda-size checkpoint): replay them by name,
`replay(run, ["curvature", "gradients"], stride=4)` or `grokinterp analyze RUN --analyses curvature,gradients`.

- "curvature": top-k Hessian eigenvalues, Hutchinson trace with its standard error, Adam-preconditioned
  sharpness (where the run holds the optimizer state of that step: `train.state_every`; else NaN) and the
  adaptive edge-of-stability threshold at that step's learning rate. See `curvature_measures`.
- "hessian_density": stochastic Lanczos quadrature nodes and weights of the Hessian's eigenvalue density
  (`_curvature.density_on_grid` turns them into a density).
- "gradients": half-batch gradient agreement (the same halves as the `grad_agreement` plug-in at that
  step), full-batch gradient norm, entropy effective rank of the per-sample gradients of a fixed subset.

The functions behind them take their parameters as arguments; to replay other choices, register your own
analysis (under another name) that calls them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...config import OptimConfig
from ...runs import Run
from ...tasks import ModularTask
from ._hessian import (
    TOP_EIGEN_TOL,
    HessianVectorProduct,
    adam_preconditioner,
    adaptive_eos_threshold,
    hessian_trace,
    preconditioned_sharpness,
    spectral_density,
    top_eigenvalues,
)
from ...objective import AGREEMENT_SEED, half_batch_agreement
from ._gradients import RANK_SAMPLES, gradient_effective_rank
from ..replay_engine import StepContext, register_analysis

CURVATURE_TOP_K = 3
CURVATURE_TRACE_PROBES = 8
DENSITY_PROBES = 4
DENSITY_STEPS = 24


def curvature_measures(model, tokens: torch.Tensor, labels: torch.Tensor, k: int = CURVATURE_TOP_K,
                       n_probes: int = CURVATURE_TRACE_PROBES, tol: float = TOP_EIGEN_TOL, seed: int = 0,
                       optimizer_state: dict | None = None, beta2: float = 0.98, eps: float = 1e-8,
                       l2: float = 0.0) -> dict[str, np.ndarray | float]:
    """Curvature of the full-batch training loss at the model's parameters (all trainable ones).

    Args:
        model, tokens, labels: the model and its training set.
        k, tol, seed: top eigenvalues (`top_eigenvalues`); n_probes: Hutchinson probes (`hessian_trace`).
        optimizer_state: a run's state at this step (`Run.optimizer_state`), for the preconditioned
            sharpness with Adam's beta2 and eps; None (or a state without moments): NaN.
        l2: plain Adam's coupled weight decay, part of the objective its preconditioner sees (0 for AdamW).

    Returns:
        top_eigenvalues [k] (descending), trace, trace_stderr, preconditioned_sharpness, train_loss,
        grad_norm, n_matvec (Hessian-vector products used).
    """
    hvp = HessianVectorProduct(model, tokens, labels)
    top = top_eigenvalues(hvp, k=k, tol=tol, seed=seed)
    trace = hessian_trace(hvp, n_probes=n_probes, seed=seed)
    sharpness = math.nan
    if optimizer_state is not None and all(f"optim/{n}/exp_avg_sq" in optimizer_state for n in hvp.names):
        preconditioner = adam_preconditioner(optimizer_state, hvp.names, beta2, eps)
        sharpness = preconditioned_sharpness(hvp, preconditioner, l2=l2, tol=tol, seed=seed)
    return {"top_eigenvalues": top.values, "trace": trace.estimate, "trace_stderr": trace.stderr,
            "preconditioned_sharpness": sharpness, "train_loss": hvp.loss, "grad_norm": float(hvp.gradient.norm()),
            "n_matvec": hvp.calls}


def _optimizer_settings(run: Run) -> dict:
    """The optimizer's hyperparameters (JSON): what the threshold and the preconditioner need."""
    optim = run.config.optim
    return {"name": optim.name, "lr": optim.lr, "warmup_steps": optim.warmup_steps, "beta1": optim.beta1,
            "beta2": optim.beta2, "eps": optim.eps, "weight_decay": optim.weight_decay}


@register_analysis("curvature", version=1, kind="checkpoint", prepare=_optimizer_settings)
def curvature(model, task: ModularTask, context: StepContext) -> dict:
    """`curvature_measures` on the training set (k=3, 8 trace probes, tol 1e-3, seed 0), plus eos_threshold:
    Cohen et al.'s (2 + 2 beta1) / (lr (1 - beta1)) at this step's learning rate (NaN while it is 0)."""
    settings = dict(context)
    lr = OptimConfig(**settings).lr_at(context.step)  # the training loop's schedule
    out = curvature_measures(model, task.train_tokens, task.train_labels, optimizer_state=context.optimizer_state(),
                             beta2=settings["beta2"], eps=settings["eps"],
                             l2=settings["weight_decay"] if settings["name"] == "adam" else 0.0)
    out["eos_threshold"] = adaptive_eos_threshold(lr, settings["beta1"]) if lr > 0 else math.nan
    return out


@register_analysis("hessian_density", version=1, kind="checkpoint")
def hessian_density(model, task: ModularTask, context: StepContext) -> dict:
    """Stochastic Lanczos quadrature of the Hessian's eigenvalue density (4 probes x 24 Lanczos steps, seed 0).

    Returns:
        nodes, weights: [4, 24] (`SpectralDensity`); moment1, moment2: estimates of tr(H)/n and tr(H^2)/n.
    """
    hvp = HessianVectorProduct(model, task.train_tokens, task.train_labels)
    density = spectral_density(hvp, n_probes=DENSITY_PROBES, n_steps=DENSITY_STEPS, seed=0)
    return {"nodes": density.nodes, "weights": density.weights, "moment1": density.moment(1),
            "moment2": density.moment(2)}


@register_analysis("gradients", version=1, kind="checkpoint")
def gradients(model, task: ModularTask, context: StepContext) -> dict:
    """Half-batch agreement (seed 0 and this step: the plug-in's halves), gradient norm of the full batch,
    and the entropy effective rank of the per-sample gradients of a fixed 128-example training subset."""
    tokens, labels = task.train_tokens, task.train_labels
    agreement = half_batch_agreement(model, tokens, labels, seed=AGREEMENT_SEED, step=context.step)
    rank = gradient_effective_rank(model, tokens, labels, n_samples=RANK_SAMPLES, seed=AGREEMENT_SEED)
    return {"agreement": agreement.cosine, "grad_norm": agreement.grad_norm, "effective_rank": rank,
            "rank_samples": min(RANK_SAMPLES, len(tokens))}


@register_analysis("sharpness", version=1, kind="checkpoint")
def sharpness(model, task: ModularTask, context: StepContext) -> dict:
    """The top Hessian eigenvalue of the full-batch training loss alone (`top_eigenvalues`, k=1, tol 1e-3,
    seed 0): the curvature series of the grokking-dynamics write-up at a third of "curvature"'s cost."""
    hvp = HessianVectorProduct(model, task.train_tokens, task.train_labels)
    top = top_eigenvalues(hvp, k=1, tol=TOP_EIGEN_TOL, seed=0)
    return {"top_eigenvalue": float(top.values[0]), "train_loss": hvp.loss, "n_matvec": hvp.calls}
