"""Curvature of the training loss and gradient geometry (the "Grokking Dynamics" write-up's central figures).

- one Hessian-vector-product primitive (`HessianVectorProduct`) and the estimators built on it:
  `top_eigenvalues` (Lanczos), `hessian_trace` (Hutchinson), `spectral_density` (stochastic Lanczos
  quadrature), `preconditioned_sharpness` (Adam-preconditioned, Cohen et al. 2022);
- gradient geometry: `half_batch_agreement` and its dips (`agreement_dips`), per-sample gradients and
  their effective rank.

Importing this package registers the replayed analyses "curvature", "hessian_density" and "gradients".
"""

from ...objective import (
    AGREEMENT_SEED,
    HalfBatchAgreement,
    half_batch_agreement,
    half_batch_split,
    loss_gradient,
    select_parameters,
    training_loss,
)
from ._hessian import (
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
    spectral_density,
    top_eigenvalues,
)
from ._gradients import (
    DIP_MIN_SEPARATION,
    DIP_THRESHOLD,
    DIP_WINDOW,
    AgreementDips,
    agreement_dips,
    effective_rank,
    gradient_effective_rank,
    per_sample_gradients,
    rank_sample,
    singular_values,
)
from ._geometry import curvature_measures  # registers "curvature", "hessian_density" and "gradients"

__all__ = [
    "TOP_EIGEN_TOL", "Eigenpairs", "HessianVectorProduct", "PreconditionedOperator", "SpectralDensity",
    "TraceEstimate", "adam_preconditioner", "adaptive_eos_threshold", "curvature_measures", "density_on_grid",
    "hessian_trace", "lanczos", "preconditioned_sharpness", "select_parameters", "spectral_density",
    "top_eigenvalues", "training_loss",
    "AGREEMENT_SEED", "DIP_MIN_SEPARATION", "DIP_THRESHOLD", "DIP_WINDOW", "AgreementDips", "HalfBatchAgreement",
    "agreement_dips", "effective_rank", "gradient_effective_rank", "half_batch_agreement", "half_batch_split",
    "loss_gradient", "per_sample_gradients", "rank_sample", "singular_values",
]
