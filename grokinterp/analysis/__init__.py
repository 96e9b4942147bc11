"""Analyses of a run: pure functions of (model, task) or of metric series, and the replay engine.

- `_fourier`: Fourier analysis over Z_n (Nanda et al. 2023): basis, spectra, neuron frequencies,
  key frequencies, Gini / IPR sparsity.
- `_characters`: multiplicative characters of Z_p^* (primitive roots, discrete logs) for mul / div.
- `_progress`: progress measures (restricted and excluded loss, weight norm).
- `_nanda`: Nanda et al. 2023's views (embedding circles, Fourier-basis neuron-logit map and attention,
  per-pair loss, logit attribution by neuron cluster) and the trig-identity fit ("trig_fit").
- `_replay`: the replay engine (registered analyses over a run's checkpoints, cached in the run).

>>> from grokinterp.analysis import replay
>>> result = replay("checkpoints/quick")                          # doctest: +SKIP
>>> result["progress"]["excluded_loss"], result.steps             # doctest: +SKIP
"""

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
from ._fourier import (
    KEY_FREQ_MIN_SHARE,
    NEURON_FRAC_THRESHOLD,
    GridForward,
    NeuronFrequencies,
    basis_frequencies,
    basis_names,
    checkpoint_spectra,
    diagonal_sums,
    embedding_spectrum,
    fourier_basis,
    frequency_energy,
    frequency_norms,
    gini,
    grid_forward,
    group_grid,
    inverse_participation_ratio,
    key_frequencies,
    key_frequency_mask,
    logit_input_spectrum,
    logit_output_spectrum,
    n_frequencies,
    neuron_frequencies,
    pair_frequency_energy,
)
from ._progress import (
    combined_coordinate,
    excluded_logits,
    excluded_loss,
    key_directions,
    key_projection,
    key_wave_table,
    per_example_loss,
    progress_measures,
    restricted_logits,
    restricted_loss,
    weight_norm_sq,
)
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
from ._dynamics import (
    Collapse,
    Oscillation,
    PhaseLocking,
    PostGrokDynamics,
    ResolutionWarning,
    check_resolution,
    detect_collapses,
    detrend,
    lomb_scargle,
    phase_locking,
    post_grokking_dynamics,
    stable_grokking_step,
)
from ._interventions import (
    INTERVENTIONS,
    ablate_neurons,
    fourier_neurons,
    neuron_index,
    neuron_intervention_metrics,
    neuron_patch,
    patch_neurons,
    transplant_neuron_weights,
)
from . import _standard  # noqa: F401  (registers the standard analyses "spectra" and "progress")
from ._nanda import (  # registers "trig_fit"
    NandaViews,
    NeuronClusters,
    TrigFit,
    attention_to_operands,
    embedding_circles,
    fourier_transform_2d,
    group_logits,
    nanda_views,
    neuron_clusters,
    neuron_logit_attribution,
    neuron_logit_map,
    pair_loss_grid,
    trig_fit_of,
    trig_identity_fit,
)

__all__ = [
    # replay engine
    "STANDARD_ANALYSES", "Analysis", "ReplayResult", "StepContext", "available_analyses", "get_analysis",
    "register_analysis", "replay", "select_steps",
    # Fourier analysis over Z_n
    "KEY_FREQ_MIN_SHARE", "NEURON_FRAC_THRESHOLD", "GridForward", "NeuronFrequencies", "basis_frequencies",
    "basis_names", "checkpoint_spectra", "diagonal_sums", "embedding_spectrum", "fourier_basis", "frequency_energy",
    "frequency_norms", "gini", "grid_forward", "group_grid", "inverse_participation_ratio", "key_frequencies",
    "key_frequency_mask", "logit_input_spectrum", "logit_output_spectrum", "n_frequencies", "neuron_frequencies",
    "pair_frequency_energy",
    # multiplicative characters
    "DiscreteLog", "GroupIndexing", "character_basis", "discrete_log", "group_indexing", "group_law_labels",
    "log_reindex", "multiplicative_order", "prime_factors", "primitive_root",
    # progress measures
    "combined_coordinate", "excluded_logits", "excluded_loss", "key_directions", "key_projection", "key_wave_table",
    "per_example_loss", "progress_measures", "restricted_logits", "restricted_loss", "weight_norm_sq",
    # post-grokking dynamics
    "Collapse", "Oscillation", "PhaseLocking", "PostGrokDynamics", "ResolutionWarning", "check_resolution",
    "detect_collapses", "detrend", "lomb_scargle", "phase_locking", "post_grokking_dynamics", "stable_grokking_step",
    # Nanda et al. 2023's views and the trig-identity fit
    "NandaViews", "NeuronClusters", "TrigFit", "attention_to_operands", "embedding_circles", "fourier_transform_2d",
    "group_logits", "nanda_views", "neuron_clusters", "neuron_logit_attribution", "neuron_logit_map",
    "pair_loss_grid", "trig_fit_of", "trig_identity_fit",
    # hook-based interventions
    "INTERVENTIONS", "ablate_neurons", "fourier_neurons", "neuron_index", "neuron_intervention_metrics",
    "neuron_patch", "patch_neurons", "transplant_neuron_weights",
]
