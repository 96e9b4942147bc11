"""The replay engine: run registered analyses over a run's checkpoint series, cached on disk.

An analysis is registered once, under a name and an integer version:

- kind "checkpoint": `fn(model, task, context) -> dict[str, array | float]`, called once per
  checkpoint; every step must give the same keys with the same shapes. `context` is a `StepContext`:
  the dict the analysis's optional `prepare(run)` returned (computed once per run, JSON-able; else
  empty), its `.step`, its `.run_path` (for what a checkpoint file does not hold, e.g. the optimizer
  state at that step), and `.shared(key, compute)`, a memo common to all analyses of one checkpoint.
- kind "series": `fn(metrics) -> dict[str, array]`, called once on the dense metric series
  (`Run.metrics`); every array's first axis runs over the rows of `metrics["step"]`.

Results are cached in the run directory, one safetensors file per (analysis, version, step):

```
<run>/analysis/<name>/v<version>/step_<NNNNNNN>.safetensors   checkpoint kind, one per step
<run>/analysis/<name>/v<version>/prepare.json                   the prepared context
<run>/analysis/<name>/v<version>/series.safetensors             series kind
```

Each file is written atomically as soon as it is computed, so a second replay computes nothing
and an interrupted one resumes where it stopped. A file is reused only when it matches its own content hash and its metadata
matches the analysis version and the hashes of what it was computed from: config.json, the split, the
checkpoint (and state) at its step and the prepared context (checkpoint kind), or metrics.csv (series
kind). A replaced checkpoint is therefore recomputed, never read stale; bumping the version moves to a
fresh folder.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..runs import (Run, RunError, atomic_write_json, content_digest, read_tensors, remove_orphan_temp_files,
                    save_tensors, step_filename)

KINDS = ("checkpoint", "series")
# What `replay(analyses=None)` and `grokinterp analyze` run; registered by _standard.py and _nanda.py.
# trig_fit shares their forward pass and adds 5-8% to a replay (measured: nanda 334 -> 352, quick 141 -> 153 ms/ckpt).
STANDARD_ANALYSES = ("spectra", "progress", "trig_fit")


@dataclass(frozen=True)
class Analysis:
    """A registered analysis: its name, version, kind, function and optional per-run `prepare`."""

    name: str
    version: int
    kind: str
    fn: Callable
    prepare: Callable[[Run], dict] | None = None

    def folder(self, run_path: Path, cache_dir: Path | None = None) -> Path:
        """Its cache folder: `<cache_dir>/<name>/v<version>`, by default under `<run>/analysis/`."""
        root = Path(run_path) / "analysis" if cache_dir is None else Path(cache_dir)
        return root / self.name / f"v{self.version}"


class StepContext(dict):
    """What a checkpoint analysis receives as `context`: its prepared dict, plus the step and a memo
    shared by every analysis run on the same checkpoint (so one forward pass can serve them all).

    >>> ctx = StepContext({"key_freqs": [4, 7]}, step=100)
    >>> ctx["key_freqs"], ctx.step, ctx.shared("x", lambda: 2 + 3), ctx.shared("x", lambda: 0)
    ([4, 7], 100, 5, 5)
    """

    def __init__(self, prepared: dict, step: int, memo: dict | None = None, run_path: str | Path | None = None):
        super().__init__(prepared)
        self.step = step
        self.run_path = None if run_path is None else Path(run_path)  # None for a context built by hand
        self._memo = {} if memo is None else memo

    def optimizer_state(self) -> dict[str, torch.Tensor] | None:
        """The run's saved optimizer state at this step (`Run.optimizer_state`), or None where the run saved
        none there (`train.state_every`) or the context was built by hand. The engine reads the file, so that
        analyses receive the state instead of opening run directories themselves."""
        if self.run_path is None:
            return None
        run = Run(self.run_path)
        return run.optimizer_state(self.step) if self.step in run.state_steps else None

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once per checkpoint, whichever analysis asks first (same model, same task).

        Only for values that are pure functions of (model, task), e.g. `grid_forward(model, task)`.
        """
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


_REGISTRY: dict[str, Analysis] = {}


def register_analysis(name: str, version: int = 1, kind: str = "checkpoint", prepare: Callable | None = None):
    """Decorator: register `fn` as the analysis `name` (re-registering a name replaces it).

    Args:
        name: a folder-safe name (letters, digits, `_`, `-`), unique in the registry.
        version: bump it whenever the function's output changes; older caches are then ignored.
        kind: "checkpoint" (`fn(model, task, context)`) or "series" (`fn(metrics)`).
        prepare: checkpoint kind only: `prepare(run) -> dict` of JSON values, computed once per run
            and passed to every call as `context` (e.g. key frequencies of the last checkpoint).

    Returns:
        The decorator; it returns `fn` unchanged (so workers can import it by name).

    >>> @register_analysis("embed_norm_doc", version=1)
    ... def embed_norm(model, task, context):
    ...     return {"norm": float(model.W_E.norm())}
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not valid; choose one of {list(KINDS)}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"version={version!r} must be a non-negative integer")
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"analysis name {name!r} must be non-empty letters, digits, '_' or '-' (it names a folder)")
    if prepare is not None and kind != "checkpoint":
        raise ValueError(f"analysis {name!r}: prepare is only for kind='checkpoint'")

    def wrap(fn: Callable) -> Callable:
        _REGISTRY[name] = Analysis(name, version, kind, fn, prepare)
        return fn

    return wrap


def available_analyses() -> list[str]:
    """Names of every registered analysis (the standard ones included)."""
    return sorted(_REGISTRY)


def get_analysis(name: str) -> Analysis:
    """The registered analysis `name`; an unknown name raises ValueError listing the valid ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown analysis {name!r}; registered analyses: {sorted(_REGISTRY)} "
                         "(register yours with @register_analysis)")
    return _REGISTRY[name]


@dataclass(eq=False)  # arrays do not compare to one bool
class ReplayResult(Mapping):
    """Arrays indexed by step, per analysis: `result["spectra"]["embed_gini"]` is `[n_steps]`.

    Attributes:
        run_path: the run directory replayed.
        steps: int64 [n_steps], the checkpoint steps replayed (axis 0 of every checkpoint analysis).
        data: analysis name -> key -> array `[n_steps, ...]` (series kind: `[n_rows, ...]`).
        series_steps: series analysis name -> int64 [n_rows], its step axis (metrics rows).
        context: analysis name -> its prepared context (`{}` without `prepare`).
        computed: analysis name -> how many steps (or series) were computed rather than read from cache.
    """

    run_path: Path
    steps: np.ndarray
    data: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    series_steps: dict[str, np.ndarray] = field(default_factory=dict)
    context: dict[str, dict] = field(default_factory=dict)
    computed: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> dict[str, np.ndarray]:
        if name not in self.data:
            raise KeyError(f"{name!r} was not replayed; this result holds {sorted(self.data)}")
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def steps_of(self, name: str) -> np.ndarray:
        """The step axis of analysis `name` (checkpoint steps, or the metrics rows of a series analysis)."""
        self[name]
        return self.series_steps.get(name, self.steps)

    def at(self, name: str, step: int) -> dict[str, np.ndarray]:
        """Every key of analysis `name` at one step."""
        steps = self.steps_of(name)
        hit = np.flatnonzero(steps == step)
        if not len(hit):
            raise KeyError(f"step {step} is not in the replayed steps of {name!r} ({len(steps)} steps)")
        return {k: v[hit[0]] for k, v in self[name].items()}

    def __repr__(self) -> str:
        span = f"{self.steps[0]}..{self.steps[-1]}" if len(self.steps) else "none"
        return f"ReplayResult({str(self.run_path)!r}, steps={len(self.steps)} ({span}), analyses={sorted(self.data)})"


# ----- selection -----------------------------------------------------------------------------------


def select_steps(available: Sequence[int], steps: Sequence[int] | None = None, stride: int = 1,
                 start: int | None = None, stop: int | None = None) -> list[int]:
    """Checkpoint steps to replay: `steps` if given, else those with start <= step <= stop (inclusive),
    then every `stride`-th one, always keeping the last selected step (the final model matters most).

    >>> select_steps([0, 50, 100, 150, 200], stride=3)
    [0, 150, 200]
    >>> select_steps([0, 50, 100, 150, 200], start=50, stop=150)
    [50, 100, 150]
    """
    available = list(available)
    if not available:
        raise ValueError("the run has no checkpoints (ckpt/ is empty); train it first")
    span = f"{len(available)} checkpoints from {available[0]} to {available[-1]}"
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride={stride!r} must be a positive integer")
    if steps is not None:
        missing = sorted(set(int(s) for s in steps) - set(available))
        if missing:
            raise ValueError(f"steps {missing[:10]} have no checkpoint; the run has {span}")
        chosen = sorted(set(int(s) for s in steps))
    else:
        if start is not None and stop is not None and start > stop:
            raise ValueError(f"start={start} is after stop={stop}")
        lo = available[0] if start is None else start
        hi = available[-1] if stop is None else stop
        chosen = [s for s in available if lo <= s <= hi]
    if not chosen:
        raise ValueError(f"no checkpoint in the range start={start}, stop={stop}; the run has {span}")
    strided = chosen[::stride]
    if strided[-1] != chosen[-1]:
        strided.append(chosen[-1])
    return strided


# ----- cache files --------------------------------------------------------------------------------


def _hash_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _jsonable(obj: Any) -> Any:
    """Numpy / torch scalars and arrays -> plain JSON values (prepare contexts may return them)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _to_arrays(name: str, step: int | None, out: Any) -> dict[str, np.ndarray]:
    if not isinstance(out, Mapping):
        raise TypeError(f"analysis {name!r} returned {type(out).__name__}; it must return a dict of arrays/floats")
    arrays = {}
    for key, value in out.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            where = "" if step is None else f" at step {step}"
            raise TypeError(f"analysis {name!r} key {key!r}{where} is {arr.dtype}; "
                            "only bool/int/float arrays are stored")
        arrays[str(key)] = np.array(arr, order="C", copy=True)  # not ascontiguousarray: it makes 0-d 1-d
    return arrays


def _write_arrays(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    save_tensors(path, {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}, metadata=metadata)


def _read_arrays(path: Path, expect: dict[str, str]) -> dict[str, np.ndarray] | None:
    """The cached arrays if the file exists, matches its content hash and its metadata matches `expect`; else
    None (a truncated, corrupted, stale or foreign file is recomputed, never trusted)."""
    if not path.is_file():
        return None
    try:
        tensors, meta, hashed = read_tensors(path)
    except RunError:
        return None
    if not hashed or any(meta.get(k) != v for k, v in expect.items()):
        return None
    return {k: v.numpy() for k, v in tensors.items()}


def _step_meta(analysis: Analysis, step: int, context_hash: str, inputs: str) -> dict[str, str]:
    return {"analysis": analysis.name, "version": str(analysis.version), "step": str(step), "context": context_hash,
            "inputs": inputs}


def run_digest(run: Run) -> str:
    """Hash of what every checkpoint analysis of `run` reads besides its checkpoint: config.json and the split."""
    return _hash_json([content_digest(run.path / "config.json"), content_digest(run.path / "split.safetensors")])


def step_inputs(run: Run, step: int, base: str) -> str:
    """Hash of what an analysis at `step` reads: `base` (`run_digest`), the checkpoint and the state there."""
    name = step_filename(step)
    return _hash_json([base, content_digest(run.path / "ckpt" / name), content_digest(run.path / "state" / name)])


def _prepared_context(analysis: Analysis, run: Run, cache_dir: Path | None = None) -> dict:
    """`analysis.prepare(run)`, cached in prepare.json and recomputed when the checkpoint series changed."""
    if analysis.prepare is None:
        return {}
    steps = run.steps
    base = run_digest(run)
    fingerprint = {"n_checkpoints": len(steps), "last_step": steps[-1] if steps else None,
                   "inputs": _hash_json([step_inputs(run, s, base) for s in steps])}
    path = analysis.folder(run.path, cache_dir) / "prepare.json"
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if stored.get("fingerprint") == fingerprint and stored.get("version") == analysis.version:
                return stored["context"]
        except (json.JSONDecodeError, KeyError, OSError):
            pass
    context = _jsonable(analysis.prepare(run))
    if not isinstance(context, dict):
        raise TypeError(f"prepare of analysis {analysis.name!r} returned {type(context).__name__}, not a dict")
    atomic_write_json(path, {"analysis": analysis.name, "version": analysis.version, "fingerprint": fingerprint,
                             "context": context})
    return context


# ----- computing one checkpoint (in this process or in a worker) ------------------------------------

_WORKER_RUNS: dict[tuple, tuple[Run, Any, Any]] = {}  # per process: run identity -> (run, task, model shell)


def _model_at(run_path: str, step: int):
    """(model at `step`, task), reusing one model object and task per run within this process."""
    key = (run_path, (Path(run_path) / "config.json").stat().st_mtime_ns)
    if key not in _WORKER_RUNS:
        run = Run(run_path)
        _WORKER_RUNS.clear()  # one run at a time: do not hold models of earlier runs
        _WORKER_RUNS[key] = (run, run.task, run.model(step))
    run, task, model = _WORKER_RUNS[key]
    model.load_state_dict(run.checked_state_dict(step, model.state_dict()), strict=True)
    return model.eval(), task


def _compute_step(run_path: str, step: int, jobs: list[tuple[Analysis, dict, str]],
                  inputs: str = "", cache_dir: str | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Run each (analysis, context, context hash) on the checkpoint at `step`; write and return the results,
    recording `inputs` (the hash of what they read, `step_inputs`)."""
    model, task = _model_at(run_path, step)
    results, memo = {}, {}
    for analysis, context, context_hash in jobs:
        try:
            out = analysis.fn(model, task, StepContext(context, step, memo, run_path))  # grad mode: the analysis's choice
        except Exception as e:
            e.add_note(f"(in analysis {analysis.name!r} v{analysis.version} at step {step} of {run_path})")
            raise
        arrays = _to_arrays(analysis.name, step, out)
        path = analysis.folder(Path(run_path), cache_dir) / step_filename(step)
        _write_arrays(path, arrays, _step_meta(analysis, step, context_hash, inputs))
        results[analysis.name] = arrays
    return results


def _worker_init() -> None:
    torch.set_num_threads(1)  # n workers on n cores: one intra-op thread each


_ONE_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextmanager
def _one_thread_children() -> Iterator[None]:
    """Spawned workers inherit one-thread BLAS/OpenMP settings: numpy and scipy read them at import, before any
    initializer runs, and two 2-thread workers on 2 cores measured 4x slower than their CPU time."""
    saved = {k: os.environ.get(k) for k in _ONE_THREAD_ENV}
    os.environ.update({k: "1" for k in _ONE_THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----- replay ----------------------------------------------------------------------------------------


def replay(run_or_path: Run | str | Path, analyses: Sequence[str] | None = None, steps: Sequence[int] | None = None,
           stride: int = 1, start: int | None = None, stop: int | None = None, workers: int = 1,
           progress: bool = True, cache_dir: str | Path | None = None) -> ReplayResult:
    """Apply analyses to a run's checkpoints (and metrics), reading and filling the run's cache.

    Args:
        run_or_path: a `Run` or its directory.
        analyses: registered names; None: the standard ones (`STANDARD_ANALYSES`).
        steps, stride, start, stop: which checkpoints (see `select_steps`); series analyses keep
            the metric rows with start <= step <= stop.
        workers: processes computing checkpoints in parallel (each with one torch thread); 1 computes
            in this process.
        progress: show a tqdm bar over the selected checkpoints.
        cache_dir: where the cache lives (default `<run>/analysis`), e.g. for a run on read-only media.

    Returns:
        A ReplayResult: `result[name][key]` is an array `[n_steps, ...]` over `result.steps`.

    Example:
        >>> result = replay("checkpoints/quick", ["spectra"], stride=4)     # doctest: +SKIP
        >>> result["spectra"]["embed_gini"].shape == result.steps.shape    # doctest: +SKIP
        True
    """
    run = run_or_path if isinstance(run_or_path, Run) else Run(run_or_path)
    names = list(STANDARD_ANALYSES if analyses is None else ([analyses] if isinstance(analyses, str) else analyses))
    if not names:
        raise ValueError("analyses=[] selects nothing; pass None for the standard analyses or a list of names")
    chosen = [get_analysis(n) for n in dict.fromkeys(names)]
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} must be a positive integer")
    checkpoint = [a for a in chosen if a.kind == "checkpoint"]
    selected = select_steps(run.steps, steps, stride, start, stop) if checkpoint else []
    result = ReplayResult(run.path, np.asarray(selected, dtype=np.int64))

    cache = None if cache_dir is None else Path(cache_dir)
    for analysis in (a for a in chosen if a.kind == "series"):
        _replay_series(analysis, run, result, start, stop, cache)
    if checkpoint:
        _replay_checkpoints(checkpoint, run, selected, result, workers, progress, cache)
    result.data = {a.name: result.data[a.name] for a in chosen}  # the caller's order
    return result


def _replay_series(analysis: Analysis, run: Run, result: ReplayResult, start: int | None, stop: int | None,
                   cache_dir: Path | None = None) -> None:
    metrics_file = run.path / "metrics.csv"
    if not metrics_file.is_file():
        raise RunError(f"{run.path} has no metrics.csv; series analysis {analysis.name!r} needs it")
    digest = hashlib.sha256(metrics_file.read_bytes()).hexdigest()[:16]
    expect = {"analysis": analysis.name, "version": str(analysis.version), "metrics": digest}
    path = analysis.folder(run.path, cache_dir) / "series.safetensors"
    arrays = _read_arrays(path, expect)
    if arrays is None:
        arrays = _to_arrays(analysis.name, None, analysis.fn(run.metrics))
        n = len(run.metrics.get("step", ()))
        bad = {k: v.shape for k, v in arrays.items() if v.ndim == 0 or v.shape[0] != n}
        if bad:
            raise ValueError(f"series analysis {analysis.name!r} returned arrays whose first axis is not the "
                             f"{n} metric rows: {bad}")
        _write_arrays(path, arrays, expect)
        result.computed[analysis.name] = 1
    else:
        result.computed[analysis.name] = 0
    steps = run.metrics["step"].astype(np.int64)
    keep = np.ones(len(steps), dtype=bool)
    if start is not None:
        keep &= steps >= start
    if stop is not None:
        keep &= steps <= stop
    result.data[analysis.name] = {k: v[keep] for k, v in arrays.items()}
    result.series_steps[analysis.name] = steps[keep]
    result.context[analysis.name] = {}


def _replay_checkpoints(chosen: list[Analysis], run: Run, selected: list[int], result: ReplayResult,
                        workers: int, progress: bool, cache_dir: Path | None = None) -> None:
    remove_orphan_temp_files(run.path / "analysis" if cache_dir is None else cache_dir)  # left by a killed replay
    contexts = {a.name: _prepared_context(a, run, cache_dir) for a in chosen}
    hashes = {name: _hash_json(ctx) for name, ctx in contexts.items()}
    base = run_digest(run)
    inputs = {s: step_inputs(run, s, base) for s in selected}
    per_step: dict[int, dict[str, dict[str, np.ndarray]]] = {s: {} for s in selected}
    todo: dict[int, list[tuple[Analysis, dict, str]]] = {}
    for a in chosen:
        for s in selected:
            cached = _read_arrays(a.folder(run.path, cache_dir) / step_filename(s),
                                  _step_meta(a, s, hashes[a.name], inputs[s]))
            if cached is None:
                todo.setdefault(s, []).append((a, contexts[a.name], hashes[a.name]))
            else:
                per_step[s][a.name] = cached
    for a in chosen:
        result.computed[a.name] = sum(any(job[0] is a for job in jobs) for jobs in todo.values())
    bar = tqdm(total=len(selected), initial=len(selected) - len(todo), disable=not progress or not todo,
               desc=f"replay {run.path.name}", unit="ckpt", dynamic_ncols=True, mininterval=0.5)
    run_path, cache = str(run.path), None if cache_dir is None else str(cache_dir)
    try:
        if workers == 1 or len(todo) <= 1:
            for s, jobs in todo.items():
                per_step[s].update(_compute_step(run_path, s, jobs, inputs[s], cache))
                bar.update(1)
        else:
            _compute_parallel(run_path, todo, per_step, workers, bar, inputs, cache)
    finally:
        bar.close()
    for a in chosen:
        result.data[a.name] = _stack(a, selected, [per_step[s][a.name] for s in selected])
        result.context[a.name] = contexts[a.name]


def _not_importable(fn) -> str:
    """Why `fn` cannot be found by name in a spawned worker (the condition for sending it by reference), or ''."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        return f"{qualname or fn!r} is a lambda or a closure"
    try:
        target = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        return str(e)
    return "" if target is fn else f"{module}.{qualname} names another object"


def _compute_parallel(run_path: str, todo: dict, per_step: dict, workers: int, bar, inputs: dict[int, str],
                      cache_dir: str | None = None) -> None:
    """Workers get paths and analyses by reference (module + name), load checkpoints and write the cache."""
    todo = {s: [(replace(a, prepare=None), ctx, h) for a, ctx, h in jobs] for s, jobs in todo.items()}
    for a, _, _ in {id(job[0].fn): job for jobs in todo.values() for job in jobs}.values():
        problem = _not_importable(a.fn)
        if problem:
            raise ValueError(f"analysis {a.name!r} cannot be sent to worker processes ({problem}); define it at the top "
                             "level of an importable module, or replay with workers=1")
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools; spawn is safe everywhere
    with _one_thread_children(), ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                                                     initializer=_worker_init) as pool:
        futures = {pool.submit(_compute_step, run_path, s, todo[s], inputs[s], cache_dir): s for s in sorted(todo)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    per_step[futures[future]].update(future.result())  # re-raises a worker's error here
                    bar.update(1)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _stack(analysis: Analysis, steps: list[int], rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """[n_steps, ...] arrays; keys and shapes must agree at every step."""
    keys, shapes = set(rows[0]), {k: v.shape for k, v in rows[0].items()}
    for step, row in zip(steps, rows):
        if set(row) != keys or any(v.shape != shapes[k] for k, v in row.items()):
            got = {k: v.shape for k, v in row.items()}
            raise ValueError(
                f"analysis {analysis.name!r} gave keys/shapes {got} at step {step} but {shapes} at step {steps[0]}; "
                f"an analysis must give fixed keys and shapes per run (if its code changed, bump its version "
                f"or delete {analysis.folder(Path('<run>'))})")
    return {k: np.stack([row[k] for row in rows]) for k in rows[0]}
