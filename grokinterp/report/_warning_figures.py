"""The report's "Early warning" section (the related-work papers): every warning signal on one shared step axis under the
accuracy, with the memorization and grokking steps marked; the Fiedler-value signal's detrending and indicators; the GMM-bifurcation signal's path.

Registered with `register_figures`: it appears when the replay holds every analysis of `WARNING_ANALYSES`
(`grokinterp analyze RUN --analyses spectra,progress,warning`).
Series figures hold one point per replayed checkpoint (the weight norm: one per metrics row).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis import ReplayResult
from ..analysis.warning import WARNING_ANALYSES, WarningDiagnostics, warning_diagnostics
from ..runs import Run
from ._figures import COLORS, MARKERS, _layout, _line, register_figures

ROW_HEIGHT = 150
# (row title, [(series key or callable, legend name, color)], log y)
_PANELS = [
    ("accuracy", [("train_acc", "train acc", COLORS["train"]), ("test_acc", "test acc", COLORS["test"])], False),
    ("D1 s_eff", [("s_eff", "s_eff (logit scale)", "#1f77b4")], False),
    ("D1 softmax collapse", [("softmax_collapse", "SC (fraction CE = 0)", "#ff7f0e")], True),
    ("D2 λ2", [("fiedler_normalized", "λ2 normalized Laplacian", "#2ca02c")], False),
    ("D3 DMD ρ", [("dmd_residual_test", "ρ test log p", COLORS["test"]), ("dmd_residual_train", "ρ train log p",
                                                                           COLORS["train"])], False),
    ("D4 LAR", [("lar", "log-alignment ratio", "#9467bd")], False),
    ("D5 heads", [("head_similarity", "C head similarity", "#8c564b"), ("entropy_spread", "S entropy spread",
                                                                         "#e377c2")], False),
    ("D6 lock-in", [("lockin_ratio", "ln σ2/σ3 of updates", "#17becf")], False),
    ("D7 β/β_c, NC1", [("beta_ratio", "β/β_c", "#bcbd22"), ("nc1", "NC1", "#7f7f7f"),
                       ("nc1_trace_ratio", "tr Σ_W / tr Σ_B", "#c7c7c7")], True),
]


def _values(d: WarningDiagnostics, key: str) -> np.ndarray:
    x = d.series[key]
    return x.mean(axis=1) if x.ndim == 2 else x


def _mark_milestones(fig: go.Figure, d: WarningDiagnostics, rows: int) -> None:
    for attr, (_, label, color) in zip(("memorization_step", "grokking_step"), MARKERS):
        step = getattr(d, attr)
        if step is None:
            continue
        fig.add_vline(x=step, line=dict(color=color, dash="dash", width=1.5), row="all", col=1)
        fig.add_annotation(x=step, y=1.0, xref="x", yref="paper", text=f"{label} {step}", showarrow=False,
                           xanchor="left", yanchor="bottom", font=dict(size=11, color=color))


def warning_signals_figure(d: WarningDiagnostics) -> go.Figure:
    """Every signal (the per-checkpoint signals per checkpoint, the weight-norm signal's ||theta|| per step) in stacked rows sharing the step axis."""
    titles = [p[0] for p in _PANELS] + ["D9 ||θ||"]
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.012, subplot_titles=titles)
    for row, (_, traces, log_y) in enumerate(_PANELS, start=1):
        for key, name, color in traces:
            y = _values(d, key)
            fig.add_trace(_line(d.steps, np.where(y > 0, y, np.nan) if log_y else y, name, color), row=row, col=1)
        if log_y:
            fig.update_yaxes(type="log", row=row, col=1)
    if "weight_norm" in d.metric_series:
        fig.add_trace(_line(d.metric_steps, d.metric_series["weight_norm"], "||θ|| (every step)", "#d62728"),
                      row=len(titles), col=1)
    _mark_milestones(fig, d, len(titles))
    fig.update_layout(height=ROW_HEIGHT * len(titles) + 120, template="plotly_white", title="Early-warning signals",
                      margin=dict(l=60, r=20, t=80, b=50), legend=dict(orientation="h", y=-0.03))
    fig.update_xaxes(title_text="step", row=len(titles), col=1)
    return fig


def fiedler_csd_figure(d: WarningDiagnostics) -> go.Figure:
    """The Fiedler-value signal: normalized lambda_2 with its kernel trend on [T_mem, T_grok), then the residual's rolling AR1 and
    variance there (Dakos et al. 2012), and the paper's raw rolling AR1 over the whole run."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=["normalized λ2 and trend", "AR1", "variance of the residual"])
    fig.add_trace(_line(d.steps, d.series["fiedler_normalized"], "λ2 normalized", "#2ca02c"), row=1, col=1)
    fig.add_trace(_line(d.steps, d.series["fiedler_normalized_trend"], "trend on [T_mem, T_grok)", "#000000", "dot"),
                  row=1, col=1)
    fig.add_trace(_line(d.steps, d.series["fiedler_normalized_ar1"], "AR1 detrended (Dakos)", "#1f77b4"), row=2, col=1)
    fig.add_trace(_line(d.steps, d.series["fiedler_ar1_paper"], "AR1 raw λ2 (paper)", "#aec7e8", "dash"), row=2, col=1)
    fig.add_trace(_line(d.steps, d.series["fiedler_normalized_variance"], "variance detrended", "#ff7f0e"), row=3, col=1)
    _mark_milestones(fig, d, 3)
    taus = d.csd_tau.get("fiedler_normalized", {})
    fig.update_layout(height=3 * 220 + 100, template="plotly_white", margin=dict(l=60, r=20, t=90, b=50),
                      title=f"Critical slowing down of λ2 (Kendall τ: AR1 {taus.get('ar1', np.nan):.2f}, "
                            f"variance {taus.get('variance', np.nan):.2f})")
    fig.update_xaxes(title_text="step", row=3, col=1)
    return fig


def bifurcation_path_figure(d: WarningDiagnostics) -> go.Figure:
    """The GMM-bifurcation signal: the path (log beta/beta_c, log NC1) over checkpoints, coloured by step (layer mean)."""
    ratio, nc = _values(d, "beta_ratio"), _values(d, "nc1")
    fig = go.Figure(go.Scatter(x=ratio, y=nc, mode="lines+markers", name="checkpoints",
                               line=dict(color="#c7c7c7", simplify=False),
                               marker=dict(color=d.steps, colorscale="Viridis", size=6, colorbar=dict(title="step")),
                               text=[f"step {s}" for s in d.steps]))
    fig.add_vline(x=1.0, line=dict(color="#7f7f7f", dash="dot"))
    return _layout(fig, "Bifurcation path: β/β_c against NC1 (β/β_c = 1: the probe's pitchfork)",
                   "β/β_c", "NC1", log_x=True, log_y=True)


def warning_section(run: Run, result: ReplayResult | None) -> dict[str, go.Figure]:
    """The "Early warning" figures, when `result` holds every warning analysis (else none)."""
    if result is None or any(name not in result.data for name in WARNING_ANALYSES):
        return {}
    d = warning_diagnostics(run, result, progress=False)
    return {"warning_signals": warning_signals_figure(d), "warning_csd": fiedler_csd_figure(d),
            "warning_bifurcation": bifurcation_path_figure(d)}


register_figures(warning_section, {
    "warning_signals": "Early warning: every signal on one step axis (related work on early warning)",
    "warning_csd": "Early warning: critical slowing down of the Fiedler value (D2)",
    "warning_bifurcation": "Early warning: the β/β_c bifurcation path (D7)",
})
