"""TransformerLens's Grokking_Demo notebook's saved file (`grokking_demo.pth`) as a grokinterp run.

The notebook saves a dict: "model" (the final HookedTransformer state dict), "config" (its
`HookedTransformerConfig` object, read here as a plain record), "checkpoints" (state dicts) with
"checkpoint_epochs", per-epoch "train_losses" and "test_losses", and "train_indices" /
"test_indices" into the p^2 pairs [a, b, =] in row-major order. State dicts are TL 3's, so they load
as they are. Its loop, per epoch e: train loss of theta_e, update, test loss of theta_{e+1}, and a
checkpoint of theta_{e+1} when (e + 1) % 100 == 0. So here: checkpoint of epoch e -> step e + 1,
train_losses[e] -> train_loss at step e, test_losses[e] -> test_loss at step e + 1, and the final
model -> step len(train_losses). The task (a + b mod p) and the optimizer settings are the notebook's;
the file does not hold them (stated in the run's `source`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from ..config import ConfigError, ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from ._safe_load import ImportFormatError, load_torch_file
from ._write import ImportedRun, check_state_dict

# Where TransformerLens has pickled its config class: 3.x, then 1.x / 2.x.
HOOKED_TRANSFORMER_CONFIG_CLASSES = (
    "transformer_lens.config.hooked_transformer_config.HookedTransformerConfig",
    "transformer_lens.HookedTransformerConfig.HookedTransformerConfig",
)
DEMO_SETTINGS = {"op": "add", "lr": 1e-3, "weight_decay": 1.0, "betas": (0.9, 0.98), "data_seed": 598,
                 "trained_biases": "none"}
REQUIRED = ("model", "config", "checkpoints", "checkpoint_epochs", "train_losses", "test_losses",
            "train_indices", "test_indices")


def demo_config(cfg: dict, n_pairs_train: int, steps: int, ckpt_every: int) -> RunConfig:
    """RunConfig from the demo's HookedTransformerConfig (as a dict) and the notebook's known settings."""
    def get(key):
        if key not in cfg:
            raise ImportFormatError(f"the file's config has no {key!r}")
        return cfg[key]

    p = int(get("d_vocab_out"))
    if int(get("d_vocab")) != p + 1:
        raise ImportFormatError(f"config d_vocab={cfg['d_vocab']} must be d_vocab_out + 1 = {p + 1} (tokens 0..p-1 and '=')")
    if int(get("n_ctx")) != 3:
        raise ImportFormatError(f"config n_ctx={cfg['n_ctx']} is not 3: grokinterp's tokens are [a, b, =]")
    if cfg.get("attn_only") or cfg.get("positional_embedding_type", "standard") != "standard":
        raise ImportFormatError("only the demo's architecture is importable: attn_only=False, standard positions")
    n = p * p
    # The shortest decimal fraction whose floor(frac * n) is the file's train size (the notebook's 0.3 for p 113).
    fracs = [round(n_pairs_train / n, digits) for digits in range(1, 7)] + [(n_pairs_train + 0.5) / n]
    frac = next(f for f in fracs if 0 < f < 1 and int(f * n) == n_pairs_train)
    seed = cfg.get("seed")
    try:
        return RunConfig(
            task=TaskConfig(p=p, op=DEMO_SETTINGS["op"], frac_train=frac, seed=DEMO_SETTINGS["data_seed"], shuffle="torch"),
            model=ModelConfig(n_layers=int(get("n_layers")), d_model=int(get("d_model")), n_heads=int(get("n_heads")),
                              d_head=int(get("d_head")), d_mlp=int(get("d_mlp")), act_fn=str(get("act_fn")),
                              normalization_type=cfg.get("normalization_type"), init="tl",
                              train_biases=DEMO_SETTINGS["trained_biases"],
                              **({"seed": seed} if isinstance(seed, int) else {})),
            optim=OptimConfig(lr=DEMO_SETTINGS["lr"], weight_decay=DEMO_SETTINGS["weight_decay"],
                              beta1=DEMO_SETTINGS["betas"][0], beta2=DEMO_SETTINGS["betas"][1]),
            train=TrainConfig(steps=steps, eval_every=1, ckpt_every=ckpt_every, state_every=ckpt_every),
        )
    except (ConfigError, TypeError, ValueError) as e:
        raise ImportFormatError(f"the file's config cannot be a grokinterp run: {e}") from None


def read_tl_demo_run(path: str | Path) -> ImportedRun:
    """Read the Grokking_Demo's saved file into an `ImportedRun` (see the module docstring)."""
    path = Path(path)
    data = load_torch_file(path, record_classes=HOOKED_TRANSFORMER_CONFIG_CLASSES)
    missing = [k for k in REQUIRED if not isinstance(data, dict) or k not in data]
    if missing:
        raise ImportFormatError(f"{path} is not the Grokking_Demo's saved file: keys {missing} are missing")
    if not isinstance(data["config"], dict):
        raise ImportFormatError(f"{path}: 'config' is a {type(data['config']).__name__}, not a HookedTransformerConfig")
    checkpoints, epochs = data["checkpoints"], [int(e) for e in data["checkpoint_epochs"]]
    if len(checkpoints) != len(epochs) or any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ImportFormatError(f"{path}: {len(checkpoints)} checkpoints for {len(epochs)} increasing checkpoint_epochs")
    train_losses, test_losses = (_numbers(data[k], k, path) for k in ("train_losses", "test_losses"))
    train_idx, test_idx = (_indices(data[k], k, path) for k in ("train_indices", "test_indices"))

    steps = [e + 1 for e in epochs]  # the checkpoint of epoch e holds theta_{e+1}
    final_step = max(len(train_losses), steps[-1] if steps else 0)
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    ckpt_every = math.gcd(*gaps) if gaps else max(final_step, 1)
    config = demo_config(data["config"], len(train_idx), max(final_step, 1), ckpt_every)
    n_pairs = config.task.p ** 2
    covered = torch.cat([train_idx, test_idx]).sort().values
    if covered.numel() != n_pairs or not torch.equal(covered, torch.arange(n_pairs)):
        raise ImportFormatError(f"{path}: train_indices and test_indices do not partition the {n_pairs} pairs "
                                f"of p={config.task.p}")

    series = dict(zip(steps, checkpoints))
    series[final_step] = data["model"]  # the final weights (the same as the last checkpoint when it is at the end)
    for step, state_dict in series.items():
        where = f"{path}: " + ("'model'" if step == final_step else f"checkpoint of epoch {step - 1}")
        if not isinstance(state_dict, dict):
            raise ImportFormatError(f"{where} is a {type(state_dict).__name__}, not a state dict")
        check_state_dict(state_dict, config, where)
    losses: dict[int, dict[str, float]] = {}
    for e, value in enumerate(train_losses):
        losses.setdefault(e, {})["train_loss"] = value
    for e, value in enumerate(test_losses):
        losses.setdefault(e + 1, {})["test_loss"] = value
    source = {"importer": "tl-demo", "file": str(path.resolve()), "n_checkpoints": len(series),
              "assumed": {k: (list(v) if isinstance(v, tuple) else v) for k, v in DEMO_SETTINGS.items()},
              "notes": "task op, optimizer settings and trained biases are the Grokking_Demo notebook's (the file "
                       "does not hold them); the split is the file's; accuracy and weight norm are measured on "
                       "the imported checkpoints"}
    return ImportedRun(config, train_idx, test_idx, sorted(series.items()), losses, source)


def _numbers(values, key: str, path: Path) -> list[float]:
    try:
        return [float(x) for x in (values.tolist() if isinstance(values, Tensor) else values)]
    except (TypeError, ValueError):
        raise ImportFormatError(f"{path}: '{key}' must be a list of numbers") from None


def _indices(values, key: str, path: Path) -> Tensor:
    tensor = torch.as_tensor(values)
    if tensor.ndim != 1 or tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise ImportFormatError(f"{path}: '{key}' must be a 1-D integer tensor of pair indices")
    return tensor.to(torch.int64).sort().values  # sorted, as training stores a split
