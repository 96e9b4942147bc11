"""One self-contained, offline HTML page per run: a header summarising the run, then its figures.

plotly.js is inlined once from plotly's own offline bundle (`plotly.offline.get_plotlyjs`); the page
loads nothing from the network (no CDN, no MathJax, no fonts), so it opens from a laptop's disk.
"""

from __future__ import annotations

import html
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..analysis import ReplayResult, replay
from ..runs import Run, atomic_write_bytes
from ._figures import FIGURE_TITLES, HEIGHT, key_frequencies_of, run_figures


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1280px;
       color: #222; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 4px; } h2 { font-size: 1.1em; margin: 28px 0 4px; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 24px 8px 0; font-size: 0.9em; display: inline-table;
        vertical-align: top; }
td, th { border-bottom: 1px solid #e4e4e4; padding: 3px 10px; text-align: left; }
th { color: #555; font-weight: 600; }
.status-grokked { color: #2ca02c; font-weight: 700; } .status-memorized { color: #d68a00; font-weight: 700; }
.status-not_learned, .status-diverged { color: #d62728; font-weight: 700; }
nav a { margin-right: 12px; font-size: 0.9em; }
.figure { border: 1px solid #eee; border-radius: 6px; padding: 4px; margin-bottom: 12px; }
.doc { color: #555; font-size: 0.85em; margin: 2px 0 6px; }
"""


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "—"
    return str(value)


def _table(title: str, rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table><tr><th colspan="2">{html.escape(title)}</th></tr>{body}</table>'


def _package_version() -> str:
    try:
        return version("grokinterp")
    except PackageNotFoundError:
        return "unknown"


def _header(run: Run, result: ReplayResult | None) -> str:
    config, summary = run.config, run.summary
    status = summary.get("status", "unknown")
    t, m, o, tr = config.task, config.model, config.optim, config.train
    outcome = [
        ("status", status),
        ("memorization step", summary.get("memorization_step")),
        ("grokking step", summary.get("grokking_step")),
        ("gap", summary.get("gap")),
        ("stable grokking step", summary.get("stable_grokking_step")),
        ("final step", summary.get("final_step")),
        ("final train / test acc", f"{_fmt(summary.get('final_train_acc'))} / {_fmt(summary.get('final_test_acc'))}"),
        ("wall time (s)", summary.get("wall_time_s")),
    ]
    task = [("operation", f"a {t.op} b mod {t.p}"), ("train fraction", t.frac_train), ("data seed", t.seed)]
    model = [("layers × d_model", f"{m.n_layers} × {m.d_model}"), ("heads × d_head", f"{m.n_heads} × {m.d_head}"),
             ("d_mlp / act", f"{m.d_mlp} / {m.act_fn}"), ("norm", m.normalization_type or "none"),
             ("init / trained biases", f"{m.init} / {m.train_biases}"), ("init seed", m.seed)]
    optim = [("optimizer", o.name), ("lr", o.lr), ("weight decay", o.weight_decay), ("betas", (o.beta1, o.beta2)),
             ("warm-up", o.warmup_steps), ("step budget", tr.steps), ("checkpoint every", tr.ckpt_every),
             ("plug-ins", ", ".join(config.plugins) or "none")]
    tables = [_table("Outcome", outcome), _table("Task", task), _table("Model", model), _table("Training", optim)]
    if result is not None and len(result.steps):
        replayed = [("checkpoints replayed", len(result.steps)),
                    ("steps", f"{int(result.steps[0])} … {int(result.steps[-1])}"),
                    ("analyses", ", ".join(result)),
                    ("key frequencies", key_frequencies_of(result) if "spectra" in result.data else None)]
        tables.append(_table("Analyses", replayed))
    title = f"grokinterp report: {run.path.name}"
    return (f"<h1>{html.escape(title)}</h1>"
            f'<p class="sub">{html.escape(str(run.path.resolve()))} · status '
            f'<span class="status-{html.escape(status)}">{html.escape(status)}</span> · grokinterp '
            f"{html.escape(_package_version())}</p>" + "".join(tables))


def figure_sections(figures: dict[str, go.Figure], titles: dict[str, str] | None = None) -> tuple[str, str]:
    """(index links, sections): each figure in `<section id="section-<id>">` holding `<div id="fig-<id>">`,
    titled from `titles` (default the report's FIGURE_TITLES), plotly.js not included."""
    titles = FIGURE_TITLES if titles is None else titles
    nav = "".join(f'<a href="#section-{n}">{html.escape(titles.get(n, n))}</a>' for n in figures)
    sections = []
    for name, fig in figures.items():
        div = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=f"fig-{name}",
                          default_height=f"{HEIGHT}px", default_width="100%",
                          config={"displaylogo": False, "responsive": True})
        sections.append(f'<section id="section-{name}" class="figure" data-figure="{html.escape(name)}">'
                        f"<h2>{html.escape(titles.get(name, name))}</h2>{div}</section>")
    return nav, "".join(sections)


def script_json(obj) -> str:
    """JSON safe inside a `<script>` element: `<`, `>` and `&` as \\u escapes, so no value (a run named
    `<!--<script`) can end or re-open the element; `json.loads` reads back the same values.

    >>> script_json({"run": "</script><!--<script"})
    '{"run": "\\\\u003c/script\\\\u003e\\\\u003c!--\\\\u003cscript"}'
    """
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def offline_page(title: str, header: str, figures: dict[str, go.Figure], meta: dict,
                 titles: dict[str, str] | None = None) -> str:
    """A self-contained page: `header` HTML, an index, the figures, and `meta` as JSON in
    `<script id="report-meta">`; plotly.js inlined once, nothing loaded from the network."""
    nav, sections = figure_sections(figures, titles)
    meta_json = script_json(meta)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
            f"<body>{header}<nav>{nav}</nav>{sections}"
            f'<script type="application/json" id="report-meta">{meta_json}</script>'
            "</body></html>\n")


def render_report(run: Run, result: ReplayResult | None, figures: dict[str, go.Figure] | None = None) -> str:
    """The report page as a string: header, an index, then each figure in its own `<div id="fig-<name>">`."""
    figures = run_figures(run, result) if figures is None else figures
    return offline_page(f"{run.path.name} · grokinterp report", _header(run, result), figures,
                        {"figures": list(figures), "run": run.path.name})


def write_report(run: Run | str | Path, result: ReplayResult | None, path: str | Path | None = None) -> Path:
    """Write the run's offline report (atomically) and return its path.

    Args:
        run: a Run or its directory.
        result: a ReplayResult with "spectra" and/or "progress" (their figures are skipped when absent),
            or None for the training curves only.
        path: where to write; default `<run>/report.html`.
    """
    run = run if isinstance(run, Run) else Run(run)
    path = run.path / "report.html" if path is None else Path(path)
    atomic_write_bytes(path, render_report(run, result).encode("utf-8"))
    return path


def analyze_run(path: str | Path, workers: int = 1, stride: int = 1, progress: bool = True,
                analyses: list[str] | None = None, out: str | Path | None = None,
                cache_dir: str | Path | None = None) -> Path:
    """Replay the standard analyses over a run (cached in `<run>/analysis/`) and write `<run>/report.html`.

    This is `grokinterp analyze RUN` and `make analyze`. A second call recomputes nothing.

    Args:
        path: the run directory.
        workers: parallel replay processes; stride: replay every stride-th checkpoint (and the last).
        progress: show a progress bar.
        analyses: registered analyses to replay; default the standard ones (`STANDARD_ANALYSES`).
        out: the report's path (default `<run>/report.html`); cache_dir: the replay cache (default
            `<run>/analysis`): both elsewhere for a run on read-only media.

    Returns:
        The report's path.
    """
    run = Run(path)
    result = replay(run, analyses, stride=stride, workers=workers, progress=progress, cache_dir=cache_dir)
    return write_report(run, result, out)
