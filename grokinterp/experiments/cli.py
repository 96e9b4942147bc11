"""`grokinterp repro NAME` and `grokinterp claims`: the sources' experiments, their pages and the ledger."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ConfigError

DOCS_DIR = Path("docs/reproductions")
DATA_DIR = DOCS_DIR / "data"
LEDGER = Path("docs/claims.md")


def add_repro_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "repro", help="run one of the sources' experiments and write docs/reproductions/NAME.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a reproduction (a sweep of ordinary runs: finished runs are skipped, interrupted ones "
                    f"resumed), export its per-run results to {DATA_DIR}/NAME/ (committed, small) and write its "
                    f"page {DOCS_DIR}/NAME.md from that data: the measured table with 95 % intervals, the "
                    f"source's numbers and each claim's verdict.\n\nreproductions:\n%(listing)s")
    parser.add_argument("name", help="which reproduction (see the list above)")
    parser.add_argument("--out", type=Path, help="sweep directory (default: checkpoints/repro_NAME)")
    parser.add_argument("--workers", type=int, help="parallel runs (default: every core)")
    parser.add_argument("--seeds", type=int, help="replicate seeds per cell (default: the reproduction's own)")
    parser.add_argument("--docs-dir", type=Path, default=DOCS_DIR, help=f"where NAME.md goes (default {DOCS_DIR})")
    parser.add_argument("--data-dir", type=Path, help=f"the committed data (default {DATA_DIR}/NAME)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--doc-only", action="store_true",
                      help="only rewrite NAME.md from the committed data (no run directories needed)")
    mode.add_argument("--export-only", action="store_true",
                      help="export the data of the runs already under --out (finished so far) and rewrite NAME.md; "
                           "trains nothing")
    parser.add_argument("--no-figures", action="store_true", help="do not export the SVG figures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _list_reproductions_in_help(parser)
    return parser


def _list_reproductions_in_help(parser: argparse.ArgumentParser) -> None:
    """Fill the help's list of reproductions only when help is shown: listing them imports torch, and usage
    errors of every other command must answer before that."""
    template, format_help = parser.description, parser.format_help

    def lazy_format_help() -> str:
        from .reproductions import REPRODUCTIONS

        width = max(map(len, REPRODUCTIONS))
        listing = "\n".join(f"  {name:{width}s}  {r.title}" for name, r in REPRODUCTIONS.items())
        listing += f"\n  {'warn':{width}s}  the early-warning alarm benchmark (the related-work abstracts; = make repro-warn)"
        parser.description = template.replace("%(listing)s", listing)
        return format_help()

    parser.format_help = lazy_format_help


def add_claims_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "claims", help="write the claims ledger docs/claims.md from the committed reproduction data",
        description="Evaluate every checkable claim of the source documents against the committed reproduction "
                    f"data ({DATA_DIR}) and write the ledger: the source's number, ours with its 95 % interval "
                    "and n, the scale, and a verdict by the rule stated at its top.")
    parser.add_argument("--out", type=Path, default=LEDGER, help=f"the ledger file (default {LEDGER})")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"the committed data (default {DATA_DIR})")
    return parser


def run_repro_command(args) -> int:
    from .repro import write_reproduction_doc
    from .repro_data import load_data
    from .reproductions import get, run_reproduction

    if args.workers is not None and args.workers < 1 or args.seeds is not None and args.seeds < 1:
        raise ConfigError("--workers and --seeds must be >= 1")
    if args.name == "warn":  # not a sweep of a Reproduction: two sweeps, replayed and scored by `grokinterp warn`
        from .warning.cli import run_warn_reproduction

        print(f"reproduction written to {run_warn_reproduction(args)}")
        return 0
    repro = get(args.name)
    if args.doc_only:
        try:
            data = load_data(args.name, args.data_dir)
        except FileNotFoundError as e:
            raise ConfigError(str(e)) from None
        path = write_reproduction_doc(repro, data, args.docs_dir, figures=not args.no_figures)
    else:
        path = run_reproduction(args.name, args.out, args.workers, args.seeds, args.docs_dir, args.data_dir,
                                progress=not args.no_progress, train=not args.export_only)
    print(f"reproduction written to {path}")
    return 0


def run_claims_command(args) -> int:
    from .claims import write_ledger

    if not args.data_dir.is_dir():
        raise ConfigError(f"--data-dir {args.data_dir} does not exist; it holds the committed reproduction data")
    path = write_ledger(args.out, args.data_dir)
    print(f"claims ledger written to {path}")
    return 0
