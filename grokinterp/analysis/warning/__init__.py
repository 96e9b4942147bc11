"""Early-warning signals of grokking for one run (the related-work papers' diagnostics; each module's
docstring gives the definition and the paper).

- `warning_forward`: the one shared forward per checkpoint that every per-checkpoint signal reads;
- logit scale and softmax collapse (`softmax_collapse`), weight-graph Fiedler values (`fiedler_value`),
  critical slowing down (`csd_indicators`), rolling Hankel DMD (`rolling_dmd`), log-alignment ratio,
  attention-head entropies, update-spectrum lock-in (`lockin_ratio`), class-covariance GMM and neural
  collapse (`nc1`, `bifurcation_ratio`), weight-norm peak and tanh fit (`norm_peak_step`);
- `warning_diagnostics(run)`: every signal of one run on one step axis.

The multi-run alarm benchmark and the delay laws are in `grokinterp.experiments.warning`.
Importing this package registers the replayed analyses in `WARNING_ANALYSES`.
"""

from ._forward import WarningCache, warning_forward
from ._replayed import WARNING_ANALYSES  # registers "warn_logits", "warn_alignment", ... "warn_fiedler"
from ._logit_scale import effective_logit_scale, layer_gains, softmax_collapse
from ._weight_graph import fiedler_value, laplacian, layered_adjacency, model_fiedler_values, weight_graph
from ._slowing import (
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
from ._dmd import DMDFit, hankel, hankel_dmd, quantile_coordinates, quantile_levels, rolling_dmd, w2_distance
from ._alignment import LogAlignment, log_alignment_ratio
from ._heads import entropy_spread, head_entropies, head_similarity
from ._lockin import lockin_fire_step, lockin_ratio, lockin_slope, update_gram_spectra
from ._gmm import (
    GMMFit,
    bifurcation_ratio,
    class_covariances,
    nc1,
    nc1_trace_ratio,
    shared_variance_gmm,
    soft_kmeans,
    top_covariance_eigenvalue,
)
from ._norm_peak import TanhFit, norm_peak_lead, norm_peak_step, tanh_kink_fit
from ._diagnostics import WarningDiagnostics, lockin_weights, warning_diagnostics

__all__ = [
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
]
