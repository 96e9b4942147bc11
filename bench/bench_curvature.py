"""Time curvature and gradient geometry on the Nanda model over its full training set (issue 5).

Target: the top Hessian eigenvalue of the Nanda model (p 113, 3,830 training pairs, d_model 128, d_mlp 512,
226,688 trained parameters) in under 5 s per checkpoint on 2 cores. The model is the last checkpoint of
checkpoints/nanda when that run exists (its own split; the preconditioned sharpness uses its last saved
optimizer state), else a fresh model of the nanda preset (random init, the preset's split). Loading
checkpoints is not timed. Each row is the median of --repeats calls (wall clock); the Hessian-vector
product row is the median of 10 products.

Usage: python bench/bench_curvature.py [--threads 2] [--repeats 3] [--run checkpoints/nanda] [--init]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

import torch

from grokinterp.analysis.curvature import (
    HessianVectorProduct,
    adam_preconditioner,
    gradient_effective_rank,
    half_batch_agreement,
    hessian_trace,
    preconditioned_sharpness,
    top_eigenvalues,
)
from grokinterp.config import preset
from grokinterp.runs import Run
from grokinterp.tasks import make_task
from grokinterp.model import build_model

TARGET_S = 5.0


def timed(fn, repeats: int) -> tuple[float, object]:
    """(median wall seconds over `repeats` calls, the last result)."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def load(run_dir: Path, init: bool):
    """(label, model, task, optimizer state or None, optimizer config)."""
    if not init and (run_dir / "config.json").is_file() and Run(run_dir).steps:
        run = Run(run_dir)
        states = [s for s in run.state_steps if s > 0 and s in run.steps]
        step = states[-1] if states else run.steps[-1]
        state = run.optimizer_state(step) if states else None
        return f"{run_dir} step {step}", run.model(step), run.task, state, run.config.optim
    config = preset("nanda")
    return "nanda preset, random init", build_model(config).eval(), make_task(config.task), None, config.optim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="calls per row; the median is shown")
    parser.add_argument("--run", type=Path, default=Path("checkpoints/nanda"), help="run whose last checkpoint to use")
    parser.add_argument("--init", action="store_true", help="use a randomly initialised nanda model instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    label, model, task, state, optim = load(args.run, args.init)
    tokens, labels = task.train_tokens, task.train_labels
    load_before = os.getloadavg()[0]

    setup_s, hvp = timed(lambda: HessianVectorProduct(model, tokens, labels), args.repeats)
    v = torch.randn(hvp.n, generator=torch.Generator().manual_seed(0))
    hvp_s, _ = timed(lambda: hvp(v), 10)
    rows = [("gradient with graph (set-up)", setup_s, "", ""), ("one Hessian-vector product", hvp_s, "", "")]

    def top(k):
        return top_eigenvalues(HessianVectorProduct(model, tokens, labels), k=k)

    top1_s, top1 = timed(lambda: top(1), args.repeats)
    verdict = "PASS" if top1_s < TARGET_S else "FAIL"
    rows.append((f"top eigenvalue (k=1, tol 1e-3): {top1.values[0]:.4g}, {top1.n_matvec} products", top1_s,
                 f"< {TARGET_S:g} s", verdict))
    top3_s, top3 = timed(lambda: top(3), args.repeats)
    rows.append((f"top 3 eigenvalues: {', '.join(f'{x:.4g}' for x in top3.values)}, {top3.n_matvec} products",
                 top3_s, "", "info"))
    trace_s, trace = timed(lambda: hessian_trace(HessianVectorProduct(model, tokens, labels), n_probes=8),
                           args.repeats)
    rows.append((f"trace (Hutchinson, 8 probes): {trace.estimate:.4g} +- {trace.stderr:.2g}", trace_s, "", "info"))
    if state is not None:
        def sharpness():
            h = HessianVectorProduct(model, tokens, labels)
            return preconditioned_sharpness(h, adam_preconditioner(state, h.names, optim.beta2, optim.eps))

        sharp_s, sharp = timed(sharpness, args.repeats)
        rows.append((f"preconditioned sharpness: {sharp:.4g}", sharp_s, "", "info"))
    agree_s, agree = timed(lambda: half_batch_agreement(model, tokens, labels, step=0), args.repeats)
    rows.append((f"half-batch agreement: {agree.cosine:.3f}", agree_s, "", "info"))
    rank_s, rank = timed(lambda: gradient_effective_rank(model, tokens, labels), args.repeats)
    rows.append((f"effective rank of 128 per-sample gradients: {rank:.2f}", rank_s, "", "info"))

    load_after = os.getloadavg()[0]
    busy = max(load_before, load_after) > (os.cpu_count() or 1)
    print(f"curvature of {label}: {hvp.n} parameters, {len(tokens)} training pairs, {args.threads} threads, "
          f"float32, repeats {args.repeats}")
    print(f"{'what':<72} {'seconds':>8}  {'target':>8}  result")
    for what, seconds, target, result in rows:
        result = "busy" if busy and result in ("PASS", "FAIL") else result
        shown = f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
        print(f"{what:<72} {shown:>8}  {target:>8}  {result}")
    print(f"load average {load_before:.2f} before, {load_after:.2f} after on {os.cpu_count()} CPUs"
          + (" (BUSY: the wall-clock rows are upper bounds)" if busy else ""))
    if not math.isfinite(top1.values[0]):
        raise SystemExit("top eigenvalue is not finite")


if __name__ == "__main__":
    main()
