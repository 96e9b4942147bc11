"""`grokinterp sweep`: run a grid of runs, then write aggregate.csv and report.html in the sweep directory.

    grokinterp sweep --preset fast --grid optim.beta1=0,0.5,0.9 --grid model.seed=0:30 \\
        --out checkpoints/sweep_beta1 --workers 2
    grokinterp sweep --spec sweep.json --out checkpoints/sweep_wd --backend ray --ray-address auto
    grokinterp sweep --report-only --out checkpoints/sweep_beta1

Config overrides shared by every run go after the options, as for `train`: `--optim.weight_decay=0.5`.
Running the same command again skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import PRESETS, ConfigError, parse_literal, parse_override_args

EXAMPLE = ("examples:\n  grokinterp sweep --preset fast --grid optim.beta1=0,0.5,0.9 --grid model.seed=0:30 "
           "--out checkpoints/sweep_beta1 --workers 2\n"
           "  grokinterp sweep --spec spec.json --out checkpoints/sweep_wd   "
           "# spec.json: {\"preset\": \"fast\", \"overrides\": {\"optim.beta1\": 0.0}, "
           "\"grid\": {\"optim.weight_decay\": [0, 1, 2, 5], \"model.seed\": \"0:30\"}}\n"
           "grid values: 0,0.5,0.9 (literals), 0:30 or 0:30:2 or range(30) (integers), [..] (a list literal).")


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `sweep` subcommand to the main parser's subparsers; returns it."""
    p = subparsers.add_parser(
        "sweep", help="train a grid of runs (local pool, Ray or Slurm), aggregate them and write a report",
        description="Train every point of a grid of config keys as an ordinary run directory under --out "
                    "(finished runs skipped, interrupted ones resumed), then write aggregate.csv and report.html.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), help="base preset (default: fast, or the spec file's)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=VALUES",
                   help="a grid axis, repeatable: optim.beta1=0,0.5,0.9 or model.seed=0:30")
    p.add_argument("--spec", type=Path, help="a JSON spec file {preset, overrides, grid, seed_keys, threads}; "
                                             "--grid axes are added to its grid")
    p.add_argument("--seed-key", action="append", dest="seed_keys", metavar="KEY",
                   help="a grid key pooled as replicates (default: the grid keys ending in .seed)")
    p.add_argument("--out", type=Path, help="sweep directory (default: checkpoints/sweep_<swept keys>)")
    p.add_argument("--backend", default="local", choices=["local", "ray", "slurm"], help="executor (default local)")
    p.add_argument("--workers", type=int, help="parallel runs (default: every core; slurm: array parallelism)")
    p.add_argument("--threads", type=int, help="torch threads per run (default 1)")
    p.add_argument("--ray-address", help="Ray cluster address (e.g. auto); default: a local Ray instance")
    p.add_argument("--cluster", choices=["slurm", "local", "debug"], help="submitit cluster (default: auto)")
    p.add_argument("--executor-param", action="append", default=[], metavar="KEY=VALUE",
                   help="submitit executor parameter, repeatable: slurm_partition=cpu, timeout_min=120")
    p.add_argument("--x-key", help="swept key on the report's x axis (default: the first non-seed key)")
    p.add_argument("--no-curves", action="store_true", help="leave per-run curves out of the report")
    p.add_argument("--report-only", action="store_true", help="only aggregate and report an existing --out")
    p.add_argument("--dry-run", action="store_true", help="print the runs (and whether each is done) and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _key_values(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.removeprefix("--").partition("=")
        if not eq or not key:
            raise ConfigError(f"{what} {item!r} must look like KEY=VALUE")
        out[key] = parse_literal(value)
    return out


SPEC_TYPES = {"preset": (str,), "grid": (dict,), "overrides": (dict,), "seed_keys": (list,), "threads": (int,),
              "arms": (dict,)}


def _check_spec_types(path: Path, data: dict) -> None:
    """Each known key of a spec file must have its JSON type (ConfigError naming the file, key and type)."""
    for key, types in SPEC_TYPES.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise ConfigError(f"--spec {path}: {key!r} must be a JSON {types[0].__name__.replace('dict', 'object')}"
                              f", got {type(value).__name__} {value!r:.60}")
    if not all(isinstance(k, str) for k in data.get("seed_keys") or []):
        raise ConfigError(f"--spec {path}: 'seed_keys' must be a list of grid keys (strings)")


def build_spec(args, extra=()):
    """The SweepSpec of the parsed arguments (spec file, then --preset, --grid, overrides, --seed-key)."""
    from ._grid import SweepSpec, parse_grid_arg

    data = {}
    if args.spec is not None:
        if not args.spec.is_file():
            raise ConfigError(f"--spec {args.spec} does not exist")
        try:
            data = json.loads(args.spec.read_bytes().decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"--spec {args.spec} is not valid UTF-8 JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--spec {args.spec} must hold a JSON object {{preset, overrides, grid, ...}}")
        _check_spec_types(args.spec, data)
    data = dict(data)
    data["grid"] = dict(data.get("grid", {}))
    for item in args.grid:
        key, values = parse_grid_arg(item)
        data["grid"][key] = values
    if args.preset:
        data["preset"] = args.preset
    data["overrides"] = {**data.get("overrides", {}), **parse_override_args(extra)}
    if args.seed_keys:
        data["seed_keys"] = args.seed_keys
    if args.threads is not None:
        data["threads"] = args.threads
    return SweepSpec.from_dict(data)


def _default_out(spec) -> Path:
    keys = spec.cell_keys or spec.replicate_keys or list(spec.grid)
    return Path("checkpoints") / ("sweep_" + "_".join(k.rsplit(".", 1)[-1] for k in keys))


def run_sweep_command(args, extra=()) -> int:
    """Carry out `grokinterp sweep`; returns the exit code (0 ok, 1 some runs failed; ConfigError: caller exits 2)."""
    from ._grid import is_finished

    if args.report_only:
        from ._report import sweep_report

        if args.out is None:
            raise ConfigError("--report-only needs --out SWEEP_DIR")
        if extra:
            raise ConfigError(f"unrecognized arguments with --report-only: {' '.join(extra)}")
        try:
            path = sweep_report(args.out, x_key=args.x_key, curves=not args.no_curves)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(str(e)) from None
        print(f"aggregate written to {args.out / 'aggregate.csv'}; report written to {path}")
        return 0
    if not args.grid and args.spec is None:
        raise ConfigError("a sweep needs --grid KEY=VALUES (repeatable) or --spec FILE; see grokinterp sweep --help")
    spec = build_spec(args, extra)
    out = args.out or _default_out(spec)
    if args.dry_run:
        for run in spec.runs():
            print(f"{'done' if is_finished(out / run.name) else 'todo'}  {out / run.name}")
        return 0
    from ._backends import run_sweep  # torch: after every usage and spec error
    from ._report import sweep_report
    result = run_sweep(spec, out, backend=args.backend, workers=args.workers, progress=not args.no_progress,
                       ray_address=args.ray_address, cluster=args.cluster,
                       executor_params=_key_values(args.executor_param, "--executor-param"))
    print(f"sweep {out}: {len(result.trained)} trained, {len(result.skipped)} already finished, "
          f"{len(result.failed)} failed in {result.wall_time_s:.1f} s")
    for name, error in result.failed.items():
        print(f"  failed {name}: {error}", file=sys.stderr)
    try:
        path = sweep_report(out, x_key=args.x_key, curves=not args.no_curves)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    print(f"aggregate written to {out / 'aggregate.csv'}; report written to {path}")
    return 0 if result.ok else 1
