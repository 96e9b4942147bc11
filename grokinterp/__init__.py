"""grokinterp: grokking on modular arithmetic, with mechanistic interpretability.

What a notebook starts from:

    from grokinterp import Run, preset, replay, train_run
    run = train_run(preset("quick"), "checkpoints/quick")   # or Run("checkpoints/quick") for a trained one
    run.metrics_frame()                                      # pandas, one row per step
    result = replay(run.path)                                # the standard analyses over its checkpoints
    result["progress"]["excluded_loss"]

Topics: `grokinterp.analysis.fourier`, `.curvature`, `.warning`, `.dynamics`, `.interventions`; training
plug-ins in `grokinterp.plugins`; multi-run studies in `grokinterp.experiments` and `grokinterp.sweep`.
See docs/architecture.md for what each folder owns.
"""

import importlib

# Imported on first use, so that `import grokinterp.config` stays light (these import torch).
_EXPORTS = {"Run": "runs", "preset": "config", "replay": "analysis", "train_run": "runs"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'grokinterp' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
