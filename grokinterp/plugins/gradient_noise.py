"""Injected gradient noise for D8d, the Arrhenius escape law (the related-work papers).

Ersoy, Wiesner 2026, "Noise-Driven Escape from Metastable Phases explains Grokking in Deep Neural Networks",
arXiv:2606.17120: the memorizing solution is metastable and the grokking time follows an Arrhenius law
tau ~ exp(Delta E / D) in the noise temperature D. Full-batch training has no minibatch noise, so (our
choice, the spec's "vague" case) noise is injected: after the backward pass and before the optimizer,

    g <- g + sigma * xi,   xi ~ N(0, I) independently per trained parameter entry,

drawn from the trainer's seeded generator (saved with the optimizer state: resume stays bit-identical),
and the temperature is taken as D = lr * sigma^2 (metric column `gradient_noise/temperature`). Adam
rescales the noise with the gradient's second moment, so D is a label for the sweep axis rather than a
measured diffusion constant; the fit only needs it to be monotone in sigma at fixed lr.

    preset("fast", plugins={"gradient_noise": {"sigma": 0.01}})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..config import ConfigError
from ._base import Plugin, register_plugin

if TYPE_CHECKING:
    from ..train import Trainer


@register_plugin("gradient_noise")
class GradientNoise(Plugin):
    """Add N(0, sigma^2) noise to every trained parameter's gradient after the backward pass.

    Args:
        sigma: noise standard deviation per gradient entry (>= 0).
    """

    def __init__(self, sigma: float = 0.0):
        if not (isinstance(sigma, (int, float)) and sigma >= 0):
            raise ConfigError(f"plugins.gradient_noise.sigma={sigma!r} must be a number >= 0")
        self.sigma = float(sigma)
        self.temperature = 0.0

    @torch.no_grad()
    def after_backward(self, trainer: Trainer) -> None:
        self.temperature = trainer.lr_at(trainer.step) * self.sigma**2
        if self.sigma == 0:
            return
        for p in trainer.params.values():
            if p.grad is not None:
                noise = torch.randn(p.shape, generator=trainer.generator, dtype=p.dtype)
                p.grad.add_(noise.to(p.device), alpha=self.sigma)

    def metrics(self) -> dict[str, float]:
        return {"gradient_noise/temperature": self.temperature}
