"""The sweep report: offline HTML (plotly inlined once, no CDN) with the per-cell table, median gap vs a
swept key with its IQR band, grok rate vs the key, and per-run curves of each cell (collapsed)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ._aggregate import STAT_COLUMNS, aggregate_sweep, collect
from ._grid import read_sweep_file

REPORT_FILE = "report.html"


def _x_and_series(rows: list[dict], cell_keys: list[str], x_key: str | None):
    """Group rows into series: (x_key, [(label, rows sorted by x)]); one series per value of the other keys."""
    if not cell_keys:
        return None, [("all runs", rows)]
    x_key = x_key or cell_keys[0]
    if x_key not in cell_keys:
        raise ValueError(f"x_key={x_key!r} is not a swept key of this sweep; choose one of {cell_keys}")
    others = [k for k in cell_keys if k != x_key]
    series: dict[str, list] = {}
    for row in rows:
        label = ", ".join(f"{k}={row[k]}" for k in others) or "median"
        series.setdefault(label, []).append(row)
    numeric = all(isinstance(r[x_key], (int, float)) and not isinstance(r[x_key], bool) for r in rows)
    key = (lambda r: r[x_key]) if numeric else (lambda r: str(r[x_key]))
    return x_key, [(label, sorted(rs, key=key)) for label, rs in series.items()]


def _nan(v):
    return np.nan if v is None else v


def gap_figure(rows: list[dict], cell_keys: list[str], x_key: str | None = None):
    """Median gap (steps) vs the swept key, with the interquartile range as a shaded band (grokked runs only).

    Args:
        rows: `aggregate` rows; cell_keys: the swept non-seed keys; x_key: the x axis (default the first).
    """
    import plotly.graph_objects as go

    x_key, series = _x_and_series(rows, cell_keys, x_key)
    fig = go.Figure()
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for i, (label, rs) in enumerate(series):
        x = [r[x_key] for r in rs] if x_key else ["all"] * len(rs)
        color = colors[i % len(colors)]
        banded = [(xi, r) for xi, r in zip(x, rs) if r["gap_q25"] is not None]  # a gap in the band breaks the fill
        xb = [xi for xi, _ in banded]
        q25, q75 = [r["gap_q25"] for _, r in banded], [r["gap_q75"] for _, r in banded]
        fig.add_trace(go.Scatter(x=xb + xb[::-1], y=q75 + q25[::-1], fill="toself", fillcolor=color, opacity=0.2,
                                 line={"width": 0}, hoverinfo="skip", showlegend=False, name=f"IQR {label}"))
        fig.add_trace(go.Scatter(
            x=x, y=[_nan(r["median_gap"]) for r in rs], mode="lines+markers", name=label, line={"color": color},
            customdata=[[r["n_grokked"], r["n"], _nan(r["gap_q25"]), _nan(r["gap_q75"])] for r in rs],
            hovertemplate="%{x}: median gap %{y} (IQR %{customdata[2]}-%{customdata[3]}), "
                          "%{customdata[0]}/%{customdata[1]} grokked<extra></extra>"))
    fig.update_layout(title="Median grokking gap (shaded: IQR over seeds)", xaxis_title=x_key or "",
                      yaxis_title="gap (steps)", template="plotly_white")
    return fig


def rate_figure(rows: list[dict], cell_keys: list[str], x_key: str | None = None):
    """Grok rate, fraction never learning and fraction generalizing without memorizing vs the swept key."""
    import plotly.graph_objects as go

    x_key, series = _x_and_series(rows, cell_keys, x_key)
    fig = go.Figure()
    styles = {"grok_rate": "solid", "frac_not_learned": "dot", "frac_generalizes_without_memorizing": "dash"}
    for label, rs in series:
        x = [r[x_key] for r in rs] if x_key else ["all"] * len(rs)
        for column, dash in styles.items():
            fig.add_trace(go.Scatter(x=x, y=[_nan(r[column]) for r in rs], mode="lines+markers",
                                     name=f"{column} ({label})" if len(series) > 1 else column,
                                     line={"dash": dash}))
    fig.update_layout(title="Grok rate and outcomes over seeds", xaxis_title=x_key or "", yaxis_title="fraction of runs",
                      yaxis_range=[-0.05, 1.05], template="plotly_white")
    return fig


def run_curves(sweep_dir: str | Path, cell: dict | str, metrics: tuple[str, ...] = ("test_acc", "train_acc")):
    """Per-run curves of one cell: each metric vs step for every finished run in it.

    Args:
        sweep_dir: the sweep directory.
        cell: {cell key: value} for every swept non-seed key (e.g. {"optim.beta1": 0.9}), or one run's name.
        metrics: metrics.csv columns to draw (test columns are drawn at their evaluated steps only).

    Returns:
        A plotly Figure, one line per (run, metric).
    """
    import plotly.colors
    import plotly.graph_objects as go

    from ..runs import read_metrics_csv

    sweep_dir = Path(sweep_dir)
    records = [r for r in collect(sweep_dir) if _in_cell(r, cell)]
    if not records:
        raise ValueError(f"no run of {sweep_dir} matches cell {cell!r}; cells: "
                         f"{sorted({json.dumps(_cell_of(r, read_sweep_file(sweep_dir)['cell_keys'])) for r in collect(sweep_dir)})}")
    fig = go.Figure()
    colors = plotly.colors.qualitative.Plotly
    dashes = ["solid", "dot", "dash", "dashdot"]
    for i, rec in enumerate(r for r in records if (r.path / "metrics.csv").is_file()):
        rows = read_metrics_csv(rec.path / "metrics.csv")
        for j, metric in enumerate(metrics):  # one colour per run, one dash per metric
            pts = [(r["step"], r[metric]) for r in rows if metric in r and r[metric] == r[metric]]
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines",
                                     name=f"{rec.name} {metric}", legendgroup=rec.name, opacity=0.8,
                                     line={"width": 1, "color": colors[i % len(colors)], "dash": dashes[j % len(dashes)]}))
    title = cell if isinstance(cell, str) else ", ".join(f"{k}={v}" for k, v in cell.items()) or "all runs"
    fig.update_layout(title=f"Per-run curves: {title}", xaxis_title="step", yaxis_title=", ".join(metrics),
                      template="plotly_white")
    return fig


def _cell_of(record, cell_keys):
    return {k: record.values[k] for k in cell_keys}


def _in_cell(record, cell) -> bool:
    if isinstance(cell, str):
        return record.name == cell
    return all(k in record.values and record.values[k] == v for k, v in cell.items())


def _table(rows: list[dict], cell_keys: list[str]) -> str:
    columns = cell_keys + list(STAT_COLUMNS)
    fmt = lambda v: "" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))  # noqa: E731
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def sweep_report(sweep_dir: str | Path, x_key: str | None = None, curves: bool = True, out: str | Path | None = None) -> Path:
    """Write the sweep's offline report (and refresh aggregate.csv); returns the HTML path.

    Args:
        sweep_dir: the sweep directory.
        x_key: the swept key on the x axis (default: the first non-seed grid key).
        curves: embed every cell's per-run curves in collapsed sections (large sweeps: pass False and call
            `run_curves` on demand).
        out: where to write (default `<sweep_dir>/report.html`).
    """
    import plotly.offline

    from ..runs import atomic_write_bytes

    sweep_dir = Path(sweep_dir)
    info = read_sweep_file(sweep_dir)
    cell_keys = info["cell_keys"]
    rows = aggregate_sweep(sweep_dir, write=True)
    div = lambda fig: fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%")  # noqa: E731
    parts = [f"<h1>Sweep {html.escape(sweep_dir.name)}</h1>",
             f"<p>preset <code>{html.escape(info['spec']['preset'])}</code>, overrides "
             f"<code>{html.escape(json.dumps(info['spec']['overrides']))}</code>; grid axes "
             f"<code>{html.escape(', '.join(info['axes']))}</code> (seeds pooled: "
             f"<code>{html.escape(', '.join(info['seed_keys']) or 'none')}</code>); {len(info['runs'])} runs.</p>",
             f"<div style='overflow-x:auto'>{_table(rows, cell_keys)}</div>", div(gap_figure(rows, cell_keys, x_key)), div(rate_figure(rows, cell_keys, x_key))]
    if curves:
        parts.append("<h2>Per-run curves</h2>")
        for row in rows:
            cell = {k: row[k] for k in cell_keys}
            if row["n"]:
                label = ", ".join(f"{k}={v}" for k, v in cell.items()) or "all runs"
                parts.append(f"<details><summary>{html.escape(label)} ({row['n']} runs)</summary>"
                             f"{div(run_curves(sweep_dir, cell))}</details>")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>grokinterp sweep "
        f"{html.escape(sweep_dir.name)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "</style><script type='text/javascript'>" + plotly.offline.get_plotlyjs() + "</script></head><body>"
        + "\n".join(parts)
        # a plot drawn inside a closed <details> has no width: resize it when opened
        + "<script>document.querySelectorAll('details').forEach(d=>d.addEventListener('toggle',()=>"
          "d.querySelectorAll('.plotly-graph-div').forEach(g=>Plotly.Plots.resize(g))));</script></body></html>"
    )
    path = Path(out) if out is not None else sweep_dir / REPORT_FILE
    atomic_write_bytes(path, page.encode())
    return path
