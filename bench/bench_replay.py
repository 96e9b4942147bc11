"""Benchmark: replay the standard analyses (Fourier spectra + progress measures) over 250 checkpoints
of a Nanda-size model (p 113, 1 layer, d_model 128, 4 heads of 32, d_mlp 512), target < 30 s on 2 cores.

The run directory is synthetic (random weights, written in the foundation's format: config.json,
split.safetensors, metrics.csv, ckpt/step_*.safetensors), so the benchmark needs no training:

    .venv/bin/python bench/bench_replay.py [--checkpoints 250] [--workers 1 2] [--keep DIR]

Prints one row per configuration: measured seconds against the target, and per-checkpoint cost.
"""

from __future__ import annotations

import argparse
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
from grokinterp.train import build_model

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
    delta = {k: torch.randn(v.shape, generator=generator) * v.std().nan_to_num(0.02).clamp_min(0.02)
             for k, v in start.items() if v.is_floating_point()}
    rows = []
    for i in range(n_checkpoints):
        step = i * every
        state = {k: (v + (i / n_checkpoints) * delta[k] + 0.01 * torch.randn(v.shape, generator=generator)
                     if k in delta and k.split(".")[-1].startswith("W_") else v) for k, v in start.items()}
        save_tensors(path / "ckpt" / step_filename(step), state)
        rows.append({"step": step, "train_loss": 4.7, "train_acc": 0.0, "test_loss": 4.7, "test_acc": 0.0})
    write_metrics_csv(path / "metrics.csv", rows)
    atomic_write_json(path / "summary.json", {"status": "not_learned", "memorization_step": None,
                                              "grokking_step": None, "gap": None})
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=250)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keep", type=Path, default=None, help="build the run here and keep it")
    args = parser.parse_args(argv)

    tmp = None if args.keep else tempfile.mkdtemp(prefix="bench_replay_")
    root = Path(args.keep or tmp)
    try:
        t0 = time.perf_counter()
        base = make_synthetic_run(root / "base", args.checkpoints)
        print(f"built {args.checkpoints} synthetic checkpoints in {time.perf_counter() - t0:.1f} s "
              f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
        rows = []
        for workers in args.workers:
            run = root / f"workers{workers}"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(base, run)
            t0 = time.perf_counter()
            result = replay(run, ["spectra", "progress"], workers=workers, progress=False)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            replay(run, ["spectra", "progress"], workers=workers, progress=False)
            warm = time.perf_counter() - t0
            rows.append((f"spectra+progress, workers={workers}", cold, warm, len(result.steps)))
        print(f"\n{'configuration':<34} {'checkpoints':>11} {'cold s':>8} {'ms/ckpt':>8} {'cached s':>9} "
              f"{'target s':>9}  verdict")
        for name, cold, warm, n in rows:
            verdict = "ok" if cold < TARGET_S else "SLOW"
            print(f"{name:<34} {n:>11} {cold:>8.1f} {1000 * cold / n:>8.1f} {warm:>9.2f} {TARGET_S:>9.0f}  {verdict}")
        print(f"\nkey frequencies of the synthetic final checkpoint: {result.context['progress']['key_freqs']}")
        return 0 if min(r[1] for r in rows) < TARGET_S else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
