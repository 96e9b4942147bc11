"""Benchmark: replay the standard analyses (Fourier spectra + progress measures) over 250 checkpoints
of a Nanda-size model (p 113, 1 layer, d_model 128, 4 heads of 32, d_mlp 512), target < 30 s on 2 cores.

The run directory is synthetic (random weights, written in the foundation's format: config.json,
split.safetensors, metrics.csv, ckpt/step_*.safetensors), so the benchmark needs no training:

    .venv/bin/python bench/bench_replay.py [--checkpoints 250] [--workers 1 2] [--keep DIR] [--strict]

Prints one row per configuration: seconds for a cold replay (nothing cached) against the target,
per-checkpoint cost, and the second (fully cached) replay. Wall-clock rows inflate when other
processes share the cores, so a last row gives one-thread process CPU time divided by two cores.
Exit status 0 unless --strict and no row meets the target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from grokinterp.analysis import replay
from grokinterp.config import preset
from grokinterp.runs import atomic_write_json, save_tensors, step_filename, versions, write_metrics_csv
from grokinterp.tasks import make_task
from grokinterp.model import build_model

TARGET_S = 30.0


def make_synthetic_run(path: Path, n_checkpoints: int, every: int = 100, seed: int = 0) -> Path:
    """A run directory of `n_checkpoints` random-weight checkpoints of the `nanda` preset's model.

    Checkpoint i is theta_0 + (i / n) * delta + noise: a smooth random trajectory, so spectra vary.
    """
    config = preset("nanda")
    task = make_task(config.task)
    atomic_write_json(path / "config.json", {"config": config.to_dict(), "versions": versions()})
    save_tensors(path / "split.safetensors", {"train_idx": task.train_idx, "test_idx": task.test_idx})
    model = build_model(config)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    weights = [k for k in start if k.rsplit(".", 1)[-1].startswith("W_")]
    delta = {k: torch.randn(start[k].shape, generator=generator) * start[k].std() for k in weights}
    rows = []
    for i in range(n_checkpoints):
        step = i * every
        state = dict(start)
        for k in weights:
            noise = 0.01 * torch.randn(start[k].shape, generator=generator)
            state[k] = start[k] + (i / n_checkpoints) * delta[k] + noise
        save_tensors(path / "ckpt" / step_filename(step), state)
        rows.append({"step": step, "train_loss": 4.7, "train_acc": 0.0, "test_loss": 4.7, "test_acc": 0.0})
    write_metrics_csv(path / "metrics.csv", rows)
    atomic_write_json(path / "summary.json", {"status": "not_learned", "memorization_step": None,
                                              "grokking_step": None, "gap": None})
    return path


def _replay_timed(base: Path, root: Path, name: str, workers: int) -> tuple[float, float, float, object]:
    """(cold wall s, cold process-CPU s, cached wall s, result) of a replay of a fresh copy of `base`."""
    run = root / name
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(base, run)
    w0, c0 = time.perf_counter(), time.process_time()
    result = replay(run, ["spectra", "progress"], workers=workers, progress=False)
    cold, cpu = time.perf_counter() - w0, time.process_time() - c0
    w0 = time.perf_counter()
    replay(run, ["spectra", "progress"], workers=workers, progress=False)
    return cold, cpu, time.perf_counter() - w0, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=250)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-cpu1", action="store_true", help="skip the one-thread CPU-time row")
    parser.add_argument("--keep", type=Path, default=None, help="build the run here and keep it")
    parser.add_argument("--strict", action="store_true", help="exit 1 when no configuration meets the target")
    args = parser.parse_args(argv)

    tmp = None if args.keep else tempfile.mkdtemp(prefix="bench_replay_")
    root = Path(args.keep or tmp)
    n_cpu = os.cpu_count() or 1
    try:
        t0 = time.perf_counter()
        base = make_synthetic_run(root / "base", args.checkpoints)
        threads = torch.get_num_threads()
        print(f"built {args.checkpoints} synthetic nanda-size checkpoints in {time.perf_counter() - t0:.1f} s "
              f"(torch {torch.__version__}, {threads} threads, {n_cpu} CPUs)", file=sys.stderr)
        rows, loads = [], []
        for workers in args.workers:
            loads.append(os.getloadavg()[0])
            cold, _, warm, result = _replay_timed(base, root, f"workers{workers}", workers)
            label = f"workers={workers} ({threads} threads)" if workers == 1 else f"workers={workers} (1 thread each)"
            rows.append((label, cold, warm, "wall"))
        if not args.no_cpu1:
            # Process CPU time on one thread hardly moves when other processes share the cores, unlike
            # wall-clock time; divided by the core count it is what a perfectly parallel replay would take.
            torch.set_num_threads(1)
            loads.append(os.getloadavg()[0])
            _, cpu, warm, result = _replay_timed(base, root, "cpu1", 1)
            torch.set_num_threads(threads)
            rows.append((f"1-thread CPU time / {min(2, n_cpu)} cores", cpu / min(2, n_cpu), warm, "cpu"))
        busy = max(loads) > n_cpu
        print(f"\nReplay of spectra + progress over {args.checkpoints} checkpoints of the Nanda model "
              f"(p 113, d_model 128, d_mlp 512); target < {TARGET_S:.0f} s on 2 cores")
        print(f"{'configuration':<34} {'seconds':>8} {'ms/ckpt':>8} {'cached s':>9} {'target s':>9}  verdict")
        for name, seconds, warm, kind in rows:
            verdict = "PASS" if seconds < TARGET_S else "FAIL"
            if busy and kind == "wall":
                verdict += " (machine busy: upper bound)"
            print(f"{name:<34} {seconds:>8.1f} {1000 * seconds / args.checkpoints:>8.1f} {warm:>9.2f} "
                  f"{TARGET_S:>9.0f}  {verdict}")
        print(f"load average (1 min) while timing: {', '.join(f'{x:.1f}' for x in loads)} on {n_cpu} CPUs"
              + ("  BUSY" if busy else ""))
        print(f"key frequencies of the synthetic final checkpoint: {result.context['progress']['key_freqs']}")
        ok = any(seconds < TARGET_S for _, seconds, _, _ in rows)
        return 1 if args.strict and not ok else 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
