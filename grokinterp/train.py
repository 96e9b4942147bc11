"""The full-batch training loop and its plug-in seam.

One step, in this order: plug-ins' `before_forward`, forward (final position only)
with plug-ins' hooks, task loss + plug-ins' auxiliary losses, backward, plug-ins'
`after_backward` (gradient filters), gradient metrics, optimizer step, plug-ins'
`after_step`. The step's metrics describe the parameters *before* the update:
row s of the metrics and checkpoint `step_s` are the same parameters theta_s.

Definitions (DESIGN.md): step = epoch; memorization step = first step with train
accuracy >= 0.99; grokking step = first with train and test accuracy >= 0.99.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import ConfigError, RunConfig
from .model import Transformer
from .tasks import ModularTask

ACC_THRESHOLD = 0.99


class Plugin:
    """Base class of training plug-ins (gradient filters, auxiliary losses, diagnostics).

    Override what you need; every hook is a no-op here. The loop never names a plug-in.
    A plug-in's state is saved with the optimizer (`state/`), never with the model (`ckpt/`).
    """

    name = "plugin"

    def setup(self, trainer: "Trainer") -> None:
        """Called once, after the model and optimizer exist and before any resume."""

    def forward_hooks(self, trainer: "Trainer") -> list[tuple[str, Callable]]:
        """TransformerLens (hook name, fn) pairs active during the training forward."""
        return []

    def before_forward(self, trainer: "Trainer") -> None:
        """Before the training forward (e.g. a probe's own update on detached activations)."""

    def extra_loss(self, trainer: "Trainer") -> Tensor | None:
        """An auxiliary loss added to the task loss (already weighted)."""
        return None

    def after_backward(self, trainer: "Trainer") -> None:
        """Gradients are in `p.grad`; filters may rewrite them in place."""

    def after_step(self, trainer: "Trainer") -> None:
        """After the optimizer step."""

    def metrics(self) -> dict[str, float]:
        """Extra metric columns for this step (names should be prefixed by the plug-in's name)."""
        return {}

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        pass


PLUGINS: dict[str, Callable[..., Plugin]] = {}


def register_plugin(name: str):
    """Decorator: make a Plugin class available to configs as `plugins.<name>`."""

    def wrap(cls):
        PLUGINS[name] = cls
        cls.name = name
        return cls

    return wrap


def build_plugins(config: RunConfig) -> list[Plugin]:
    from . import plugins as _builtin  # noqa: F401  (registers the built-in plug-ins; they import this module)

    plugins = []
    for name, kwargs in config.plugins.items():
        if name not in PLUGINS:
            raise ConfigError(f"unknown plug-in {name!r}; registered plug-ins: {sorted(PLUGINS)}")
        try:
            plugins.append(PLUGINS[name](**kwargs))
        except TypeError as e:
            raise ConfigError(f"bad arguments for plug-in {name!r}: {e}") from None
    return plugins


def build_model(config: RunConfig) -> Transformer:
    return Transformer(config.model, d_vocab=config.task.d_vocab, d_vocab_out=config.task.d_vocab_out)


def cross_entropy(logits: Tensor, labels: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    return F.cross_entropy(logits.to(dtype), labels)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


@dataclass
class Milestones:
    memorization_step: int | None = None
    grokking_step: int | None = None
    diverged_step: int | None = None

    def update(self, step: int, train_acc: float, test_acc: float | None) -> None:
        if self.memorization_step is None and train_acc >= ACC_THRESHOLD:
            self.memorization_step = step
        if self.grokking_step is None and test_acc is not None and train_acc >= ACC_THRESHOLD and test_acc >= ACC_THRESHOLD:
            self.grokking_step = step


@dataclass
class Trainer:
    """Holds everything a step needs; `state_dict()` is everything --resume needs besides the weights."""

    config: RunConfig
    task: ModularTask
    model: Transformer
    plugins: list[Plugin] = field(default_factory=list)
    step: int = 0

    def __post_init__(self):
        optim = self.config.optim
        self.params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
        self.optimizer = cls(
            list(self.params.values()), lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps,
            weight_decay=optim.weight_decay,
        )
        self.generator = torch.Generator().manual_seed(self.config.model.seed)  # for plug-ins' sampling
        self.milestones = Milestones()
        self.loss_dtype = getattr(torch, self.config.train.loss_dtype)
        self.train_tokens, self.train_labels = self.task.train_tokens, self.task.train_labels
        self.test_tokens, self.test_labels = self.task.test_tokens, self.task.test_labels
        for plugin in self.plugins:
            plugin.setup(self)

    def lr_at(self, step: int) -> float:
        warmup = self.config.optim.warmup_steps
        return self.config.optim.lr * (min(1.0, step / warmup) if warmup else 1.0)

    def forward_last(self, tokens: Tensor) -> Tensor:
        return self.model(tokens, last_position_only=True)[:, -1]

    @torch.no_grad()
    def evaluate(self, tokens: Tensor, labels: Tensor) -> tuple[float, float]:
        logits = self.forward_last(tokens)
        return cross_entropy(logits, labels, self.loss_dtype).item(), accuracy(logits, labels)

    def _weight_norms(self) -> dict[str, float]:
        with torch.no_grad():
            per = {f"wnorm_sq/{n}": p.detach().pow(2).sum().item() for n, p in self.model.named_parameters()}
        return {"weight_norm_sq": sum(per.values()), **per}

    def _gradient_metrics(self) -> dict[str, float]:
        """Gradient norm, and the cosine between Adam's momentum before this step and the gradient."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        grad_sq = sum(g.pow(2).sum() for g in grads)
        moms = [self.optimizer.state.get(p, {}).get("exp_avg") for p in self.params.values() if p.grad is not None]
        if moms and all(m is not None for m in moms):
            dot = sum((m * g).sum() for m, g in zip(moms, grads))
            mom_sq = sum(m.pow(2).sum() for m in moms)
            cos = (dot / (mom_sq.sqrt() * grad_sq.sqrt()).clamp_min(1e-30)).item()
        else:
            cos = math.nan
        return {"grad_norm": float(grad_sq) ** 0.5, "mom_grad_cos": cos}

    def train_step(self) -> dict[str, float]:
        """One full-batch update from theta_step; returns the metrics of theta_step (NaN test columns
        when the test set is not evaluated this step). Does not step on a non-finite loss."""
        s = self.step
        row: dict[str, float] = {"step": s}
        for plugin in self.plugins:
            plugin.before_forward(self)
        if s % self.config.train.eval_every == 0:
            row["test_loss"], row["test_acc"] = self.evaluate(self.test_tokens, self.test_labels)
        else:
            row["test_loss"] = row["test_acc"] = math.nan
        hooks = [h for plugin in self.plugins for h in plugin.forward_hooks(self)]
        with self.model.hooks(fwd_hooks=hooks):
            logits = self.forward_last(self.train_tokens)
            loss = cross_entropy(logits, self.train_labels, self.loss_dtype)
            total = loss
            for plugin in self.plugins:
                extra = plugin.extra_loss(self)
                if extra is not None:
                    total = total + extra
        row["train_loss"], row["train_acc"] = loss.item(), accuracy(logits.detach(), self.train_labels)
        row.update(self._weight_norms())
        lr = self.lr_at(s)
        row["lr"] = lr
        if not math.isfinite(row["train_loss"]) or not math.isfinite(total.item()):
            self.milestones.diverged_step = s
            row.update(grad_norm=math.nan, mom_grad_cos=math.nan)
            return row
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        row.update(self._gradient_metrics())  # the raw gradient, before any filter rewrites it
        for plugin in self.plugins:
            plugin.after_backward(self)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        for plugin in self.plugins:
            plugin.after_step(self)
            row.update(plugin.metrics())
        test_acc = None if math.isnan(row["test_acc"]) else row["test_acc"]
        self.milestones.update(s, row["train_acc"], test_acc)
        self.step += 1
        return row

    def final_row(self) -> dict[str, float]:
        """Metrics of the last parameters (no update): closes the series at the final checkpoint."""
        row: dict[str, float] = {"step": self.step}
        row["test_loss"], row["test_acc"] = self.evaluate(self.test_tokens, self.test_labels)
        row["train_loss"], row["train_acc"] = self.evaluate(self.train_tokens, self.train_labels)
        row.update(self._weight_norms())
        row.update(lr=self.lr_at(self.step), grad_norm=math.nan, mom_grad_cos=math.nan)
        self.milestones.update(self.step, row["train_acc"], row["test_acc"])
        return row

    def should_stop(self) -> bool:
        train = self.config.train
        if self.milestones.diverged_step is not None or self.step >= train.steps:
            return True
        grok = self.milestones.grokking_step
        return train.early_stop_after is not None and grok is not None and self.step >= grok + train.early_stop_after

    # ----- resume -----
    def state_dict(self) -> dict[str, Tensor]:
        """Optimizer moments and step counts, RNG states, milestones and plug-in states, as flat tensors."""
        state: dict[str, Tensor] = {"trainer/step": torch.tensor(self.step)}
        for name, param in self.params.items():
            for key, value in self.optimizer.state.get(param, {}).items():
                state[f"optim/{name}/{key}"] = value.detach().clone()
        state["rng/torch"] = torch.get_rng_state()
        state["rng/generator"] = self.generator.get_state()
        for key in ("memorization_step", "grokking_step"):
            value = getattr(self.milestones, key)
            state[f"trainer/{key}"] = torch.tensor(-1 if value is None else value)
        for plugin in self.plugins:
            for key, value in plugin.state_dict().items():
                state[f"plugin/{plugin.name}/{key}"] = value
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.step = int(state["trainer/step"])
        for name, param in self.params.items():
            prefix = f"optim/{name}/"
            entries = {k[len(prefix):]: (v.clone() if k.endswith("/step") else v.to(param.device, copy=True))
                       for k, v in state.items() if k.startswith(prefix)}
            if entries:
                self.optimizer.state[param] = entries
        torch.set_rng_state(state["rng/torch"])
        self.generator.set_state(state["rng/generator"])
        for key in ("memorization_step", "grokking_step"):
            value = int(state[f"trainer/{key}"])
            setattr(self.milestones, key, None if value < 0 else value)
        for plugin in self.plugins:
            prefix = f"plugin/{plugin.name}/"
            plugin.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def make_trainer(config: RunConfig, task: ModularTask) -> Trainer:
    """A fresh model (initialised from `config.model.seed`), optimizer and plug-ins."""
    device = torch.device(config.train.device)
    model = build_model(config).to(device)
    return Trainer(config, task.to(device), model, build_plugins(config))
