"""Run `grokinterp train ...` with slow fsyncs, for the kill/resume tests (not a test itself).

    python tests/_resume_driver.py FSYNC_DELAY_S train --out DIR [--resume] --KEY=VALUE ...

Every fsync of a regular file sleeps FSYNC_DELAY_S first (a number of seconds, or a file that
holds one, read at each fsync), so a large share of the wall
time is spent between a temp file's creation and its rename: a kill at a random moment
often lands inside a checkpoint write. Nothing in grokinterp is changed; only `os.fsync`,
which `grokinterp.runs.atomic_write_bytes` calls, is wrapped. Prints READY once the
imports are done (the slow part of a start), then runs the real CLI entry point.
"""

import os
import stat
import sys
import time

_fsync = os.fsync


def current_delay() -> float:
    """FSYNC_DELAY_S is a number, or a file holding one (re-read at every fsync, so a test can change it)."""
    try:
        return float(sys.argv[1])
    except ValueError:
        with open(sys.argv[1]) as f:
            return float(f.read())


def slow_fsync(fd):
    if stat.S_ISREG(os.fstat(fd).st_mode):
        delay = current_delay()
        if delay > 0:
            time.sleep(delay)
    return _fsync(fd)


os.fsync = slow_fsync

import grokinterp.train  # noqa: E402,F401  (the slow import, before READY)
from grokinterp.cli import main  # noqa: E402

print("READY", os.getpid(), flush=True)
sys.exit(main(sys.argv[2:]))
