"""Training into a run directory: `train_run(config, out)` starts or resumes a run and hands the loop
(`grokinterp.train.train_loop`) this directory's writer.

A new run gets its split, then config.json (last: it marks a run). A resumed run (`resume=True`) restarts
from its newest resume point whose checkpoint, state and metrics rows match their recorded hashes, and
continues bit-identically on CPU at the same thread count.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import ConfigError, RunConfig
from ..plugins import build_plugins
from ..tasks import make_task
from ..train import check_resources, make_trainer, train_loop
from ._files import RunError, list_steps, load_tensors, read_tensors, records_hashes, step_filename
from ._integrity import check_metrics_bytes, csv_prefix, state_metrics_record
from ._metrics import read_metrics_csv
from ._run import Run
from ._writer import RunWriter


def _check_resumable(out: Path, config: RunConfig) -> None:
    stored = Run(out).config
    if stored != config:
        a, b = stored.to_dict(), config.to_dict()
        diff = [f"{s}.{k}: {a[s][k]!r} -> {b[s][k]!r}" for s in a if isinstance(a[s], dict) for k in a[s]
                if k in b.get(s, {}) and a[s][k] != b[s][k] and s != "plugins"]
        raise ConfigError(f"--resume with a config that differs from {out}/config.json ({'; '.join(diff) or 'plugins'}); "
                          "drop the overrides to resume as it was")


def _latest_resume_point(out: Path) -> tuple[int, dict, dict, list[dict]] | None:
    """The newest step with a checkpoint and a state that match their hashes and the metrics of every step before
    it, matching the hash that state recorded (a damaged newest one is skipped); with those rows."""
    path = out / "metrics.csv"
    data = path.read_bytes() if path.is_file() else b""
    both = sorted(set(list_steps(out / "ckpt")) & set(list_steps(out / "state")), reverse=True)
    hashed = records_hashes(out)
    for step in both:
        try:
            model_state = load_tensors(out / "ckpt" / step_filename(step), hashed)
            trainer_state, meta, _ = read_tensors(out / "state" / step_filename(step), hashed)
            record = state_metrics_record(meta)
            check_metrics_bytes(path, data, record, f"state/{step_filename(step)}")
            head = csv_prefix(data, int(record["rows"])) if record else data
            metrics = read_metrics_csv(path, head) if head else []
        except RunError:
            continue
        if not {int(r["step"]) for r in metrics}.issuperset(range(step)):
            continue
        rows = [{k: (int(v) if k == "step" else v) for k, v in r.items()} for r in metrics if r["step"] < step]
        return step, model_state, trainer_state, rows
    return None


def train_run(config: RunConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Run:
    """Train `config` into the run directory `out` (or continue it with `resume=True`); returns the Run.

    Writes config.json, split, checkpoints every `train.ckpt_every` steps, resume state every
    `train.state_every`, metrics.csv (rows appended at every checkpoint, so a live run can be followed), and
    summary.json at the end.

    Example (a `fast` run takes about a minute on one CPU thread):

        from grokinterp import preset, train_run
        run = train_run(preset("fast"), "checkpoints/fast")
        run.summary["grokking_step"]
    """
    out = Path(out)
    build_plugins(config)  # an unknown plug-in or bad plug-in arguments: a ConfigError before anything is written
    check_resources(config)  # a missing device, too many threads, too little memory: likewise
    if resume and (out / "config.json").is_file():
        _check_resumable(out, config)  # read-only: a refused resume touches nothing

    def check(exists: bool) -> None:  # under the lock: a second writer is told about the first
        if exists and not resume:
            raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
        if exists:
            _check_resumable(out, config)  # again, under the lock (a run may have been created meanwhile)

    threads_before = torch.get_num_threads()
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    try:
        # fork_rng: training seeds (or, resuming, restores) the global RNG; the caller's is given back after.
        with RunWriter(out, check=check) as writer, torch.random.fork_rng(devices=[]):
            if not writer.existed:
                # config.json last: it marks a run, so a kill before it leaves a folder that a resume starts afresh
                task = make_task(config.task)
                writer.write_split(task.train_idx, task.test_idx)
                writer.write_config(config.to_dict())  # key order kept: plug-in order matters
            else:
                split = load_tensors(out / "split.safetensors")
                task = make_task(config.task, (split["train_idx"], split["test_idx"]))
            # torch seeds its global RNG at random at start-up: seed it from the config so that the RNG state a
            # state file records, and anything drawing from it, is a function of config.json (the plug-ins'
            # generator uses model.seed; +1 keeps the two streams apart)
            torch.manual_seed(config.model.seed + 1)
            trainer = make_trainer(config, task)
            rows: list[dict] = []
            wall_before = 0.0
            point = _latest_resume_point(out) if resume and writer.existed else None
            if point is not None:
                step, model_state, trainer_state, rows = point
                trainer.model.load_state_dict(model_state, strict=True)
                trainer.load_state_dict(trainer_state)
                wall_before = float(trainer_state.get("trainer/wall_time_s", torch.tensor(0.0)))
            writer.start_metrics(rows)  # rewound to the resume point
            writer.write_summary({"status": "running", "final_step": trainer.step})
            train_loop(trainer, writer, rows, wall_before, progress, name=out.name)
    finally:
        torch.set_num_threads(threads_before)  # a notebook keeps its own thread count
    return Run(out)
