"""Curvature of the full-batch training loss: Hessian-vector products and what is estimated from them.

Everything here is built on one primitive, `HessianVectorProduct`: v -> H v for the Hessian H of the
mean cross-entropy of the final position's logits over a fixed batch (the training loss), with respect to
the trainable parameters (or a named subset), computed by double backward through a retained graph of
the gradient. Estimators take that closure (or a dense symmetric matrix, for checks) and name their
algorithm:

- `top_eigenvalues`: Lanczos (ARPACK's implicitly restarted Lanczos, `scipy.sparse.linalg.eigsh`).
- `hessian_trace`: Hutchinson's estimator with Rademacher probes (Hutchinson 1990), with its standard error.
- `spectral_density`: stochastic Lanczos quadrature (Lin, Saad and Yang 2016; Ghorbani, Krishnan and
  Xiao 2019, "An investigation into neural net optimization via Hessian eigenvalue density").
- `preconditioned_sharpness`: the top eigenvalue of P^-1/2 H P^-1/2, P = diag(sqrt(v_hat) + eps) from
  Adam's second moment, against `adaptive_eos_threshold` = (2 + 2 beta1) / (lr (1 - beta1)) (Cohen et
  al. 2022, "Adaptive gradient methods at the edge of stability").

Each leaves the model and its `.grad` as it found them. The Grokking Dynamics write-up reports that the top eigenvalue spikes
about 20x during memorization and declines before grokking.

    hvp = HessianVectorProduct(model, task.train_tokens, task.train_labels)
    top_eigenvalues(hvp, k=3).values, hessian_trace(hvp, n_probes=20).estimate
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

from ...objective import select_parameters, training_loss

TOP_EIGEN_TOL = 1e-3  # relative accuracy asked of ARPACK: a sharpness curve needs 3 digits, not 7


class HessianVectorProduct:
    """v -> H v, H the Hessian of the full-batch training loss (`training_loss`) in the selected parameters.

    The gradient is computed once with `create_graph=True`; each call is one double backward through that
    retained graph (about twice the cost of a training step). Vectors are flat, in the order of `names`.

    Args:
        model: any model of the library (1 or 2 layers, with or without LayerNorm), or any module whose
            forward takes `(tokens, last_position_only=...)` and returns [batch, pos, vocab] logits.
        tokens: int64 [batch, pos], e.g. `task.train_tokens` (the full training set).
        labels: int64 [batch].
        params: see `select_parameters` (None: every trainable parameter).
        last_position_only: use the fast forward (same loss, same Hessian).

    Attributes:
        names, shapes: the selected parameters; n: their total size (the Hessian is [n, n]).
        loss: the loss at the current parameters; gradient: its flat gradient [n] (detached).
        calls: how many products were computed.
    """

    def __init__(self, model: nn.Module, tokens: Tensor, labels: Tensor, params: str | Sequence[str] | None = None,
                 last_position_only: bool = True):
        selected = select_parameters(model, params)
        self.names = list(selected)
        self.params = list(selected.values())
        self.shapes = [tuple(p.shape) for p in self.params]
        self.n = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.calls = 0
        with torch.enable_grad():
            loss = training_loss(model, tokens.to(self.device), labels.to(self.device), last_position_only)
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        # A parameter the loss does not reach has a zero gradient (and zero Hessian rows).
        self._grads = [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads)]
        self.loss = float(loss.detach())
        self.gradient = self.flatten([g.detach() for g in self._grads])

    def flatten(self, tensors: Sequence[Tensor] | Mapping[str, Tensor]) -> Float[Tensor, "n"]:
        """Per-parameter tensors (a list in `names` order, or a dict by name) -> one flat vector."""
        if isinstance(tensors, Mapping):
            tensors = [tensors[n] for n in self.names]
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, flat: Float[Tensor, "n"]) -> dict[str, Tensor]:
        """A flat vector -> name -> tensor of that parameter's shape."""
        sizes = [math.prod(s) for s in self.shapes]
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(sizes), self.shapes)}

    def __call__(self, v: Float[Tensor, "n"]) -> Float[Tensor, "n"]:
        if v.shape != (self.n,):
            raise ValueError(f"the vector has shape {tuple(v.shape)}; this Hessian acts on flat vectors of ({self.n},)")
        pieces = self.unflatten(v.to(device=self.device, dtype=self.dtype))
        needs = [g.requires_grad for g in self._grads]
        with torch.enable_grad():
            hv = torch.autograd.grad([g for g, r in zip(self._grads, needs) if r], self.params,
                                     grad_outputs=[pieces[n] for n, r in zip(self.names, needs) if r],
                                     retain_graph=True, allow_unused=True) if any(needs) else [None] * len(self.params)
        self.calls += 1
        return self.flatten([torch.zeros_like(p) if h is None else h for p, h in zip(self.params, hv)])


class PreconditionedOperator:
    """u -> P^-1/2 (H + l2 I) P^-1/2 u for a positive diagonal P (flat [n]): symmetric, same eigenvalues
    as P^-1 (H + l2 I). `l2` is the coupled weight decay of plain Adam (its objective adds l2/2 |theta|^2)."""

    def __init__(self, operator: Callable[[Tensor], Tensor], preconditioner: Float[Tensor, "n"], l2: float = 0.0):
        if not bool((preconditioner > 0).all()):
            raise ValueError("the preconditioner must be positive everywhere (P = sqrt(v_hat) + eps with eps > 0)")
        self.operator, self.l2 = operator, float(l2)
        self.n = preconditioner.numel()
        self.scale = preconditioner.rsqrt()

    def __call__(self, u: Tensor) -> Tensor:
        s = self.scale.to(device=u.device, dtype=u.dtype)
        x = s * u
        return s * (self.operator(x).to(u.dtype) + self.l2 * x)


Operator = HessianVectorProduct | PreconditionedOperator | Tensor | Callable[[Tensor], Tensor]


def _matvec(operator: Operator) -> tuple[Callable[[Tensor], Tensor], int]:
    """(v -> A v on float64 vectors, n) for a closure with `.n` or a dense symmetric [n, n] tensor."""
    if isinstance(operator, Tensor):
        if operator.ndim != 2 or operator.shape[0] != operator.shape[1]:
            raise ValueError(f"a dense operator must be a square matrix; got shape {tuple(operator.shape)}")
        dense = operator.detach()
        return (lambda v: (dense @ v.to(device=dense.device, dtype=dense.dtype)).double().cpu()), dense.shape[0]
    n = getattr(operator, "n", None)
    if not isinstance(n, int):
        raise ValueError("the operator needs an integer attribute `n` (its dimension), like HessianVectorProduct")
    return (lambda v: operator(v).double().cpu()), n


@dataclass(frozen=True)
class Eigenpairs:
    """Top eigenvalues, descending [k]; their unit eigenvectors [k, n] (or None); matrix-vector products used."""

    values: np.ndarray
    vectors: np.ndarray | None
    n_matvec: int


def top_eigenvalues(operator: Operator, k: int = 1, tol: float = TOP_EIGEN_TOL, seed: int = 0,
                    ncv: int | None = None, maxiter: int | None = None, return_vectors: bool = False) -> Eigenpairs:
    """The k largest (algebraic) eigenvalues of a symmetric operator by implicitly restarted Lanczos (ARPACK).

    Args:
        operator: a `HessianVectorProduct`, a `PreconditionedOperator`, a callable with `.n`, or a dense
            symmetric [n, n] tensor.
        k: how many eigenvalues (k < n).
        tol: ARPACK's relative accuracy of each eigenvalue (0: machine precision).
        seed: seeds the starting vector v0 ~ N(0, I) (numpy's `default_rng(seed)`).
        ncv: Lanczos basis size; default max(2k + 2, 8), smaller than scipy's max(2k + 1, 20): on the Nanda
            model the top eigenvalue then converges in 9-17 products instead of 21 (a restart is cheaper
            than a long basis when the top of the spectrum is separated).
        maxiter: ARPACK restarts allowed (scipy's default: 10 n).
        return_vectors: also return the eigenvectors.

    Returns:
        Eigenpairs(values [k] descending, vectors [k, n] or None, n_matvec).
    """
    from scipy.sparse.linalg import LinearOperator, eigsh  # lazy: scipy is only needed here

    matvec, n = _matvec(operator)
    if not isinstance(k, int) or not 0 < k < n:
        raise ValueError(f"k={k!r} must be an integer in [1, {n - 1}] (ARPACK needs k < n = {n}); "
                         "use torch.linalg.eigvalsh on a dense matrix for all eigenvalues")
    calls = [0]

    def apply(x: np.ndarray) -> np.ndarray:
        calls[0] += 1
        return matvec(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))).numpy()

    v0 = np.random.default_rng(seed).standard_normal(n)
    linear = LinearOperator((n, n), matvec=apply, dtype=np.float64)
    ncv = min(max(2 * k + 2, 8) if ncv is None else max(ncv, k + 1), n)
    out = eigsh(linear, k=k, which="LA", tol=tol, v0=v0, ncv=ncv, maxiter=maxiter, return_eigenvectors=return_vectors)
    values, vectors = (out, None) if not return_vectors else out
    order = np.argsort(values)[::-1]
    values = np.asarray(values)[order]
    vectors = None if vectors is None else np.ascontiguousarray(vectors[:, order].T)
    return Eigenpairs(values, vectors, calls[0])


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson estimate of tr(A): the mean of the samples z^T A z, its standard error, the samples."""

    estimate: float
    stderr: float
    samples: np.ndarray


def rademacher(n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
    """A vector of n independent +-1 entries, each with probability 1/2."""
    return torch.randint(0, 2, (n,), generator=generator).to(dtype) * 2 - 1


def hessian_trace(operator: Operator, n_probes: int = 10, seed: int = 0) -> TraceEstimate:
    """tr(A) by Hutchinson's estimator: mean over Rademacher probes z of z^T A z (Hutchinson 1990).

    Each sample is unbiased with variance 2 (||A||_F^2 - sum_i A_ii^2); the standard error is the
    samples' standard deviation / sqrt(n_probes) (NaN for one probe).

    Args:
        operator: see `top_eigenvalues`.
        n_probes: number of probes (one product each).
        seed: seeds the probes (`torch.Generator().manual_seed(seed)`).
    """
    if not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes={n_probes!r} must be a positive integer")
    matvec, n = _matvec(operator)
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n_probes):
        z = rademacher(n, generator)
        samples.append(float(z @ matvec(z)))
    samples = np.asarray(samples)
    stderr = float(samples.std(ddof=1) / math.sqrt(n_probes)) if n_probes > 1 else math.nan
    return TraceEstimate(float(samples.mean()), stderr, samples)


def lanczos(operator: Operator, v0: Float[Tensor, "n"], n_steps: int) -> tuple[Tensor, Tensor]:
    """Lanczos tridiagonalisation from v0 with full reorthogonalisation (each new vector is orthogonalised
    twice against every earlier one, in float64), so no ghost eigenvalues appear.

    Returns:
        (alpha [m], beta [m - 1]): the diagonal and off-diagonal of T = Q^T A Q, m <= n_steps (fewer when
        the Krylov space is exhausted). Gauss quadrature: for k < 2m, e1^T T^k e1 = v^T A^k v / |v|^2.
    """
    matvec, n = _matvec(operator)
    q = v0.double().cpu().reshape(-1)
    if q.numel() != n:
        raise ValueError(f"v0 has {q.numel()} entries; the operator acts on vectors of {n}")
    q = q / q.norm()
    basis, alphas, betas = [q], [], []
    for j in range(min(n_steps, n)):
        w = matvec(basis[-1])
        alpha = float(basis[-1] @ w)
        alphas.append(alpha)
        Q = torch.stack(basis)
        for _ in range(2):  # "twice is enough" (Parlett)
            w = w - Q.T @ (Q @ w)
        beta = float(w.norm())
        if j == min(n_steps, n) - 1 or beta <= 1e-12 * max(abs(alpha), max(map(abs, alphas)), 1e-300):
            break
        betas.append(beta)
        basis.append(w / beta)
    return torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64)


def tridiagonal_quadrature(alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Gauss quadrature nodes (eigenvalues of T) and weights (squared first components of its eigenvectors)."""
    T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
    nodes, vectors = torch.linalg.eigh(T)
    return nodes, vectors[0].pow(2)


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature of an eigenvalue density.

    Attributes:
        nodes, weights: [n_probes, n_steps]; each probe's weights sum to 1 (zero-weight padding where
            Lanczos stopped early). sum_j weights[i, j] * nodes[i, j]^k estimates tr(A^k) / n.
        grid, density: [n_grid]; the density smoothed by a Gaussian of width sigma; it integrates to 1.
        sigma: the smoothing width.
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float

    def moment(self, k: int) -> float:
        """The k-th moment of the (unsmoothed) quadrature: an estimate of tr(A^k) / n."""
        return float((self.weights * self.nodes**k).sum(1).mean())


def density_on_grid(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """The quadrature as a density on `grid`: mean over probes of sum_j w_j N(x; node_j, sigma^2).

    Args:
        nodes, weights: [n_probes, n_steps] (or [n_steps] for one probe), as in `SpectralDensity`.
        grid: [n_grid] points; sigma: the Gaussian's width (> 0).
    """
    nodes, weights = np.atleast_2d(np.asarray(nodes, np.float64)), np.atleast_2d(np.asarray(weights, np.float64))
    if sigma <= 0:
        raise ValueError(f"sigma={sigma!r} must be > 0")
    z = (np.asarray(grid, np.float64)[:, None] - nodes.reshape(1, -1)) / sigma
    mass = np.exp(-0.5 * z**2) * weights.reshape(1, -1)
    return mass.sum(1) / (nodes.shape[0] * sigma * math.sqrt(2 * math.pi))


def spectral_density(operator: Operator, n_probes: int = 4, n_steps: int = 32, seed: int = 0, n_grid: int = 512,
                     sigma: float | None = None) -> SpectralDensity:
    """Eigenvalue density of a symmetric operator by stochastic Lanczos quadrature.

    For each Rademacher probe v (normalised), n_steps of Lanczos give T; its eigenvalues theta_j and the
    squared first components tau_j of its eigenvectors are the nodes and weights of a Gauss quadrature of
    the spectral measure (1/n) sum_i delta(x - lambda_i) seen from v (Lin, Saad and Yang 2016; Ghorbani et
    al. 2019). The density averages the probes and smooths each node by a Gaussian of width sigma.

    Args:
        operator: see `top_eigenvalues`.
        n_probes: probes (n_probes * n_steps products in all).
        n_steps: Lanczos steps per probe (quadrature exact for polynomials of degree < 2 n_steps).
        seed: seeds the probes (`torch.Generator().manual_seed(seed)`).
        n_grid: grid points, spanning the nodes +- 3 sigma.
        sigma: smoothing width; default 1% of the nodes' range.
    """
    if not isinstance(n_probes, int) or n_probes < 1 or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_probes={n_probes!r} and n_steps={n_steps!r} must be positive integers")
    _, n = _matvec(operator)
    generator = torch.Generator().manual_seed(seed)
    nodes = np.zeros((n_probes, n_steps))
    weights = np.zeros((n_probes, n_steps))
    for i in range(n_probes):
        alpha, beta = lanczos(operator, rademacher(n, generator), n_steps)
        theta, tau = tridiagonal_quadrature(alpha, beta)
        nodes[i, : len(theta)], weights[i, : len(theta)] = theta.numpy(), tau.numpy()
    used = nodes[weights > 0]
    span = float(used.max() - used.min()) if used.size else 0.0
    sigma = float(sigma) if sigma is not None else max(0.01 * span, 1e-12 * max(1.0, float(np.abs(used).max())))
    grid = np.linspace(used.min() - 3 * sigma, used.max() + 3 * sigma, n_grid)
    return SpectralDensity(nodes, weights, grid, density_on_grid(nodes, weights, grid, sigma), sigma)


# ----- Adam preconditioning and the adaptive edge of stability ------------------------------------------


def adam_preconditioner(optimizer_state: Mapping[str, Tensor], names: Sequence[str], beta2: float,
                        eps: float) -> Float[Tensor, "n"]:
    """Adam's diagonal preconditioner P = sqrt(v_hat) + eps, flat over `names` (in that order).

    v_hat = exp_avg_sq / (1 - beta2^t), t the optimizer's step count, exactly the denominator of
    `torch.optim.Adam(W)` in its last update.

    Args:
        optimizer_state: flat keys as a run's state files hold them (`Run.optimizer_state(step)`,
            `Trainer.state_dict()`): `optim/<name>/exp_avg_sq` and `optim/<name>/step`.
        names: parameter names (e.g. `HessianVectorProduct.names`).
        beta2, eps: the optimizer's.
    """
    pieces = []
    for name in names:
        key, step_key = f"optim/{name}/exp_avg_sq", f"optim/{name}/step"
        if key not in optimizer_state or step_key not in optimizer_state:
            raise ValueError(f"the optimizer state has no {key!r} / {step_key!r}: Adam has not updated {name!r} "
                             "yet (a run's step-0 state holds no moments); use a later step's state")
        t = float(optimizer_state[step_key])
        if t < 1:
            raise ValueError(f"{step_key} = {t}: Adam has not stepped, so v_hat is undefined")
        v_hat = optimizer_state[key].double() / (1.0 - beta2**t)
        pieces.append(v_hat.sqrt().reshape(-1) + eps)
    return torch.cat(pieces)


def adaptive_eos_threshold(lr: float, beta1: float) -> float:
    """The adaptive edge-of-stability threshold (2 + 2 beta1) / (lr (1 - beta1)) of Adam's preconditioned
    sharpness (Cohen et al. 2022): 38,000 for lr 1e-3, beta1 0.9.

    >>> round(adaptive_eos_threshold(1e-3, 0.9))
    38000
    """
    if lr <= 0 or not 0 <= beta1 < 1:
        raise ValueError(f"lr={lr!r} must be > 0 and beta1={beta1!r} in [0, 1)")
    return (2 + 2 * beta1) / (lr * (1 - beta1))


def preconditioned_sharpness(operator: Operator, preconditioner: Float[Tensor, "n"], l2: float = 0.0,
                             tol: float = TOP_EIGEN_TOL, seed: int = 0) -> float:
    """Adam's preconditioned sharpness lambda_max(P^-1/2 (H + l2 I) P^-1/2) (Cohen et al. 2022), by Lanczos.

    Args:
        operator: the Hessian (`HessianVectorProduct`, or a dense [n, n] tensor).
        preconditioner: P, flat [n] (`adam_preconditioner`).
        l2: plain Adam's coupled weight decay (0 for AdamW, whose decay is not part of the objective).
        tol, seed: as in `top_eigenvalues`.
    """
    matvec, n = _matvec(operator)
    if preconditioner.numel() != n:
        raise ValueError(f"the preconditioner has {preconditioner.numel()} entries; the Hessian acts on {n}")
    wrapped = PreconditionedOperator(lambda v: matvec(v), preconditioner.double().cpu(), l2)
    return float(top_eigenvalues(wrapped, k=1, tol=tol, seed=seed).values[0])
