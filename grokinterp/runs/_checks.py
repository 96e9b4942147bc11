"""Checks of what a run's files hold, beyond their hashes: split, checkpoint contents, metrics.csv's record.

Each check raises `RunError` with one message naming the file and what to do, so that a damaged run
directory is never read as a different run.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..config import ConfigError, TaskConfig
from ..tasks import ModularTask, make_task
from ._files import RunError, list_steps, read_json, read_tensors, recovery_hint, step_filename
from ._integrity import METRICS_KEY, check_metrics_bytes, state_metrics_record


def check_state_dict(path: Path, state: dict[str, Tensor], reference: dict[str, Tensor]) -> None:
    """A checkpoint's tensors must be exactly the model's: same names, shapes and dtypes, and no NaN.

    Raises:
        RunError: naming the file and the first difference.
    """
    missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    if missing or unexpected:
        raise RunError(f"{path} does not hold this run's model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                       f"{recovery_hint(path)}")
    for name, ref in reference.items():
        got = state[name]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise RunError(f"{path}: {name} is {got.dtype} {list(got.shape)}, the model needs {ref.dtype} "
                           f"{list(ref.shape)}; {recovery_hint(path)}")
        if got.is_floating_point() and bool(torch.isnan(got).any()):
            raise RunError(f"{path}: {name} holds NaN weights; {recovery_hint(path)}")


def check_split(path: Path, task: TaskConfig, trained: bool, require_hash: bool = False) -> ModularTask:
    """The task with the stored split; the split must partition the pairs (and, for a trained run, have the
    train size that `task.frac_train` gives).

    Raises:
        RunError: naming split.safetensors.
    """
    tensors, _, _ = read_tensors(path, require_hash)
    idx = [tensors.get(k) for k in ("train_idx", "test_idx")]
    if any(t is None or t.ndim != 1 or t.is_floating_point() or t.is_complex() for t in idx):
        raise RunError(f"{path} must hold 1-d integer tensors train_idx and test_idx; {recovery_hint(path)}")
    n = task.p * task.p
    if trained and len(idx[0]) != int(task.frac_train * n):
        raise RunError(f"{path} has {len(idx[0])} training pairs but config.json's task (p={task.p}, frac_train="
                       f"{task.frac_train}) gives {int(task.frac_train * n)}: one of the two was edited, or train and "
                       f"test were swapped; {recovery_hint(path)}")
    try:
        return make_task(task, (idx[0], idx[1]))
    except (ConfigError, ValueError) as e:
        raise RunError(f"{path} does not fit config.json ({e}); {recovery_hint(path)}") from None


def metrics_record(run_path: Path) -> tuple[dict | None, str]:
    """The hash record of metrics.csv covering the most rows, and the file it comes from: the newest state
    file that reads cleanly, or summary.json; (None, "") when nothing is recorded (an older run)."""
    best: tuple[dict | None, str] = (None, "")
    summary = Path(run_path) / "summary.json"
    if summary.is_file():
        try:
            record = read_json(summary)[0].get(METRICS_KEY)
            if isinstance(record, dict):
                best = (record, str(summary))
        except RunError:
            pass  # reported when summary.json itself is read
    for step in reversed(list_steps(Path(run_path) / "state")):
        path = Path(run_path) / "state" / step_filename(step)
        try:
            meta = read_tensors(path)[1]
        except RunError:
            continue  # reported when the state itself is read
        record = state_metrics_record(meta)
        if record is not None:
            if best[0] is None or _rows(record) > _rows(best[0]):
                best = (record, str(path))
        break
    return best


def _rows(record: dict) -> int:
    try:
        return int(record["rows"])
    except (KeyError, TypeError, ValueError):
        return -1


def read_checked_metrics(run_path: Path, require_hash: bool = False) -> bytes:
    """metrics.csv's bytes, checked against `metrics_record` (unchecked when none is recorded).

    Raises:
        RunError: the recorded rows are missing or differ (naming metrics.csv and the recording file).
    """
    path = Path(run_path) / "metrics.csv"
    data = path.read_bytes()
    record, where = metrics_record(run_path)
    if record is None and require_hash and [s for s in list_steps(Path(run_path) / "state") if s > 0]:
        raise RunError(f"{path}: no intact file records its hash (summary.json and the newest state are damaged); "
                       f"{recovery_hint(path)}")
    try:
        check_metrics_bytes(path, data, record, where)
    except RunError as e:
        raise RunError(f"{e}; {recovery_hint(path)}") from None
    return data
