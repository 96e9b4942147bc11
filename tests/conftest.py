"""Shared fixtures: fixed threads, a seeded generator, tiny configs and a tiny trained run."""

import os
from pathlib import Path

import pytest
import torch

from grokinterp.config import preset

torch.set_num_threads(int(os.environ.get("GROKINTERP_TEST_THREADS", "1")))


# Helpers run as scripts or by other interpreters (the resume driver, TL 3.9's checks): not test modules.
collect_ignore_glob = ["_*.py", "fixtures/*"]


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


def train_tiny(out: Path, **overrides) -> Path:
    """Train `tiny_config(**overrides)` (one thread) into `out` in this process, giving torch its thread count
    back; returns the run directory."""
    from grokinterp.runs import train_run

    threads = torch.get_num_threads()
    try:
        return train_run(tiny_config(train__threads=1, **overrides), out, progress=False).path
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One trained tiny run shared by read-only tests."""
    from grokinterp.runs import train_run

    config = tiny_config(model__seed=0, train__steps=900, train__early_stop_after=20)  # memorizes 54, groks 340
    return train_run(config, tmp_path_factory.mktemp("runs") / "tiny", progress=False)


# The throwaway TransformerLens 3.9 venv (`make tl3-venv`): tests that need it skip without it, except under CI.
TL3_PYTHON = Path(os.environ.get("GROKINTERP_TL3_PYTHON", Path(__file__).resolve().parent.parent / ".venv-tl3" / "bin" / "python"))


def tl3_python() -> Path:
    if TL3_PYTHON.exists():
        return TL3_PYTHON
    message = f"{TL3_PYTHON} not found: run `make tl3-venv`"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI=true but {message} (CI must install the TL 3 venv)")
    pytest.skip(message)
