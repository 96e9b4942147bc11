"""One full-batch training step (`Trainer.train_step`) and what a resume needs of it (`Trainer.state_dict`).

The loop around it (checkpoint cadence, stopping) is `train_loop` (`_loop.py`); files and resume, `grokinterp.runs.train_run`. One step, in this order: plug-ins' `before_forward`, forward (final position only)
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

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import RunConfig
from ..model import Transformer, build_model
from ..plugins import Plugin, build_plugins
from ..milestones import Milestones
from ..tasks import ModularTask


def cross_entropy(logits: Tensor, labels: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    return F.cross_entropy(logits.to(dtype), labels)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


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
        """The learning rate of `step` (`OptimConfig.lr_at`)."""
        return self.config.optim.lr_at(step)

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
