"""The weight-norm clamp of D8b (the related-work papers): hold ||theta|| at rho * W_c throughout training.

Khanh, Viet, Trung, Duc 2026, "The Weight Norm Sets the Grokking Timescale: A Causal Delay Law",
arXiv:2606.13753: clamping the norm of the weights and varying the clamp gives T_grok ~ exp(alpha rho)
(alpha ~ 7.5 for their MLP). Our choice of the details the law leaves open:

- theta is every *trained* parameter (`trainer.params`, biases included), ||.|| the Euclidean norm of all
  of them together;
- W_c is `norm` when given, else the norm of the initial trained parameters (so rho = 1 keeps the init's
  norm, rho = 2 doubles it);
- the clamp is applied once at set-up (the step-0 checkpoint already has norm rho * W_c) and after every
  optimizer step, by one common rescaling of every trained parameter.

Use it with `optim.weight_decay=0` (decay and clamp fight each other otherwise). Metric column
`norm_clamp/scale`: the factor the last step's rescaling applied. W_c is saved with the optimizer state.

    preset("fast", optim__weight_decay=0.0, plugins={"norm_clamp": {"rho": 1.5}})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math

import torch
from torch import Tensor

from ..config import ConfigError
from ._base import Plugin, register_plugin

if TYPE_CHECKING:
    from ..train import Trainer


@register_plugin("norm_clamp")
class NormClamp(Plugin):
    """Rescale the trained parameters so that ||theta|| = rho * W_c after every step.

    Args:
        rho: the clamp, in units of W_c (> 0).
        norm: W_c; None: the initial norm of the trained parameters.
    """

    def __init__(self, rho: float = 1.0, norm: float | None = None):
        if not (isinstance(rho, (int, float)) and rho > 0):
            raise ConfigError(f"plugins.norm_clamp.rho={rho!r} must be a positive number")
        if norm is not None and not (isinstance(norm, (int, float)) and norm > 0):
            raise ConfigError(f"plugins.norm_clamp.norm={norm!r} must be a positive number or None")
        self.rho = float(rho)
        self.reference = None if norm is None else float(norm)
        self.scale = math.nan

    @staticmethod
    def _norm(trainer: Trainer) -> float:
        return math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in trainer.params.values()))

    @torch.no_grad()
    def _clamp(self, trainer: Trainer) -> None:
        current = self._norm(trainer)
        if current == 0:
            raise ValueError("norm_clamp: every trained parameter is zero; there is no direction to rescale")
        self.scale = self.rho * self.reference / current
        for p in trainer.params.values():
            p.mul_(self.scale)

    def setup(self, trainer: Trainer) -> None:
        if self.reference is None:
            self.reference = self._norm(trainer)
        self._clamp(trainer)

    def after_step(self, trainer: Trainer) -> None:
        self._clamp(trainer)

    def metrics(self) -> dict[str, float]:
        return {"norm_clamp/scale": self.scale}

    def state_dict(self) -> dict[str, Tensor]:
        return {"reference": torch.tensor(self.reference, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "reference" in state:
            self.reference = float(state["reference"])
