"""A fixed logit temperature for the logit-scale signal's tau x weight-decay sweep (the related-work papers).

Khanh 2026, arXiv:2606.18465, trains with logits z / tau and varies tau to separate the logit scale from
the weight norm. This plug-in divides the training forward's logits by `tau` (a hook on
`unembed.hook_out`), so the loss, the gradients and the train metrics see z / tau. The loop's test
evaluation runs without plug-in hooks: `test_loss` is that of z (accuracies, argmax, are the same either
way). the logit-scale signal (`warn_logits`) reads tau from the run's config and applies it itself.

    preset("fast", plugins={"logit_temperature": {"tau": 2.0}})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..config import ConfigError
from ._base import Plugin, register_plugin

if TYPE_CHECKING:
    from ..train import Trainer


@register_plugin("logit_temperature")
class LogitTemperature(Plugin):
    """Train on logits z / tau.

    Args:
        tau: the temperature (> 0); 1 changes nothing.
    """

    def __init__(self, tau: float = 1.0):
        if not (isinstance(tau, (int, float)) and tau > 0):
            raise ConfigError(f"plugins.logit_temperature.tau={tau!r} must be a positive number")
        self.tau = float(tau)

    def forward_hooks(self, trainer: Trainer) -> list[tuple[str, Callable]]:
        return [("unembed.hook_out", lambda logits, hook: logits / self.tau)]
