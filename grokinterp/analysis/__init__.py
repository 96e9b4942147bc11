"""Analyses of a run: pure functions of (model, task) or of metric series, grouped by topic, and the
replay engine that runs registered analyses over a run's checkpoints.

- `fourier`: Fourier and multiplicative-character spectra, progress measures, Nanda et al. 2023's views.
- `curvature`: Hessian-vector products, top eigenvalues, trace, spectral density, preconditioned
  sharpness, and gradient geometry (half-batch agreement, per-sample gradient rank).
- `warning`: early-warning signals of grokking for one run (`warning.warning_diagnostics`).
- `dynamics`: post-grokking dynamics of metric series (oscillations, collapses, phase locking).
- `transitions`: transition-timing estimators of metric series (lags, drops, spikes, trends).
- `interventions`: hook-based neuron ablation, patching and weight transplants.
- the replay engine (`replay`, `register_analysis`, ...), source `replay_engine.py`.

Example (needs a trained run, e.g. from `make train`):

    from grokinterp.analysis import replay, fourier
    result = replay("checkpoints/quick")
    result["progress"]["excluded_loss"], result.steps
"""

from .replay_engine import (
    STANDARD_ANALYSES,
    Analysis,
    ReplayResult,
    StepContext,
    available_analyses,
    get_analysis,
    register_analysis,
    replay,
    select_steps,
)
from . import fourier, curvature, warning, dynamics, interventions, transitions  # importing them registers their analyses

__all__ = [
    "fourier", "curvature", "warning", "dynamics", "interventions", "transitions",
    "STANDARD_ANALYSES", "Analysis", "ReplayResult", "StepContext", "available_analyses", "get_analysis",
    "register_analysis", "replay", "select_steps",
]

_TOPICS = (fourier, curvature, warning, dynamics, interventions, transitions)


def __getattr__(name: str):
    """Names that used to live flat in `grokinterp.analysis` (e.g. `analysis.key_frequencies`) still resolve
    to their topic's object; new code names the topic (`analysis.fourier.key_frequencies`)."""
    for topic in _TOPICS:
        if name in getattr(topic, "__all__", ()):
            return getattr(topic, name)
    raise AttributeError(f"module 'grokinterp.analysis' has no attribute {name!r}")
