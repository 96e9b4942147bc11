"""The lab's Dash app: the Runs, Launch, Wavetable and Compare views and their callbacks.

Every name that comes back from the browser (a run picked, a run to create) goes through `RunsDir`;
every text the page shows is a React text node or a DataTable cell (escaped by React), and run names
in figures are HTML-escaped (plotly renders a few tags in labels). Live views poll: one `dcc.Interval`
tick every `poll_ms`, each callback returning `no_update` when nothing it shows has changed.
"""

from __future__ import annotations

import hmac
import html as html_text
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from ..analysis import replay
from ..config import PRESETS, ConfigError
from ..report import comparison_figures, key_frequency_figure, neuron_frequency_histogram
from ..runs import Run, RunError
from ._launch import ARMS, CLI_PREFIX, Launcher, arm_overrides, form_config
from ._live import RunWatcher, _held_locks
from ._paths import PathRefused, RunsDir
from ._wavetable import wavetable, wavetable_figure

TOKEN_COOKIE = "grokinterp_lab_token"
MAX_POINTS = 4000  # live overlays thin longer series to this many points (the offline report draws them all)
TABLE_COLUMNS = ("run", "status", "step", "of", "memorized", "grokked", "gap", "steps/s", "test acc")
ARM_LABELS = {"none": "preset only", "stencil": "add stencil (the probe-stencil write-up's probe)", "grokfast": "Grokfast (EMA)",
              "beta1": "Adam beta1"}
COLORS = plotly.colors.qualitative.Plotly
MESSAGE = {"whiteSpace": "pre-wrap", "fontSize": 14}
CSS = {"font-family": "system-ui, sans-serif", "margin": "0 1.5rem"}


def _label(name: str) -> str:
    return html_text.escape(name)


def _thin(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(steps) <= MAX_POINTS:
        return steps, values
    keep = np.unique(np.linspace(0, len(steps) - 1, MAX_POINTS).round().astype(int))
    return steps[keep], values[keep]


def overlay_figure(curves: dict[str, dict[str, np.ndarray]], metric: str, title: str, y_title: str,
                   log_y: bool) -> go.Figure:
    """Train (dashed) and test (solid) `metric` of each run over a log step axis, one colour per run."""
    fig = go.Figure()
    for i, (name, c) in enumerate(curves.items()):
        for split, dash in (("train", "dash"), ("test", None)):
            values = c[f"{split}_{metric}"]
            keep = np.isfinite(values) & (c["step"] >= 1)
            x, y = _thin(c["step"][keep].astype(np.int64), values[keep])
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{_label(name)} {split}",
                                     line=dict(color=COLORS[i % len(COLORS)], dash=dash)))
    fig.update_layout(title=title, template="plotly_white", height=380, uirevision=metric,
                      margin=dict(l=60, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="step", type="log")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear")
    if metric == "acc":
        fig.update_yaxes(range=[-0.02, 1.02])
    return fig


STATUS_COLORS = {"running": "#e3f2e3", "stopped": "#fbf0dc", "grokked": "#ffffff", "memorized": "#f6f6f6"}
CELL = {"padding": "3px 10px", "borderBottom": "1px solid #ddd", "textAlign": "right", "fontFamily": "monospace",
        "fontSize": 13}


def runs_table(rows: list[dict]) -> html.Table:
    """The Runs table (text cells only: React escapes them)."""
    head = html.Thead(html.Tr([html.Th(c, style={**CELL, "fontFamily": "inherit"}) for c in TABLE_COLUMNS]))
    body = html.Tbody([html.Tr([html.Td("" if r[c] is None else str(r[c]), style=CELL) for c in TABLE_COLUMNS],
                               style={"background": STATUS_COLORS.get(r["status"], "#fde8e8")},
                               **{"data-run": r["run"], "data-status": r["status"]}) for r in rows])
    return html.Table([head, body], style={"borderCollapse": "collapse", "width": "100%"})


def _runs_view() -> html.Div:
    return html.Div([
        html.P("Every run under RUNS_DIR. Tick runs to overlay them (none ticked: the running ones, else the "
               "latest); curves follow metrics.csv as the runs write it."),
        html.Div(id="runs-table"),
        html.Div([html.B("overlay / stop / resume: "), dcc.Checklist(id="runs-select", options=[], value=[], inline=True,
                                                                   inputStyle={"marginLeft": "0.8em"})],
                 style={"margin": "0.6em 0", "display": "flex", "flexWrap": "wrap"}),
        html.Div([html.Button("Stop", id="stop-btn"), html.Button("Resume", id="resume-btn"),
                  html.Span(id="runs-message", style={"marginLeft": "1em"})], style={"margin": "0.6em 0"}),
        html.Div([dcc.Graph(id="runs-acc", style={"flex": 1}), dcc.Graph(id="runs-loss", style={"flex": 1})],
                 style={"display": "flex", "gap": "1em"}),
        dcc.Store(id="runs-rows"),
        dcc.Store(id="runs-sig"),
    ])


def _launch_view() -> html.Div:
    row = {"margin": "0.5em 0"}
    return html.Div([
        html.P("Start a run from a preset with --KEY=VALUE overrides (as on `grokinterp train`), or an arm of a "
               "study. Checked like the command line: a bad value shows its message and starts nothing."),
        html.Div([html.Label("run name "), dcc.Input(id="launch-name", type="text", placeholder="e.g. quick_stencil",
                                                     debounce=False, style={"width": "22em"})], style=row),
        html.Div([html.Label("preset "), dcc.Dropdown(id="launch-preset", options=sorted(PRESETS), value="quick",
                                                      clearable=False, style={"width": "16em"})], style=row),
        html.Div([html.Label("overrides"), dcc.Textarea(id="launch-overrides", placeholder="--train.steps=2000 --optim.lr=3e-3",
                                                        style={"width": "100%", "height": "3.5em"})], style=row),
        html.Div([html.Label("arm "), dcc.RadioItems(id="launch-arm", options=[{"label": ARM_LABELS[a], "value": a} for a in ARMS],
                                                     value="none", inline=True)], style=row),
        html.Div(id="arm-stencil", children=[
            html.Label("offsets "), dcc.Checklist(id="stencil-offsets", inline=True, value=[-1, 0, 1], options=[
                {"label": " -1 backward admissibility ", "value": -1}, {"label": " 0 functional coherence ", "value": 0},
                {"label": " +1 forward lookahead ", "value": 1}]),
            html.Label(" lambda "), dcc.Input(id="stencil-lamb", type="number", value=0.1, step="any")], style=row),
        html.Div(id="arm-grokfast", children=[
            html.Label("alpha "), dcc.Input(id="grokfast-alpha", type="number", value=0.98, step="any"),
            html.Label(" lambda "), dcc.Input(id="grokfast-lamb", type="number", value=2.0, step="any")], style=row),
        html.Div(id="arm-beta1", children=[html.Label("beta1 "), dcc.Input(id="beta1", type="number", value=0.9,
                                                                            step="any")], style=row),
        html.Button("Start", id="launch-btn"),
        html.Pre(id="launch-message", style=MESSAGE),
    ])


def _wavetable_view() -> html.Div:
    return html.Div([
        html.Div([html.Label("run "), dcc.Dropdown(id="wt-run", options=[], style={"width": "22em"}),
                  html.Span(id="wt-step-label", style={"marginLeft": "1em", "fontFamily": "monospace"})],
                 style={"display": "flex", "alignItems": "center", "margin": "0.5em 0"}),
        dcc.Slider(id="wt-slider", min=0, max=0, step=1, value=0, marks=None, updatemode="mouseup",
                   tooltip={"always_visible": False}),
        dcc.Store(id="wt-steps", data=[]),
        dcc.Loading(html.Div([dcc.Graph(id="wt-table", style={"flex": 3}),
                              html.Div([dcc.Graph(id="wt-spectrum"), dcc.Graph(id="wt-hist")], style={"flex": 2})],
                             style={"display": "flex", "gap": "1em"})),
    ])


def _compare_view() -> html.Div:
    return html.Div([
        html.Div([html.Label("runs "), dcc.Dropdown(id="cmp-runs", options=[], multi=True, style={"minWidth": "30em"})],
                 style={"display": "flex", "alignItems": "center", "margin": "0.5em 0"}),
        html.Div(id="cmp-figures"),
        dcc.Store(id="cmp-sig"),
    ])


class Lab:
    """The server side of one lab: its RUNS_DIR, launcher, watchers and caches."""

    def __init__(self, runs_dir: str | Path, slots: int | None = None):
        self.runs = RunsDir(runs_dir)
        self.launcher = Launcher(self.runs, slots)
        self.watcher = RunWatcher()
        self._wt_cache: OrderedDict = OrderedDict()
        self._wt_lock = threading.Lock()

    def table(self) -> list[dict]:
        held = _held_locks()
        rows = []
        for name in self.runs.names():
            try:
                row = self.watcher.status(name, self.runs.run_path(name), held)
            except (PathRefused, OSError, ValueError):
                continue
            code = self.launcher.exit_code(name)
            if code not in (None, 0) and row["status"] in ("stopped", "unknown"):
                row["status"] = f"failed (exit {code}, see .lab/logs)" if code > 0 else "stopped"
            rows.append(row)
        return rows

    def latest(self) -> list[str]:
        """The run whose metrics changed last (shown when none is ticked and none is running)."""
        stamped = []
        for name in self.runs.names():
            try:
                stamped.append(((self.runs.run_path(name) / "metrics.csv").stat().st_mtime, name))
            except (OSError, PathRefused):
                continue
        return [max(stamped)[1]] if stamped else []

    def curves(self, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for name in names:
            try:
                out[name] = self.watcher.curves(self.runs.run_path(name))
            except PathRefused:
                continue
        return out

    def wavetable_figures(self, name: str, step: int) -> tuple[go.Figure, go.Figure, go.Figure]:
        path = self.runs.checked_file(name, "ckpt", f"step_{step:07d}.safetensors")
        key = (str(path), step, path.stat().st_mtime_ns)
        with self._wt_lock:
            if key in self._wt_cache:
                self._wt_cache.move_to_end(key)
                return self._wt_cache[key]
        run = Run(self.runs.run_path(name))
        result = replay(run, ["spectra"], steps=[step], progress=False)  # cached in <run>/analysis/spectra
        table = wavetable(run.model(step), run.task, result.at("spectra", step))
        figures = (wavetable_figure(table, step, f"{name} · "), key_frequency_figure(result),
                   neuron_frequency_histogram(result, step))
        with self._wt_lock:
            self._wt_cache[key] = figures
            while len(self._wt_cache) > 24:
                self._wt_cache.popitem(last=False)
        return figures


def create_app(runs_dir: str | Path, token: str | None = None, poll_ms: int = 2000, slots: int | None = None) -> Dash:
    """The lab as a Dash app over `runs_dir` (see `grokinterp.app`); `token`: every request must carry it
    (`?token=...` once, then a cookie)."""
    lab = Lab(runs_dir, slots)
    app = Dash(__name__, title="grokinterp lab", update_title=None, suppress_callback_exceptions=False)
    app.lab = lab
    if token:
        _require_token(app.server, token)
    app.layout = html.Div(style=CSS, children=[
        html.H2("grokinterp lab", style={"marginBottom": 0}),
        html.Div(f"RUNS_DIR {lab.runs.root}", style={"color": "#666", "fontSize": 13}),
        dcc.Interval(id="tick", interval=poll_ms),
        dcc.Tabs(id="tabs", value="runs", children=[
            dcc.Tab(label="Runs", value="runs", children=_runs_view()),
            dcc.Tab(label="Launch", value="launch", children=_launch_view()),
            dcc.Tab(label="Wavetable", value="wavetable", children=_wavetable_view()),
            dcc.Tab(label="Compare", value="compare", children=_compare_view()),
        ]),
    ])
    _callbacks(app, lab)
    return app


def _require_token(server, token: str) -> None:
    from flask import abort, request

    def valid(given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    @server.before_request
    def _check():
        if not (valid(request.args.get("token")) or valid(request.cookies.get(TOKEN_COOKIE))):
            abort(403)

    @server.after_request
    def _remember(response):  # only a request that carried the right token in its URL gets the cookie
        if valid(request.args.get("token")):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response


def _callbacks(app: Dash, lab: Lab) -> None:
    @app.callback(Output("runs-table", "children"), Output("runs-rows", "data"), Output("runs-select", "options"),
                  Output("wt-run", "options"), Output("cmp-runs", "options"), Output("wt-run", "value"),
                  Input("tick", "n_intervals"), State("wt-run", "options"), State("runs-rows", "data"),
                  State("wt-run", "value"))
    def refresh(_, shown, old_rows, wt_run):
        rows = lab.table()
        names = [r["run"] for r in rows]
        options = no_update if names == shown else names
        # on the page's first refresh the Wavetable gets the latest run (after `make train`: checkpoints/quick)
        wt_value = (lab.latest() or [None])[0] if not shown and wt_run is None and names else no_update
        if rows == old_rows:
            return no_update, no_update, options, options, options, wt_value
        return runs_table(rows), rows, options, options, options, wt_value

    @app.callback(Output("runs-acc", "figure"), Output("runs-loss", "figure"), Output("runs-sig", "data"),
                  Input("runs-rows", "data"), Input("runs-select", "value"), State("runs-sig", "data"))
    def runs_curves(rows, selected, shown):
        names = list(selected or []) or [r["run"] for r in rows or [] if r["status"] == "running"] or lab.latest()
        curves = lab.curves(names)
        signature = [names, [len(c["step"]) for c in curves.values()]]
        if signature == shown:
            return no_update, no_update, no_update
        return (overlay_figure(curves, "acc", "Accuracy", "accuracy", False),
                overlay_figure(curves, "loss", "Loss", "cross-entropy", True), signature)

    @app.callback(Output("runs-message", "children"), Input("stop-btn", "n_clicks"), Input("resume-btn", "n_clicks"),
                  State("runs-select", "value"), prevent_initial_call=True)
    def stop_resume(_stop, _resume, selected):
        if not selected:
            return "tick the runs to stop or resume first"
        done = []
        for name in selected:
            try:
                if ctx.triggered_id == "stop-btn":
                    done.append(f"{name}: stopped" if lab.launcher.stop(name) else
                                f"{name}: not running from this lab (stop it where it was started)")
                else:
                    lab.launcher.resume(name)
                    done.append(f"{name}: resuming")
            except (ConfigError, PathRefused, RunError) as e:
                done.append(f"{name}: {e}")
        return "; ".join(done)

    @app.callback(Output("arm-stencil", "style"), Output("arm-grokfast", "style"), Output("arm-beta1", "style"),
                  Input("launch-arm", "value"))
    def arm_fields(arm):
        return [{"margin": "0.5em 0", "display": "block" if arm == a else "none"} for a in ("stencil", "grokfast", "beta1")]

    @app.callback(Output("launch-message", "children"), Output("launch-message", "className"),
                  Output("launch-message", "style"),
                  Output("runs-select", "value"),
                  Input("launch-btn", "n_clicks"),
                  State("launch-name", "value"), State("launch-preset", "value"), State("launch-overrides", "value"),
                  State("launch-arm", "value"), State("stencil-offsets", "value"), State("stencil-lamb", "value"),
                  State("grokfast-alpha", "value"), State("grokfast-lamb", "value"), State("beta1", "value"),
                  prevent_initial_call=True)
    def launch(_, name, preset_name, overrides, arm, offsets, lamb, alpha, grokfast_lamb, beta1):
        try:
            config = form_config(preset_name, overrides or "", arm_overrides(arm, offsets, lamb, alpha, grokfast_lamb, beta1))
            lab.launcher.start((name or "").strip(), config)
        except (ConfigError, PathRefused) as e:
            return CLI_PREFIX + str(e), "error", {**MESSAGE, "color": "#b00020"}, no_update
        return (f"started {name.strip()}: it is ticked in Runs, where its curves grow", "ok",
                {**MESSAGE, "color": "#1b5e20"}, [name.strip()])

    @app.callback(Output("wt-steps", "data"), Output("wt-slider", "max"), Output("wt-slider", "value"),
                  Input("wt-run", "value"), Input("tick", "n_intervals"), State("wt-steps", "data"),
                  State("wt-slider", "value"))
    def wt_steps(name, _, old_steps, index):
        if not name:
            return [], 0, 0
        try:
            steps = Run(lab.runs.run_path(name)).steps
        except (PathRefused, RunError):
            return [], 0, 0
        if ctx.triggered_id != "wt-run" and steps == old_steps:
            return no_update, no_update, no_update
        if ctx.triggered_id == "wt-run" or not old_steps:
            return steps, max(len(steps) - 1, 0), max(len(steps) - 1, 0)
        return steps, max(len(steps) - 1, 0), no_update

    @app.callback(Output("wt-table", "figure"), Output("wt-spectrum", "figure"), Output("wt-hist", "figure"),
                  Output("wt-step-label", "children"),
                  Input("wt-run", "value"), Input("wt-slider", "value"), State("wt-steps", "data"))
    def wt_figures(name, index, steps):
        if not name or not steps:
            try:
                steps = Run(lab.runs.run_path(name)).steps if name else []
            except (PathRefused, RunError):
                steps = []
            if not steps:
                return go.Figure(), go.Figure(), go.Figure(), "pick a run"
        index = min(int(index or 0), len(steps) - 1) if ctx.triggered_id != "wt-run" else len(steps) - 1
        step = int(steps[index])
        try:
            figures = lab.wavetable_figures(name, step)
        except (PathRefused, RunError, FileNotFoundError) as e:
            return go.Figure(), go.Figure(), go.Figure(), str(e)
        return (*figures, f"step {step} ({index + 1} of {len(steps)} checkpoints)")

    @app.callback(Output("cmp-figures", "children"), Output("cmp-sig", "data"), Input("tick", "n_intervals"),
                  Input("cmp-runs", "value"), Input("tabs", "value"), State("cmp-sig", "data"))
    def compare(_, names, tab, shown):
        if tab != "compare" or not names:
            return (no_update, no_update) if tab != "compare" else (html.P("pick runs to compare"), None)
        runs = []
        for name in names:
            try:
                runs.append(Run(lab.runs.run_path(name)))
            except (PathRefused, RunError):
                continue
        signature = [[str(r.path), (r.path / "metrics.csv").stat().st_size if (r.path / "metrics.csv").is_file()
                      else 0] for r in runs]
        if signature == shown:
            return no_update, no_update
        figures = comparison_figures(runs)
        graphs = []
        for fig_id, fig in figures.items():
            for trace in fig.data:
                trace.name = _label(trace.name or "")
            fig.update_layout(uirevision=fig_id)
            graphs.append(dcc.Graph(id=f"cmp-{fig_id}", figure=fig))
        return graphs, signature
