"""Analyses of a run: pure functions of (model, task) or of metric series, and the replay engine.

>>> from grokinterp.analysis import replay
>>> result = replay("checkpoints/quick")                          # doctest: +SKIP
>>> result["progress"]["excluded_loss"], result.steps             # doctest: +SKIP
"""

from ._replay import (
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

__all__ = [
    "STANDARD_ANALYSES",
    "Analysis",
    "ReplayResult",
    "StepContext",
    "available_analyses",
    "get_analysis",
    "register_analysis",
    "replay",
    "select_steps",
]

# The analysis math lands in separate modules; until each exists, `grokinterp.analysis` still imports.
try:
    from ._characters import (
        DiscreteLog,
        GroupIndexing,
        character_basis,
        discrete_log,
        group_indexing,
        group_law_labels,
        log_reindex,
        multiplicative_order,
        prime_factors,
        primitive_root,
    )

    __all__ += ["DiscreteLog", "GroupIndexing", "character_basis", "discrete_log", "group_indexing",
                "group_law_labels", "log_reindex", "multiplicative_order", "prime_factors", "primitive_root"]
except ImportError:  # pragma: no cover
    pass
