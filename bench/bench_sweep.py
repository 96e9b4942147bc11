"""Benchmark: a 30-seed sweep of the `fast` preset on this machine, target < 15 minutes on 2 cores (issue 7).

    .venv/bin/python bench/bench_sweep.py [--seeds 30] [--workers 2] [--keep DIR] [--strict]

Not part of `make bench` by default (it trains 30 runs: about 15 minutes of wall time); `make bench-sweep`
runs it. Prints one table: wall time against the target, the preset's p / model size / budget, and over
the runs the median wall time per run, how many memorized first then grokked, and the median memorization
and grokking steps. The 1-minute load average is sampled: above the core count, read the time as an
upper bound (other processes shared the cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from grokinterp.config import preset
from grokinterp.sweep import SweepSpec, aggregate_sweep, collect, run_sweep

TARGET_S = 15 * 60


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="sweep directory to keep (default: a temporary one, removed)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    config = preset("fast")
    n_params = (config.task.d_vocab * config.model.d_model + 3 * config.model.d_model
                + 4 * config.model.n_layers * config.model.d_model * config.model.n_heads * config.model.d_head
                + 2 * config.model.n_layers * config.model.d_model * config.model.d_mlp
                + config.model.d_model * config.task.d_vocab_out)
    loads = [os.getloadavg()[0]]
    start = time.perf_counter()
    try:
        result = run_sweep(SweepSpec({"model.seed": list(range(args.seeds))}, preset="fast"), out,
                           workers=args.workers, progress=True)
        wall = time.perf_counter() - start
        loads.append(os.getloadavg()[0])
        records = [r for r in collect(out) if r.finished]
        cell = aggregate_sweep(out, write=False)[0]
        walls = [r.summary["wall_time_s"] for r in records]
        first_mem = sum(r.summary.get("status") == "grokked" and not r.summary.get("generalizes_without_memorizing")
                        for r in records)
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    busy = max(loads) > (os.cpu_count() or 2)
    rows = [
        ("runs", f"{len(records)} of {args.seeds} ({len(result.failed)} failed)", "", ""),
        ("fast preset", f"p {config.task.p}, {config.model.n_layers} layer, d_model {config.model.d_model}, "
                        f"d_mlp {config.model.d_mlp}, ~{n_params / 1e3:.0f}k params, budget {config.train.steps} steps",
         "", "info"),
        ("wall time of the sweep", f"{wall:,.0f} s ({args.workers} workers)", f"< {TARGET_S} s",
         "busy" if busy and wall >= TARGET_S else ("PASS" if wall < TARGET_S else "FAIL")),
        ("median wall time per run", f"{np.median(walls):.1f} s", "", "info"),
        ("memorized first, then grokked", f"{first_mem} of {len(records)}", "", "info"),
        ("median memorization / grokking step", f"{cell['median_memorization_step']} / {cell['median_grokking_step']}",
         "", "info"),
        ("1-min load average (start, end)", f"{loads[0]:.1f}, {loads[-1]:.1f}", f"<= {os.cpu_count()}",
         "BUSY" if busy else "ok"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'row':{width}s} | measured | reference | result")
    for name, measured, ref, verdict in rows:
        print(f"{name:{width}s} | {measured} | {ref} | {verdict}")
    return 1 if args.strict and wall >= TARGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
