"""Shared fixtures: fixed threads, a seeded generator, tiny configs and a tiny trained run."""

import os

import pytest
import torch

from grokinterp.config import preset

torch.set_num_threads(int(os.environ.get("GROKINTERP_TEST_THREADS", "1")))


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def tiny_config(**overrides):
    """A few-second config: p=23, d_model 32, 4 heads of 8, d_mlp 64."""
    base = dict(task__p=23, task__frac_train=0.6, model__d_model=32, model__d_head=8, model__d_mlp=64,
                optim__lr=1e-2, optim__warmup_steps=0, train__steps=200, train__ckpt_every=20,
                train__state_every=40, train__early_stop_after=None, train__eval_every=5)
    base.update(overrides)
    return preset("quick", **base)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One trained tiny run shared by read-only tests."""
    from grokinterp.launch import train_run

    config = tiny_config(model__seed=0, train__steps=900, train__early_stop_after=20)  # memorizes 54, groks 340
    return train_run(config, tmp_path_factory.mktemp("runs") / "tiny", progress=False)
