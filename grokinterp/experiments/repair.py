"""Regenerate a run's missing or damaged checkpoints and states by replaying its training exactly.

    repair_run("checkpoints/quick")     # what `grokinterp repair checkpoints/quick` does

Training is deterministic on CPU at a fixed thread count, so the checkpoint at step N is the result of
replaying the run from its nearest intact state S <= N (or from its initialisation, step 0) with its own
config. Every replayed step's metric row is compared with metrics.csv, and every intact checkpoint the
replay passes with the replayed weights; only an exact replay writes anything (through `RunWriter`).

What cannot be regenerated is said, and nothing is written: a damaged config.json or split (they define
the run), a damaged metrics.csv (the reference the replay is checked against), an imported run (its
checkpoints came from elsewhere), or a replay that does not match (another thread count or device).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..runs import Run, RunError, RunWriter, VerifyReport, read_metrics_csv, verify_run
from .fork import replay_threads, start_trainer


def _impossible(report: VerifyReport, run: Run) -> str:
    """Why `run` cannot be repaired by replay ('' when it can)."""
    bad = {f.path.name for f in report.problems}
    for name in ("config.json", "split.safetensors", "metrics.csv"):
        if name in bad:
            return (f"{run.path / name} is damaged and defines what a replay must reproduce; it cannot be "
                    "regenerated: retrain the run (or restore the file from a copy)")
    if "source" in run.record:
        return (f"{run.path} was imported ({run.record['source'].get('format', 'another source')}); its checkpoints "
                "cannot be replayed: import it again")
    return ""


def repair_plan(report: VerifyReport) -> dict[int, set[str]]:
    """Step -> the folders ("ckpt", "state") whose file at that step is bad or missing."""
    plan: dict[int, set[str]] = {}
    for f in report.problems:
        if f.path.parent.name in ("ckpt", "state") and f.path.name.startswith("step_"):
            plan.setdefault(int(f.path.name[5:12]), set()).add(f.path.parent.name)
    return plan


def _same_row(replayed: dict, recorded: dict | None) -> bool:
    if recorded is None:
        return False
    return all((math.isnan(float(v)) and math.isnan(recorded.get(k, math.nan))) or float(v) == recorded.get(k)
               for k, v in replayed.items())


def repair_run(path: str | Path, progress: bool = False) -> list[str]:
    """Regenerate every missing or damaged checkpoint and state of the run at `path` by exact replay.

    Returns:
        One line per file written (empty when the run was intact).

    Raises:
        RunError: the run cannot be repaired (the message says why and what to do instead); nothing written.
    """
    run = Run(path)
    report = verify_run(run.path)
    why = _impossible(report, run)
    if why:
        raise RunError(why)
    plan = repair_plan(report)
    if not plan:
        return []
    good_states = [f for f in report.findings if f.path.parent.name == "state" and f.status in ("ok", "unrecorded")]
    good_states = sorted(int(f.path.name[5:12]) for f in good_states)
    good_ckpts = {int(f.path.name[5:12]) for f in report.findings
                  if f.path.parent.name == "ckpt" and f.status in ("ok", "unrecorded")}
    recorded = {int(r["step"]): r for r in read_metrics_csv(run.path / "metrics.csv")}
    final = run.summary.get("final_step")
    written = []
    threads, before = replay_threads(run), torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        with RunWriter(run.path) as writer, torch.random.fork_rng(devices=[]):
            trainer = None
            for step in sorted(plan):
                start = max((s for s in good_states if s <= step and s in good_ckpts and s not in plan.get(s, ())),
                            default=None)
                if trainer is None or trainer.step > step or (start is not None and start > trainer.step):
                    trainer, _ = start_trainer(run, start)
                _replay_to(run, trainer, step, recorded, good_ckpts)
                if step == final and "state" in plan[step]:  # the final save closes the series first
                    _check_row(run, trainer.final_row(), recorded)
                if "ckpt" in plan[step]:
                    writer.write_checkpoint(step, trainer.model.state_dict())
                    good_ckpts.add(step)
                    written.append(f"ckpt/step_{step:07d}.safetensors replayed from step {start or 0}")
                if "state" in plan[step]:
                    rows = sum(s < step or (s == step and step == final) for s in recorded)
                    state = {**trainer.state_dict(), "trainer/wall_time_s": torch.tensor(0.0, dtype=torch.float64)}
                    writer.write_state(step, state, metrics_rows=rows)
                    good_states.append(step)
                    written.append(f"state/step_{step:07d}.safetensors replayed from step {start or 0}")
    finally:
        torch.set_num_threads(before)
    return written


def _check_row(run: Run, row: dict, recorded: dict) -> None:
    """A replayed metric row must equal metrics.csv's row of its step (RunError otherwise)."""
    if not _same_row(row, recorded.get(int(row["step"]))):
        raise RunError(f"replaying {run.path} does not reproduce metrics.csv at step {int(row['step'])} (another "
                       "thread count, device or library version?); the damaged files cannot be regenerated "
                       "exactly: retrain the run")


def _replay_to(run: Run, trainer, step: int, recorded: dict, good_ckpts: set[int]) -> None:
    """Train `trainer` up to `step`, checking each row against metrics.csv and each intact checkpoint passed.

    Raises:
        RunError: the replay differs from the record (nothing is written).
    """
    while trainer.step < step:
        _check_row(run, trainer.train_step(), recorded)
        if trainer.step in good_ckpts and trainer.step != step:
            saved = run.state_dict(trainer.step)
            if not all(torch.equal(v, saved[k]) for k, v in trainer.model.state_dict().items()):
                raise RunError(f"replaying {run.path} does not reproduce ckpt/step_{trainer.step:07d}; the damaged "
                               "files cannot be regenerated exactly: retrain the run")
