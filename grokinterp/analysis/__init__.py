"""Analyses of a run: pure functions of (model, task) or of metric series, and the replay engine.

- `_fourier`: Fourier analysis over Z_n (Nanda et al. 2023): basis, spectra, neuron frequencies,
  key frequencies, Gini / IPR sparsity.
- `_characters`: multiplicative characters of Z_p^* (primitive roots, discrete logs) for mul / div.
- `_progress`: progress measures (restricted and excluded loss, weight norm).
- `_nanda`: Nanda et al. 2023's views (embedding circles, Fourier-basis neuron-logit map and attention,
  per-pair loss, logit attribution by neuron cluster) and the trig-identity fit ("trig_fit").
- `_curvature`: Hessian-vector products of the training loss; top eigenvalues (Lanczos), trace
  (Hutchinson), spectral density (SLQ), Adam-preconditioned sharpness (Cohen et al. 2022).
- `_gradients`: half-batch gradient agreement and its dips, per-sample gradients and their effective rank.
- `_geometry`: the replayed analyses "curvature", "hessian_density" and "gradients" (seed 000).
- `_replay`: the replay engine (registered analyses over a run's checkpoints, cached in the run).
- `_warning_pass`, `_warn_*`, `_warning_analyses`, `_diagnostics`: seed 002's early-warning diagnostics
  D1-D7, D9 (one shared forward per checkpoint; `warning_diagnostics(run)` gives every signal by step).

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
from ._curvature import (
    TOP_EIGEN_TOL,
    Eigenpairs,
    HessianVectorProduct,
    PreconditionedOperator,
    SpectralDensity,
    TraceEstimate,
    adam_preconditioner,
    adaptive_eos_threshold,
    density_on_grid,
    hessian_trace,
    lanczos,
    preconditioned_sharpness,
    select_parameters,
    spectral_density,
    top_eigenvalues,
    training_loss,
)
from ._gradients import (
    AGREEMENT_SEED,
    DIP_MIN_SEPARATION,
    DIP_THRESHOLD,
    DIP_WINDOW,
    AgreementDips,
    HalfBatchAgreement,
    agreement_dips,
    effective_rank,
    gradient_effective_rank,
    half_batch_agreement,
    half_batch_split,
    loss_gradient,
    per_sample_gradients,
    rank_sample,
    singular_values,
)
from ._geometry import curvature_measures  # registers "curvature", "hessian_density" and "gradients"
from ._warning_pass import WarningCache, warning_forward
from ._warning_analyses import WARNING_ANALYSES  # registers "warn_logits", "warn_alignment", ... "warn_fiedler"
from ._warn_logits import effective_logit_scale, layer_gains, softmax_collapse
from ._warn_graph import fiedler_value, laplacian, layered_adjacency, model_fiedler_values, weight_graph
from ._warn_csd import (
    CSDIndicators,
    csd_alarm_series,
    csd_indicators,
    kendall_trend,
    kernel_trend,
    lag1_autocorrelation,
    rolling_ar1,
    rolling_variance,
    rolling_variance_ratio,
)
from ._warn_dmd import DMDFit, hankel, hankel_dmd, quantile_coordinates, quantile_levels, rolling_dmd, w2_distance
from ._warn_alignment import LogAlignment, log_alignment_ratio
from ._warn_heads import entropy_spread, head_entropies, head_similarity
from ._warn_lockin import lockin_fire_step, lockin_ratio, lockin_slope, update_gram_spectra
from ._warn_gmm import (
    GMMFit,
    bifurcation_ratio,
    class_covariances,
    nc1,
    nc1_trace_ratio,
    shared_variance_gmm,
    soft_kmeans,
    top_covariance_eigenvalue,
)
from ._warn_norm import TanhFit, norm_peak_lead, norm_peak_step, tanh_kink_fit
from ._diagnostics import WarningDiagnostics, lockin_weights, warning_diagnostics
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
    # curvature of the training loss (Hessian-vector products) and gradient geometry
    "TOP_EIGEN_TOL", "Eigenpairs", "HessianVectorProduct", "PreconditionedOperator", "SpectralDensity",
    "TraceEstimate", "adam_preconditioner", "adaptive_eos_threshold", "curvature_measures", "density_on_grid",
    "hessian_trace", "lanczos", "preconditioned_sharpness", "select_parameters", "spectral_density",
    "top_eigenvalues", "training_loss",
    "AGREEMENT_SEED", "DIP_MIN_SEPARATION", "DIP_THRESHOLD", "DIP_WINDOW", "AgreementDips", "HalfBatchAgreement",
    "agreement_dips", "effective_rank", "gradient_effective_rank", "half_batch_agreement", "half_batch_split",
    "loss_gradient", "per_sample_gradients", "rank_sample", "singular_values",
    # early-warning diagnostics of grokking (seed 002)
    "WARNING_ANALYSES", "WarningCache", "WarningDiagnostics", "warning_diagnostics", "warning_forward",
    "effective_logit_scale", "layer_gains", "softmax_collapse",
    "fiedler_value", "laplacian", "layered_adjacency", "model_fiedler_values", "weight_graph",
    "CSDIndicators", "csd_alarm_series", "csd_indicators", "kendall_trend", "kernel_trend", "lag1_autocorrelation",
    "rolling_ar1", "rolling_variance", "rolling_variance_ratio",
    "DMDFit", "hankel", "hankel_dmd", "quantile_coordinates", "quantile_levels", "rolling_dmd", "w2_distance",
    "LogAlignment", "log_alignment_ratio", "entropy_spread", "head_entropies", "head_similarity",
    "lockin_fire_step", "lockin_ratio", "lockin_slope", "lockin_weights", "update_gram_spectra",
    "GMMFit", "bifurcation_ratio", "class_covariances", "nc1", "nc1_trace_ratio", "shared_variance_gmm",
    "soft_kmeans", "top_covariance_eigenvalue", "TanhFit", "norm_peak_lead", "norm_peak_step", "tanh_kink_fit",
    # hook-based interventions
    "INTERVENTIONS", "ablate_neurons", "fourier_neurons", "neuron_index", "neuron_intervention_metrics",
    "neuron_patch", "patch_neurons", "transplant_neuron_weights",
]
