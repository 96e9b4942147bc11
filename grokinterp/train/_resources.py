"""What a run will need, checked before anything is allocated or written: its device, threads and memory.

`check_resources(config)` is called by `train_run` before it takes the run directory's lock, so a config
that cannot run fails at once with one message and leaves nothing behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..config import ConfigError, RunConfig

MEMORY_ENV = "GROKINTERP_MEMORY_BYTES"  # the memory budget to check against (default: the memory available now)
N_CTX = 3  # tokens [a, b, =]


def parameter_count(config: RunConfig) -> int:
    """Parameters of the model `config` builds (TransformerLens 3's HookedTransformer layout, biases included).

    >>> from grokinterp.config import preset
    >>> parameter_count(preset("nanda"))
    227313
    """
    m, t = config.model, config.task
    attn = 4 * m.n_heads * m.d_model * m.d_head + 3 * m.n_heads * m.d_head + m.d_model
    mlp = 2 * m.d_model * m.d_mlp + m.d_mlp + m.d_model
    norms = 0 if m.normalization_type is None else 4 * m.d_model
    return t.d_vocab * m.d_model + N_CTX * m.d_model + m.n_layers * (attn + mlp + norms) + m.d_model * t.p + t.p


def estimate_memory(config: RunConfig) -> dict[str, int]:
    """Bytes a run needs, by part: parameters with gradients and Adam moments (float32), the task's p² pairs
    (int64 tokens, labels and indices), and the activations of the full-batch step and of the evaluation
    (last position: residual, attention, MLP and logits per example, kept for the backward pass)."""
    m, t = config.model, config.task
    pairs = t.p * t.p
    n_train = int(t.frac_train * pairs)
    per_example = m.n_layers * (4 * m.d_model + 2 * m.d_mlp + 3 * m.n_heads * m.d_head) + 3 * t.p
    return {"parameters, gradients, Adam moments": 4 * 4 * parameter_count(config),
            "task (p² pairs)": 8 * (N_CTX + 4) * pairs,
            "activations (full batch)": 4 * per_example * max(n_train, pairs - n_train)}


def available_memory(device: str) -> int:
    """Bytes available now: `$GROKINTERP_MEMORY_BYTES` if set, else CUDA's free memory on a CUDA device, else
    MemAvailable of /proc/meminfo (or the free physical pages)."""
    if os.environ.get(MEMORY_ENV):
        return int(os.environ[MEMORY_ENV])
    if device.startswith("cuda"):
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        match = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo.read_text(), re.M)
        if match:
            return int(match.group(1)) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_device(device: str) -> None:
    """The device must exist in this torch build and machine (ConfigError naming train.device otherwise)."""
    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (index and int(index) >= count):
            raise ConfigError(f"train.device={device!r}: this machine has {count} CUDA device(s) "
                              f"(torch {torch.__version__}); use --train.device=cpu")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={device!r}: MPS is not available here; use --train.device=cpu")


def check_resources(config: RunConfig) -> None:
    """Refuse (ConfigError) a run whose device is missing, whose thread count exceeds the cores, or whose
    estimated memory exceeds what is available, with the estimate in the message."""
    check_device(config.train.device)
    cores = os.cpu_count() or 1
    if config.train.threads is not None and config.train.threads > cores:
        raise ConfigError(f"train.threads={config.train.threads} exceeds the {cores} cores of this machine")
    parts = estimate_memory(config)
    need, have = sum(parts.values()), available_memory(config.train.device)
    if need > have:
        detail = ", ".join(f"{name} {_gb(n)}" for name, n in parts.items())
        raise ConfigError(f"this config needs about {_gb(need)} of memory ({detail}) but {_gb(have)} is available "
                          "on " + config.train.device + "; lower task.p, model sizes or task.frac_train")


def _gb(n: int) -> str:
    return f"{n / 1e9:.3g} GB"
