"""`grokinterp train | analyze | presets | fork | compare | import | sweep | repro | warn | serve`: the command line
(the Makefile wraps it). `report` is an alias of `compare` for a release.

Any config key is overridable as `--section.key=value` (e.g. `--optim.lr=3e-4 --task.op=mul`);
values are Python literals checked against the key's type. Misuse exits 2 with one message.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

# OpenMP's default wait policy spins idle threads; when anything else runs on the machine, 2-thread training
# then collapses (measured: the nanda preset 3.6x slower). Passive waiting costs little on an idle machine
# (bench/bench_omp.py). Set before torch loads OpenMP; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .experiments.cli import add_claims_parser, add_repro_parser, run_claims_command, run_repro_command
from .sweep.cli import add_sweep_parser, run_sweep_command
from .experiments.warning.cli import add_warn_parser, run_warn_command
from .config import PRESET_NOTES, PRESETS, ConfigError, all_keys, apply_overrides, parse_override_args, preset

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's default prints usage too)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _keys_epilog() -> str:
    lines = ["config keys (override any with --KEY=VALUE; defaults are Nanda et al.'s configuration, as in the probe-stencil write-up):"]
    for key, default, type_name in all_keys():
        lines.append(f"  --{key:<28} {type_name:<14} default {default!r}")
    lines.append("  --plugins.NAME='{...}'         dict           a training plug-in's keyword arguments")
    lines.append("presets: " + ", ".join(f"{name} ({', '.join(f'{k}={v!r}' for k, v in o.items())})"
                                         for name, o in PRESETS.items()))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="grokinterp", description="Grokking on modular arithmetic, with mechanistic interpretability.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser(
        "train", help="train a run into a run directory", epilog=_keys_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one run (full-batch AdamW) and write its dense checkpoint series.",
    )
    train.add_argument("--preset", default="quick", choices=sorted(PRESETS), help="starting configuration (default: quick)")
    train.add_argument("--out", type=Path, help="run directory (default: checkpoints/<preset>)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run in --out bit-identically")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    analyze = sub.add_parser("analyze", help="replay a run's checkpoints and write its report.html",
                             description="Replay the standard analyses over a run's checkpoints (cached) and write report.html.")
    analyze.add_argument("run", type=Path, nargs="?", default=Path("checkpoints/quick"), help="run directory (default: checkpoints/quick)")
    analyze.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    analyze.add_argument("--stride", type=int, default=1, help="replay every k-th checkpoint (default 1)")
    analyze.add_argument("--analyses", default=None,
                         help="comma-separated registered analyses to replay (default: the standard ones, "
                              "spectra,progress,trig_fit); see grokinterp.analysis.available_analyses()")
    analyze.add_argument("--no-progress", action="store_true", help="no progress bar")
    analyze.add_argument("--out", type=Path, help="the report's path (default RUN/report.html)")
    analyze.add_argument("--cache-dir", type=Path, help="the replay cache (default RUN/analysis); with --out, "
                                                        "a run on read-only media can be analysed")
    analyze.add_argument("--export-dir", type=Path, help="also write every report figure to this folder as images "
                                                         "(kaleido, else headless Chromium)")
    analyze.add_argument("--format", choices=["svg", "png"], default="svg", help="image format for --export-dir "
                                                                                "(default svg)")
    sub.add_parser("presets", help="list the presets and their reasons")
    fork = sub.add_parser(
        "fork", help="continue a run from one of its checkpoints with changed settings",
        description="Continue RUN from step N (its weights, and its optimizer and plug-in state replayed to N "
                    "exactly) into a new run directory, with --section.key=value overrides of optim.*, train.* "
                    "and plugins.*. The fork records its parent and step (fork.json, summary.json).",
        epilog="example: grokinterp fork checkpoints/nanda --step 6000 --out checkpoints/nanda_wd025 "
               "--optim.weight_decay=0.25")
    fork.add_argument("run", type=Path, help="the parent run directory (only read)")
    fork.add_argument("--step", type=int, required=True, help="a checkpoint step of the parent")
    fork.add_argument("--out", type=Path, required=True, help="the fork's run directory")
    fork.add_argument("--resume", action="store_true", help="continue an interrupted fork in --out")
    fork.add_argument("--no-progress", action="store_true", help="no progress bar")
    compare = sub.add_parser(
        "compare", aliases=["report"], help="compare runs on one offline HTML page (alias: report)",
        description="Overlay the curves and key series of several runs (a fork and its parent on one axis) "
                    "with a summary table, as one offline, self-contained HTML page.")
    compare.add_argument("runs", type=Path, nargs="+", help="run directories")
    compare.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    imp = sub.add_parser(
        "import", help="convert a published training run into a run directory",
        description="Convert a published run into an ordinary run directory (checkpoints, metrics, split) that "
                    "analyze and replay read: `nanda` is Nanda et al.'s full_run_data.pth (progress-measures "
                    "paper), `tl-demo` the file TransformerLens's Grokking_Demo notebook saves. Files are read "
                    "with torch.load(weights_only=True) only.",
        epilog="example: grokinterp import nanda full_run_data.pth --out checkpoints/nanda_original")
    imp.add_argument("format", choices=["nanda", "tl-demo"], help="what the file is")
    imp.add_argument("file", type=Path, help="the torch-saved file")
    imp.add_argument("--out", type=Path, required=True, help="the new run directory")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify = sub.add_parser(
        "verify", help="check every file of a run against its recorded hash",
        description="Check every file of a run directory: content hashes, checkpoint contents, metrics rows, "
                    "missing checkpoints. Exit 0 when intact, 1 when damaged (each problem on one line).")
    verify.add_argument("run", type=Path, help="run directory")
    verify.add_argument("--all", action="store_true", help="also list the files that are fine")
    repair = sub.add_parser(
        "repair", help="regenerate a run's missing or damaged checkpoints by exact replay",
        description="Regenerate every missing or damaged checkpoint and state of a run by replaying its training "
                    "from the nearest intact state (checked row by row against metrics.csv); says so when that "
                    "is impossible and writes nothing.")
    repair.add_argument("run", type=Path, help="run directory")
    repair.add_argument("--no-progress", action="store_true", help="no progress bar")
    serve = sub.add_parser(
        "serve", help="the live lab in a browser: watch runs train, launch runs and study arms, read the wavetable",
        description="Serve the live lab (Dash) over RUNS_DIR: runs and their live curves, a launch form (presets, "
                    "overrides, add stencil, Grokfast, beta1), the MLP wavetable at any checkpoint, live comparison. "
                    "Needs the optional extra: pip install 'grokinterp[app]'.")
    serve.add_argument("runs_dir", type=Path, nargs="?", default=Path("checkpoints"),
                       help="folder of run directories (default: checkpoints)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                                                           "prints a warning and requires a token)")
    serve.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    serve.add_argument("--token", help="the token a non-local --host requires (default: GROKINTERP_LAB_TOKEN, "
                                       "else a random one, printed)")
    serve.add_argument("--poll", type=float, default=2.0, help="seconds between live updates (default 2)")
    add_sweep_parser(sub)
    add_repro_parser(sub)
    add_claims_parser(sub)
    add_warn_parser(sub)
    return parser


def check_out_dir(path: Path | None, flag: str = "--out") -> None:
    """A directory to write into: neither it nor a folder above it may be a file (ConfigError naming the flag)."""
    if path is None:
        return
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise ConfigError(f"{flag} {path}: {part} is a file, not a directory; choose another {flag}")


def check_out_file(path: Path | None, flag: str = "--out") -> None:
    """A file to write: it may not be a directory, nor lie under a file (ConfigError naming the flag)."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; name the file to write, e.g. {path / 'report.html'}")
    check_out_dir(path.parent, flag)


def _os_error_line(command: str, e: OSError) -> str:
    """One line for a failed write or read: the path and what to do about the errno."""
    advice = {errno.ENOSPC: "the disk is full: free space or write elsewhere",
              errno.EROFS: "read-only media: write elsewhere (analyze: --out and --cache-dir)",
              errno.EACCES: "permission denied: write elsewhere (analyze: --out and --cache-dir)"}
    where = e.filename2 if e.filename2 and str(e.filename or "").endswith(".tmp") else e.filename
    return f"grokinterp {command}: error: cannot write {where or 'a file'}: {advice.get(e.errno, e.strerror or e)}"


def _cmd_train(args, extra: list[str]) -> int:
    config = apply_overrides(preset(args.preset), parse_override_args(extra))  # before the slow imports: errors are instant
    check_out_dir(args.out)
    from .runs import train_run
    from .runs import RunError

    if args.print_config:
        print(config.to_json())
        return 0
    out = args.out or Path("checkpoints") / args.preset
    try:
        run = train_run(config, out, resume=args.resume, progress=not args.no_progress)
    except RunError as e:
        print(f"grokinterp train: error: {e}", file=sys.stderr)
        return 1
    print(f"run written to {run.path}: {json.dumps(run.summary)}")
    return 0


def _cmd_analyze(args) -> int:
    if args.workers < 1 or args.stride < 1:
        raise ConfigError("--workers and --stride must be >= 1")
    check_out_file(args.out)
    check_out_dir(args.cache_dir, "--cache-dir")
    if not (args.run / "config.json").is_file():
        raise ConfigError(f"{args.run} is not a run directory (no config.json); run `make train` or `grokinterp train --out {args.run}` first")
    from .report import analyze_run
    from .runs import Run, RunError

    analyses = None if args.analyses is None else [a.strip() for a in args.analyses.split(",") if a.strip()]
    if analyses is not None:
        from .analysis import available_analyses

        unknown = sorted(set(analyses) - set(available_analyses()))
        if unknown:
            raise ConfigError(f"--analyses: unknown analysis {unknown}; available: {sorted(available_analyses())}")
    if args.export_dir is not None:
        from .report import ExportError, export_backend

        try:
            export_backend()  # before the replay: a missing backend is said at once
        except ExportError as e:
            raise ConfigError(str(e)) from None
    try:
        path = analyze_run(args.run, workers=args.workers, stride=args.stride, progress=not args.no_progress,
                           analyses=analyses, out=args.out, cache_dir=args.cache_dir)
    except (RunError, ValueError) as e:
        print(f"grokinterp analyze: error: {e}", file=sys.stderr)
        return 1
    print(f"report written to {path}")
    if not Run(args.run).metrics:
        print(f"note: {args.run} has recorded no metrics yet (stopped before its first resume point); the report "
              "shows the replayed checkpoints only")
    if args.export_dir is not None:
        from .analysis import replay
        from .report import export_run_figures

        result = replay(args.run, analyses, stride=args.stride, progress=False,
                        cache_dir=args.cache_dir)  # the cache analyze_run filled
        paths = export_run_figures(args.run, args.export_dir, args.format, result=result)
        print(f"{len(paths)} figures written to {args.export_dir} as {args.format}")
    return 0


def _cmd_fork(args, extra: list[str]) -> int:
    overrides = parse_override_args(extra)
    check_out_dir(args.out)
    if not (args.run / "config.json").is_file():
        raise ConfigError(f"{args.run} is not a run directory (no config.json)")
    from .experiments import fork_run
    from .runs import RunError

    try:
        run = fork_run(args.run, args.step, args.out, overrides, resume=args.resume, progress=not args.no_progress)
    except RunError as e:
        print(f"grokinterp fork: error: {e}", file=sys.stderr)
        return 1
    print(f"fork written to {run.path}: {json.dumps(run.summary)}")
    return 0


def _cmd_compare(args) -> int:
    check_out_file(args.out)
    missing = [str(r) for r in args.runs if not (r / "config.json").is_file()]
    if missing:
        raise ConfigError(f"not a run directory (no config.json): {', '.join(missing)}")
    from .report import write_comparison

    print(f"comparison written to {write_comparison(args.runs, args.out)}")
    return 0


def _cmd_import(args) -> int:
    if not args.file.is_file():
        raise ConfigError(f"{args.file} does not exist")
    check_out_dir(args.out)
    if (args.out / "config.json").is_file():
        raise ConfigError(f"{args.out} already holds a run; choose another --out")
    from .importers import IMPORTERS, ImportFormatError, write_imported_run
    from .runs import RunError

    try:
        run = write_imported_run(IMPORTERS[args.format](args.file), args.out, progress=not args.no_progress)
    except (ImportFormatError, RunError) as e:
        print(f"grokinterp import: error: {e}", file=sys.stderr)
        return 1
    print(f"run written to {run.path}: {json.dumps({k: run.summary.get(k) for k in ('status', 'memorization_step', 'grokking_step')})}")
    return 0


def _cmd_verify(args) -> int:
    if not (args.run / "config.json").is_file():
        raise ConfigError(f"{args.run} is not a run directory (no config.json)")
    from .runs import verify_run

    report = verify_run(args.run)
    for finding in report.findings:
        if args.all or finding.status != "ok":
            print(f"{finding.status:<10} {finding.path}{': ' + finding.message if finding.message else ''}")
    print(report.summary_line())
    return 0 if report.ok else 1


def _cmd_repair(args) -> int:
    if not (args.run / "config.json").is_file():
        raise ConfigError(f"{args.run} is not a run directory (no config.json)")
    from .experiments import repair_run

    written = repair_run(args.run, progress=not args.no_progress)
    for line in written:
        print(f"regenerated {args.run / line}")
    print(f"{args.run}: {'repaired' if written else 'nothing to repair'}")
    return 0


def _cmd_serve(args) -> int:
    from .app import AppMissingError, serve

    if not args.runs_dir.is_dir():
        raise ConfigError(f"{args.runs_dir} is not a folder; run `make train` first (it writes checkpoints/quick) "
                          "or pass the folder that holds your runs")
    if args.poll <= 0:
        raise ConfigError(f"--poll={args.poll} must be > 0")
    try:
        serve(args.runs_dir, host=args.host, port=args.port, token=args.token, poll_ms=int(args.poll * 1000))
    except AppMissingError as e:
        print(f"grokinterp serve: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "train":
            return _cmd_train(args, extra)
        if args.command == "sweep":  # before the `extra` check: sweeps take the same --KEY=VALUE overrides
            return run_sweep_command(args, extra)
        if args.command == "fork":
            return _cmd_fork(args, extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "analyze":
            return _cmd_analyze(args)
        if args.command in ("compare", "report"):
            return _cmd_compare(args)
        if args.command == "import":
            return _cmd_import(args)
        if args.command == "verify":
            return _cmd_verify(args)
        if args.command == "repair":
            return _cmd_repair(args)
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "repro":
            return run_repro_command(args)
        if args.command == "claims":
            return run_claims_command(args)
        if args.command == "warn":
            return run_warn_command(args, sys.argv[1:] if argv is None else argv)
        for name, overrides in PRESETS.items():
            print(f"{name}: {PRESET_NOTES[name]}\n    {json.dumps(overrides)}")
        return 0
    except ConfigError as e:
        print(f"grokinterp {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a full disk, read-only media, no permission: one line naming the path
        print(_os_error_line(args.command, e), file=sys.stderr)
        return 1
    except Exception as e:
        runs = sys.modules.get("grokinterp.runs")  # imported by whatever raised a RunError
        if runs is not None and isinstance(e, runs.RunError):
            print(f"grokinterp {args.command}: error: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
