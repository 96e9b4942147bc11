"""Time the per-checkpoint replay math: `checkpoint_spectra` + `progress_measures` on a Nanda-size model.

Target (issue 4): 250 checkpoints of the Nanda model (p 113, d_model 128, d_mlp 512) in under 30 s on
2 cores, i.e. under 120 ms per checkpoint for both analyses together. Loading checkpoints from disk is
the replay engine's cost and is not timed here.

Two ways are timed:
- shared: one `grid_forward` per checkpoint passed to both analyses (how a replay should call them);
- separate: each analysis does its own forward (the plain `(model, task)` call).

Usage: python bench/bench_replay_math.py [--checkpoints 50] [--threads 2] [--op add]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from grokinterp.analysis.fourier import checkpoint_spectra, grid_forward, key_frequencies
from grokinterp.analysis.fourier import progress_measures
from grokinterp.config import preset
from grokinterp.tasks import make_task
from grokinterp.model import build_model


def time_per_checkpoint(fn, n: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU milliseconds of `fn()` over n calls (after two warm-up calls)."""
    fn(), fn()
    wall, cpu = [], []
    for _ in range(n):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(1e3 * (time.perf_counter() - w0))
        cpu.append(1e3 * (time.process_time() - c0))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=int, default=50, help="timed checkpoints per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--op", default="add", help="task op (mul/div use the character basis)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = preset("nanda", task__op=args.op)
    model, task = build_model(config).eval(), make_task(config.task)
    keys = key_frequencies(model, task) or [4, 14, 35, 41, 42]  # an untrained model has none; use Nanda's count

    def shared():
        grid = grid_forward(model, task)
        checkpoint_spectra(model, task, grid=grid)
        progress_measures(model, task, keys, grid=grid)

    def separate():
        checkpoint_spectra(model, task)
        progress_measures(model, task, keys)

    def forward_only():
        grid_forward(model, task)

    print(f"p={task.p} op={task.op} d_model={config.model.d_model} d_mlp={config.model.d_mlp} threads={args.threads}"
          f" (load average before: {os.getloadavg()[0]:.2f}; other processes inflate every number)")
    for name, fn in (("forward only", forward_only), ("shared grid", shared), ("separate", separate)):
        wall, cpu = time_per_checkpoint(fn, args.checkpoints)
        med = statistics.median(wall)
        print(
            f"{name:>12}: median {med:6.1f} ms/checkpoint (min {min(wall):6.1f}, cpu {statistics.median(cpu):6.1f} ms)"
            f" -> 250 checkpoints in {0.25 * med:5.1f} s"
        )


if __name__ == "__main__":
    main()
