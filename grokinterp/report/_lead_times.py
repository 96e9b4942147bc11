"""Figures of the early-warning alarm benchmark, as functions of plain rows (name, lead times, fired, n):
the SVG strip plot written beside docs/reproductions/warn.md, and its plotly twin for notebooks."""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go


def lead_time_strip_svg(rows: list[tuple[str, list[float], int, int]], width: int = 860) -> str:
    """A self-contained SVG strip plot of alarm lead times: one row per (name, leads, fired, n) of `rows`,
    a dot per grokking run whose alarm fired (x = lead), the median as a bar, "fired k/n" at the right."""
    leads = [v for _, ls, _, _ in rows for v in ls]
    lo, top_value = min([0.0] + leads), max([1.0] + leads)
    raw = (top_value - lo) / 5
    tick = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda t: (t < raw, t))
    lo, hi = math.floor(lo / tick) * tick, math.ceil(top_value / tick) * tick
    left, right, top, row_h = 230, 90, 40, 26
    height = top + row_h * len(rows) + 50
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="12">', '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="20" font-size="14">Lead time T_grok − alarm step (steps), per grokking run</text>']
    for k in range(int(round((hi - lo) / tick)) + 1):
        v = lo + k * tick
        parts.append(f'<line x1="{x(v):.1f}" y1="{top - 6}" x2="{x(v):.1f}" y2="{height - 44}" stroke="#e4e4e4"/>'
                     f'<text x="{x(v):.1f}" y="{height - 28}" text-anchor="middle">{v:.0f}</text>')
    if lo < 0:
        parts.append(f'<line x1="{x(0):.1f}" y1="{top - 6}" x2="{x(0):.1f}" y2="{height - 44}" stroke="#888"/>')
    for i, (name, ls, fired, n) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{html.escape(name)}</text>')
        for j, v in enumerate(sorted(ls)):
            jitter = ((j % 5) - 2) * 2.0
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y + jitter:.1f}" r="3.5" fill="#1f77b4" fill-opacity="0.7"/>')
        if ls:
            m = float(np.median(ls))
            parts.append(f'<line x1="{x(m):.1f}" y1="{y - 9:.1f}" x2="{x(m):.1f}" y2="{y + 9:.1f}" stroke="#d62728" '
                         'stroke-width="2.5"/>')
        parts.append(f'<text x="{width - right + 8}" y="{y + 4:.1f}">fired {fired}/{n}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle">steps before grokking '
                 '(red bar: median)</text></svg>')
    return "\n".join(parts) + "\n"


def lead_time_strip_figure(rows: list[tuple[str, list[float], int, int]]) -> go.Figure:
    """The same strip plot as a plotly figure (for notebooks), from the same rows."""
    fig = go.Figure()
    for name, leads, fired, n in rows:
        fig.add_trace(go.Box(x=leads, name=f"{name} ({fired}/{n})", boxpoints="all", jitter=0.4, pointpos=0,
                             orientation="h", marker=dict(color="#1f77b4"), line=dict(color="#d62728")))
    fig.update_layout(title="Lead time per diagnostic (T_grok − alarm step)", template="plotly_white",
                      showlegend=False, height=40 * len(rows) + 120, xaxis_title="steps before grokking")
    return fig
