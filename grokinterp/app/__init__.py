"""The live lab: `grokinterp serve [RUNS_DIR]` (`make serve`), a local Dash app over a folder of run directories.

- **Runs**: every run under RUNS_DIR with its status (running, stopped, grokked, ...), milestones,
  steps/s and last test accuracy; the curves of the ticked (else the running) runs, following their
  metrics.csv as it grows (training appends rows at every checkpoint).
- **Launch**: a run from a preset and `--KEY=VALUE` overrides, or a study arm (the probe-stencil
  write-up's *add stencil* with offsets -1/0/+1 and lambda, Grokfast, Adam's beta1), checked like
  `grokinterp train`; runs train in background processes (at most one per core), and can be stopped
  and resumed.
- **Wavetable**: at a checkpoint picked with a slider, every MLP neuron's activation as a waveform over
  the input residue, sorted by dominant frequency, key frequencies marked; beside it the embedding
  spectrum and the neuron-frequency histogram at that step (replayed through the cached replay engine).
- **Compare**: the multi-run report's overlays (`grokinterp.report.comparison_figures`), live.

It serves 127.0.0.1 only unless a host is given (then every request needs a token), reads and writes
nothing outside RUNS_DIR (its own logs go to RUNS_DIR/.lab/), and passes no user text to a shell or
`eval`. Dash is an optional extra: `pip install 'grokinterp[app]'`.

>>> from grokinterp.app import create_app
>>> create_app("checkpoints").run(port=8050)                # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from ._launch import ARMS, Launcher, arm_overrides, form_config
from ._live import MetricsTail, RunWatcher, milestones, writer_alive
from ._paths import PathRefused, RunsDir
from ._wavetable import Wavetable, wavetable, wavetable_figure

INSTALL_HINT = "the live lab needs Dash: pip install 'grokinterp[app]' (or `make serve`, which installs it)"


class AppMissingError(ImportError):
    """Dash is not installed."""


def _require_dash() -> None:
    try:
        import dash  # noqa: F401
    except ImportError:
        raise AppMissingError(INSTALL_HINT) from None


def create_app(runs_dir: str | Path, token: str | None = None, poll_ms: int = 2000, slots: int | None = None):
    """The lab as a `dash.Dash` app over `runs_dir` (see the module docstring); AppMissingError without Dash.

    Args:
        runs_dir: the folder of run directories (nested up to 3 deep, e.g. a sweep's).
        token: if given, every request must carry it (`?token=...` once; a cookie after that).
        poll_ms: how often live views re-read the runs (milliseconds).
        slots: runs allowed to train at once (default: the cores this process may use).
    """
    _require_dash()
    from ._dash import create_app as _create

    return _create(runs_dir, token=token, poll_ms=poll_ms, slots=slots)


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(runs_dir: str | Path = "checkpoints", host: str = "127.0.0.1", port: int = 8050, token: str | None = None,
          poll_ms: int = 2000) -> None:
    """Serve the lab until interrupted. A non-loopback `host` prints a warning and requires a token (the one
    given, else GROKINTERP_LAB_TOKEN, else a random one, printed in the URL). Runs started here stop with it
    (resume them later from the Runs view or with `grokinterp train --resume`)."""
    _require_dash()
    if not is_loopback(host):
        token = token or os.environ.get("GROKINTERP_LAB_TOKEN") or secrets.token_urlsafe(18)
        print(f"warning: serving on {host}, reachable from other machines: anyone with the token can start runs "
              "and read RUNS_DIR. Prefer the default 127.0.0.1 (and an SSH tunnel).", file=sys.stderr)
    app = create_app(runs_dir, token=token, poll_ms=poll_ms)
    shown = f"[{host}]" if ":" in host else host
    print(f"grokinterp lab on http://{shown}:{port}/" + (f"?token={token}" if token else "") +
          f"  (RUNS_DIR {Path(runs_dir).resolve()}; Ctrl-C stops it)", flush=True)
    main_thread = threading.current_thread() is threading.main_thread()
    # SIGTERM ends the server through `finally`, which stops the runs started here
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)) if main_thread else None
    try:
        app.run(host=host, port=port, debug=False)
    finally:
        app.lab.launcher.stop_all()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


__all__ = [
    "ARMS", "AppMissingError", "Launcher", "MetricsTail", "PathRefused", "RunWatcher", "RunsDir", "Wavetable",
    "arm_overrides", "create_app", "form_config", "is_loopback", "milestones", "serve", "wavetable",
    "wavetable_figure", "writer_alive",
]
