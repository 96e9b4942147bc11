"""Nanda et al. 2023's full training-run file (progress-measures paper, `full_run_data.pth`) as a grokinterp run.

The file (a `torch.save`d dict) holds "state_dicts", a list of snapshots every 100 epochs, with their
"epochs"; per-epoch "train_losses" and "test_losses"; usually a "config"; and the final "model" after
"epoch" epochs (imported as the checkpoint at that step). Their model's layout
(their `transformers.py`), for n_heads h, d_head d, d_model m, d_mlp f, p + 1 tokens:

    embed.W_E [m, p+1]    pos_embed.W_pos [n_ctx, m]    blocks.L.attn.W_K / W_Q / W_V [h, d, m]
    blocks.L.attn.W_O [m, h*d] (heads outer)            blocks.L.attn.mask [n_ctx, n_ctx] (a buffer)
    blocks.L.mlp.W_in [f, m]  b_in [f]  W_out [m, f]  b_out [m]    unembed.W_U [m, p+1]

No attention or unembed biases; no LayerNorm. Their unembed has a column for '=': it is dropped, so the
imported model has p outputs (logits over the p answers are unchanged; their softmax loses one term).
Their split is `random.seed(seed); random.shuffle(pairs)`, the first floor(frac_train p^2) training:
`task.shuffle="python"`. A snapshot is filed under the epoch the file gives it; losses at epoch e are
those of the weights before that epoch's update, as grokinterp's metrics row e.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import einops
import torch
from torch import Tensor

from ..config import ConfigError, ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from ..tasks import make_split
from ..model import build_model
from ._safe_load import ImportFormatError, load_torch_file
from ._write import ImportedRun

# Their Config defaults (progress-measures paper, transformers.py), used for what a file's config omits.
NANDA_DEFAULTS = {"lr": 1e-3, "weight_decay": 1.0, "p": 113, "d_model": 128, "fn_name": "add", "frac_train": 0.3,
                  "num_epochs": 50000, "save_every": 100, "seed": 0, "num_layers": 1, "n_ctx": 3, "num_heads": 4,
                  "act_type": "ReLU"}
OPS = {"add": "add", "subtract": "sub", "x2xyy2": "x2+xy+y2"}
# Their config may be an instance of their own dataclass `Config` (module transformers.py): read as a record.
CONFIG_CLASS_PATTERN = r"(?:[\w.]+\.)?transformers\.Config"


def nanda_config(raw: dict | None, first_state_dict: dict[str, Tensor]) -> tuple[RunConfig, dict]:
    """The RunConfig of a Nanda et al. run and what was assumed for it (keys their config did not give)."""
    given = dict(raw or {})
    assumed = {k: v for k, v in NANDA_DEFAULTS.items() if k not in given}
    cfg = {**NANDA_DEFAULTS, **given}
    if "embed.W_E" in first_state_dict and "p" not in given:  # no config: p from the embedding's p + 1 columns
        cfg["p"] = assumed["p"] = int(first_state_dict["embed.W_E"].shape[1]) - 1
    if "embed.W_E" in first_state_dict and "d_model" not in given:
        cfg["d_model"] = assumed["d_model"] = int(first_state_dict["embed.W_E"].shape[0])
    cfg.setdefault("d_mlp", 4 * cfg["d_model"])
    if "d_mlp" not in given:
        if "blocks.0.mlp.W_in" in first_state_dict:
            cfg["d_mlp"] = int(first_state_dict["blocks.0.mlp.W_in"].shape[0])
        assumed["d_mlp"] = cfg["d_mlp"]
    if cfg["fn_name"] not in OPS:
        raise ImportFormatError(f"fn_name={cfg['fn_name']!r} cannot be imported: its labels cannot be rebuilt "
                                f"(importable: {sorted(OPS)})")
    act = {"relu": "relu", "gelu": "gelu"}.get(str(cfg["act_type"]).lower())
    if act is None:
        raise ImportFormatError(f"act_type={cfg['act_type']!r} is not ReLU or GeLU")
    if int(cfg["n_ctx"]) != 3:
        raise ImportFormatError(f"n_ctx={cfg['n_ctx']} is not 3: grokinterp's tokens are [a, b, =]")
    d_model, n_heads = int(cfg["d_model"]), int(cfg["num_heads"])
    if d_model % n_heads:
        raise ImportFormatError(f"d_model={d_model} is not a multiple of num_heads={n_heads}")
    try:
        config = RunConfig(
            task=TaskConfig(p=int(cfg["p"]), op=OPS[cfg["fn_name"]], frac_train=float(cfg["frac_train"]),
                            seed=int(cfg["seed"]), shuffle="python"),
            model=ModelConfig(n_layers=int(cfg["num_layers"]), d_model=d_model, n_heads=n_heads,
                              d_head=d_model // n_heads, d_mlp=int(cfg["d_mlp"]), act_fn=act, init="nanda",
                              train_biases="mlp"),
            optim=OptimConfig(lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]), beta1=0.9, beta2=0.98,
                              warmup_steps=10),
            train=TrainConfig(steps=int(cfg["num_epochs"]), eval_every=1, ckpt_every=int(cfg["save_every"]),
                              state_every=int(cfg["save_every"])),
        )
    except ConfigError as e:
        raise ImportFormatError(f"the file's config cannot be a grokinterp run: {e}") from None
    return config, assumed


def expected_nanda_shapes(config: RunConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter of Nanda et al.'s model and its shape in their layout."""
    m, p1, h, d, f = (config.model.d_model, config.task.p + 1, config.model.n_heads, config.model.d_head,
                      config.model.d_mlp)
    shapes = {"embed.W_E": (m, p1), "pos_embed.W_pos": (3, m), "unembed.W_U": (m, p1)}
    for layer in range(config.model.n_layers):
        a, b = f"blocks.{layer}.attn.", f"blocks.{layer}.mlp."
        shapes.update({a + "W_K": (h, d, m), a + "W_Q": (h, d, m), a + "W_V": (h, d, m), a + "W_O": (m, h * d),
                       b + "W_in": (f, m), b + "b_in": (f,), b + "W_out": (m, f), b + "b_out": (m,)})
    return shapes


def nanda_to_tl(state_dict: dict[str, Tensor], config: RunConfig, where: str) -> dict[str, Tensor]:
    """One snapshot in Nanda et al.'s layout -> grokinterp's (TL 3) state dict, every shape checked first.

    W_E, W_in, W_out transposed; W_K/Q/V [h, d, m] -> [h, m, d]; W_O [m, (h d)] -> [h, d, m]; the unembed's
    '=' column (the last) dropped; the biases they do not have (attention, unembed) zero. Their `mask`
    buffers and any hook buffers are dropped; any other key is an error naming it.
    """
    shapes = expected_nanda_shapes(config)
    unknown = [k for k in state_dict if k not in shapes and not _ignorable(k)]
    if unknown:
        raise ImportFormatError(f"{where}: unexpected key(s) {unknown} for Nanda et al.'s layout")
    for key, shape in shapes.items():
        if key not in state_dict:
            raise ImportFormatError(f"{where}: key {key} is missing (Nanda et al.'s layout needs {shape})")
        got = state_dict[key]
        if not isinstance(got, Tensor) or tuple(got.shape) != shape:
            raise ImportFormatError(f"{where}: {key} has shape {tuple(getattr(got, 'shape', ()))}, but the config "
                                    f"(p={config.task.p}, d_model={config.model.d_model}, n_heads="
                                    f"{config.model.n_heads}, d_mlp={config.model.d_mlp}) needs {shape} in their layout")
    out = {k: v.clone() for k, v in build_model(config).state_dict().items()}  # zero biases, TL buffers
    sd = {k: v.detach().to(torch.float32) for k, v in state_dict.items()}
    out["embed.W_E"] = sd["embed.W_E"].T.contiguous()
    out["pos_embed.W_pos"] = sd["pos_embed.W_pos"].clone()
    out["unembed.W_U"] = sd["unembed.W_U"][:, : config.task.p].contiguous()
    for layer in range(config.model.n_layers):
        a, b = f"blocks.{layer}.attn.", f"blocks.{layer}.mlp."
        for name in ("W_K", "W_Q", "W_V"):
            out[a + name] = einops.rearrange(sd[a + name], "h d m -> h m d").contiguous()
        out[a + "W_O"] = einops.rearrange(sd[a + "W_O"], "m (h d) -> h d m", h=config.model.n_heads).contiguous()
        out[b + "W_in"] = sd[b + "W_in"].T.contiguous()
        out[b + "W_out"] = sd[b + "W_out"].T.contiguous()
        out[b + "b_in"], out[b + "b_out"] = sd[b + "b_in"].clone(), sd[b + "b_out"].clone()
    for name in ("b_Q", "b_K", "b_V", "b_O"):
        for layer in range(config.model.n_layers):
            out[f"blocks.{layer}.attn.{name}"].zero_()
    out["unembed.b_U"].zero_()
    return out


def _ignorable(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    return leaf == "mask" or "hook" in key


def read_nanda_run(path: str | Path) -> ImportedRun:
    """Read Nanda et al.'s full-run file into an `ImportedRun` (see the module docstring)."""
    path = Path(path)
    data = load_torch_file(path, record_pattern=CONFIG_CLASS_PATTERN)
    if not isinstance(data, dict) or "state_dicts" not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ImportFormatError(f"{path} is not Nanda et al.'s full-run file: it needs a 'state_dicts' list; it has {keys}")
    snapshots = data["state_dicts"]
    if not isinstance(snapshots, (list, tuple)) or not snapshots or not all(isinstance(s, dict) for s in snapshots):
        raise ImportFormatError(f"{path}: 'state_dicts' must be a non-empty list of state dicts")
    raw_config = data.get("config")
    if raw_config is not None and not isinstance(raw_config, dict):
        raise ImportFormatError(f"{path}: 'config' is a {type(raw_config).__name__}, not a dict of settings")
    config, assumed = nanda_config(raw_config, snapshots[0])
    epochs = data.get("epochs")
    if epochs is None:
        epochs = [i * config.train.ckpt_every for i in range(len(snapshots))]
        assumed["epochs"] = f"0, {config.train.ckpt_every}, ... (save_every)"
    epochs = [int(e) for e in epochs]
    if len(epochs) != len(snapshots) or any(b <= a for a, b in zip(epochs, epochs[1:])) or epochs[0] < 0:
        raise ImportFormatError(f"{path}: 'epochs' must list one increasing epoch per state dict "
                                f"({len(epochs)} epochs for {len(snapshots)} state dicts)")
    checkpoints = [(e, nanda_to_tl(sd, config, f"{path}: state_dicts[{i}] (epoch {e})"))
                   for i, (e, sd) in enumerate(zip(epochs, snapshots))]
    final_epoch = data.get("epoch")
    if isinstance(data.get("model"), dict) and isinstance(final_epoch, int) and final_epoch > epochs[-1]:
        # Their post-training save: the weights after the last epoch, "epoch" = the number of epochs run.
        checkpoints.append((final_epoch, nanda_to_tl(data["model"], config, f"{path}: 'model' (epoch {final_epoch})")))
    losses = _loss_series(data, path)
    steps = max(config.train.steps, checkpoints[-1][0], max(losses, default=0))
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))
    train_idx, test_idx = make_split(config.task.p ** 2, config.task.frac_train, config.task.seed, "python")
    source = {"importer": "nanda", "file": str(path.resolve()), "n_checkpoints": len(checkpoints),
              "assumed": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in assumed.items()},
              "notes": "optim.beta1/beta2/warmup_steps are Nanda et al.'s code's values (the file does not hold them); "
                       "losses are the file's (their softmax includes the '=' output, dropped here); accuracy and "
                       "weight norm are measured on the imported checkpoints"}
    return ImportedRun(config, train_idx, test_idx, checkpoints, losses, source)


def _loss_series(data: dict, path: Path) -> dict[int, dict[str, float]]:
    losses: dict[int, dict[str, float]] = {}
    for column, key in (("train_loss", "train_losses"), ("test_loss", "test_losses")):
        series = data.get(key)
        if series is None:
            continue
        try:
            values = [float(x) for x in (series.tolist() if isinstance(series, Tensor) else series)]
        except (TypeError, ValueError):
            raise ImportFormatError(f"{path}: '{key}' must be a list of numbers") from None
        for epoch, value in enumerate(values):
            losses.setdefault(epoch, {})[column] = value
    return losses
