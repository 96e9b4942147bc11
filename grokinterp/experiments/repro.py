"""The source documents' experiments as named reproductions, and the pages written from their results.

A reproduction is a sweep (ordinary run directories; finished runs skipped, interrupted ones resumed)
whose per-run results are exported to `docs/reproductions/data/<name>/` (`repro_data`), and a page,
`docs/reproductions/<name>.md`, written from that committed data alone: the measured table with 95 %
intervals (medians: bootstrap; rates: Wilson; correlations: Fisher z; see `grokinterp.stats`), the
source's numbers beside it, each claim's verdict by the ledger's rule (`claims.py`), every run, and its
figures. The registry of reproductions and `run_reproduction` are in `reproductions.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..stats import bootstrap_ci, wilson_interval
from ..sweep import SweepSpec, aggregate
from .repro_data import ReproData

DOCS_DIR = Path("docs/reproductions")


@dataclass(frozen=True)
class Reproduction:
    """One of the sources' experiments: what runs, what the source reported, how to tabulate it.

    Args:
        spec: the main sweep; `parts`: more sweeps into the same directory (the same axes and base config),
            e.g. cells that get 10 seeds where the main cells get 30.
        reuse: reproductions whose finished runs with an identical resolved config are copied (hard links)
            instead of retrained (the β1 = 0 cell of the β1 sweep is the wd = 1 cell of the wd sweep).
        series: metric columns committed per run (what the page plots or tests); `series_every` thins them.
        table: (data, reference) -> (columns, rows); None: per-cell statistics (`cell_table`).
        figures: data -> {name: figure}; None: the gap and rate figures of the cells.
        post: (out, progress) -> None, runs that start from the sweep's runs (transplants);
            `export_extra`: (out, data_dir) -> None, their results into the data directory.
    """

    name: str
    title: str
    claim: str  # what the source reports, in a sentence or two
    spec: SweepSpec
    scale: str  # how and why it is scaled down from the source
    reference: dict = field(default_factory=dict)  # cell label -> the source's number for that cell
    table: Callable | None = None
    x_key: str | None = None
    figures: Callable | None = None
    post: Callable | None = None
    parts: tuple = ()
    reuse: tuple = ()
    series: tuple = ()
    series_every: int = 1
    export_extra: Callable | None = None
    definitions: str = ""  # how each measured quantity is computed, printed under the table

    @property
    def specs(self) -> list[SweepSpec]:
        return [self.spec, *self.parts]

    def with_seeds(self, n: int) -> "Reproduction":
        """The same experiment with replicate seeds 0..n-1 in every part (the seed key of its grid)."""
        keys = self.spec.replicate_keys
        if not keys:
            raise ConfigError(f"reproduction {self.name!r} has no seed axis to resize")

        def resized(spec):
            return replace(spec, grid={**spec.grid, keys[0]: list(range(n))})

        return replace(self, spec=resized(self.spec), parts=tuple(resized(p) for p in self.parts),
                       scale=f"{self.scale} This invocation: {n} seeds per cell (`--seeds {n}`).")


def cell_label(values: dict, cell_keys: list[str]) -> str:
    return ", ".join(f"{values[k]}" if k == "arm" else f"{k.split('.')[-1]}={values[k]}" for k in cell_keys) or "all"


def fmt(x, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def cells(data: ReproData, keys: list[str] | None = None) -> list[tuple[dict, list]]:
    """(cell values, its finished records) per cell, in first-seen order; every run counts in `n` of its cell."""
    keys = data.cell_keys if keys is None else keys
    out: dict[str, tuple[dict, list]] = {}
    for rec in data.records:
        values = {k: rec.values[k] for k in keys}
        out.setdefault(json.dumps(values, sort_keys=True), (values, []))[1].append(rec)
    return list(out.values())


def median_ci(records, field_name: str, digits: int = 0) -> str:
    """`median [95 % bootstrap CI]` of a summary field over the records where it exists."""
    values = [r.summary[field_name] for r in records if r.summary.get(field_name) is not None]
    return bootstrap_ci(values).format(digits) if values else "–"


def rate_ci(records, predicate) -> str:
    """`k/n = rate [95 % Wilson]` over finished records."""
    done = [r for r in records if r.finished]
    if not done:
        return "–"
    k = sum(bool(predicate(r.summary)) for r in done)
    w = wilson_interval(k, len(done))
    return f"{k}/{len(done)} = {w.value:.2f} [{w.low:.2f}, {w.high:.2f}]"


def _median_wall(records) -> str:
    walls = [r.summary["wall_time_s"] for r in records if r.summary.get("wall_time_s") is not None]
    return fmt(float(np.median(walls)) if walls else None)


def cell_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """Per cell: finished runs, grok rate, median memorization / grokking step and gap with 95 % bootstrap
    CIs, the rates that never learn or generalize without memorizing (Wilson), median wall time."""
    columns = ["cell", "runs", "grok rate [95% CI]", "median memorized [CI]", "median grokked [CI]",
               "median gap [CI]", "not learned", "generalizes w/o memorizing", "median wall s", "source reports"]
    rows = []
    for values, members in cells(data):
        label = cell_label(values, data.cell_keys)
        done = [r for r in members if r.finished]
        grokked = [r for r in done if r.summary["status"] == "grokked"]
        unfinished = len(members) - len(done)
        rows.append([label, f"{len(done)}" + (f" (+{unfinished} to run)" if unfinished else ""),
                     rate_ci(done, lambda s: s["status"] == "grokked"), median_ci(done, "memorization_step"),
                     median_ci(grokked, "grokking_step"), median_ci(grokked, "gap"),
                     rate_ci(done, lambda s: s["status"] == "not_learned"),
                     rate_ci(done, lambda s: s.get("generalizes_without_memorizing")),
                     _median_wall(done), reference.get(label, "–")])
    return columns, rows


TARGET_GROKKING_STEP = 1500  # the grokking-dynamics write-up's "phase transition" under default AdamW


def calibration_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """The candidates (three seeds each), then the chosen setting over the geometry reproduction's seeds at
    β1 0.9 (the write-up's default AdamW) and β1 0 (its gap must stay a few hundred steps): how many grokked, how
    many of those still had test accuracy >= 0.99 at their last step, medians with bootstrap CIs, and the CPU
    cost of a step (1000 / the run's steps per second, one thread, shared machine)."""
    from .repro_data import DATA_DIR, load_data

    columns = ["setting", "runs", "grokked", "held to the end", "median memorized [CI]", "median grokked [CI]",
               "\\|median grokked − 1,500\\|", "median gap [CI]", "ms / step (1 thread)", "target"]

    def row(label, members, target):
        done = [r for r in members if r.finished]
        ms = [1000 / r.summary["steps_per_s"] for r in done if r.summary.get("steps_per_s")]
        grokked = [r for r in done if r.summary["status"] == "grokked"]
        held = [r for r in grokked if r.summary.get("stable_grokking_step") is not None]  # test acc >= 0.99 at the end
        steps = [r.summary["grokking_step"] for r in grokked]
        distance = fmt(abs(float(np.median(steps)) - TARGET_GROKKING_STEP)) if steps else "–"
        return [label, str(len(done)), f"{len(grokked)}/{len(done)}", f"{len(held)}/{len(grokked)}",
                median_ci(done, "memorization_step"), median_ci(grokked, "grokking_step"), distance,
                median_ci(grokked, "gap"), fmt(float(np.median(ms))) if ms else "–", target]

    rows = [row(f"candidate {v['arm']}, β1 0.9", m, reference.get(v["arm"], "–")) for v, m in cells(data, ["arm"])]
    geometry_dir = DATA_DIR / "geometry"
    if (geometry_dir / "runs.csv").is_file():
        geometry = load_data("geometry", geometry_dir)
        for beta1, target in ((0.9, "grok ≈ 1,500"), (0.0, "gap of a few hundred steps")):
            members = [r for r in geometry.records if r.values.get("optim.beta1") == beta1]
            rows.append(row(f"chosen (30 % train, lr 3e-3), β1 {beta1} (geometry runs)", members, target))
    return columns, rows


def speedup_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """Per arm (one run each, or medians over seeds): grokking step and speed-up vs the "baseline" arm."""
    columns = ["arm", "runs", "status", "memorized", "grokked", "speed-up vs baseline", "source: epochs (speed-up)",
               "wall s"]
    by_arm = cells(data, ["arm"])

    def median(members, key):
        values = [r.summary[key] for r in members if r.finished and r.summary.get(key) is not None]
        return float(np.median(values)) if values else None

    base = next((median(m, "grokking_step") for v, m in by_arm if v["arm"] == "baseline"), None)
    rows = []
    for values, members in by_arm:
        done = [r for r in members if r.finished]
        statuses = sorted({r.summary["status"] for r in done}) or ["unfinished"]
        grok = median(done, "grokking_step")
        speedup = f"{base / grok:.2f}x" if base and grok else "–"
        rows.append([values["arm"], str(len(done)), "/".join(statuses), fmt(median(done, "memorization_step")),
                     fmt(grok), speedup, reference.get(values["arm"], "–"), _median_wall(done)])
    return columns, rows


def speedup_ci_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """Per arm over its seeds: grok rate, median grokking step [bootstrap CI] and the speed-up vs the
    "baseline" arm, median(baseline) ÷ median(arm), with a two-sample bootstrap CI."""
    from ..stats import median_ratio_ci

    columns = ["arm", "runs", "grok rate [95% CI]", "median grokked [CI]", "speed-up vs baseline [CI]",
               "source reports", "median wall s"]
    by_arm = cells(data, ["arm"])
    base = next(([r.summary["grokking_step"] for r in m if r.finished and r.summary.get("grokking_step")]
                 for v, m in by_arm if v["arm"] == "baseline"), [])
    rows = []
    for values, members in by_arm:
        done = [r for r in members if r.finished]
        groks = [r.summary["grokking_step"] for r in done if r.summary.get("grokking_step") is not None]
        ratio = median_ratio_ci(base, groks).format(2, suffix="x") if base and groks else "–"
        rows.append([values["arm"], str(len(done)), rate_ci(done, lambda s: s["status"] == "grokked"),
                     median_ci(done, "grokking_step"), ratio, reference.get(values["arm"], "–"), _median_wall(done)])
    return columns, rows


def dynamics_of(series: dict, grokking_step: int | None):
    """`post_grokking_dynamics` of a committed series, and whether it warned (ResolutionWarning) that the run
    after grokking covers a period fewer than twice: the cycle page marks such a period, the ledger uses the
    run as it is; either way the warning is caught here, not raised."""
    import warnings

    from ..analysis import post_grokking_dynamics  # torch: imported when a table needs it, not by the CLI
    from ..analysis.dynamics import ResolutionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResolutionWarning)
        dyn = post_grokking_dynamics(series, grokking_step=grokking_step)
    return dyn, any(issubclass(w.category, ResolutionWarning) for w in caught)


def cycle_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """Per run after grokking: the cycle test of test accuracy (periodogram peak vs AR(1) red noise: period,
    amplitude, p), the weight norm's Lomb-Scargle period, the accuracy-norm phase locking (PLV) with its
    phase-randomized surrogate p, collapses below 0.5 and re-grokking (`post_grokking_dynamics`). A period
    the run after grokking covers fewer than twice is marked † (`dynamics_of`)."""
    columns = ["run", "status", "grokked", "stable grok", "acc period", "acc amplitude", "cycle p",
               "norm period (†: seen < 2 periods)",
               "PLV (norm, acc)", "PLV p", "collapses (start: min acc, re-grokked)", "source reports"]
    rows = []
    for rec in data.records:
        m = data.series(rec.name) if rec.finished else None
        if m is None:
            rows.append([rec.name, rec.summary.get("status", "not run")] + ["–"] * 10)
            continue
        dyn, under_resolved = dynamics_of(m, rec.summary.get("grokking_step"))
        under = "†" if under_resolved else ""
        test, norm = dyn.cycle_test, dyn.weight_norm
        collapses = "; ".join(f"{c.start_step}: {c.min_value:.2f}, {'yes' if c.regrok_step else 'no'}"
                              for c in dyn.collapses) or "none"
        if len(dyn.collapses) > 3:  # a run that collapses again and again: count them, name the deepest
            deepest = min(dyn.collapses, key=lambda c: c.min_value)
            collapses = (f"{len(dyn.collapses)} collapses, {sum(c.regrok_step is not None for c in dyn.collapses)} "
                         f"re-grokked; deepest {deepest.start_step}: {deepest.min_value:.2f}")
        rows.append([rec.name, rec.summary["status"], fmt(dyn.grokking_step), fmt(dyn.stable_grokking_step),
                     fmt(test.period) if test else "–", fmt(test.amplitude, 4) if test else "–",
                     f"{test.p_value:.3f}" if test else "–", fmt(norm.period) + under if norm else "–",
                     fmt(dyn.locking.plv, 2) if dyn.locking else "–",
                     f"{dyn.locking_p_value:.3f}" if dyn.locking_p_value is not None else "–",
                     collapses, reference.get(cell_label(rec.values, data.cell_keys), "–")])
    return columns, rows


def gap_prediction_of(data: ReproData, span: str = "training", neighbours: bool = True):
    """`grokinterp.sweep.gap_prediction` over the committed agreement series of a reproduction."""
    from ..sweep._gap import gap_prediction

    return gap_prediction(data.finished(), span, neighbours=neighbours, metrics_of=lambda rec: data.series(rec.name))


def gap_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """Agreement dips vs grokking gap over the seeds: r [95% Fisher-z CI] for the dip count and the dip rate
    over [0, grokking] and for the count over [memorization, grokking]; the partial r of the count and the
    gap controlling for the span's length; the range of r over the 27 neighbouring dip definitions."""
    columns = ["what is correlated with the gap", "runs", "r [95% CI]", "p", "source reports"]
    try:
        training, gap_span = gap_prediction_of(data), gap_prediction_of(data, "gap", neighbours=False)
    except ValueError as e:
        return columns, [[f"not computable: {e}", "–", "–", "–", reference.get("count", "–")]]

    def row(label, c, ref="–"):
        if c is None or not np.isfinite(c.r):
            return [label, str(c.n) if c else "–", "–", "–", ref]
        return [label, str(c.n), f"{c.r:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]", f"{c.p_value:.2g}", ref]

    rs = [r for *_, r in training.sensitivity if np.isfinite(r)]
    return columns, [
        row(f"dip count, [0, grokking] (window {training.window:g}, threshold {training.threshold:g}, "
            f"separation {training.min_separation:g})", training.count_vs_gap, reference.get("count", "–")),
        row("dip rate per 1,000 steps, [0, grokking]", training.rate_vs_gap),
        row("dip count, [0, grokking], partial on the span's length (the grokking step)",
            training.count_vs_gap_given_length),
        row("dip count, [memorization, grokking]", gap_span.count_vs_gap),
        ["r over 27 neighbouring dip definitions (window x{1/2,1,2}, threshold ±0.5, separation x{1/2,1,2})",
         str(training.count_vs_gap.n), f"min {min(rs):.3f}, median {np.median(rs):.3f}, max {max(rs):.3f}" if rs else "–",
         "–", "–"],
    ]


def transplant_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """Per recipient: the control's grokking step (its `noop` fork, else its own run) and each arm's grokking step
    with Δ against the control (`transplants.csv`: recipient, mode, grokking_step, neurons, wall_time_s); a last
    row gives each arm's median Δ with its 95 % bootstrap CI and n."""
    forks = data.extras.get("transplants", [])
    arms = [m for m in ("noop", "self", "other", "weights", "random", "activations")
            if any(f["mode"] == m for f in forks)]
    control = transplant_controls(data)
    columns = ["recipient", "control grokked", *(f"{arm}: grokked (Δ)" for arm in arms if arm != "noop"),
               "neurons moved (other / random)"]
    rows = []
    for recipient in dict.fromkeys(f["recipient"] for f in forks):
        by_arm = {f["mode"]: f for f in forks if f["recipient"] == recipient}
        c = control.get(recipient)
        cells_ = []
        for arm in arms:
            if arm == "noop":
                continue
            f = by_arm.get(arm)
            grok = int(f["grokking_step"]) if f and f["grokking_step"] else None
            cells_.append("not run" if f is None else
                          fmt(grok) + (f" ({grok - c:+,})" if grok is not None and c is not None else ""))
        moved = " / ".join(str(by_arm[a]["neurons"]) for a in ("other", "weights", "random") if a in by_arm)
        overlap = by_arm.get("random", {}).get("fourier_overlap")
        moved += f" ({overlap} of them Fourier)" if overlap not in (None, "") else ""
        rows.append([recipient, fmt(c), *cells_, moved or "–"])
    summary = []
    for arm in arms:
        if arm == "noop":
            continue
        deltas = transplant_deltas(data, arm)
        est = bootstrap_ci(deltas) if deltas else None
        summary.append(f"{est.value:+,.0f} [{est.low:+,.0f}, {est.high:+,.0f}] (n = {est.n})" if est else "–")
    rows.append(["median Δ [95 % CI]", "", *summary, ""])
    return columns, rows


def transplant_controls(data: ReproData) -> dict:
    """Recipient -> its control's grokking step: the `noop` fork where it exists (same code path as the
    transplants), else the recipient's own run."""
    control = {r.name: r.summary.get("grokking_step") for r in data.records}
    for f in data.extras.get("transplants", []):
        if f["mode"] == "noop":
            control[f["recipient"]] = int(f["grokking_step"]) if f["grokking_step"] else None
    return control


def transplant_deltas(data: ReproData, arm: str) -> list[int]:
    """Paired Δ per recipient: the `arm` fork's grokking step − its control's (both must have grokked)."""
    control = transplant_controls(data)
    return [int(f["grokking_step"]) - control[f["recipient"]] for f in data.extras.get("transplants", [])
            if f["mode"] == arm and f["grokking_step"] and control.get(f["recipient"]) is not None]


def cycle_figures(data: ReproData) -> dict:
    """Per run: test accuracy and the weight norm over training (one figure each, one trace per run)."""
    import plotly.graph_objects as go

    figures = {"test_acc": go.Figure(), "weight_norm": go.Figure()}
    for rec in data.records:
        m = data.series(rec.name)
        if m is None:
            continue
        for key, column, transform in (("test_acc", "test_acc", None), ("weight_norm", "weight_norm_sq", np.sqrt)):
            if column in m:
                keep = np.isfinite(m[column])
                y = m[column][keep] if transform is None else transform(m[column][keep])
                figures[key].add_trace(go.Scatter(x=m["step"][keep], y=y, name=rec.name, mode="lines"))
    for name, title in (("test_acc", "test accuracy"), ("weight_norm", "weight norm ‖θ‖")):
        figures[name].update_layout(title=f"{title} over training", template="plotly_white", height=420,
                                    xaxis_title="step", yaxis_title=title)
    return figures


def gap_figures(data: ReproData) -> dict:
    from ..sweep._gap import gap_scatter_figure

    try:
        return {"scatter": gap_scatter_figure(gap_prediction_of(data, neighbours=False))}
    except ValueError:
        return {}


def sweep_figures(data: ReproData, x_key: str | None) -> dict:
    """The gap and rate figures over the cells of the committed runs."""
    from ..sweep import gap_figure, rate_figure

    rows = aggregate(data.records, data.cell_keys)
    return {"gap": gap_figure(rows, data.cell_keys, x_key), "rate": rate_figure(rows, data.cell_keys, x_key)}


def markdown_table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def export_figures(figures: dict, docs_dir: Path, name: str) -> list[str]:
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


MATMUL_GFLOPS_PER_THREAD = 91.0  # fp32 matmul at the `fast` preset's shapes, one thread (DESIGN.md's measured facts)


def checkpoints(spec: SweepSpec) -> str:
    """What the runs write besides their metrics, and why that is affordable."""
    t = spec.base_config().train
    return (f"a checkpoint every {t.ckpt_every:,} steps and a resume state every {t.state_every:,} (so any run can "
            "be replayed or forked; at the default 50 / 500 they cost ~2 % of the `fast` loop's CPU time, "
            "bench/bench_loop.py)")


def throughput(repro: Reproduction, data: ReproData) -> str:
    """Runs per hour per worker and the matmul rate achieved (`config.step_flops` x steps ÷ wall time) as a
    fraction of one thread's fp32 matmul limit; '' when no finished run has a wall time."""
    from ..config import step_flops

    configs = {run.name: run.config for spec in repro.specs for run in spec.runs()}
    done = [r for r in data.finished() if r.summary.get("wall_time_s") and r.name in configs]
    wall = sum(r.summary["wall_time_s"] for r in done)
    if not done or wall <= 0:
        return ""
    flops = sum(step_flops(configs[r.name]) * (r.summary.get("final_step") or 0) for r in done)
    rate = flops / wall / 1e9
    return (f" Throughput: {3600 * len(done) / wall:.0f} runs per hour per worker; {rate:.0f} GFLOP/s per worker "
            f"({100 * rate / MATMUL_GFLOPS_PER_THREAD:.0f} % of one thread's ~{MATMUL_GFLOPS_PER_THREAD:.0f} GFLOP/s "
            f"fp32 matmul limit; wall times include other processes' load).")


def _setup(repro: Reproduction, data: ReproData) -> str:
    def grid(spec):
        g = spec.to_dict()["grid"]
        seeds = spec.replicate_keys
        return ", ".join(f"{k} {v}" if k not in seeds else f"{len(v)} seeds" for k, v in g.items()) or "one run"

    spec = repro.spec
    walls = [r.summary["wall_time_s"] for r in data.finished() if r.summary.get("wall_time_s") is not None]
    return (f"preset `{spec.preset}`, overrides `{json.dumps(spec.overrides)}`; cells: {grid(spec)}"
            + (f", arms {', '.join(spec.arms)}" if spec.arms else "")
            + "".join(f"; and {grid(p)}" for p in repro.parts)
            + f"; step budget {data.sweep['steps']:,}; {checkpoints(spec)}; {data.sweep['machine']}, one torch "
            "thread per run. "
            f"{len(data.finished())} of {len(data.records)} runs finished; their CPU time: "
            f"{sum(walls) / 3600:.2f} h (sum of run wall times)." + throughput(repro, data)
            + (f" Data transcribed from {data.sweep['transcribed_from']}." if data.sweep.get("transcribed_from") else ""))


def write_reproduction_doc(repro: Reproduction, data: ReproData, docs_dir: Path = DOCS_DIR,
                           figures: bool = True) -> Path:
    """Write `<docs_dir>/<name>.md` from committed data: the measured table beside the source's numbers, the
    verdicts of the claims this page measures, every run, and the figures (SVGs exported when `figures`
    and a backend exist; the page names them either way, so its text does not depend on the machine)."""
    from .claims import claims_table

    columns, rows = (repro.table or cell_table)(data, repro.reference)
    make = repro.figures or (lambda d: sweep_figures(d, repro.x_key))
    figs = make(data)
    docs_dir.mkdir(parents=True, exist_ok=True)
    if figures:
        export_figures(figs, docs_dir, repro.name)
    per_run = [[r.name, r.summary.get("status", "not run"), fmt(r.summary.get("memorization_step")),
                fmt(r.summary.get("grokking_step")), fmt(r.summary.get("gap")), fmt(r.summary.get("final_step")),
                fmt(r.summary.get("wall_time_s"))] for r in data.records]
    text = [f"# Reproduction: {repro.title}", "",
            f"**Source's claim.** {repro.claim}", "",
            f"**Command.** `grokinterp repro {repro.name}` (or `make repro-{repro.name}`) trains the runs under "
            f"`checkpoints/repro_{repro.name}` and exports `docs/reproductions/data/{repro.name}/`; "
            f"`grokinterp repro {repro.name} --doc-only` rewrites this page from that data alone.", "",
            f"**Scale.** {repro.scale}", "",
            f"**Setup.** {_setup(repro, data)}", "",
            "## Measured", "",
            "Medians with 95 % percentile-bootstrap intervals; rates as k/n with 95 % Wilson intervals.", "",
            markdown_table(columns, rows), ""]
    if repro.definitions:
        text += [f"**How each quantity is measured.** {repro.definitions}", ""]
    verdicts = claims_table(page=repro.name, data=data)
    if verdicts:
        text += ["## Claims and verdicts", "", "By the rule at the top of [the claims ledger](../claims.md).", "",
                 verdicts, ""]
    text += [f"![{repro.name} {kind}]({repro.name}_{kind}.svg)" for kind in figs]
    text += ["", "## Every run", "", markdown_table(["run", "status", "memorized", "grokked", "gap", "last step",
                                                      "wall s"], per_run), ""]
    from ..runs import atomic_write_bytes

    path = docs_dir / f"{repro.name}.md"
    atomic_write_bytes(path, "\n".join(text).encode())
    return path
