"""What OpenMP's wait policy costs on an idle machine and saves on a busy one (`make bench`).

    .venv/bin/python bench/bench_omp.py [--preset nanda] [--threads 2] [--steps 30]

For each policy (ACTIVE, OpenMP's default spin-wait; PASSIVE, what `grokinterp` sets unless the user set
one) a fresh subprocess times `Trainer.train_step` of the preset with `--threads` torch threads: first on
the machine as it is ("idle": nothing of ours running), then while one other process keeps a core busy
(a pure-Python spin loop, as a second training job or a test run would). Median ms per step over --steps
steps after 5 untimed ones. The environment must be set before torch starts, hence the subprocesses.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

CHILD = r"""
import json, statistics, sys, time, torch
from grokinterp.config import preset, apply_overrides
from grokinterp.tasks import make_task
from grokinterp.train import make_trainer
name, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
config = apply_overrides(preset(name), {"train.threads": threads})
trainer = make_trainer(config, make_task(config.task))
for _ in range(5):
    trainer.train_step()
times = []
for _ in range(steps):
    t = time.perf_counter(); trainer.train_step(); times.append(time.perf_counter() - t)
print(json.dumps({"ms": 1000 * statistics.median(times)}))
"""


def _spin(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def time_step(policy: str, preset: str, threads: int, steps: int) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    out = subprocess.run([sys.executable, "-c", CHILD, preset, str(threads), str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nanda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(f"{args.preset} preset, {args.threads} torch threads, median ms per training step "
          f"(load average before: {os.getloadavg()[0]:.1f})")
    print(f"{'machine':>24} | {'ACTIVE (default)':>16} | {'PASSIVE (ours)':>14}")
    for label, busy in (("as it is", False), ("+1 busy process", True)):
        spinner = None
        if busy:
            spinner = mp.Process(target=_spin, args=(time.time() + 3600,), daemon=True)
            spinner.start()
        try:
            active = time_step("ACTIVE", args.preset, args.threads, args.steps)
            passive = time_step("PASSIVE", args.preset, args.threads, args.steps)
        finally:
            if spinner is not None:
                spinner.terminate()
        print(f"{label:>24} | {active:16.1f} | {passive:14.1f}")


if __name__ == "__main__":
    main()
