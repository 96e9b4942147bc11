"""Train the tiny ViT on a CIFAR-10 subset into a run directory laid out like the arithmetic runs.

```
<run>/config.json   {"config": VisionRunConfig (kind "vision"), "versions": ...}
<run>/metrics.csv   step, batch_loss, batch_acc (every step); train_/test_ loss and acc (every eval_every
                    steps, NaN otherwise; train = the whole training subset); weight_norm_sq, lr
<run>/ckpt/step_<NNNNNNN>.safetensors   the TinyViT state dict
<run>/summary.json  status, memorization/grokking step and gap (DESIGN.md definitions on evaluated steps)
```
`Run(path).metrics`, `.summary` and `.steps` read it; vision runs do not resume (they are short).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..runs import FINAL_STATUSES, Milestones, RunError, RunWriter, summarize
from ._cifar import read_cifar10
from ._vit import TinyViT, ViTConfig


@dataclass(frozen=True)
class VisionRunConfig:
    """The vision control: The Grokking Dynamics write-up's 0.8M-parameter ViT on 5,000 CIFAR-10 images, AdamW as for arithmetic."""

    vit: ViTConfig = field(default_factory=ViTConfig)
    n_train: int = 5000  # a random subset of the 50,000 training images
    n_test: int = 2000  # the first n_test test images are evaluated
    data_seed: int = 0  # which training images
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    batch_size: int | None = 500  # None: full batch
    steps: int = 3000
    eval_every: int = 50
    ckpt_every: int = 250
    threads: int | None = None
    device: str = "cpu"

    def __post_init__(self):
        for name in ("n_train", "n_test", "steps", "eval_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1 or None (full batch)")

    def to_dict(self) -> dict:
        return {"kind": "vision", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "VisionRunConfig":
        data = {k: v for k, v in data.items() if k != "kind"}
        return cls(**{**data, "vit": ViTConfig(**data.get("vit", {}))})


def load_vision_data(data_dir: str | Path, config: VisionRunConfig) -> dict[str, torch.Tensor]:
    """The training subset and test images as normalized float tensors (per-channel mean/std of the subset)."""
    x_all, y_all = read_cifar10(data_dir, "train")
    if config.n_train > len(y_all):
        raise ValueError(f"n_train={config.n_train} exceeds the {len(y_all)} training images in {data_dir}")
    pick = np.random.default_rng(config.data_seed).permutation(len(y_all))[: config.n_train]
    x_test, y_test = read_cifar10(data_dir, "test", limit=config.n_test)
    x_train = torch.from_numpy(x_all[np.sort(pick)]).float() / 255
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return {"train_x": (x_train - mean) / std, "train_y": torch.from_numpy(y_all[np.sort(pick)]),
            "test_x": (torch.from_numpy(x_test).float() / 255 - mean) / std, "test_y": torch.from_numpy(y_test)}


@torch.no_grad()
def _evaluate(model: TinyViT, x: torch.Tensor, y: torch.Tensor, chunk: int = 1000) -> tuple[float, float]:
    loss, correct = 0.0, 0
    for i in range(0, len(y), chunk):
        logits = model(x[i:i + chunk])
        loss += F.cross_entropy(logits, y[i:i + chunk], reduction="sum").item()
        correct += (logits.argmax(-1) == y[i:i + chunk]).sum().item()
    return loss / len(y), correct / len(y)


def _summary(rows: list[dict], wall: float, diverged: int | None) -> dict:
    """summary.json (`runs.summarize`) from the evaluated steps; no stable grokking step for vision runs."""
    evals = [r for r in rows if not math.isnan(r["test_acc"])]
    milestones = Milestones(diverged_step=diverged)
    for r in evals:
        milestones.update(r["step"], r["train_acc"], r["test_acc"])
    summary = summarize(milestones, evals, final_step=rows[-1]["step"] if rows else 0, wall_time_s=wall,
                        steps_run=len(rows))
    summary["stable_grokking_step"] = None
    return summary


def train_vision(config: VisionRunConfig, data_dir: str | Path, out: str | Path, progress: bool = True) -> Path:
    """Train the tiny ViT on CIFAR-10 binary files in `data_dir` into the run directory `out`; returns `out`.

    A finished run in `out` is returned as is; an unfinished one raises RunError (delete it to retrain).
    """
    out = Path(out)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    data = load_vision_data(data_dir, config)  # a missing data set fails before anything is written
    with RunWriter(out) as writer:
        if writer.existed:
            summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
            if summary.get("status") in FINAL_STATUSES:
                return out
            raise RunError(f"{out} holds an unfinished vision run (vision runs do not resume); delete it to retrain")
        writer.write_config({**config.to_dict(), "data_dir": str(data_dir)}, sort_keys=True)
        writer.write_summary({"status": "running", "final_step": 0})
        device = torch.device(config.device)
        data = {k: v.to(device) for k, v in data.items()}
        model = TinyViT(config.vit).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                      weight_decay=config.weight_decay)
        generator = torch.Generator().manual_seed(config.data_seed)
        n, batch = len(data["train_y"]), config.batch_size or len(data["train_y"])
        rows, order, cursor, diverged = [], torch.randperm(n, generator=generator), 0, None
        start = time.perf_counter()
        bar = tqdm(range(config.steps + 1), disable=not progress, desc=out.name, unit="step", dynamic_ncols=True)
        for step in bar:
            row = {"step": step}
            if step % config.eval_every == 0 or step == config.steps:
                model.eval()
                row["train_loss"], row["train_acc"] = _evaluate(model, data["train_x"], data["train_y"])
                row["test_loss"], row["test_acc"] = _evaluate(model, data["test_x"], data["test_y"])
                model.train()
                bar.set_postfix_str(f"train {row['train_acc']:.3f} test {row['test_acc']:.3f}", refresh=False)
            else:
                row.update(train_loss=math.nan, train_acc=math.nan, test_loss=math.nan, test_acc=math.nan)
            with torch.no_grad():
                row["weight_norm_sq"] = sum(p.pow(2).sum().item() for p in model.parameters())
            row["lr"] = config.lr
            if step % config.ckpt_every == 0 or step == config.steps:
                writer.write_checkpoint(step, model.state_dict())
            if step == config.steps:
                rows.append(row)
                break
            if cursor + batch > n:
                order, cursor = torch.randperm(n, generator=generator), 0
            idx = order[cursor:cursor + batch].to(device)
            cursor += batch
            logits = model(data["train_x"][idx])
            loss = F.cross_entropy(logits, data["train_y"][idx])
            row["batch_loss"] = loss.item()
            row["batch_acc"] = (logits.argmax(-1) == data["train_y"][idx]).float().mean().item()
            rows.append(row)
            if not math.isfinite(row["batch_loss"]):
                diverged = step
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        bar.close()
        writer.write_metrics(rows)
        writer.write_summary(_summary(rows, time.perf_counter() - start, diverged))
    return out
