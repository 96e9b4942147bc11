"""`grokinterp warn`: the early-warning alarm benchmark of a sweep, written as one Markdown page and one figure.

    grokinterp warn checkpoints/sweep_warn --controls optim.weight_decay=0 --out docs/reproductions/warn.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ...config import ConfigError

DATA_DIR = Path("docs/reproductions/data/warn")

EXAMPLE = ("examples:\n  grokinterp warn checkpoints/sweep_warn --out docs/reproductions/warn.md\n"
           "  grokinterp warn --doc-only    # rewrite warn.md from docs/reproductions/data/warn alone\n"
           "  grokinterp warn checkpoints/sweep_wd1 --controls checkpoints/sweep_wd0 --workers 2\n"
           "  grokinterp warn checkpoints/sweep_warn --controls optim.weight_decay=0 --controls task.op=add\n"
           "controls: KEY=VALUE filters on each run's resolved config (all must match; default "
           "optim.weight_decay=0), or directories whose runs are all controls.")


def add_warn_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `warn` subcommand to the main parser's subparsers; returns it."""
    p = subparsers.add_parser(
        "warn", help="benchmark the early-warning diagnostics of a sweep (alarm lead times, false alarms, AUROC)",
        description="Replay the early-warning diagnostics (the related-work papers' signals) over every finished run of the sweep "
                    "directories (cached in each run), set each alarm's threshold on the control runs that never "
                    "grokked, and write the benchmark table and a lead-time figure.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweeps", nargs="*", type=Path, metavar="SWEEP_DIR",
                   help="sweep (or run) directories (none with --doc-only)")
    p.add_argument("--controls", action="append", metavar="KEY=VALUE|DIR",
                   help="which runs are controls (repeatable; default optim.weight_decay=0)")
    p.add_argument("--matched-controls", action="append", metavar="KEY=VALUE|DIR", default=[],
                   help="a second control group at the grokking runs' own settings that cannot generalize (e.g. "
                        "task.op=random); every rule is scored again with thresholds from it (repeatable)")
    p.add_argument("--data-dir", type=Path,
                   help="also write the benchmark's data there (alarms.csv, delays.csv, every scored run's signals on "
                        f"its window; e.g. {DATA_DIR}) and write the page from it")
    p.add_argument("--doc-only", action="store_true",
                   help=f"rewrite the page and figure from the committed data alone (--data-dir, default {DATA_DIR}); "
                        "no run directories needed")
    p.add_argument("--out", type=Path, default=Path("docs/reproductions/warn.md"),
                   help="Markdown page to write (default docs/reproductions/warn.md)")
    p.add_argument("--figure", type=Path, help="SVG figure to write (default: <out stem>_lead_times.svg beside --out)")
    p.add_argument("--workers", type=int, default=1, help="replay worker processes per run (default 1)")
    p.add_argument("--stride", type=int, default=1,
                   help="replay every k-th checkpoint (default 1; D3's and D6's windows count replayed checkpoints)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run_warn_command(args, argv: list[str] | None = None) -> int:
    """Carry out `grokinterp warn`; returns 0 (ConfigError: the caller exits 2)."""
    from ._data import write_warn_data
    from ._sweep import DEFAULT_CONTROLS, warn_sweep

    if args.workers < 1 or args.stride < 1:
        raise ConfigError("--workers and --stride must be >= 1")
    if args.out.suffix != ".md":
        raise ConfigError(f"--out {args.out} must name a Markdown file (.md)")
    figure = args.figure or args.out.with_name(args.out.stem + "_lead_times.svg")
    if figure.suffix != ".svg":
        raise ConfigError(f"--figure {figure} must name an SVG file (.svg)")
    if args.doc_only and args.sweeps:
        raise ConfigError("--doc-only rebuilds the page from --data-dir alone; give no SWEEP_DIR with it")
    if not args.doc_only and not args.sweeps:
        raise ConfigError("give the sweep directories to benchmark (SWEEP_DIR ...), or --doc-only to rebuild the "
                          "page from the committed data")
    data_dir = args.data_dir or (DATA_DIR if args.doc_only else None)
    if args.doc_only:
        result, command = _committed(data_dir)
    else:
        missing = [str(s) for s in args.sweeps if not s.is_dir()]
        if missing:
            raise ConfigError(f"{', '.join(missing)} does not exist; run `grokinterp sweep ... --out DIR` first")
        result = warn_sweep(args.sweeps, controls=args.controls or list(DEFAULT_CONTROLS), workers=args.workers,
                            stride=args.stride, progress=not args.no_progress, matched_controls=args.matched_controls)
        command = "grokinterp " + shlex.join(argv) if argv is not None else "grokinterp warn"
        if data_dir is not None:  # the page is written from the data as read back, so --doc-only rewrites it exactly
            result = write_warn_data(result, data_dir, command)
    path = _write_page(result, data_dir, args.out, figure, command)
    print(f"alarm benchmark written to {path} (figure {figure})", file=sys.stdout)
    return 0


def _committed(data_dir: Path):
    """The benchmark rebuilt from committed data, and the command that wrote that data."""
    from ._data import load_warn_result

    result = load_warn_result(data_dir)  # checks sweep.json is there and parses
    return result, json.loads((data_dir / "sweep.json").read_text())["written_by"]


def _write_page(result, data_dir: Path | None, out: Path, figure: Path, command: str, write_figure: bool = True) -> Path:
    """The page (with the ledger's verdict rows when there is committed data) and the figure it links."""
    from ._report import write_lead_time_svg, write_warn_markdown

    verdicts = ""
    if data_dir is not None:
        from ..claims import claims_table
        from ..repro_data import load_data

        verdicts = claims_table(page="warn", data=load_data("warn", data_dir))
    if write_figure:
        write_lead_time_svg(result, figure)
    return write_warn_markdown(result, out, figure, command, verdicts)


SPECS = {"": Path("docs/reproductions/warn_sweep.json"), "_controls": Path("docs/reproductions/warn_controls.json")}


def run_warn_reproduction(args) -> Path:
    """`grokinterp repro warn`: the alarm benchmark as a reproduction (what `make repro-warn` runs). Trains the
    20 grokking runs of docs/reproductions/warn_sweep.json into --out (default checkpoints/repro_warn) and the
    controls of warn_controls.json beside it (<out>_controls), benchmarks them against the wd-0 controls and
    the random-table controls at wd 1, and writes the data and the page; --export-only trains nothing,
    --doc-only reads only the committed data."""
    from ...sweep import SweepSpec, run_sweep
    from ._data import write_warn_data
    from ._sweep import warn_sweep

    if args.seeds is not None:
        raise ConfigError("--seeds: the alarm benchmark's seeds are set in docs/reproductions/warn_sweep.json and "
                          "warn_controls.json")
    data_dir = args.data_dir or DATA_DIR
    out = Path(args.docs_dir) / "warn.md"
    figure, write_figure = out.with_name("warn_lead_times.svg"), not args.no_figures
    if args.doc_only:
        result, command = _committed(data_dir)
        return _write_page(result, data_dir, out, figure, command, write_figure)
    sweep_dir = args.out or Path("checkpoints/repro_warn")
    dirs = [sweep_dir.with_name(sweep_dir.name + suffix) for suffix in SPECS]
    if not args.export_only:
        for spec_file, directory in zip(SPECS.values(), dirs):
            if not spec_file.is_file():
                raise ConfigError(f"{spec_file} is missing (run from the repository root)")
            spec = SweepSpec.from_dict(json.loads(spec_file.read_text()))
            run_sweep(spec, directory, workers=args.workers, progress=not args.no_progress)
    result = warn_sweep(dirs, controls=["optim.weight_decay=0"], matched_controls=["task.op=random"],
                        workers=args.workers or 1, progress=not args.no_progress)
    command = f"grokinterp repro warn --out {sweep_dir}" + (" --export-only" if args.export_only else "")
    return _write_page(write_warn_data(result, data_dir, command), data_dir, out, figure, command, write_figure)
