"""Part 1: the Fiedler value of the weight graph (the related-work papers).

Benfield 2026, "Structural Topology Monitoring Predicts and Steers Neural Network Phase Transitions"
(github EssexRich/neural_si_validation): neurons are nodes, |w_ij| the edge weights, L = D - A the graph
Laplacian, and its second-smallest eigenvalue lambda_2 (the algebraic connectivity, Fiedler 1973) rises long
before test accuracy moves. The paper's network is a 2-layer MLP; for the transformer (the spec's choice)
the graph is the chain of layers

    tokens (d_vocab) -|W_E|- resid_0 (d_model) -|W_in|- mlp_0 (d_mlp) -|W_out|- resid_1 (d_model) - ...
    ... - resid_L (d_model) -|W_U|- outputs (d_vocab_out)

with attention omitted (995 nodes for the Nanda model). lambda_2(L) scales with the weights, so under
weight decay it partly tracks ||theta||; the normalized Laplacian I - D^-1/2 A D^-1/2 is scale-free and
is reported beside it (an isolated node, degree 0, gets a zero row, as in Chung's definition).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import Tensor


def layered_adjacency(blocks: list[np.ndarray | Tensor]) -> np.ndarray:
    """Adjacency of a chain of bipartite layers: `blocks[i]` [n_i, n_{i+1}] holds the edge weights between
    layer i and layer i + 1 (absolute values are taken). Returns the symmetric float64 [n, n] matrix."""
    mats = [np.abs(b.detach().cpu().double().numpy() if isinstance(b, Tensor) else np.asarray(b, dtype=np.float64))
            for b in blocks]
    for left, right in zip(mats, mats[1:]):
        if left.shape[1] != right.shape[0]:
            raise ValueError(f"layer blocks do not chain: {left.shape} then {right.shape}")
    sizes = [mats[0].shape[0]] + [m.shape[1] for m in mats]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    adjacency = np.zeros((offsets[-1], offsets[-1]))
    for i, m in enumerate(mats):
        rows, cols = slice(offsets[i], offsets[i + 1]), slice(offsets[i + 1], offsets[i + 2])
        adjacency[rows, cols] = m
        adjacency[cols, rows] = m.T
    return adjacency


def weight_graph(model) -> np.ndarray:
    """The transformer's weight graph (attention omitted): tokens -> resid -> (mlp -> resid) x L -> outputs."""
    blocks = [model.W_E]
    for block in model.blocks:
        blocks += [block.mlp.W_in, block.mlp.W_out]
    blocks.append(model.W_U)
    return layered_adjacency(blocks)


def laplacian(adjacency: np.ndarray, normalized: bool = False) -> np.ndarray:
    """L = D - A, or I - D^-1/2 A D^-1/2 (zero rows for isolated nodes) when `normalized`."""
    a = np.asarray(adjacency, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not np.allclose(a, a.T):
        raise ValueError(f"adjacency of shape {a.shape} must be a square symmetric matrix")
    degree = a.sum(1)
    if not normalized:
        return np.diag(degree) - a
    inv_sqrt = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0.0)
    return np.diag((degree > 0).astype(np.float64)) - inv_sqrt[:, None] * a * inv_sqrt[None, :]


def fiedler_value(adjacency: np.ndarray, normalized: bool = False) -> float:
    """lambda_2: the second-smallest eigenvalue of the (normalized) Laplacian; 0 for a disconnected graph.

    LAPACK's selected-eigenvalue driver (`scipy.linalg.eigh(L, subset_by_index=[1, 1])`), float64.

    >>> path = np.diag(np.ones(3), 1); path = path + path.T                 # P_4
    >>> round(fiedler_value(path), 8)                                        # 2 (1 - cos(pi / 4))
    0.58578644
    """
    lap = laplacian(adjacency, normalized)
    if lap.shape[0] < 2:
        raise ValueError("a graph needs at least two nodes to have a Fiedler value")
    return float(scipy.linalg.eigh(lap, subset_by_index=[1, 1], eigvals_only=True, driver="evx")[0])


def model_fiedler_values(model) -> dict[str, float]:
    """{"fiedler": lambda_2(L), "fiedler_normalized": lambda_2(L_norm)} of `weight_graph(model)`."""
    with torch.no_grad():
        adjacency = weight_graph(model)
    return {"fiedler": fiedler_value(adjacency), "fiedler_normalized": fiedler_value(adjacency, normalized=True)}
