"""Multi-run studies built on ordinary run directories: forks (continue a run from a step with changed
settings), and the seeds' transplant experiments that use them.

>>> from grokinterp.experiments import fork_run
>>> fork = fork_run("checkpoints/nanda", step=6000, out="checkpoints/nanda_wd025",
...                 overrides={"optim.weight_decay": 0.25})          # doctest: +SKIP
"""

from .fork import FORK_FILE, ReplayMismatchWarning, fork_config, fork_run, replay_parent

__all__ = ["FORK_FILE", "ReplayMismatchWarning", "fork_config", "fork_run", "replay_parent"]
