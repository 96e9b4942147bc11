"""The probe stencil of the probe-stencil write-up ("Grokking as manifold selection under constraint"): a temporal probe regularizer.

An auxiliary probe f (MLP d_model -> `hidden` (64) -> ReLU -> d_mlp, its own Adam) predicts the MLP's hidden
activations from the MLP's input, at the last position over the training set, across epochs. With
x(t) = mlp_in at epoch t (`blocks.L.hook_resid_mid`, or the LayerNorm'd residual when the model has LN) and
y(t) = mlp_hidden (`blocks.L.mlp.hook_post`), each offset k of the stencil pairs

    k = 0   functional coherence      x(t)   -> y(t)
    k < 0   backward admissibility    x(t)   -> y(t + k)     (k = -1: the previous epoch's hidden state)
    k > 0   forward lookahead         x(t-k) -> y(t)         (k = +1: the previous epoch's input)

with L_k(t) = mean over examples and units of (f(input) - target)^2. Past epochs' activations come from a
circular buffer of the last max|k| epochs (only what SGD already computed: nothing from the future).
An offset whose past epoch is not yet in the buffer (t < |k|) is left out of the mean that epoch.

Each step has two phases:
1. (`before_forward`) model frozen: a forward under no_grad, activations detached, `probe_steps` Adam
   steps on the probe only, minimising mean_k L_k.
2. probe frozen (its parameters have requires_grad False and never get a .grad): the training forward's live
   activations give the regularizer R = lamb * mean_k L_k, added to the task loss (`extra_loss`); its
   gradient reaches the model only. Total loss: L_task + lamb * mean_k ||f(mlp_in) - mlp_hidden||^2.
After the optimizer step the epoch's (detached) activations enter the buffer. The probe is never part of
the model's checkpoint (`ckpt/`); its weights, its Adam state and the buffer are in `state_dict()`.
With `fresh_forward=False` phase 1 reuses the training forward's activations (detached) instead of a
second forward: the same numbers (same parameters theta_t), one forward fewer per step. (Phase 1's own
forward runs without other plug-ins' hooks; if another plug-in patches activations, use `fresh_forward=False`
and list the stencil after it, so the probe sees what the training forward computes.)

Metric columns: `probe/loss_k-1`, `probe/loss_k0`, `probe/loss_k+1` (L_k of phase 2, after the probe's
update, NaN where the offset is unavailable), `probe/reg` (R) and `probe/fit_loss` (phase 1's mean_k L_k
before the probe's update).

    preset("nanda", plugins={"probe_stencil": {"offsets": [-1, 0, 1]}})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ..config import ConfigError
from ._base import Plugin, register_plugin

if TYPE_CHECKING:
    from ..train import Trainer


def offset_column(k: int) -> str:
    """Metric column of offset k: `probe/loss_k-1`, `probe/loss_k0`, `probe/loss_k+1`."""
    return f"probe/loss_k{k:+d}" if k else "probe/loss_k0"


class Probe(nn.Module):
    """f(x) = relu(x W_1 + b_1) W_2 + b_2: d_model -> hidden -> d_mlp, initialised like nn.Linear from a generator."""

    def __init__(self, d_model: int, d_mlp: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.W_1 = nn.Parameter(torch.empty(d_model, hidden))
        self.b_1 = nn.Parameter(torch.empty(hidden))
        self.W_2 = nn.Parameter(torch.empty(hidden, d_mlp))
        self.b_2 = nn.Parameter(torch.empty(d_mlp))
        with torch.no_grad():
            for W, b in ((self.W_1, self.b_1), (self.W_2, self.b_2)):
                bound = 1 / math.sqrt(W.shape[0])  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                W.copy_(torch.rand(W.shape, generator=generator) * 2 * bound - bound)
                b.copy_(torch.rand(b.shape, generator=generator) * 2 * bound - bound)

    def forward(self, x: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_mlp"]:
        return F.relu(x @ self.W_1 + self.b_1) @ self.W_2 + self.b_2


class ActivationBuffer:
    """The last `depth` epochs' (mlp_in, mlp_hidden) over the training set; epoch t lives in slot t % depth."""

    def __init__(self, depth: int, n: int, d_model: int, d_mlp: int, device: torch.device):
        self.depth = depth
        self.inputs = torch.zeros(depth, n, d_model, device=device)
        self.hidden = torch.zeros(depth, n, d_mlp, device=device)
        self.steps = torch.full((depth,), -1, dtype=torch.int64)  # which epoch each slot holds (-1: empty)

    def push(self, step: int, x: Tensor, y: Tensor) -> None:
        if self.depth:
            slot = step % self.depth
            self.inputs[slot], self.hidden[slot], self.steps[slot] = x.detach(), y.detach(), step

    def get(self, step: int) -> tuple[Tensor, Tensor] | None:
        """(mlp_in, mlp_hidden) of epoch `step`, or None when it is not (or no longer) held."""
        if step < 0 or not self.depth:
            return None
        slot = step % self.depth
        return (self.inputs[slot], self.hidden[slot]) if int(self.steps[slot]) == step else None


def stencil_pairs(offsets: list[int], step: int, x: Tensor, y: Tensor,
                  buffer: ActivationBuffer) -> dict[int, tuple[Tensor, Tensor]]:
    """(probe input, target) per available offset at epoch `step`, given this epoch's x = mlp_in, y = mlp_hidden.

    k = 0: (x(t), y(t)); k < 0: (x(t), y(t+k)); k > 0: (x(t-k), y(t)); past epochs from `buffer`.
    """
    pairs = {}
    for k in offsets:
        if k == 0:
            pairs[k] = (x, y)
            continue
        past = buffer.get(step - abs(k))
        if past is not None:
            pairs[k] = (x, past[1]) if k < 0 else (past[0], y)
    return pairs


@register_plugin("probe_stencil")
class ProbeStencil(Plugin):
    """The probe-stencil write-up's probe-stencil regularizer (module docstring).

    Args:
        offsets: the stencil, distinct integers (the probe-stencil write-up: any subset of [-1, 0, 1]).
        lamb: weight of the regularizer (the probe-stencil write-up: 0.1).
        lr: the probe's Adam learning rate.
        hidden: the probe's hidden width (the probe-stencil write-up: 64).
        layer: whose MLP is probed.
        probe_steps: probe updates per epoch in phase 1.
        fresh_forward: phase 1 runs its own forward (the probe-stencil write-up); False reuses the training forward's activations.
        reduction: how L_k averages the squared error: "mean" over examples and units (default), or "sum" over
            the units and mean over examples, the squared norm ‖f(mlp_in) − mlp_hidden‖² per example as the
            write-up's formula reads (d_mlp times larger, so the same lamb weighs it d_mlp times more).
    """

    def __init__(self, offsets: list[int] = (-1, 0, 1), lamb: float = 0.1, lr: float = 1e-3, hidden: int = 64,
                 layer: int = 0, probe_steps: int = 1, fresh_forward: bool = True, reduction: str = "mean"):
        offsets = list(offsets)
        integers = all(isinstance(k, int) and not isinstance(k, bool) for k in offsets)
        if not offsets or not integers or len(set(offsets)) != len(offsets):
            raise ConfigError(f"plugins.probe_stencil.offsets={offsets!r} must be a non-empty list of distinct "
                              "integers, e.g. [-1, 0, 1]")
        if lamb < 0:
            raise ConfigError(f"plugins.probe_stencil.lamb={lamb!r} must be >= 0 (the probe-stencil write-up uses 0.1)")
        if lr <= 0:
            raise ConfigError(f"plugins.probe_stencil.lr={lr!r} must be > 0")
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"plugins.probe_stencil.reduction={reduction!r} must be \"mean\" or \"sum\"")
        self.reduction = reduction
        for key, value in (("hidden", hidden), ("probe_steps", probe_steps)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"plugins.probe_stencil.{key}={value!r} must be a positive integer")
        self.offsets, self.lamb, self.lr, self.hidden = sorted(offsets), float(lamb), float(lr), hidden
        self.layer, self.probe_steps, self.fresh_forward = layer, probe_steps, bool(fresh_forward)
        self._live: dict[str, Tensor] = {}
        self._current: tuple[Tensor, Tensor] | None = None
        self._metrics: dict[str, float] = {}

    # ----- set-up -----
    def setup(self, trainer: Trainer) -> None:
        cfg = trainer.model.cfg
        if not 0 <= self.layer < cfg.n_layers:
            raise ConfigError(f"plugins.probe_stencil.layer={self.layer} is out of range "
                              f"for a {cfg.n_layers}-layer model")
        block = trainer.model.blocks[self.layer]
        self._ln = block.ln2 if cfg.normalization_type == "LN" else None
        # The MLP's input: resid_mid without LN; with LN, ln2's output (hook_normalized is before the affine).
        ln_hook, resid_hook = f"blocks.{self.layer}.ln2.hook_normalized", f"blocks.{self.layer}.hook_resid_mid"
        self.in_hook = ln_hook if self._ln is not None else resid_hook
        self.out_hook = f"blocks.{self.layer}.mlp.hook_post"
        device = next(trainer.model.parameters()).device
        self.probe = Probe(cfg.d_model, cfg.d_mlp, self.hidden, trainer.generator).to(device)
        self.probe.requires_grad_(False)  # frozen except inside phase 1
        self.optimizer = torch.optim.Adam(self.probe.parameters(), lr=self.lr)
        depth = max(abs(k) for k in self.offsets)
        self.buffer = ActivationBuffer(depth, len(trainer.train_tokens), cfg.d_model, cfg.d_mlp, device)

    def _capture_hooks(self, store: dict) -> list:
        def capture(name):
            def hook(acts, hook):
                store[name] = acts[:, -1]  # the last position (the only one the fast forward computes)
            return hook

        return [(self.in_hook, capture("in")), (self.out_hook, capture("out"))]

    def _activations(self, store: dict) -> tuple[Tensor, Tensor]:
        x = store["in"] * self._ln.w + self._ln.b if self._ln is not None else store["in"]
        return x, store["out"]

    def _losses(self, pairs: dict[int, tuple[Tensor, Tensor]]) -> dict[int, Tensor]:
        predictions: dict[int, Tensor] = {}  # offsets k <= 0 share the input x(t): one probe forward for them
        for x, _ in pairs.values():
            if id(x) not in predictions:
                predictions[id(x)] = self.probe(x)
        if self.reduction == "sum":
            return {k: (predictions[id(x)] - y).pow(2).sum(-1).mean() for k, (x, y) in pairs.items()}
        return {k: F.mse_loss(predictions[id(x)], y) for k, (x, y) in pairs.items()}

    # ----- phase 1: the probe learns, the model is frozen -----
    def _fit_probe(self, step: int, x: Tensor, y: Tensor) -> None:
        x, y = x.detach(), y.detach()
        self._current = (x, y)
        pairs = stencil_pairs(self.offsets, step, x, y, self.buffer)
        self._metrics = {"probe/fit_loss": math.nan}
        if not pairs:
            return
        self.probe.requires_grad_(True)
        try:
            with torch.enable_grad():
                for i in range(self.probe_steps):
                    self.optimizer.zero_grad(set_to_none=True)
                    loss = torch.stack(list(self._losses(pairs).values())).mean()
                    if i == 0:
                        self._metrics["probe/fit_loss"] = loss.item()
                    loss.backward()
                    self.optimizer.step()
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            self.probe.requires_grad_(False)

    def before_forward(self, trainer: Trainer) -> None:
        if not self.fresh_forward:
            return
        store: dict = {}
        with torch.no_grad(), trainer.model.hooks(fwd_hooks=self._capture_hooks(store)):
            trainer.forward_last(trainer.train_tokens)
        self._fit_probe(trainer.step, *self._activations(store))

    # ----- phase 2: the model learns through the frozen probe -----
    def forward_hooks(self, trainer: Trainer) -> list:
        self._live = {}
        return self._capture_hooks(self._live)

    def extra_loss(self, trainer: Trainer) -> Tensor | None:
        x, y = self._activations(self._live)
        self._live = {}
        if not self.fresh_forward:
            self._fit_probe(trainer.step, x, y)
        losses = self._losses(stencil_pairs(self.offsets, trainer.step, x, y, self.buffer))
        self._metrics.update({offset_column(k): losses[k].item() if k in losses else math.nan for k in self.offsets})
        if not losses:
            self._metrics["probe/reg"] = math.nan
            return None
        reg = self.lamb * torch.stack(list(losses.values())).mean()
        self._metrics["probe/reg"] = reg.item()
        return reg

    def after_step(self, trainer: Trainer) -> None:
        if self._current is not None:
            self.buffer.push(trainer.step, *self._current)
        self._current = None

    def metrics(self) -> dict[str, float]:
        out, self._metrics = self._metrics, {}
        return out

    # ----- resume -----
    def state_dict(self) -> dict[str, Tensor]:
        state = {f"probe/{n}": p.detach().clone() for n, p in self.probe.named_parameters()}
        for i, entry in self.optimizer.state_dict()["state"].items():
            state.update({f"adam/{i}/{key}": torch.as_tensor(v).clone() for key, v in entry.items()})
        state.update({"buffer/inputs": self.buffer.inputs.clone(), "buffer/hidden": self.buffer.hidden.clone(),
                      "buffer/steps": self.buffer.steps.clone()})
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:
            return
        with torch.no_grad():
            for n, p in self.probe.named_parameters():
                p.copy_(state[f"probe/{n}"])
        adam: dict[int, dict[str, Tensor]] = {}
        for key, value in state.items():
            if key.startswith("adam/"):
                _, i, name = key.split("/")
                adam.setdefault(int(i), {})[name] = value.clone()
        current = self.optimizer.state_dict()
        self.optimizer.load_state_dict({"state": adam, "param_groups": current["param_groups"]})
        for name in ("inputs", "hidden", "steps"):
            target = getattr(self.buffer, name)
            stored = state[f"buffer/{name}"]
            if stored.shape != target.shape:
                raise ConfigError(f"probe_stencil state's buffer/{name} has shape {tuple(stored.shape)}, "
                                  f"expected {tuple(target.shape)}; resume with the run's own plug-in config")
            target.copy_(stored)
