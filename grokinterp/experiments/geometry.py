"""The grokking-dynamics write-up's geometric claims, measured on its own 2-layer model (`twolayer`).

`grokinterp repro geometry`: β1 ∈ {0, 0.9} × 5 seeds, checkpoints every 25 steps, the `grad_agreement`
plug-in every 10 steps, trained until 500 steps after grokking (the rank drop compares 500-step windows
either side of it); each run is replayed with "sharpness" (top Hessian eigenvalue), "spectra" (Fourier) and
"gradients" (effective rank) on the schedule of `replay_steps`. Per run, the events of
`grokinterp.analysis.transitions` are tabulated; the claims ledger reads them from the committed data.
"""

from __future__ import annotations

import math

import numpy as np

from ..stats import bootstrap_ci
from .repro import ReproData, fmt
from .repro_data import read_columns, write_rows

GEOMETRY_SERIES = ("top_eigenvalue", "effective_rank", "key_share", "embed_gini")
# Replay schedule: every checkpoint (25 steps) through memorization, every 50 steps to step 1,000, every 100
# after: the top eigenvalue costs ~15 s a checkpoint on one thread, so ~35 replays per run.
SPIKE_UNTIL, DENSE_UNTIL, DENSE_EVERY, SPARSE_EVERY = 300, 1000, 50, 100
FOURIER_STEP = 700
RANK_WINDOW = 500


def replay_steps(steps) -> list[int]:
    """The checkpoints replayed: every one up to SPIKE_UNTIL, every DENSE_EVERY steps up to DENSE_UNTIL, then
    every SPARSE_EVERY steps, and the last."""
    steps = sorted(int(s) for s in steps)
    chosen = [s for s in steps if s <= SPIKE_UNTIL or (s <= DENSE_UNTIL and s % DENSE_EVERY == 0)
              or s % SPARSE_EVERY == 0]
    return chosen + ([steps[-1]] if steps and steps[-1] not in chosen else [])


def replay_geometry(out, progress: bool = True) -> None:
    """Replay every finished run under the sweep directory `out` (cached: a rerun computes only what is new)."""
    from ..analysis import replay
    from ..runs import Run
    from ..sweep import collect

    for rec in collect(out):
        if rec.finished:
            run = Run(rec.path)
            replay(run, ["sharpness", "spectra", "gradients"], steps=replay_steps(run.steps), progress=progress)


def export_geometry(out, data_dir) -> None:
    """Per run, `geometry/<run>.csv`: step, top eigenvalue, effective rank, the embedding's Fourier share in
    the final key frequencies, and the embedding Gini, read from the replay cache."""
    from ..analysis import replay
    from ..runs import Run
    from ..sweep import collect

    for rec in collect(out):
        if not rec.finished:
            continue
        run = Run(rec.path)
        result = replay(run, ["sharpness", "spectra", "gradients"], steps=replay_steps(run.steps), progress=False)
        norms = np.asarray(result["spectra"]["embed_freq_norm"], dtype=np.float64) ** 2
        final_keys = np.asarray(result["spectra"]["key_freq_mask"][-1], dtype=bool)
        share = norms[:, final_keys].sum(axis=1) / norms.sum(axis=1)
        columns = {"top_eigenvalue": result["sharpness"]["top_eigenvalue"],
                   "effective_rank": result["gradients"]["effective_rank"], "key_share": share,
                   "embed_gini": result["spectra"]["embed_gini"]}
        write_rows(data_dir / "geometry" / f"{rec.name}.csv", ["step", *GEOMETRY_SERIES],
                   [[int(s), *(float(columns[c][i]) for c in GEOMETRY_SERIES)] for i, s in enumerate(result.steps)])


def run_events(data: ReproData, rec) -> dict | None:
    """The write-up's quantities for one run (None when its series are not committed). A run that never
    groks has no transition: its decline step, lag and Fourier ratios (to a final state that is not the
    grokked circuit) are None; its spike factor is over the whole run (all of it is memorization)."""
    from ..analysis.transitions import curvature_spike, relative_drop, transition_lag, trend, value_at, window_median

    path = data.data_dir / "geometry" / f"{rec.name}.csv"
    metrics = data.series(rec.name)
    if not rec.finished or not path.is_file() or metrics is None:
        return None
    g = read_columns(path.read_text())
    mem, grok = rec.summary.get("memorization_step"), rec.summary.get("grokking_step")
    spike = curvature_spike(g["step"], g["top_eigenvalue"], until=grok)
    events = {"spike_factor": spike.factor, "peak_step": spike.peak_step, "decline_step": spike.decline_step,
              "lag": transition_lag(g["step"], g["top_eigenvalue"], metrics["step"], metrics["test_acc"])}
    if mem is not None and "grad_agreement" in metrics:
        try:
            events["agreement_slope"] = trend(metrics["step"], metrics["grad_agreement"], 0, mem).slope
        except ValueError:
            events["agreement_slope"] = None
    if mem is not None:
        events["mom_cos"] = window_median(metrics["step"], metrics["mom_grad_cos"], mem, grok or math.inf)
    if mem is not None and grok is not None:
        events["rank_drop"] = relative_drop(g["step"], g["effective_rank"], (mem, grok), (grok, grok + RANK_WINDOW))
    if grok is None:
        events.update(decline_step=None, lag=None, share_ratio=None, gini_ratio=None)
        return events
    final_share, final_gini = g["key_share"][-1], g["embed_gini"][-1]
    events["share_ratio"] = value_at(g["step"], g["key_share"], FOURIER_STEP) / final_share if final_share else None
    events["gini_ratio"] = value_at(g["step"], g["embed_gini"], FOURIER_STEP) / final_gini if final_gini else None
    return events


EVENT_COLUMNS = [("spike_factor", "spike factor (max ÷ init)", 1), ("peak_step", "peak step", 0),
                 ("decline_step", "decline starts", 0), ("lag", "lag decline → acc rise", 0),
                 ("agreement_slope", "agreement slope in memorization (per 1k steps)", 3),
                 ("mom_cos", "momentum–gradient cosine after memorization", 2),
                 ("rank_drop", "effective-rank drop at grokking", 2),
                 ("share_ratio", f"key-frequency share at {FOURIER_STEP} ÷ final", 2),
                 ("gini_ratio", f"embedding Gini at {FOURIER_STEP} ÷ final", 2)]


def event_values(data: ReproData, key: str, beta1: float | None = None) -> list[float]:
    """One event's values over the finished runs (optionally at one β1) whose series are committed."""
    out = []
    for rec in data.records:
        if beta1 is not None and rec.values.get("optim.beta1") != beta1:
            continue
        events = run_events(data, rec)
        value = None if events is None else events.get(key)
        if value is not None and np.isfinite(value):
            out.append(value * (1000 if key == "agreement_slope" else 1))
    return out


def geometry_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """Per claim and β1: the median over seeds with its range (and n), beside the write-up's number."""
    columns = ["quantity", "β1 = 0: median [range] (n)", "β1 = 0.9: median [range] (n)", "source reports"]
    rows = []
    for key, label, digits in EVENT_COLUMNS:
        cells = []
        for beta1 in (0.0, 0.9):
            values = event_values(data, key, beta1)
            cells.append(f"{fmt(float(np.median(values)), digits)} [{fmt(min(values), digits)}, "
                         f"{fmt(max(values), digits)}] ({len(values)})" if values else "–")
        rows.append([label, *cells, reference.get(key, "–")])
    return columns, rows


def median_event(key: str, beta1: float | None = None):
    """A claims-ledger measurement: the median of one event over seeds with its bootstrap interval."""
    def measure(data: ReproData):
        values = event_values(data, key, beta1)
        return bootstrap_ci(values) if values else None
    return measure


def geometry_figures(data: ReproData) -> dict:
    """One figure per claim's series, β1 0 (blue) and 0.9 (red) overlaid, grokking steps marked."""
    import plotly.graph_objects as go

    panels = {"curvature": ("top_eigenvalue", "top Hessian eigenvalue", "log"),
              "effective_rank": ("effective_rank", "effective rank of per-sample gradients", "linear"),
              "fourier": ("key_share", "embedding share in the final key frequencies", "linear"),
              "test_acc": ("test_acc", "test accuracy", "linear"),
              "agreement": ("grad_agreement", "half-batch gradient agreement", "linear"),
              "momentum": ("mom_grad_cos", "momentum–gradient cosine", "linear")}
    figures = {name: go.Figure() for name in panels}
    colors = {0.0: "#1f77b4", 0.9: "#d62728"}
    for rec in data.finished():
        beta1 = rec.values.get("optim.beta1")
        path = data.data_dir / "geometry" / f"{rec.name}.csv"
        geometry = read_columns(path.read_text()) if path.is_file() else {}
        metrics = data.series(rec.name) or {}
        for name, (column, _, _) in panels.items():
            source = geometry if column in geometry else metrics
            if column not in source:
                continue
            keep = np.isfinite(source[column])
            figures[name].add_trace(go.Scatter(x=source["step"][keep], y=source[column][keep], mode="lines",
                                               name=rec.name, line={"color": colors.get(beta1, "#555555")}))
            if rec.summary.get("grokking_step") is not None:
                figures[name].add_vline(x=rec.summary["grokking_step"], line={"color": colors.get(beta1), "dash": "dot"})
    for name, (_, title, scale) in panels.items():
        figures[name].update_layout(title=f"{title} (blue β1 0, red β1 0.9; dotted: grokking)", template="plotly_white",
                                    height=400, xaxis_title="step", yaxis_title=title, yaxis_type=scale)
    return figures
