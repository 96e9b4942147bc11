"""Half-batch gradient agreement recorded while training (the Grokking Dynamics write-up).

The Grokking Dynamics write-up counts the dips of the agreement during training and finds that their number predicts the
grokking gap, so the agreement has to be sampled densely, while the run trains, not only at checkpoints.
Every `every` steps this plug-in computes, at the parameters theta_s of that row (before the update),
`grokinterp.analysis.half_batch_agreement(model, train_tokens, train_labels, seed, step=s)`: the cosine
between the loss gradients of two random halves of the training set, the halves drawn from
`numpy.random.default_rng([seed, s])`. It writes the metric column `grad_agreement` (NaN on the rows in
between). The same function replays it from a checkpoint (analysis "gradients"), giving the same value.

It does not change training: the halves come from their own numpy generator (the torch RNG and the
trainer's generator are not drawn from), the gradients are taken with `torch.autograd.grad` (nothing is
left in `.grad`), and no hook or state is added. It costs about one extra training step every `every` steps.
Count dips with `grokinterp.analysis.agreement_dips(metrics["step"], metrics["grad_agreement"])`.

    preset("quick", plugins={"grad_agreement": {"every": 10}})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math

from ..objective import AGREEMENT_SEED, half_batch_agreement
from ..config import ConfigError
from ._base import Plugin, register_plugin

if TYPE_CHECKING:
    from ..train import Trainer


@register_plugin("grad_agreement")
class GradAgreement(Plugin):
    """Record the half-batch gradient agreement every `every` steps as the metric column `grad_agreement`.

    Args:
        every: measure at steps that are multiples of this (>= 1); 10 matches the default eval_every.
        seed: with the step, selects the two halves (the replayed analysis "gradients" uses 0 too).
    """

    def __init__(self, every: int = 10, seed: int = AGREEMENT_SEED):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ConfigError(f"plugins.grad_agreement.every={every!r} must be a positive integer (e.g. 10)")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"plugins.grad_agreement.seed={seed!r} must be a non-negative integer")
        self.every, self.seed = every, seed
        self._value = math.nan

    def before_forward(self, trainer: Trainer) -> None:
        self._value = math.nan
        if trainer.step % self.every == 0:
            agreement = half_batch_agreement(trainer.model, trainer.train_tokens, trainer.train_labels,
                                             seed=self.seed, step=trainer.step, params=list(trainer.params))
            self._value = agreement.cosine

    def metrics(self) -> dict[str, float]:
        return {"grad_agreement": self._value}
