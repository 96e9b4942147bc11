"""TransformerLens 3.9 reference for `bench/bench_step.py` (run under .venv-tl3, not the main venv).

    .venv-tl3/bin/python bench/_tl3_step.py --data DATA.safetensors [--grads-out GRADS.safetensors]

DATA (written by bench_step.py) holds ``sd/<name>`` (a HookedTransformer state dict: grokinterp's
model at its initial weights), ``tokens`` [batch, 3] and ``labels`` [batch], and string metadata:
``config`` (HookedTransformerConfig kwargs, JSON), ``trainable`` (names of the parameters that
train, JSON list; the others are frozen as in grokinterp's config), ``optim`` (AdamW kwargs,
JSON) and ``threads``.

The step timed here is the reference training step, exactly as Nanda et al. wrote it with
HookedTransformer: full forward over all positions, ``logits[:, -1]``, cross-entropy, backward,
AdamW step (``zero_grad(set_to_none=True)`` first). Nothing else (no metrics, no evaluation).

Protocol (one JSON object per stdout line, so the caller can interleave its own timings with
these and both sides see the same machine load):

1. On start: load the state dict with ``strict=True``, compute the loss at those weights in
   float32 and float64 (one backward each; gradients go to --grads-out as ``float32/<name>``
   and ``float64/<name>``), print
   ``{"event": "ready", "loss32": .., "loss64": .., "transformer_lens_version": .., ...}``.
2. Then for each stdin line ``bench WARMUP STEPS [float32|float64 [THREADS]]``: WARMUP untimed
   steps, then STEPS timed steps, on THREADS torch threads (default: the data's ``threads``);
   print ``{"event": "timing", "dtype": .., "threads": .., "ms": [wall ms per step],
   "cpu_ms": [process CPU ms per step]}``.
   The float32 and float64 models each keep training across calls (their own optimizer).
3. ``quit`` or end of input: exit 0.

Only safetensors and JSON are read: nothing is unpickled.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from importlib.metadata import version

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file


PROTOCOL_OUT = sys.stdout
sys.stdout = sys.stderr  # anything a library prints goes to stderr; stdout carries only the protocol


def emit(obj: dict) -> None:
    PROTOCOL_OUT.write(json.dumps(obj) + "\n")
    PROTOCOL_OUT.flush()


def load_data(path: str) -> tuple[dict, dict]:
    tensors = {}
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    return tensors, meta


class Reference:
    """One HookedTransformer at the given weights and dtype, with its own AdamW."""

    def __init__(self, cfg_kwargs: dict, state_dict: dict, trainable: list[str], optim: dict, dtype: torch.dtype):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TL 3.9 warns that HookedTransformer goes in 4.0
            from transformer_lens import HookedTransformer, HookedTransformerConfig

            cfg = HookedTransformerConfig(**cfg_kwargs, dtype=dtype, device="cpu")
            self.model = HookedTransformer(cfg)
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state_dict.items()}
        self.model.load_state_dict(sd, strict=True)
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in trainable)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, **optim)

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.model(tokens)[:, -1]
        return F.cross_entropy(logits, labels)

    def step(self, tokens: torch.Tensor, labels: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(tokens, labels).backward()
        self.optimizer.step()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--grads-out", default=None)
    args = parser.parse_args()

    tensors, meta = load_data(args.data)
    torch.set_num_threads(int(meta["threads"]))
    cfg_kwargs, trainable, optim = json.loads(meta["config"]), json.loads(meta["trainable"]), json.loads(meta["optim"])
    optim["betas"] = tuple(optim["betas"])
    state_dict = {k[3:]: v for k, v in tensors.items() if k.startswith("sd/")}
    tokens, labels = tensors["tokens"], tensors["labels"]

    refs = {name: Reference(cfg_kwargs, state_dict, trainable, optim, getattr(torch, name))
            for name in ("float32", "float64")}
    losses, grads = {}, {}
    for name, ref in refs.items():
        loss = ref.loss(tokens, labels)
        loss.backward()
        losses[name] = loss.item()
        for n, p in ref.model.named_parameters():
            if p.grad is not None:
                grads[f"{name}/{n}"] = p.grad.detach().clone().contiguous()
        ref.optimizer.zero_grad(set_to_none=True)
    if args.grads_out:
        save_file(grads, args.grads_out)
    emit({
        "event": "ready",
        "loss32": losses["float32"],
        "loss64": losses["float64"],
        "transformer_lens_version": version("transformer-lens"),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": type(refs["float32"].model).__name__,
    })

    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        if parts[0] != "bench":
            emit({"event": "error", "message": f"unknown command {line.strip()!r}"})
            continue
        warmup, steps = int(parts[1]), int(parts[2])
        dtype = parts[3] if len(parts) > 3 else "float32"
        threads = int(parts[4]) if len(parts) > 4 else int(meta["threads"])
        if dtype not in refs:
            emit({"event": "error", "message": f"unknown dtype {dtype!r}; choose float32 or float64"})
            continue
        r = refs[dtype]
        torch.set_num_threads(threads)
        for _ in range(warmup):
            r.step(tokens, labels)
        ms, cpu_ms = [], []
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            r.step(tokens, labels)
            ms.append((time.perf_counter() - t0) * 1e3)
            cpu_ms.append((time.process_time() - c0) * 1e3)
        emit({"event": "timing", "dtype": dtype, "threads": torch.get_num_threads(), "ms": ms, "cpu_ms": cpu_ms})
    return 0


if __name__ == "__main__":
    sys.exit(main())
