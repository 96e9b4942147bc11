"""What one worker does for one run. Imports no torch at module level, so that a spawned worker can
fix its thread count before torch starts its thread pools."""

from __future__ import annotations

import os


def init_worker(threads: int = 1) -> None:
    """Pool initializer: `threads` torch/OpenMP threads in this process (one per worker uses every core)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    _die_with_parent()
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already fixed in this process (a reused worker)
        pass


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the sweep process dies, so no orphan keeps a run's lock (best effort)."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def train_one(config: dict, run_dir: str) -> dict:
    """Train (or resume) one run; never raises, so one bad run does not stop a sweep.

    Args:
        config: `RunConfig.to_dict()` of the run (plain data: crosses process and machine boundaries).
        run_dir: its run directory; an interrupted run there is resumed, a finished one is returned as is.

    Returns:
        {"run_dir", "status", "error"}: status from summary.json, or "failed" with the error message.
    """
    from ..config import RunConfig
    from ..runs import train_run
    from ._grid import is_finished, run_status

    try:
        if not is_finished(run_dir):  # train_run sets torch's threads to the config's train.threads
            train_run(RunConfig.from_dict(config), run_dir, resume=True, progress=False)
        return {"run_dir": run_dir, "status": run_status(run_dir), "error": None}
    except Exception as e:  # noqa: BLE001  (reported per run by the sweep)
        return {"run_dir": run_dir, "status": "failed", "error": f"{type(e).__name__}: {e}"}
