"""Where the training loop's time goes: `train_run` against the step and the evaluation it needs.

    .venv/bin/python bench/bench_loop.py [--preset nanda] [--steps 200]

One torch thread, CPU time of this process (`time.process_time`), so the numbers hold on a busy machine
(wall time would charge other processes' work to us). Rows, each in ms per training step:

- bare step: forward on the training set, cross-entropy, backward, AdamW (no metrics);
- Trainer.train_step: the same plus the per-step metrics (weight norms, gradient norm, momentum cosine),
  test evaluation switched off;
- evaluation: one `Trainer.evaluate` of the test set, divided by `train.eval_every` (its share per step);
- train_run: the whole loop for --steps steps (evaluation, checkpoints every `train.ckpt_every`, a resume
  state every `train.state_every`, metrics.csv, summary), start-up excluded;
- train_run with checkpoints and states only at the first and last step: what dense checkpoints cost;
- overhead: train_run ÷ (bare step + evaluation share) − 1. The target is ≤ 10 %.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import torch

from grokinterp import preset
from grokinterp.config import apply_overrides
from grokinterp.tasks import make_task
from grokinterp.runs import train_run
from grokinterp.train import cross_entropy, make_trainer


def cpu_ms(fn, repeats: int) -> float:
    """CPU milliseconds per call of fn() (after one untimed call)."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return 1000 * (time.process_time() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nanda")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = apply_overrides(preset(args.preset), {"train.threads": 1, "train.steps": args.steps,
                                                   "train.early_stop_after": None})
    task = make_task(config.task)
    trainer = make_trainer(config, task)
    model, optimizer = trainer.model, trainer.optimizer

    def bare() -> None:
        loss = cross_entropy(trainer.forward_last(trainer.train_tokens), trainer.train_labels, trainer.loss_dtype)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    no_eval = apply_overrides(config, {"train.eval_every": 10**9})
    stepper = make_trainer(no_eval, task)
    stepper.step = 1  # step 0 is evaluated whatever eval_every is
    repeats = max(10, args.steps // 4)
    bare_ms = cpu_ms(bare, repeats)
    step_ms = cpu_ms(stepper.train_step, repeats)
    eval_ms = cpu_ms(lambda: trainer.evaluate(trainer.test_tokens, trainer.test_labels), max(5, repeats // 5))
    eval_share = eval_ms / config.train.eval_every
    def loop(cfg) -> float:
        out = tempfile.mkdtemp(prefix="bench_loop_")
        try:
            shutil.rmtree(out)
            start = time.process_time()
            train_run(cfg, out, progress=False)
            return 1000 * (time.process_time() - start) / args.steps
        finally:
            shutil.rmtree(out, ignore_errors=True)

    loop_ms = loop(config)
    sparse_ms = loop(apply_overrides(config, {"train.ckpt_every": args.steps, "train.state_every": args.steps}))
    needed = bare_ms + eval_share
    t = config.train
    print(f"{args.preset} preset, {args.steps} steps, 1 thread, CPU ms per training step "
          f"(eval every {t.eval_every}, checkpoint every {t.ckpt_every}, state every {t.state_every}; "
          f"load average {os.getloadavg()[0]:.1f})")
    for label, value in (("bare step", bare_ms), ("Trainer.train_step (metrics, no eval)", step_ms),
                         (f"evaluation ÷ {t.eval_every}", eval_share), ("train_run (the loop)", loop_ms),
                         ("train_run, first and last checkpoint only", sparse_ms)):
        print(f"{label:>40} | {value:8.2f}")
    print(f"{'overhead over step + evaluation':>40} | {100 * (loop_ms / needed - 1):7.1f} %")


if __name__ == "__main__":
    main()
