"""The seeds' experiments as named reproductions: `grokinterp repro NAME` (`make repro-NAME`).

A reproduction is a sweep (ordinary run directories, finished runs skipped, interrupted ones resumed)
plus a table that sets the measured numbers beside the seed's, written to
`docs/reproductions/<name>.md` whatever it shows. Each states how it is scaled down from the seed to fit
a 2-core CPU (fewer seeds, a faster preset). Figures are the sweep report's (`<out>/report.html`) and,
when an export backend is installed, SVG files beside the markdown.

>>> from grokinterp.experiments import REPRODUCTIONS, run_reproduction
>>> sorted(REPRODUCTIONS)                                            # doctest: +SKIP
['beta1', 'cycle', 'gap', 'grokfast', 'stencil', 'transplant', 'wd']
>>> run_reproduction("stencil", workers=2)                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..sweep import SweepSpec, aggregate, collect, run_sweep, sweep_report
from ..sweep._backends import available_cores

DOCS_DIR = Path("docs/reproductions")


@dataclass(frozen=True)
class Reproduction:
    """One of the seeds' experiments: what runs, what the seed reported, how to tabulate it."""

    name: str
    title: str
    claim: str  # what the seed reports, in a sentence or two
    spec: SweepSpec
    scale: str  # how and why it is scaled down from the seed
    reference: dict = field(default_factory=dict)  # cell label -> the seed's number for that cell
    table: Callable | None = None  # (records, spec, reference) -> (columns, rows); None: per-cell statistics
    x_key: str | None = None  # the sweep report's x axis
    figures: Callable | None = None  # out -> {name: figure} for the docs; None: the sweep's gap and rate figures
    post: Callable | None = None  # (out, progress) -> None: runs that start from the sweep's runs (transplants)

    def with_seeds(self, n: int) -> "Reproduction":
        """The same experiment with replicate seeds 0..n-1 (the seed key of its grid)."""
        keys = self.spec.replicate_keys
        if not keys:
            raise ConfigError(f"reproduction {self.name!r} has no seed axis to resize")
        return replace(self, spec=replace(self.spec, grid={**self.spec.grid, keys[0]: list(range(n))}),
                       scale=f"{self.scale} This invocation: {n} seeds per cell (`--seeds {n}`).")


def cell_label(values: dict, cell_keys: list[str]) -> str:
    return ", ".join(f"{values[k]}" if k == "arm" else f"{k.split('.')[-1]}={values[k]}" for k in cell_keys) or "all"


def _fmt(x, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _finished_in(records, cell: dict, keys: list[str]) -> list:
    """The finished runs of one aggregated cell."""
    return [r for r in records if r.finished and all(r.values[k] == cell[k] for k in keys)]


def _median_wall(members) -> str:
    walls = [r.summary["wall_time_s"] for r in members if r.summary.get("wall_time_s") is not None]
    return _fmt(float(np.median(walls)) if walls else None)


def cell_table(records, spec: SweepSpec, reference: dict) -> tuple[list[str], list[list]]:
    """Per cell: runs, grok rate, median memorization and grokking steps, median gap [IQR], fractions that
    never learn or generalize without memorizing, median wall time, and the seed's number."""
    columns = ["cell", "runs", "grok rate", "median memorized", "median grokked", "median gap [IQR]",
               "not learned", "generalizes w/o memorizing", "median wall s", "seed reports"]
    rows = []
    for cell in aggregate(records, spec.cell_keys):
        label = cell_label(cell, spec.cell_keys)
        gap = (f"{_fmt(cell['median_gap'])} [{_fmt(cell['gap_q25'])}–{_fmt(cell['gap_q75'])}]"
               if cell["median_gap"] is not None else "–")
        rows.append([label, f"{cell['n']}" + (f" (+{cell['n_unfinished']} unfinished)" if cell["n_unfinished"] else ""),
                     _fmt(cell["grok_rate"], 2), _fmt(cell["median_memorization_step"]),
                     _fmt(cell["median_grokking_step"]), gap, _fmt(cell["frac_not_learned"], 2),
                     _fmt(cell["frac_generalizes_without_memorizing"], 2),
                     _median_wall(_finished_in(records, cell, spec.cell_keys)), reference.get(label, "–")])
    return columns, rows


def speedup_table(records, spec: SweepSpec, reference: dict) -> tuple[list[str], list[list]]:
    """Per arm (one run each, or medians over seeds): grokking step and speed-up vs the "baseline" arm."""
    columns = ["arm", "runs", "status", "memorized", "grokked", "speed-up vs baseline", "seed: epochs (speed-up)",
               "wall s"]
    cells = aggregate(records, ["arm"])
    base = next((c["median_grokking_step"] for c in cells if c["arm"] == "baseline"), None)
    rows = []
    for cell in cells:
        members = _finished_in(records, cell, ["arm"])
        statuses = sorted({r.summary["status"] for r in members}) or ["unfinished"]
        grok = cell["median_grokking_step"]
        speedup = f"{base / grok:.2f}x" if base and grok else "–"
        rows.append([cell["arm"], str(cell["n"]), "/".join(statuses), _fmt(cell["median_memorization_step"]),
                     _fmt(grok), speedup, reference.get(cell["arm"], "–"), _median_wall(members)])
    return columns, rows


def cycle_table(records, spec: SweepSpec, reference: dict) -> tuple[list[str], list[list]]:
    """Per run after grokking: Lomb-Scargle period of test accuracy and weight norm, amplitudes, phase
    locking (PLV), collapses below 0.5 and re-grokking (grokinterp.analysis.post_grokking_dynamics)."""
    columns = ["run", "status", "grokked", "stable grok", "acc period", "acc amplitude", "norm period",
               "PLV (norm, acc)", "collapses (min acc, re-grokked)", "seed reports"]
    from ..analysis import post_grokking_dynamics  # torch: imported when a table needs it, not by the CLI
    from ..runs import read_metrics_columns

    rows = []
    for rec in records:
        if not rec.finished:
            rows.append([rec.name, "unfinished"] + ["–"] * 8)
            continue
        dyn = post_grokking_dynamics(read_metrics_columns(rec.path / "metrics.csv"))
        acc, norm = dyn.accuracy, dyn.weight_norm
        collapses = "; ".join(f"{c.start_step}: {c.min_value:.2f}, {'yes' if c.regrok_step else 'no'}"
                              for c in dyn.collapses) or "none"
        label = cell_label(rec.values, spec.cell_keys)
        rows.append([rec.name, rec.summary["status"], _fmt(dyn.grokking_step), _fmt(dyn.stable_grokking_step),
                     _fmt(acc.period) if acc else "–", _fmt(acc.amplitude, 3) if acc else "–",
                     _fmt(norm.period) if norm else "–", _fmt(dyn.locking.plv, 2) if dyn.locking else "–",
                     collapses, reference.get(label, "–")])
    return columns, rows


def gap_table(records, spec: SweepSpec, reference: dict) -> tuple[list[str], list[list]]:
    """Agreement dips vs grokking gap over the seeds (grokinterp.sweep.gap_prediction): r [95% CI] for the
    dip count and the dip rate over [0, grokking] and for the count over [memorization, grokking], and the
    range of r over the 27 neighbouring dip definitions."""
    from ..sweep._gap import gap_prediction

    columns = ["what is correlated with the gap", "runs", "r [95% CI]", "p", "seed reports"]
    if not records:
        return columns, []
    out = records[0].path.parent
    try:
        training, gap_span = gap_prediction(out, "training"), gap_prediction(out, "gap", neighbours=False)
    except ValueError as e:
        return columns, [[f"not computable: {e}", "–", "–", "–", reference.get("count", "–")]]

    def row(label, c, ref="–"):
        return [label, str(c.n), f"{c.r:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]", f"{c.p_value:.2g}", ref]

    rs = [r for *_, r in training.sensitivity if np.isfinite(r)]
    return columns, [
        row(f"dip count, [0, grokking] (window {training.window:g}, threshold {training.threshold:g}, "
            f"separation {training.min_separation:g})", training.count_vs_gap, reference.get("count", "–")),
        row("dip rate per 1,000 steps, [0, grokking]", training.rate_vs_gap),
        row("dip count, [memorization, grokking]", gap_span.count_vs_gap),
        ["r over 27 neighbouring dip definitions (window x{1/2,1,2}, threshold ±0.5, separation x{1/2,1,2})",
         str(training.count_vs_gap.n), f"min {min(rs):.3f}, median {np.median(rs):.3f}, max {max(rs):.3f}" if rs else "–",
         "–", "–"],
    ]


def cycle_figures(out: Path) -> dict:
    """Per run: test accuracy and the weight norm over training (one figure each, one trace per run)."""
    import plotly.graph_objects as go

    from ..runs import read_metrics_columns

    figures = {"test_acc": go.Figure(), "weight_norm": go.Figure()}
    for rec in collect(out):
        if not (rec.path / "metrics.csv").is_file():
            continue
        m = read_metrics_columns(rec.path / "metrics.csv")
        keep = np.isfinite(m["test_acc"])
        figures["test_acc"].add_trace(go.Scatter(x=m["step"][keep], y=m["test_acc"][keep], name=rec.name, mode="lines"))
        figures["weight_norm"].add_trace(go.Scatter(x=m["step"], y=np.sqrt(m["weight_norm_sq"]), name=rec.name,
                                                    mode="lines"))
    for name, title in (("test_acc", "test accuracy"), ("weight_norm", "weight norm ‖θ‖")):
        figures[name].update_layout(title=f"{title} over training", template="plotly_white", height=420,
                                    xaxis_title="step", yaxis_title=title)
    return figures


def gap_figures(out: Path) -> dict:
    from ..sweep._gap import gap_prediction, gap_scatter_figure

    try:
        return {"scatter": gap_scatter_figure(gap_prediction(out, "training", neighbours=False))}
    except ValueError:
        return {}


def _markdown_table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def sweep_figures(out: Path, x_key: str | None) -> dict:
    """The sweep report's gap and rate figures over the cells of the sweep under `out`."""
    from ..sweep import gap_figure, rate_figure, read_sweep_file
    from ..sweep._aggregate import aggregate_sweep

    rows, cell_keys = aggregate_sweep(out, write=False), read_sweep_file(out)["cell_keys"]
    return {"gap": gap_figure(rows, cell_keys, x_key), "rate": rate_figure(rows, cell_keys, x_key)}


def _export_figures(figures: dict, docs_dir: Path, name: str) -> list[str]:
    """SVGs of `figures` beside the markdown when an export backend exists; the file names written."""
    try:
        from ..report import export_figure  # optional: kaleido or headless Chromium
    except ImportError:
        return []
    written = []
    for kind, fig in figures.items():
        path = docs_dir / f"{name}_{kind}.svg"
        try:
            export_figure(fig, path)
        except Exception as e:  # noqa: BLE001  (no backend, or a figure the backend cannot draw)
            print(f"repro {name}: figure {kind} not exported ({e})")
            continue
        written.append(path.name)
    return written


def write_reproduction_doc(repro: Reproduction, out: Path, docs_dir: Path = DOCS_DIR,
                           wall_time_s: float | None = None) -> Path:
    """Write `<docs_dir>/<name>.md` from the runs under `out` (finished or not): the measured table with
    the seed's numbers beside it, every run's status, the config, and the figures."""
    records = collect(out)
    columns, rows = (repro.table or cell_table)(records, repro.spec, repro.reference)
    per_run = [[r.name, r.summary.get("status", "not run"), _fmt(r.summary.get("memorization_step")),
                _fmt(r.summary.get("grokking_step")), _fmt(r.summary.get("gap")), _fmt(r.summary.get("final_step")),
                _fmt(r.summary.get("wall_time_s"))] for r in records]
    docs_dir.mkdir(parents=True, exist_ok=True)
    figures = _export_figures((repro.figures or (lambda o: sweep_figures(o, repro.x_key)))(out), docs_dir, repro.name)
    steps = repro.spec.base_config().train.steps
    text = [f"# Reproduction: {repro.title}", "",
            f"**Seed's claim.** {repro.claim}", "",
            f"**Command.** `grokinterp repro {repro.name}` (or `make repro-{repro.name}`); runs under `{out}`.", "",
            f"**Scale.** {repro.scale}", "",
            f"**Setup.** preset `{repro.spec.preset}`, overrides `{json.dumps(repro.spec.overrides)}`, grid "
            f"`{json.dumps(repro.spec.grid)}`" + (f", arms `{json.dumps(repro.spec.arms)}`" if repro.spec.arms else "")
            + f"; step budget {steps:,}; {platform.machine()} CPU, {available_cores()} cores, one torch thread per run."
            + (f" Wall time of this invocation: {wall_time_s:,.0f} s." if wall_time_s is not None else ""), "",
            "## Measured", "", _markdown_table(columns, rows), ""]
    text += [f"![{f}]({f})" for f in figures] or [f"Figures: `{out / 'report.html'}` (offline HTML; "
                                                   "install an export backend to get SVGs here)."]
    text += ["", "## Every run", "", _markdown_table(["run", "status", "memorized", "grokked", "gap", "last step",
                                                      "wall s"], per_run), ""]
    from ..runs import atomic_write_bytes

    path = docs_dir / f"{repro.name}.md"
    atomic_write_bytes(path, "\n".join(text).encode())
    return path


def run_reproduction(name: str, out: str | Path | None = None, workers: int | None = None, seeds: int | None = None,
                     docs_dir: str | Path = DOCS_DIR, progress: bool = True) -> Path:
    """Run (or finish) reproduction `name` and write its markdown; returns the markdown's path.

    Args:
        name: a key of REPRODUCTIONS.
        out: the sweep directory; default `checkpoints/repro_<name>`.
        workers: parallel runs (default: every core).
        seeds: replicate seeds per cell (default: the reproduction's own scaled-down number).
        docs_dir: where the markdown (and SVGs) go.
    """
    from .reproductions import REPRODUCTIONS

    if name not in REPRODUCTIONS:
        raise ConfigError(f"unknown reproduction {name!r}; choose one of {sorted(REPRODUCTIONS)}")
    repro = REPRODUCTIONS[name]
    if seeds is not None:
        repro = repro.with_seeds(seeds)
    out = Path(out) if out is not None else Path("checkpoints") / f"repro_{name}"
    start = time.perf_counter()
    result = run_sweep(repro.spec, out, workers=workers, progress=progress)
    sweep_report(out, x_key=repro.x_key)
    if repro.post is not None:
        repro.post(out, progress)
    if result.failed:
        print(f"repro {name}: {len(result.failed)} run(s) failed: {result.failed}")
    return write_reproduction_doc(repro, out, Path(docs_dir), time.perf_counter() - start)


def transplant_table(records, spec: SweepSpec, reference: dict) -> tuple[list[str], list[list]]:
    """Per recipient seed: its own grokking step (the control) and that of each transplant fork."""
    import json as _json

    columns = ["recipient", "control grokked", "weights: grokked (Δ)", "activations: grokked (Δ)", "neurons moved",
               "transplant wall s", "seed reports"]
    if not records:
        return columns, []
    folder = records[0].path.parent / "transplants"
    rows = []
    for rec in records:
        if not (folder.is_dir() and any(folder.glob(f"{rec.name}__*"))):
            continue
        control = rec.summary.get("grokking_step")
        cells, n_neurons, walls = [], "–", []
        for mode in ("weights", "activations"):
            run_dir = folder / f"{rec.name}__{mode}"
            summary = _json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
            info = _json.loads((run_dir / "transplant.json").read_text()) if (run_dir / "transplant.json").is_file() else {}
            grok = summary.get("grokking_step")
            n_neurons = str(len(info["neurons"])) if info else n_neurons
            walls.append(summary.get("wall_time_s") or 0.0)
            delta = f" ({grok - control:+,})" if grok is not None and control is not None else ""
            cells.append(_fmt(grok) + delta if summary else "not run")
        rows.append([rec.name, _fmt(control), *cells, n_neurons, _fmt(float(sum(walls))), reference.get("all", "–")])
    return columns, rows
