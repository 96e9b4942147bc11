"""Fourier analysis of modular-arithmetic models (Nanda et al. 2023, "Progress measures for grokking via
mechanistic interpretability").

- basis and spectra over Z_n: `fourier_basis`, `checkpoint_spectra`, `neuron_frequencies`, `key_frequencies`,
  sparsity (`gini`, `inverse_participation_ratio`);
- multiplicative characters of Z_p^* for mul / div: `character_basis`, `primitive_root`, `discrete_log`;
- progress measures: `restricted_loss`, `excluded_loss`, `progress_measures`;
- Nanda et al.'s views and the trig-identity fit: `nanda_views`, `embedding_circles`, `trig_identity_fit`.

Importing this package registers the replayed analyses "spectra", "progress" and "trig_fit".
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
from ._spectra import (
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
from . import _standard  # noqa: F401  (registers the replayed analyses "spectra" and "progress")
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
    # Fourier basis and spectra over Z_n
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
    # Nanda et al. 2023's views and the trig-identity fit
    "NandaViews", "NeuronClusters", "TrigFit", "attention_to_operands", "embedding_circles", "fourier_transform_2d",
    "group_logits", "nanda_views", "neuron_clusters", "neuron_logit_attribution", "neuron_logit_map",
    "pair_loss_grid", "trig_fit_of", "trig_identity_fit",
]
