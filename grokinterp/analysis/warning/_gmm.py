"""The beta / beta_c bifurcation coordinate of a passive GMM probe, and NC1 (the related-work papers).

Yang 2026, "Feature Lottery? A Bifurcation Theory of Concept Emergence", arXiv:2605.24057: an isotropic
Gaussian-mixture probe with responsibilities r_nk ~ exp(-beta ||z_n - mu_k||^2 / 2) (equal weights) has a
single merged fixed point (every mu_k at the mean) for beta < beta_c = 1 / lambda_max(Cov z), and splits
along the top principal direction above it (a pitchfork). The label-free phase coordinate is beta / beta_c.

Our choice of beta (the paper leaves it to the probe): fit a shared-variance isotropic GMM by EM (K = 16
equal-weight components, initial means K distinct data points drawn with a fixed seed) and take
beta = 1 / sigma_w^2, sigma_w^2 = sum_nk r_nk ||z_n - mu_k||^2 / (N d). So beta / beta_c = lambda_max(Cov z) / sigma_w^2.
Two clusters +-m e1 with isotropic variance sigma^2 give (sigma^2 + m^2) / sigma^2.

Second axis, NC1 (Papyan, Han, Donoho 2020): tr(Sigma_W Sigma_B^+) / C with classes the labels a∘b,
Sigma_W the within-class covariance (pooled over examples), Sigma_B the covariance of the C class means
around their mean; the pseudo-inverse drops eigenvalues below 1e-10 of the largest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

GMM_COMPONENTS = 16
GMM_SEED = 0
PINV_RTOL = 1e-10


def _sq_distances(z: Tensor, means: Tensor) -> Tensor:
    """||z_n - mu_k||^2 [N, K], clamped at 0 (the expanded form can round below it)."""
    return (z.pow(2).sum(1, keepdim=True) - 2 * z @ means.T + means.pow(2).sum(1)).clamp_min(0)


def _initial_means(z: Tensor, n_clusters: int, seed: int) -> Tensor:
    if len(z) < n_clusters:
        raise ValueError(f"{len(z)} points cannot seed {n_clusters} mixture components; use fewer components")
    generator = torch.Generator().manual_seed(seed)
    return z[torch.randperm(len(z), generator=generator)[:n_clusters].to(z.device)].clone()


def soft_kmeans(z: Float[Tensor, "n d"], beta: float, init: Float[Tensor, "k d"], n_iter: int = 500) -> Tensor:
    """Fixed-beta soft k-means (the passive probe): iterate r_nk ~ exp(-beta ||z_n - mu_k||^2 / 2),
    mu_k = sum_n r_nk z_n / sum_n r_nk from the means `init`. Returns the means [k, d] (float64)."""
    z, means = z.double(), init.double().clone()
    for _ in range(n_iter):
        r = torch.softmax(-0.5 * beta * _sq_distances(z, means), dim=1)
        means = (r.T @ z) / r.sum(0)[:, None].clamp_min(1e-300)
    return means


@dataclass(frozen=True)
class GMMFit:
    """means [K, d], shared variance sigma2 (per dimension), EM iterations used, converged flag."""

    means: Tensor
    sigma2: float
    n_iter: int
    converged: bool


def shared_variance_gmm(z: Float[Tensor, "n d"], n_clusters: int = GMM_COMPONENTS, seed: int = GMM_SEED,
                        max_iter: int = 100, tol: float = 1e-5) -> GMMFit:
    """EM for an equal-weight isotropic GMM with one shared variance sigma^2 (the GMM-bifurcation signal's choice of probe).

    E: r_nk = softmax_k(-||z_n - mu_k||^2 / (2 sigma^2)); M: mu_k = weighted means,
    sigma^2 = sum r_nk ||z_n - mu_k||^2 / (N d). Stops when sigma^2 changes by less than `tol` (relative).
    The iterations run in float32 (4x faster here); one last EM step in float64 gives the reported fit.
    """
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"z has shape {tuple(z.shape)}; expected [n >= 2, d]")
    z64 = z.double() - z.double().mean(0)  # the fit is translation invariant; centring keeps distances accurate
    n, d = z64.shape
    total_sq = float(z64.pow(2).sum())
    means = _initial_means(z64, n_clusters, seed)
    sigma2 = total_sq / (n * d)
    converged, it = False, 0
    z32 = z64.float()
    while it < max_iter and not converged and sigma2 > 0:
        it += 1
        means, new = _em_step(z32, means.float(), sigma2, total_sq)
        converged = abs(new - sigma2) <= tol * sigma2
        sigma2 = new
    if sigma2 > 0:
        means, sigma2 = _em_step(z64, means.double(), sigma2, total_sq)
    return GMMFit(means, sigma2, it, converged or sigma2 == 0)


def _em_step(z: Tensor, means: Tensor, sigma2: float, total_sq: float) -> tuple[Tensor, float]:
    """One EM step from (means, sigma2); returns the new means and the new sigma^2."""
    n, d = z.shape
    r = torch.softmax(-_sq_distances(z, means) / (2 * sigma2), dim=1)
    weight, sums = r.sum(0).double().clamp_min(1e-300), (r.T @ z).double()
    # sum_nk r_nk ||z_n - mu_k||^2 at the new means = sum_n ||z_n||^2 - sum_k ||S_k||^2 / N_k
    sigma2 = max(total_sq - float((sums.pow(2).sum(1) / weight).sum()), 0.0) / (n * d)
    return sums / weight[:, None], sigma2


def top_covariance_eigenvalue(z: Float[Tensor, "n d"]) -> float:
    """lambda_max of the (population) covariance of z, so that beta_c = 1 / lambda_max."""
    centred = z.double() - z.double().mean(0)
    return float(torch.linalg.eigvalsh(centred.T @ centred / len(z))[-1])


def bifurcation_ratio(z: Float[Tensor, "n d"], n_clusters: int = GMM_COMPONENTS, seed: int = GMM_SEED) -> dict[str, float]:
    """beta / beta_c = lambda_max(Cov z) / sigma_w^2 with sigma_w^2 from `shared_variance_gmm` (Yang 2026).

    Returns:
        {"beta_ratio", "beta", "beta_c", "sigma_w2", "em_iterations"}; beta is inf when the fit is exact.
    """
    lam = top_covariance_eigenvalue(z)
    fit = shared_variance_gmm(z, n_clusters, seed)
    beta = float("inf") if fit.sigma2 == 0 else 1 / fit.sigma2
    beta_c = float("inf") if lam == 0 else 1 / lam
    return {"beta_ratio": lam * beta if lam > 0 else float("nan"), "beta": beta, "beta_c": beta_c,
            "sigma_w2": fit.sigma2, "em_iterations": float(fit.n_iter)}


def class_covariances(z: Float[Tensor, "n d"], labels: Int[Tensor, "n"]) -> tuple[Tensor, Tensor, int]:
    """(Sigma_W, Sigma_B, C): within-class covariance pooled over examples, covariance of the C class means
    around their mean (float64 [d, d] each)."""
    z = z.double()
    classes, index = torch.unique(labels, return_inverse=True)
    n_classes = len(classes)
    if n_classes < 2:
        raise ValueError("class covariances need at least two classes among the labels")
    counts = torch.bincount(index, minlength=n_classes).double()
    class_means = torch.zeros(n_classes, z.shape[1], dtype=torch.float64, device=z.device).index_add_(0, index, z)
    class_means /= counts[:, None]
    within = z - class_means[index]
    between = class_means - class_means.mean(0)
    return within.T @ within / len(z), between.T @ between / n_classes, n_classes


def nc1(z: Float[Tensor, "n d"], labels: Int[Tensor, "n"]) -> float:
    """Within-class variability collapse NC1 = tr(Sigma_W Sigma_B^+) / C (Papyan et al. 2020).

    The pseudo-inverse keeps eigenvalues of Sigma_B above 1e-10 of the largest. When the class means
    span few directions (a grokked modular model: two per key frequency), the weak directions dominate.

    >>> z = torch.tensor([[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]])
    >>> nc1(z, torch.tensor([0, 0, 1, 1]))
    0.0
    """
    sigma_w, sigma_b, n_classes = class_covariances(z, labels)
    evals, evecs = torch.linalg.eigh(sigma_b)
    keep = evals > PINV_RTOL * evals[-1].clamp_min(1e-300)
    pinv = (evecs[:, keep] / evals[keep]) @ evecs[:, keep].T
    return float(torch.trace(sigma_w @ pinv) / n_classes)


def nc1_trace_ratio(z: Float[Tensor, "n d"], labels: Int[Tensor, "n"]) -> float:
    """tr(Sigma_W) / tr(Sigma_B): a pseudo-inverse-free NC1 variant (our addition, not in the spec); it does
    not blow up along directions the class means barely use.

    >>> z = torch.tensor([[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]])
    >>> nc1_trace_ratio(z, torch.tensor([0, 0, 1, 1]))
    1.0
    """
    sigma_w, sigma_b, _ = class_covariances(z, labels)
    return float(torch.trace(sigma_w) / torch.trace(sigma_b).clamp_min(1e-300))
