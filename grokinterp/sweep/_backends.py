"""Execute a sweep: a local process pool (default), a Ray cluster, or Slurm through submitit.

Every backend calls the same worker (`train_one`) with a plain config dict and a run directory, so a run
is an ordinary run directory whoever trained it. Finished runs are skipped before anything is submitted;
interrupted ones are resumed by `train_run(resume=True)`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..config import ConfigError
from ._grid import SweepSpec, is_finished, write_sweep_file
from ._worker import init_worker, train_one

BACKENDS = ("local", "ray", "slurm")


@dataclass
class SweepResult:
    """What one `run_sweep` call did: run names trained, skipped (already finished) and failed (with errors)."""

    sweep_dir: Path
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover  (macOS)
        return os.cpu_count() or 1


def run_sweep(spec: SweepSpec, out: str | Path, backend: str = "local", workers: int | None = None,
              progress: bool = True, ray_address: str | None = None, cluster: str | None = None,
              executor_params: dict | None = None) -> SweepResult:
    """Train every run of `spec` under `out/<run name>/`, skipping finished runs and resuming interrupted ones.

    Args:
        spec: the grid and base config.
        out: the sweep directory; `sweep.json` (spec + resolved grid) is written there first.
        backend: "local" (process pool, spawn context), "ray" or "slurm" (submitit).
        workers: parallel runs; local: default every core (`train.threads` = 1 per run), 1 trains in this
            process one run after another (no spawned worker); ray: CPUs of a local
            Ray instance started here (ignored when connecting to a cluster); slurm: the job array's parallelism.
        progress: a tqdm bar over runs.
        ray_address: `ray.init(address=...)`, e.g. "auto" for a running cluster; None starts a local instance
            unless Ray is already initialised in this process.
        cluster: submitit's cluster: None (auto: Slurm when available), "slurm", "local" or "debug".
        executor_params: passed to submitit's `executor.update_parameters`, e.g. {"slurm_partition": "cpu",
            "timeout_min": 60}.

    Returns:
        A SweepResult; failed runs are listed with their error (the sweep goes on without them).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} is not valid; choose one of {list(BACKENDS)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers={workers} must be >= 1")
    out = Path(out)
    start = time.perf_counter()
    write_sweep_file(out, spec)
    result = SweepResult(out)
    todo = []
    for run in spec.runs():
        run_dir = out / run.name
        if is_finished(run_dir):
            result.skipped.append(run.name)
        else:
            todo.append((run.name, run.config.to_dict(), str(run_dir)))
    bar = tqdm(total=len(result.skipped) + len(todo), initial=len(result.skipped), disable=not progress,
               desc=f"sweep {out.name}", unit="run", dynamic_ncols=True)
    counts: Counter = Counter()

    def record(name: str, outcome: dict) -> None:
        status = outcome["status"] or "unknown"
        result.statuses[name] = status
        if outcome["error"] is not None or status not in ("grokked", "memorized", "not_learned", "diverged"):
            result.failed[name] = outcome["error"] or f"ended with status {status!r}"
        else:
            result.trained.append(name)
        counts[status] += 1
        bar.set_postfix_str(" ".join(f"{k} {v}" for k, v in sorted(counts.items())), refresh=False)
        bar.update(1)

    try:
        if todo:
            runner = {"local": _run_local, "ray": _run_ray, "slurm": _run_slurm}[backend]
            runner(todo, record, spec.threads, workers=workers, ray_address=ray_address, cluster=cluster,
                   executor_params=executor_params or {}, out=out)
    finally:
        bar.close()
    result.wall_time_s = time.perf_counter() - start
    return result


def _run_local(todo, record, threads, workers, out, **_):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    workers = workers or max(1, available_cores() // threads)
    workers = min(workers, len(todo))
    if workers == 1:
        return _run_serial(todo, record)
    context = multiprocessing.get_context("spawn")  # fork after torch's thread pools start is unsafe
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(train_one, config, run_dir): name for name, config, run_dir in todo}
        try:
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except BrokenProcessPool as e:  # a worker was killed (e.g. out of memory): the pool is gone
                    outcome = {"status": "failed", "error": f"worker process died ({e}); rerun the sweep to resume"}
                record(futures[future], outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # unfinished runs resume next time
            raise


def _run_serial(todo, record):
    """One worker: train in this process (no spawn, no second torch import), then restore its thread count."""
    import torch

    threads = torch.get_num_threads()
    try:
        for name, config, run_dir in todo:
            record(name, train_one(config, run_dir))
    finally:
        torch.set_num_threads(threads)


def _run_ray(todo, record, threads, workers, ray_address, **_):
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'grokinterp[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs = {"num_cpus": workers} if ray_address is None and workers else {}
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, **kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=threads, max_retries=0)(train_one)
        refs = {remote.remote(config, run_dir): name for name, config, run_dir in todo}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # noqa: BLE001  (a worker died: report this run, go on)
                    outcome = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                record(refs[ref], outcome)
    finally:
        if started:
            ray.shutdown()


def _run_slurm(todo, record, threads, workers, cluster, executor_params, out, poll_s: float = 1.0, **_):
    try:
        import submitit
    except ImportError:
        raise ConfigError("the slurm backend needs submitit: pip install 'grokinterp[slurm]'") from None
    executor = submitit.AutoExecutor(folder=out / ".submitit" / "%j", cluster=cluster)
    params = {"timeout_min": 60, "cpus_per_task": threads, "name": f"grokinterp-{out.name}"}
    if workers and executor.cluster == "slurm":
        params["slurm_array_parallelism"] = workers
    params.update(executor_params)
    executor.update_parameters(**params)
    names = [name for name, _, _ in todo]
    jobs = executor.map_array(train_one, [c for _, c, _ in todo], [d for _, _, d in todo])
    pending = dict(zip(jobs, names))
    while pending:
        for job in [j for j in pending if j.done()]:
            try:
                outcome = job.result()
            except Exception as e:  # noqa: BLE001  (job killed, timed out or preempted: resumable next time)
                outcome = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
            record(pending.pop(job), outcome)
        if pending:
            time.sleep(poll_s)
