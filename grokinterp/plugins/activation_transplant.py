"""Transplant neurons' activations from a donor model during training (the Grokking Dynamics write-up's Fourier transplant).

For training steps `start <= step < stop`, the recipient's `blocks.{layer}.mlp.hook_post[..., neurons]` is
replaced, in the training forward only, by the donor's activations on the same training inputs (the
donor is frozen and the batch is the full training set, so its activations are computed once). Test
metrics are measured without the patch: they show what the recipient itself computes. The patched
neurons pass no gradient to their own input weights while patched (their value does not depend on them).

The donor is a checkpoint file (`ckpt/step_N.safetensors` of a run with the same architecture), read with
safetensors; nothing about it is pickled or imported from the run layer.

>>> preset("fast", plugins={"activation_transplant": {"donor": "checkpoints/donor/ckpt/step_0003000.safetensors",
...                                                   "neurons": [3, 17, 40], "stop": 500}})   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathlib import Path

import torch
from safetensors.torch import load_file

from ..config import ConfigError
from ..model import Transformer
from ._base import Plugin, register_plugin

if TYPE_CHECKING:
    from ..train import Trainer


@register_plugin("activation_transplant")
class ActivationTransplant(Plugin):
    """Patch donor activations into chosen MLP neurons while `start <= step < stop`.

    Args:
        donor: path of the donor's checkpoint (safetensors state dict of the same architecture).
        neurons: MLP neuron indices to patch (distinct, in 0..d_mlp-1).
        layer: the block whose `mlp.hook_post` is patched.
        start, stop: training steps patched (stop None: until the end).
    """

    def __init__(self, donor: str, neurons: list, layer: int = 0, start: int = 0, stop: int | None = None):
        if not isinstance(donor, str) or not donor:
            raise ConfigError("plugins.activation_transplant.donor must be the path of a donor checkpoint "
                              "(a run's ckpt/step_N.safetensors)")
        if not Path(donor).is_file():
            raise ConfigError(f"plugins.activation_transplant.donor={donor!r} does not exist")
        if not isinstance(neurons, (list, tuple)) or not all(isinstance(n, int) and not isinstance(n, bool) for n in neurons) \
                or len(set(neurons)) != len(neurons):
            raise ConfigError(f"plugins.activation_transplant.neurons={neurons!r} must be a list of distinct integers")
        if stop is not None and stop <= start:
            raise ConfigError(f"plugins.activation_transplant: stop={stop} must be > start={start}")
        self.donor_path, self.neurons, self.layer, self.start, self.stop = donor, list(neurons), layer, start, stop
        self.donor_acts = None

    def setup(self, trainer: Trainer) -> None:
        model = trainer.model
        if not 0 <= self.layer < len(model.blocks):
            raise ConfigError(f"plugins.activation_transplant.layer={self.layer} is not a layer of a "
                              f"{len(model.blocks)}-layer model")
        d_mlp = model.cfg.d_mlp
        if any(not 0 <= n < d_mlp for n in self.neurons):
            raise ConfigError(f"plugins.activation_transplant.neurons must lie in 0..{d_mlp - 1}")
        donor = Transformer(model.cfg, model.d_vocab, model.d_vocab_out, model.n_ctx)
        try:
            donor.load_state_dict(load_file(self.donor_path), strict=True)
        except RuntimeError as e:
            raise ConfigError(f"plugins.activation_transplant.donor={self.donor_path!r} does not fit this model's "
                              f"architecture: {str(e).splitlines()[0]}") from None
        donor.to(next(model.parameters()).device).eval()
        _, cache = donor.run_with_cache(trainer.train_tokens, names_filter=self._hook_name)
        self.donor_acts = cache[self._hook_name][..., self.neurons].detach()  # [n_train, pos, n_neurons]
        self._index = torch.tensor(self.neurons, device=self.donor_acts.device)

    @property
    def _hook_name(self) -> str:
        return f"blocks.{self.layer}.mlp.hook_post"

    def _active(self, step: int) -> bool:
        return step >= self.start and (self.stop is None or step < self.stop)

    def forward_hooks(self, trainer: Trainer) -> list:
        if not self._active(trainer.step):
            return []

        def patch(acts, hook):
            patched = acts.clone()
            patched[..., self._index] = self.donor_acts[:, -acts.shape[1]:].to(acts.dtype)  # fast path: last position
            return patched

        return [(self._hook_name, patch)]

    def metrics(self) -> dict[str, float]:
        return {}
