"""`config.step_flops` against torch's own FLOP counter on the real training step."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from grokinterp.config import apply_overrides, preset, step_flops
from grokinterp.tasks import make_task
from grokinterp.train import cross_entropy, make_trainer


class CountFlops(TorchDispatchMode):
    """Sums torch's own FLOP formulas (`flop_registry`: mm, bmm, addmm, convolutions, attention) over every
    op dispatched inside the block, backward included."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


@pytest.mark.parametrize("layers", [1, 2])
def test_step_flops_matches_torchs_count_of_a_training_step_and_an_evaluation(layers):
    config = apply_overrides(preset("quick"), {"task.p": 23, "model.n_layers": layers, "train.eval_every": 10})
    trainer = make_trainer(config, make_task(config.task))
    with CountFlops() as train_count:
        loss = cross_entropy(trainer.forward_last(trainer.train_tokens), trainer.train_labels, trainer.loss_dtype)
        loss.backward()
    with CountFlops() as eval_count:
        trainer.evaluate(trainer.test_tokens, trainer.test_labels)
    counted = train_count.total + eval_count.total / config.train.eval_every
    estimate = step_flops(config, n_train=len(trainer.train_labels))
    assert estimate == pytest.approx(counted, rel=0.15)
