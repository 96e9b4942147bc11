"""Compare runs on one offline page: their curves and key series overlaid, and a summary table.

`grokinterp report RUN1 RUN2 ... --out FILE.html`. Each series gets one figure with one trace per run
that has it (one colour per run across the page):
- from metrics.csv: train and test loss and accuracy (log step axis, as in the run report), total
  weight norm;
- replayed series where the run has them cached under `<run>/analysis/` (restricted and excluded loss,
  the trig-identity fit): only the cached checkpoints are read (a comparison never replays a run
  in full; run `grokinterp analyze RUN` first to have them).

A fork (a run with `fork.json`, see `grokinterp.experiments.fork`) shares its parent's rows up to the
fork step; when its parent is on the page too, the fork's traces start at the fork step, which is
marked by a dotted line, so parent and fork read as one axis that branches.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from ..analysis import ReplayResult, get_analysis, replay
from ..analysis.fourier import key_frequencies
from ..runs import Run, atomic_write_bytes, list_steps
from ._figures import _layout
from ._html import _fmt, _package_version, offline_page

FORK_FILE = "fork.json"  # written by grokinterp.experiments.fork
METRIC_SERIES = (  # figure id, column, title, y axis, log x, log y
    ("train_loss", "train_loss", "Train loss", "cross-entropy", True, True),
    ("test_loss", "test_loss", "Test loss", "cross-entropy", True, True),
    ("train_acc", "train_acc", "Train accuracy", "accuracy", True, False),
    ("test_acc", "test_acc", "Test accuracy", "accuracy", True, False),
    ("weight_norm", "weight_norm_sq", "Total weight norm", "sum of squared weights", False, False),
)
REPLAYED_SERIES = (  # figure id, analysis, key, title, y axis, log y
    ("restricted_loss", "progress", "restricted_loss", "Restricted loss (key frequencies only)", "cross-entropy", True),
    ("excluded_loss", "progress", "excluded_loss", "Excluded loss (key frequencies removed)", "cross-entropy", True),
    ("trig_fit", "trig_fit", "frac_explained", "Trig-identity fit", "fraction of logit variance explained", False),
)


def fork_record(run: Run) -> dict | None:
    """The run's fork.json ({parent, parent_name, step, ...}) if it is a fork, else None."""
    path = run.path / FORK_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def cached_series(run: Run, analysis: str) -> ReplayResult | None:
    """The replayed analysis at the checkpoints cached in `<run>/analysis/`, or None if none is."""
    folder = get_analysis(analysis).folder(run.path)
    steps = sorted(set(list_steps(folder)) & set(run.steps))
    if not steps:
        return None
    return replay(run, [analysis], steps=steps, progress=False)


def _labels(runs: list[Run]) -> list[str]:
    names = [r.path.name for r in runs]
    return [f"{r.path.parent.name}/{r.path.name}" if names.count(r.path.name) > 1 else r.path.name for r in runs]


def _starts(runs: list[Run]) -> dict[int, tuple[int, str] | None]:
    """Per run index: (fork step, parent label) when its parent is also compared, else None."""
    paths = {r.path.resolve(): i for i, r in enumerate(runs)}
    labels, out = _labels(runs), {}
    for i, run in enumerate(runs):
        record = fork_record(run)
        parent = paths.get(Path(record["parent"]).resolve()) if record else None
        out[i] = (int(record["step"]), labels[parent]) if parent is not None else None
    return out


def _fork_marker(fig: go.Figure, step: int, text: str, color: str, log_x: bool) -> None:
    if log_x and step <= 0:
        return
    fig.add_shape(type="line", x0=step, x1=step, y0=0, y1=1, xref="x", yref="paper",
                  line=dict(color=color, dash="dot", width=1.5))
    fig.add_annotation(x=float(np.log10(step)) if log_x else step, y=0, xref="x", yref="paper", text=text,
                       showarrow=False, xanchor="left", yanchor="bottom", font=dict(size=11, color=color))


def comparison_figures(runs: list[Run]) -> dict[str, go.Figure]:
    """One figure per series, one trace per run that has it (fork traces from the fork step when the parent
    is compared too). Series: METRIC_SERIES, then REPLAYED_SERIES where cached."""
    colors = plotly.colors.qualitative.Plotly
    labels, starts = _labels(runs), _starts(runs)
    figures = {}
    for fig_id, column, title, y_title, log_x, log_y in METRIC_SERIES:
        fig = go.Figure()
        for i, run in enumerate(runs):
            metrics = run.metrics
            if column not in metrics:
                continue
            steps, values = metrics["step"], metrics[column]
            keep = np.isfinite(values) & ((steps >= 1) if log_x else True)
            if starts[i] is not None:
                keep &= steps >= starts[i][0]
            fig.add_trace(go.Scatter(x=steps[keep].astype(np.int64), y=values[keep], name=labels[i], mode="lines",
                                     line=dict(color=colors[i % len(colors)], simplify=False)))
        if fig.data:
            figures[fig_id] = _finish(fig, runs, starts, title, y_title, log_x, log_y)
    cache: dict[tuple[int, str], ReplayResult | None] = {}
    for fig_id, analysis, key, title, y_title, log_y in REPLAYED_SERIES:
        fig = go.Figure()
        for i, run in enumerate(runs):
            if (i, analysis) not in cache:
                cache[i, analysis] = cached_series(run, analysis)
            result = cache[i, analysis]
            if result is None:
                continue
            steps, values = result.steps, np.asarray(result[analysis][key], dtype=float)
            keep = steps >= starts[i][0] if starts[i] is not None else np.ones(len(steps), dtype=bool)
            fig.add_trace(go.Scatter(x=steps[keep], y=values[keep], name=labels[i], mode="lines",
                                     line=dict(color=colors[i % len(colors)], simplify=False)))
        if fig.data:
            figures[fig_id] = _finish(fig, runs, starts, title, y_title, False, log_y)
    return figures


def _finish(fig, runs, starts, title, y_title, log_x, log_y) -> go.Figure:
    colors = plotly.colors.qualitative.Plotly
    for i, start in starts.items():
        if start is not None:
            _fork_marker(fig, start[0], f"fork of {start[1]}", colors[i % len(colors)], log_x)
    fig = _layout(fig, title, "step", y_title, log_x=log_x, log_y=log_y)
    if y_title == "accuracy":
        fig.update_yaxes(range=[-0.02, 1.02])
    return fig


def _key_frequencies(run: Run) -> list[int] | None:
    """The key frequencies the run's progress replay used (cached), else those of its last checkpoint."""
    prepared = get_analysis("progress").folder(run.path) / "prepare.json"
    if prepared.is_file():
        try:
            return [int(k) for k in json.loads(prepared.read_text())["context"]["key_freqs"]]
        except (KeyError, ValueError, json.JSONDecodeError):
            pass
    if not run.steps:
        return None
    return key_frequencies(run.model(run.steps[-1]), run.task)


def summary_rows(runs: list[Run]) -> tuple[list[str], list[dict]]:
    """(columns, one row per run): outcome, key frequencies, wall time, parent, and every config key whose
    value differs between the runs."""
    configs = [r.config.to_dict() for r in runs]
    flat = [{f"{s}.{k}": v for s, sub in c.items() if isinstance(sub, dict) and s != "plugins"
             for k, v in sub.items()} | {"plugins": json.dumps(c["plugins"], sort_keys=True)} for c in configs]
    differing = [k for k in flat[0] if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
    columns = ["run", "status", "memorization step", "grokking step", "gap", "stable grokking step", "final step",
               "final test acc", "key frequencies", "wall time (s)", "forked from"] + differing
    rows = []
    for label, run, values in zip(_labels(runs), runs, flat):
        summary, record = run.summary, fork_record(run)
        rows.append({"run": label, "status": summary.get("status", "unknown"),
                     "memorization step": summary.get("memorization_step"),
                     "grokking step": summary.get("grokking_step"), "gap": summary.get("gap"),
                     "stable grokking step": summary.get("stable_grokking_step"),
                     "final step": summary.get("final_step"), "final test acc": summary.get("final_test_acc"),
                     "key frequencies": _key_frequencies(run), "wall time (s)": summary.get("wall_time_s"),
                     "forked from": f"{record['parent_name']} at {record['step']}" if record else None,
                     **{k: values.get(k) for k in differing}})
    return columns, rows


def _summary_table(columns: list[str], rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f'<td class="status-{html.escape(str(r[c]))}">{html.escape(_fmt(r[c]))}</td>' if c == "status"
        else f"<td>{html.escape(_fmt(r[c]))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<table class="compare"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_comparison(runs: list[str | Path | Run]) -> str:
    """The comparison page as a string (see the module docstring)."""
    runs = [r if isinstance(r, Run) else Run(r) for r in runs]
    if not runs:
        raise ValueError("no runs to compare; pass one or more run directories")
    figures = comparison_figures(runs)
    columns, rows = summary_rows(runs)
    labels = _labels(runs)
    header = (f"<h1>grokinterp comparison: {html.escape(', '.join(labels))}</h1>"
              f'<p class="sub">{len(runs)} runs · grokinterp {html.escape(_package_version())}</p>'
              f"<div style='overflow-x:auto'>{_summary_table(columns, rows)}</div>")
    titles = {fig_id: title for fig_id, _, title, *_ in METRIC_SERIES}
    titles |= {fig_id: title for fig_id, _, _, title, *_ in REPLAYED_SERIES}
    return offline_page(f"{' vs '.join(labels)} · grokinterp comparison", header, figures,
                        {"figures": list(figures), "runs": labels}, titles)


def write_comparison(runs: list[str | Path | Run], out: str | Path) -> Path:
    """Write the comparison page of `runs` to `out` (atomically; offline and self-contained); returns its path.

    Raises RunError naming a directory that is not a run (the CLI checks first and exits 2).
    """
    out = Path(out)
    atomic_write_bytes(out, render_comparison(runs).encode("utf-8"))
    return out
