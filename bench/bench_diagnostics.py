"""Benchmark: the whole early-warning diagnostics pass (the related-work papers) over 250 checkpoints of a Nanda-size model
(p 113, 1 layer, d_model 128, 4 heads of 32, d_mlp 512): the shared replay (one forward per checkpoint and
the per-checkpoint diagnostics D1, D2's lambda_2, D3's quantiles, D4, D5, D7) plus every per-run series
diagnostic (D2's indicators, D3's rolling DMD, D6's update spectra, D9). Target: < 60 s on 2 cores.

The run directory is synthetic (random-init weights on a smooth random trajectory, as bench_replay.py builds
it, plus a dense metrics.csv with a weight norm, gradient norm and momentum cosine at every step and
milestones in summary.json), so the benchmark needs no training:

    .venv/bin/python bench/bench_diagnostics.py [--checkpoints 250] [--workers 2] [--no-cpu1] [--keep DIR] [--strict]

With fewer checkpoints the seconds are also extrapolated linearly to 250 (the per-checkpoint work dominates).
Rows: cold pass (nothing cached) per worker count, wall clock; the same pass's process CPU time on one thread
divided by two cores (robust to a busy machine); the cached second pass. Exit status 0 unless --strict and no
row meets the target.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_replay import make_synthetic_run  # same folder: this script runs as bench/bench_diagnostics.py
from grokinterp.analysis.warning import warning_diagnostics
from grokinterp.runs import atomic_write_json, write_metrics_csv

TARGET_S = 60.0
TARGET_CHECKPOINTS = 250
EVERY = 100  # steps between checkpoints: 250 checkpoints span 25,000 steps, the nanda preset's budget


def make_run(path: Path, n_checkpoints: int) -> Path:
    """bench_replay's synthetic Nanda run, with dense per-step metrics and milestones (T_mem, T_grok)."""
    make_synthetic_run(path, n_checkpoints, every=EVERY)
    rng = np.random.default_rng(0)
    last = (n_checkpoints - 1) * EVERY
    t_mem, t_grok = int(0.05 * last), int(0.6 * last)
    rows = []
    for step in range(last + 1):
        frac = step / max(last, 1)
        rows.append({"step": step, "train_loss": 4.7 * math.exp(-20 * frac) + 1e-3, "train_acc": float(step >= t_mem),
                     "test_loss": 4.7, "test_acc": (0.5 + 0.5 * math.tanh((step - t_grok) / (0.05 * last + 1)))
                     if step % 10 == 0 else math.nan,
                     "weight_norm_sq": 2000 * (1 + 0.5 * math.exp(-((frac - 0.1) / 0.05) ** 2)) * math.exp(-frac)
                     * (1 + 1e-3 * rng.standard_normal()),
                     "grad_norm": 0.1 * (1 + 0.1 * rng.standard_normal()), "mom_grad_cos": 0.9 + 0.01 * rng.standard_normal()})
    write_metrics_csv(path / "metrics.csv", rows)
    atomic_write_json(path / "summary.json", {"status": "grokked", "memorization_step": t_mem, "grokking_step": t_grok,
                                              "gap": t_grok - t_mem})
    return path


def _timed(base: Path, root: Path, name: str, workers: int) -> tuple[float, float, float]:
    """(cold wall s, cold process-CPU s, cached wall s) of the diagnostics pass on a fresh copy of `base`."""
    run = root / name
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(base, run)
    w0, c0 = time.perf_counter(), time.process_time()
    diag = warning_diagnostics(run, workers=workers, progress=False)
    cold, cpu = time.perf_counter() - w0, time.process_time() - c0
    assert len(diag.steps) == len(list((run / "ckpt").iterdir()))
    w0 = time.perf_counter()
    warning_diagnostics(run, workers=workers, progress=False)
    return cold, cpu, time.perf_counter() - w0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=TARGET_CHECKPOINTS)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--no-cpu1", action="store_true", help="skip the one-thread CPU-time row")
    parser.add_argument("--keep", type=Path, default=None, help="build the run here and keep it")
    parser.add_argument("--strict", action="store_true", help="exit 1 when no configuration meets the target")
    args = parser.parse_args(argv)
    if args.checkpoints < 46:
        parser.error("--checkpoints must be >= 46 (D6 needs 20 updates and a 25-checkpoint lag)")

    tmp = None if args.keep else tempfile.mkdtemp(prefix="bench_diagnostics_")
    root = Path(args.keep or tmp)
    n_cpu = os.cpu_count() or 1
    scale = TARGET_CHECKPOINTS / args.checkpoints
    try:
        t0 = time.perf_counter()
        base = make_run(root / "base", args.checkpoints)
        threads = torch.get_num_threads()
        print(f"built {args.checkpoints} synthetic nanda-size checkpoints in {time.perf_counter() - t0:.1f} s "
              f"(torch {torch.__version__}, {threads} threads, {n_cpu} CPUs)", file=sys.stderr)
        rows, loads = [], []
        for workers in args.workers:
            loads.append(os.getloadavg()[0])
            cold, _, warm = _timed(base, root, f"workers{workers}", workers)
            label = f"workers={workers} ({threads} threads)" if workers == 1 else f"workers={workers} (1 thread each)"
            rows.append((label, cold, warm, "wall"))
        if not args.no_cpu1:
            torch.set_num_threads(1)  # one thread's CPU time hardly moves on a shared machine
            loads.append(os.getloadavg()[0])
            _, cpu, warm = _timed(base, root, "cpu1", 1)
            torch.set_num_threads(threads)
            rows.append((f"1-thread CPU time / {min(2, n_cpu)} cores", cpu / min(2, n_cpu), warm, "cpu"))
        loads.append(os.getloadavg()[0])
        busy = max(loads) > n_cpu
        extrapolated = args.checkpoints != TARGET_CHECKPOINTS
        print(f"\nEarly-warning diagnostics pass (shared replay + D1-D7, D9) over {args.checkpoints} checkpoints of the "
              f"Nanda model; target < {TARGET_S:.0f} s for {TARGET_CHECKPOINTS} on 2 cores")
        head = f"{'configuration':<34} {'seconds':>8} {'ms/ckpt':>8} {'cached s':>9}"
        print(head + (f" {'s @ 250':>8}" if extrapolated else "") + f" {'target s':>9}  verdict")
        ok = False
        for name, seconds, warm, kind in rows:
            at_target = seconds * scale
            ok |= at_target < TARGET_S
            verdict = ("PASS" if at_target < TARGET_S else "FAIL") + (" (extrapolated)" if extrapolated else "")
            if busy and kind == "wall":
                verdict += " (machine busy: upper bound)"
            print(f"{name:<34} {seconds:>8.1f} {1000 * seconds / args.checkpoints:>8.1f} {warm:>9.2f}"
                  + (f" {at_target:>8.1f}" if extrapolated else "") + f" {TARGET_S:>9.0f}  {verdict}")
        print(f"load average (1 min) while timing: {', '.join(f'{x:.1f}' for x in loads)} on {n_cpu} CPUs"
              + ("  BUSY" if busy else ""))
        return 1 if args.strict and not ok else 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
