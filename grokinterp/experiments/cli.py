"""`grokinterp repro NAME`: run one of the seeds' experiments and write docs/reproductions/NAME.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ConfigError
DOCS_DIR = Path("docs/reproductions")


def add_repro_parser(subparsers) -> argparse.ArgumentParser:
    from .reproductions import REPRODUCTIONS

    listing = "\n".join(f"  {name:10s} {r.title}" for name, r in REPRODUCTIONS.items())
    parser = subparsers.add_parser(
        "repro", help="run one of the seeds' experiments and write docs/reproductions/NAME.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a reproduction (a sweep of ordinary runs: finished runs are skipped, interrupted ones "
                    "resumed) and write its table, with the seed's numbers beside the measured ones, to "
                    f"{DOCS_DIR}/NAME.md.\n\nreproductions:\n{listing}")
    parser.add_argument("name", help="which reproduction (see the list above)")
    parser.add_argument("--out", type=Path, help="sweep directory (default: checkpoints/repro_NAME)")
    parser.add_argument("--workers", type=int, help="parallel runs (default: every core)")
    parser.add_argument("--seeds", type=int, help="replicate seeds per cell (default: the reproduction's own)")
    parser.add_argument("--docs-dir", type=Path, default=DOCS_DIR, help=f"where NAME.md goes (default {DOCS_DIR})")
    parser.add_argument("--doc-only", action="store_true", help="only rewrite NAME.md from the runs already there")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_repro_command(args) -> int:
    from .repro import run_reproduction, write_reproduction_doc
    from .reproductions import REPRODUCTIONS

    if args.name not in REPRODUCTIONS:
        raise ConfigError(f"unknown reproduction {args.name!r}; choose one of {sorted(REPRODUCTIONS)}")
    if args.workers is not None and args.workers < 1 or args.seeds is not None and args.seeds < 1:
        raise ConfigError("--workers and --seeds must be >= 1")
    if args.doc_only:
        repro = REPRODUCTIONS[args.name] if args.seeds is None else REPRODUCTIONS[args.name].with_seeds(args.seeds)
        out = args.out or Path("checkpoints") / f"repro_{args.name}"
        if not (out / "sweep.json").is_file():
            raise ConfigError(f"{out} holds no runs of reproduction {args.name!r}; run `grokinterp repro {args.name}` first")
        path = write_reproduction_doc(repro, out, args.docs_dir)
    else:
        path = run_reproduction(args.name, args.out, args.workers, args.seeds, args.docs_dir,
                                progress=not args.no_progress)
    print(f"reproduction written to {path}")
    return 0
