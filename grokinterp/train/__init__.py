"""Training: one full-batch step (`Trainer`, `_step.py`) and the loop around it (`train_loop`, `_loop.py`:
checkpoint cadence, stopping). Plug-ins (`grokinterp.plugins`) hook into the step by name.

Training into a run directory (files, resume) is `grokinterp.runs.train_run`, also `grokinterp.train_run`:

    from grokinterp import preset, train_run
    run = train_run(preset("fast"), "checkpoints/fast")
"""

from ..milestones import ACC_THRESHOLD, Milestones
from ..model import build_model
from ..plugins import PLUGINS, Plugin, build_plugins, register_plugin
from ._loop import CheckpointWriter, should_stop, train_loop
from ._resources import check_resources
from ._step import Trainer, accuracy, cross_entropy, make_trainer

__all__ = [
    "ACC_THRESHOLD", "CheckpointWriter", "Milestones", "PLUGINS", "Plugin", "Trainer", "accuracy", "build_model",
    "build_plugins", "check_resources", "cross_entropy", "make_trainer", "register_plugin", "should_stop",
    "train_loop",
]
