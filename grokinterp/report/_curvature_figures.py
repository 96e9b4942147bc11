"""Report figures of curvature and gradient geometry (the Grokking Dynamics write-up), one registered report section.

- top Hessian eigenvalues over checkpoints, log y, with the memorization and grokking markers (the Grokking Dynamics write-up:
  a 20x spike during memorization, then a decline before grokking);
- Hutchinson trace with its standard error;
- Adam-preconditioned sharpness against the adaptive edge-of-stability threshold (Cohen et al. 2022);
- half-batch gradient agreement (the `grad_agreement` plug-in's dense column, and/or the replayed
  "gradients" analysis at checkpoints) with its dips marked (`agreement_dips`, default parameters), beside
  the cosine between Adam's momentum and the gradient that training records every step;
- entropy effective rank of the per-sample gradients.

Each figure is built only when its data exists: the "curvature" / "gradients" analyses were replayed
(`grokinterp analyze RUN --analyses curvature,gradients`), or the run recorded the plug-in's column.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..analysis import ReplayResult
from ..analysis.curvature import AgreementDips, agreement_dips
from ..runs import Run
from ._figures import _layout, _line, add_milestones, register_figures

EIGEN_COLORS = ("#1f77b4", "#6baed6", "#9ecae1", "#c6dbef")
AGREEMENT_COLOR, DIP_COLOR, MOMENTUM_COLOR, THRESHOLD_COLOR = "#2ca02c", "#d62728", "#b0b0b0", "#d62728"
CURVATURE_TITLES = {
    "top_eigenvalue": "Top Hessian eigenvalues",
    "hessian_trace": "Hessian trace",
    "preconditioned_sharpness": "Preconditioned sharpness and the edge of stability",
    "grad_agreement": "Half-batch gradient agreement",
    "effective_rank": "Effective rank of per-sample gradients",
}


def _positive(values: np.ndarray) -> np.ndarray:
    """Values for a log axis: non-positive ones become NaN (a gap in the line)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0, values, np.nan)


def _milestones(fig: go.Figure, run: Run | None) -> go.Figure:
    return add_milestones(fig, run.summary) if run is not None else fig


def top_eigenvalue_curve(result: ReplayResult, run: Run | None = None) -> go.Figure:
    """The k largest Hessian eigenvalues of the training loss at every replayed checkpoint, log y axis
    (a non-positive value leaves a gap)."""
    steps = result.steps_of("curvature")
    eig = np.asarray(result["curvature"]["top_eigenvalues"], dtype=np.float64).reshape(len(steps), -1)  # [n_steps, k]
    fig = go.Figure([_line(steps, _positive(eig[:, j]), "top eigenvalue" if j == 0 else f"eigenvalue {j + 1}",
                           EIGEN_COLORS[min(j, len(EIGEN_COLORS) - 1)], None if j == 0 else "dot")
                     for j in range(eig.shape[1])])
    _milestones(fig, run)
    return _layout(fig, "Top Hessian eigenvalues of the training loss (Lanczos)", "checkpoint step", "eigenvalue",
                   log_y=True)


def hessian_trace_curve(result: ReplayResult, run: Run | None = None) -> go.Figure:
    """Hutchinson estimate of tr(H) at every replayed checkpoint, with +- one standard error."""
    curv, steps = result["curvature"], result.steps_of("curvature")
    fig = go.Figure(go.Scatter(x=steps, y=curv["trace"], name="trace (Hutchinson)", mode="lines",
                               line=dict(color=EIGEN_COLORS[0], simplify=False),
                               error_y=dict(type="data", array=np.nan_to_num(curv["trace_stderr"]), visible=True,
                                            thickness=1, width=0)))
    _milestones(fig, run)
    return _layout(fig, "Hessian trace (Hutchinson, +- 1 standard error)", "checkpoint step", "tr(H)")


def preconditioned_sharpness_curve(result: ReplayResult, run: Run | None = None) -> go.Figure:
    """lambda_max(P^-1/2 H P^-1/2) where the run saved Adam's state, against (2 + 2 beta1) / (lr (1 - beta1))."""
    curv, steps = result["curvature"], result.steps_of("curvature")
    sharp = np.asarray(curv["preconditioned_sharpness"], dtype=np.float64)
    have = np.isfinite(sharp)
    fig = go.Figure([
        go.Scatter(x=steps[have], y=_positive(sharp[have]), name="preconditioned sharpness", mode="lines+markers",
                   line=dict(color=EIGEN_COLORS[0], simplify=False), marker=dict(size=6)),
        _line(steps, _positive(curv["eos_threshold"]), "(2 + 2 beta1) / (lr (1 - beta1))", THRESHOLD_COLOR, "dash"),
    ])
    _milestones(fig, run)
    return _layout(fig, f"Adam-preconditioned sharpness ({int(have.sum())} checkpoints with optimizer state)",
                   "checkpoint step", "eigenvalue of P^-1/2 H P^-1/2", log_y=True)


def _agreement_series(run: Run | None, result: ReplayResult | None) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(source, steps, values): the plug-in's dense column if the run recorded it, else the replayed one."""
    if run is not None and "grad_agreement" in run.metrics:
        steps, values = run.metrics["step"], run.metrics["grad_agreement"]
        keep = np.isfinite(values)
        if keep.any():
            return "training (grad_agreement plug-in)", steps[keep].astype(np.int64), values[keep]
    if result is not None and "gradients" in result.data:
        values = np.asarray(result["gradients"]["agreement"], dtype=np.float64)
        keep = np.isfinite(values)
        return "replayed checkpoints", result.steps_of("gradients")[keep], values[keep]
    return None


def agreement_figure(run: Run | None, result: ReplayResult | None = None,
                     dips: AgreementDips | None = None) -> go.Figure:
    """Half-batch gradient agreement with its dips marked (`agreement_dips` with its defaults unless `dips`
    is given), the replayed checkpoint values as markers when the plug-in's column is drawn too, and the
    momentum-gradient cosine recorded by training."""
    series = _agreement_series(run, result)
    if series is None:
        raise ValueError("no agreement to draw: train with the grad_agreement plug-in or replay 'gradients'")
    source, steps, values = series
    dips = agreement_dips(steps, values) if dips is None else dips
    fig = go.Figure()
    if run is not None and "mom_grad_cos" in run.metrics:
        m_steps, m_cos = run.metrics["step"], run.metrics["mom_grad_cos"]
        keep = np.isfinite(m_cos)
        fig.add_trace(_line(m_steps[keep], m_cos[keep], "cos(Adam momentum, gradient)", MOMENTUM_COLOR))
    fig.add_trace(_line(steps, values, f"agreement, {source}", AGREEMENT_COLOR))
    if result is not None and "gradients" in result.data and not source.startswith("replayed"):
        fig.add_trace(go.Scatter(x=result.steps_of("gradients"), y=result["gradients"]["agreement"],
                                 name="agreement, replayed checkpoints", mode="markers",
                                 marker=dict(color=AGREEMENT_COLOR, size=5, symbol="circle-open")))
    at = np.searchsorted(steps, dips.steps)
    fig.add_trace(go.Scatter(x=dips.steps, y=values[at], name=f"dips ({dips.count})", mode="markers",
                             marker=dict(color=DIP_COLOR, size=9, symbol="triangle-down")))
    _milestones(fig, run)
    title = (f"Half-batch gradient agreement: {dips.count} dips (rolling median over {dips.window:g} steps, "
             f"threshold {dips.threshold:g} robust SD, min separation {dips.min_separation:g} steps)")
    return _layout(fig, title, "step", "cosine")


def effective_rank_curve(result: ReplayResult, run: Run | None = None) -> go.Figure:
    """Roy and Vetterli's entropy effective rank of the per-sample gradients of a fixed training subset."""
    grads, steps = result["gradients"], result.steps_of("gradients")
    n = int(np.asarray(grads["rank_samples"]).reshape(-1)[0]) if "rank_samples" in grads else None
    fig = go.Figure(_line(steps, grads["effective_rank"], "effective rank", EIGEN_COLORS[0]))
    _milestones(fig, run)
    of = f" (of {n} per-sample gradients)" if n else ""
    return _layout(fig, f"Entropy effective rank of per-sample gradients{of}", "checkpoint step", "effective rank")


def curvature_figures(run: Run, result: ReplayResult | None) -> dict[str, go.Figure]:
    """The section's figures that the run and `result` allow (none when neither analysis nor column exists)."""
    figures: dict[str, go.Figure] = {}
    if result is not None and "curvature" in result.data:
        figures["top_eigenvalue"] = top_eigenvalue_curve(result, run)
        figures["hessian_trace"] = hessian_trace_curve(result, run)
        if np.isfinite(result["curvature"]["preconditioned_sharpness"]).any():
            figures["preconditioned_sharpness"] = preconditioned_sharpness_curve(result, run)
    if _agreement_series(run, result) is not None:
        figures["grad_agreement"] = agreement_figure(run, result)
    if result is not None and "gradients" in result.data:
        figures["effective_rank"] = effective_rank_curve(result, run)
    return figures


register_figures(curvature_figures, CURVATURE_TITLES)
