"""A run's status and milestones (what summary.json records), defined once for training, the run directory,
analyses and the live lab alike; nothing here knows about files.

Memorization step: first step with train accuracy >= ACC_THRESHOLD. Grokking step: first step with train
and test accuracy both >= ACC_THRESHOLD. Gap = grokking step - memorization step. Status: "grokked",
"memorized" (never grokked), "not_learned" (never memorized), "diverged" (NaN/inf); "running" while training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACC_THRESHOLD = 0.99
FINAL_STATUSES = ("grokked", "memorized", "not_learned", "diverged")


@dataclass
class Milestones:
    """Memorization, grokking and divergence steps, updated row by row (None until reached)."""

    memorization_step: int | None = None
    grokking_step: int | None = None
    diverged_step: int | None = None

    def update(self, step: int, train_acc: float, test_acc: float | None) -> None:
        if self.memorization_step is None and train_acc >= ACC_THRESHOLD:
            self.memorization_step = step
        if self.grokking_step is None and test_acc is not None and train_acc >= ACC_THRESHOLD and test_acc >= ACC_THRESHOLD:
            self.grokking_step = step

    @classmethod
    def of_columns(cls, steps, train_acc, test_acc) -> "Milestones":
        """The milestones of whole metric columns (NaN test accuracy: not evaluated), as `update` row by row
        would find them; used to follow a run still training from its metrics.csv.

        >>> Milestones.of_columns([0, 1, 2, 3], [0.5, 0.995, 1.0, 1.0], [0.1, float("nan"), 0.4, 0.999])
        Milestones(memorization_step=1, grokking_step=3, diverged_step=None)
        """
        steps = np.asarray(steps)
        train, test = np.asarray(train_acc, dtype=float), np.asarray(test_acc, dtype=float)
        memorized = np.flatnonzero(train >= ACC_THRESHOLD)
        grokked = np.flatnonzero((train >= ACC_THRESHOLD) & (test >= ACC_THRESHOLD))  # NaN compares False
        return cls(memorization_step=int(steps[memorized[0]]) if len(memorized) else None,
                   grokking_step=int(steps[grokked[0]]) if len(grokked) else None)

    @property
    def status(self) -> str:
        if self.diverged_step is not None:
            return "diverged"
        if self.grokking_step is not None:
            return "grokked"
        return "memorized" if self.memorization_step is not None else "not_learned"


def summarize(milestones: Milestones, rows: list[dict], final_step: int, wall_time_s: float, steps_run: int) -> dict:
    """summary.json of a finished run: status, milestones, gap, stable grokking step, final accuracies, speed.

    Args:
        milestones: the run's milestones.
        rows: metric rows ({"step", "train_acc", "test_acc", ...}; NaN test columns where not evaluated).
        final_step: the run's last step.
        wall_time_s: training wall time; steps_run: steps taken in it (for steps_per_s).
    """
    m = milestones
    steps = np.array([r["step"] for r in rows])
    test_acc = np.array([r["test_acc"] for r in rows], dtype=float)
    evaluated = ~np.isnan(test_acc)
    stable = None
    if evaluated.any() and test_acc[evaluated][-1] >= ACC_THRESHOLD:
        below = np.flatnonzero(evaluated & (test_acc < ACC_THRESHOLD))
        after = steps[evaluated & (steps > (steps[below[-1]] if len(below) else -1))]
        stable = int(after[0]) if len(after) else None
    no_memorize = None
    if m.memorization_step is not None:
        seen = evaluated & (steps <= m.memorization_step)
        no_memorize = bool(test_acc[seen][-1] >= 0.5) if seen.any() else None
    last = rows[-1] if rows else {}
    gap = None if m.grokking_step is None or m.memorization_step is None else m.grokking_step - m.memorization_step
    return {
        "status": m.status,
        "memorization_step": m.memorization_step,
        "grokking_step": m.grokking_step,
        "gap": gap,
        "stable_grokking_step": stable,
        "generalizes_without_memorizing": no_memorize,
        "diverged_step": m.diverged_step,
        "final_step": final_step,
        "final_train_acc": _finite_or_none(last.get("train_acc")),
        "final_test_acc": _finite_or_none(last.get("test_acc")),
        "wall_time_s": round(wall_time_s, 3),
        "steps_per_s": round(steps_run / wall_time_s, 2) if wall_time_s > 0 else None,
    }


def _finite_or_none(x):
    return None if x is None or not math.isfinite(x) else x
