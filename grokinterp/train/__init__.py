"""Training a run: one full-batch step (`Trainer`, `_step.py`) and the loop that owns checkpoints, stopping
and resume (`train_run`, `_loop.py`). Plug-ins (`grokinterp.plugins`) hook into the step by name.

Example (writes a run directory; a `fast` run takes about a minute on one CPU thread):

    from grokinterp import preset, train_run
    run = train_run(preset("fast"), "checkpoints/fast")
    run.summary["grokking_step"]
"""

from ..model import build_model
from ..plugins import PLUGINS, Plugin, build_plugins, register_plugin
from ..runs import ACC_THRESHOLD, Milestones
from ._loop import should_stop, train_run
from ._step import Trainer, accuracy, cross_entropy, make_trainer

__all__ = [
    "ACC_THRESHOLD", "Milestones", "PLUGINS", "Plugin", "Trainer", "accuracy", "build_model", "build_plugins",
    "cross_entropy", "make_trainer", "register_plugin", "should_stop", "train_run",
]
