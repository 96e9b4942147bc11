"""The per-checkpoint early-warning analysis "warning" (the related-work papers), registered with the replay engine.

One registered analysis (one cache file per checkpoint) gathers five pure functions of one checkpoint. All
but the last read one shared forward (`warning_forward`, memoised through `StepContext.shared`):

- `warn_logits` (the logit-scale signal, and the DMD signal's inputs): s_eff, softmax collapse, layer gains, train/test loss and accuracy,
  32 quantiles of log p(y|x) on train and on test.
- `warn_alignment` (the log-alignment signal): log-alignment ratio of W_U with the final residual stream on train examples.
- `warn_heads` (the attention-head signal): head similarity C and entropy spread S per layer.
- `warn_gmm` (the GMM-bifurcation signal): beta / beta_c of a K = 16 shared-variance GMM probe and NC1 per layer (final-position
  `hook_resid_post` of each layer on train examples; the spec allows `mlp.hook_post` too, left out),
  and tr(Sigma_W) / tr(Sigma_B), a pseudo-inverse-free NC1 variant.
- `warn_fiedler` (the Fiedler-value signal): lambda_2 of the weight graph's Laplacian and of its normalized Laplacian.

`WARNING_ANALYSES` = ("warning",); `replay(run, WARNING_ANALYSES)` computes them all, one forward per
checkpoint. The logit temperature tau of the logit-scale signal is the run's `logit_temperature` plug-in's (1 without it).
"""

from __future__ import annotations

import torch

from ...runs import Run
from ...tasks import ModularTask
from ..replay_engine import register_analysis
from ._alignment import log_alignment_ratio
from ._dmd import quantile_coordinates
from ._gmm import bifurcation_ratio, nc1, nc1_trace_ratio
from ._weight_graph import model_fiedler_values
from ._heads import entropy_spread, head_entropies, head_similarity
from ._logit_scale import effective_logit_scale, layer_gains, softmax_collapse
from ._forward import WarningCache, warning_forward

WARNING_ANALYSES = ("warning",)


def _cache(model, task, context) -> WarningCache:
    return context.shared("warning_forward", lambda: warning_forward(model, task))


def run_temperature(run: Run) -> dict:
    """{"tau": the logit temperature the run trained with} (the `logit_temperature` plug-in's, else 1)."""
    return {"tau": float(run.config.plugins.get("logit_temperature", {}).get("tau", 1.0))}


def warn_logits(model, task: ModularTask, context) -> dict:
    """The logit-scale signal (Khanh 2026; Prieto et al. 2025) at one checkpoint, plus the log-probability quantiles the DMD signal reads.

    Returns:
        s_eff, softmax_collapse, resid_pre_norm, train/test loss and acc: scalars; gains [2 n_layers + 1];
        train_logp_quantiles, test_logp_quantiles [32] (log p(y|x) of z / tau).
    """
    cache, tau = _cache(model, task, context), float(context.get("tau", 1.0))
    train, test = cache.train_idx, cache.test_idx
    gains, pre_norm = layer_gains(cache.resid_pre[:, train], cache.resid_mid[:, train], cache.resid_post[:, train],
                                  cache.logits[train], tau)
    logp = cache.log_probs(tau)
    correct = (cache.logits.argmax(-1) == cache.labels).double()
    return {
        "s_eff": effective_logit_scale(cache.logits[train], tau),
        "softmax_collapse": softmax_collapse(cache.logits[train], cache.labels[train], tau),
        "gains": gains, "resid_pre_norm": pre_norm,
        "train_loss": float(-logp[train].double().mean()), "test_loss": float(-logp[test].double().mean()),
        "train_acc": float(correct[train].mean()), "test_acc": float(correct[test].mean()),
        "train_logp_quantiles": quantile_coordinates(logp[train]),
        "test_logp_quantiles": quantile_coordinates(logp[test]),
    }


def warn_alignment(model, task: ModularTask, context) -> dict:
    """The log-alignment signal (Shehper, Vaswani 2026): LAR and k_eff of W_U with `unembed.hook_in` on train; p, q [d_model]."""
    cache = _cache(model, task, context)
    with torch.no_grad():
        fit = log_alignment_ratio(model.W_U.detach(), cache.unembed_in[cache.train_idx])
    return {"lar": fit.lar, "k_eff": fit.k_eff, "p": fit.p, "q": fit.q}


def warn_heads(model, task: ModularTask, context) -> dict:
    """The attention-head signal (Verma 2026) over all examples: head_similarity, entropy_spread [n_layers]; head_entropy [n_layers, n_heads]."""
    cache = _cache(model, task, context)
    patterns = cache.pattern
    return {"head_similarity": torch.tensor([head_similarity(p) for p in patterns], dtype=torch.float64),
            "entropy_spread": torch.tensor([entropy_spread(p) for p in patterns], dtype=torch.float64),
            "head_entropy": torch.stack([head_entropies(p) for p in patterns])}


def warn_gmm(model, task: ModularTask, context) -> dict:
    """The GMM-bifurcation signal (Yang 2026) per layer on train examples: beta_ratio, beta_c, sigma_w2, em_iterations, nc1,
    nc1_trace_ratio [n_layers]."""
    cache = _cache(model, task, context)
    train = cache.train_idx
    rows = [bifurcation_ratio(cache.resid_post[layer, train]) for layer in range(cache.n_layers)]
    out = {key: torch.tensor([row[key] for row in rows], dtype=torch.float64)
           for key in ("beta_ratio", "beta_c", "sigma_w2", "em_iterations")}
    for key, fn in (("nc1", nc1), ("nc1_trace_ratio", nc1_trace_ratio)):
        out[key] = torch.tensor([fn(cache.resid_post[layer, train], cache.labels[train])
                                 for layer in range(cache.n_layers)], dtype=torch.float64)
    return out


def warn_fiedler(model, task: ModularTask, context) -> dict:
    """The Fiedler-value signal (Benfield 2026): fiedler, fiedler_normalized of the weight graph (attention omitted)."""
    return model_fiedler_values(model)


@register_analysis("warning", version=1, kind="checkpoint", prepare=run_temperature)
def warning(model, task: ModularTask, context) -> dict:
    """Every per-checkpoint early-warning quantity: the union of the five functions above (no key is shared)."""
    out = {}
    for part in (warn_logits, warn_alignment, warn_heads, warn_gmm, warn_fiedler):
        out.update(part(model, task, context))
    return out
