"""Starting, stopping and resuming runs from the lab: a form's fields -> a checked RunConfig -> a background process.

The form is read exactly as `grokinterp train` reads its command line (`preset`, `parse_override_args`,
`apply_overrides`, then the plug-ins are built), so a bad value gives the CLI's one-line message and
starts nothing. The override text is split into arguments by `shlex.split`, a tokenizer: no shell ever
sees it. A run is `grokinterp.runs.train_run` in a spawned process (the library's API, no command
line), at most as many at once as there are cores; stopping sends SIGTERM (the run keeps every
checkpoint and state written so far), resuming calls `train_run(..., resume=True)`, which continues it
bit-identically from its last state.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from ..config import ConfigError, RunConfig, apply_overrides, parse_override_args, preset
from ..runs import Run
from ..plugins import build_plugins
from ._live import _held_locks, writer_alive
from ._paths import PathRefused, RunsDir

ARMS = ("none", "stencil", "grokfast", "beta1")
CLI_PREFIX = "grokinterp train: error: "  # what `grokinterp train` prints before a ConfigError


def arm_overrides(arm: str, offsets=(-1, 0, 1), lamb=0.1, alpha=0.98, grokfast_lamb=2.0, beta1=0.9) -> dict:
    """The config overrides of one study arm (the probe-stencil write-up's ablations and their neighbours).

    - "stencil": the probe stencil with these offsets and lambda (`plugins.probe_stencil`);
    - "grokfast": Grokfast's EMA gradient filter (`plugins.grokfast_ema`, Lee et al. 2024);
    - "beta1": Adam's beta1 (`optim.beta1`);
    - "none": nothing.

    >>> arm_overrides("stencil", offsets=[0, 1], lamb=0.1)
    {'plugins.probe_stencil': {'offsets': [0, 1], 'lamb': 0.1}}
    """
    if arm == "stencil":
        return {"plugins.probe_stencil": {"offsets": sorted(int(k) for k in (offsets or [])), "lamb": lamb}}
    if arm == "grokfast":
        return {"plugins.grokfast_ema": {"alpha": alpha, "lamb": grokfast_lamb}}
    if arm == "beta1":
        return {"optim.beta1": beta1}
    if arm == "none":
        return {}
    raise ConfigError(f"arm={arm!r} is not valid; choose one of {list(ARMS)}")


def form_config(preset_name: str, overrides_text: str = "", arm: dict | None = None) -> RunConfig:
    """The config a form describes: preset, then the arm's overrides, then the typed `--KEY=VALUE` text.

    Raises ConfigError with the message `grokinterp train` would print for the same arguments.

    >>> form_config("quick", "--optim.lr=3e-3 --task.p=59").optim.lr
    0.003
    >>> form_config("quick", "--task.p=100")
    Traceback (most recent call last):
    ...
    grokinterp.config.ConfigError: task.p=100 is not prime; modular-arithmetic tasks need a prime p (e.g. 53, 97, 113)
    """
    try:
        tokens = shlex.split(overrides_text or "")
    except ValueError as e:
        raise ConfigError(f"overrides: {e}") from None
    base = preset(preset_name)
    config = apply_overrides(base, {**(arm or {}), **parse_override_args(tokens)})
    build_plugins(config)  # train_run does this first too: an unknown plug-in or bad arguments fail here
    return config


def _train_child(config: dict, out: str, resume: bool, log: str) -> None:
    """The spawned process: stdout and stderr to the lab's log of the run, then `train_run`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server stops it through SIGTERM
    from ..runs import train_run

    train_run(RunConfig.from_dict(config), out, resume=resume, progress=False)


def default_slots() -> int:
    """Concurrent runs allowed: the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Launcher:
    """The runs this lab started: start (new or resume), stop, and what each process did."""

    def __init__(self, runs: RunsDir, slots: int | None = None):
        self.runs, self.slots = runs, slots or default_slots()
        self.procs: dict[str, multiprocessing.Process] = {}
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server

    def live(self) -> set[str]:
        """Runs being trained now: by any process (their LOCK is held) or started here and not yet locked."""
        held = _held_locks()
        names = {n for n in self.runs.names() if writer_alive(self.runs.path_of(n), held)}
        return names | {n for n, p in self.procs.items() if p.is_alive()}

    def exit_code(self, name: str) -> int | None:
        proc = self.procs.get(name)
        return None if proc is None or proc.is_alive() else proc.exitcode

    def start(self, name: str, config: RunConfig) -> Path:
        """Train `config` into the new run `name` in the background; PathRefused / ConfigError say why not."""
        with self._lock:
            path = self.runs.new_run_path(name)
            self._check_slot()
            self._spawn(name, config, path, resume=False)
        return path

    def resume(self, name: str) -> Path:
        """Continue the stopped run `name` from its last state (bit-identical to an uninterrupted run)."""
        with self._lock:
            path = self.runs.run_path(name)
            if name in self.live():
                raise ConfigError(f"{name} is running; stop it first")
            summary = Run(path).summary
            if summary.get("status") not in (None, "running"):
                raise ConfigError(f"{name} has finished ({summary.get('status')}); nothing to resume")
            self._check_slot()
            self._spawn(name, Run(path).config, path, resume=True)
        return path

    def stop(self, name: str) -> bool:
        """SIGTERM to the process this lab started for `name`; False if it started none that is alive."""
        proc = self.procs.get(name)
        if proc is None or not proc.is_alive():
            return False
        proc.terminate()
        proc.join(timeout=10)
        return True

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def _check_slot(self) -> None:
        live = self.live()
        if len(live) >= self.slots:
            raise ConfigError(f"{len(live)} runs are training ({', '.join(sorted(live))}) and this machine has "
                              f"{self.slots} cores; stop one or wait for it to finish")

    def _spawn(self, name: str, config: RunConfig, path: Path, resume: bool) -> None:
        log = self.runs.lab_file("logs", f"{name.replace('/', '__')}.log")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # DESIGN.md: the default wait policy collapses under load
        proc = self._ctx.Process(target=_train_child, args=(config.to_dict(), str(path), resume, str(log)),
                                 name=f"grokinterp-lab-{name}", daemon=True)
        proc.start()
        self.procs[name] = proc


__all__ = ["ARMS", "CLI_PREFIX", "Launcher", "PathRefused", "arm_overrides", "default_slots", "form_config"]
