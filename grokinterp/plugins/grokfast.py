"""Grokfast gradient filters (Lee et al. 2024, "Grokfast: accelerated grokking by amplifying slow gradients").

Both filters add an amplified low-pass filtered copy of the gradient to the gradient, per parameter, after
the backward pass and before the optimizer step (so they combine with any optimizer, beta1 and weight decay;
with coupled `adam` the weight-decay term is added by the optimizer after the filter, as in the paper's code):

- `grokfast_ema` (alpha, lamb):  h_t = alpha h_{t-1} + (1 - alpha) g_t,   g_t <- g_t + lamb h_t.
  As in the paper's `gradfilter_ema`, h starts from the first gradient (h_{-1} = g_0, so h_0 = g_0).
- `grokfast_ma` (window, lamb, filter, warmup):  g_t <- g_t + lamb * avg(g_{t-w+1}, ..., g_t), the average over
  the last `window` raw gradients, the current one included; `filter` is "mean" (the paper's default),
  "median" (element-wise lower median) or "sum" (the paper's other option). With `warmup=True` (the paper's
  default) nothing is added until the window is full; with `warmup=False` the average runs over what it has.

The filters read and write `p.grad` of the trained parameters (`trainer.params`); the loop's `grad_norm`
metric therefore describes the filtered gradient. Their state (the EMA, or the window as a stacked
circular buffer with a count) is in `state_dict()`, so `--resume` continues bit-identically.

    from grokinterp.config import preset
    preset("quick", plugins={"grokfast_ema": {"alpha": 0.98, "lamb": 2.0}})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..config import ConfigError
from ._base import Plugin, register_plugin

if TYPE_CHECKING:
    from ..train import Trainer

MA_FILTERS = ("mean", "median", "sum")


class _GradientFilter(Plugin):
    """Shared plumbing: the trained parameters by name, and state restored on their device."""

    def setup(self, trainer: Trainer) -> None:
        self._params = trainer.params

    def _device_of(self, name: str) -> torch.device:
        return self._params[name].device


@register_plugin("grokfast_ema")
class GrokfastEMA(_GradientFilter):
    """EMA gradient filter: h <- alpha h + (1 - alpha) g; g <- g + lamb h (Grokfast-EMA).

    Args:
        alpha: EMA decay in [0, 1); the paper uses 0.98.
        lamb: amplification of the slow component (>= 0); the paper uses 2.0.
    """

    def __init__(self, alpha: float = 0.98, lamb: float = 2.0):
        if not 0.0 <= alpha < 1.0:
            raise ConfigError(f"plugins.grokfast_ema.alpha={alpha!r} must lie in [0, 1) (the paper uses 0.98)")
        if lamb < 0:
            raise ConfigError(f"plugins.grokfast_ema.lamb={lamb!r} must be >= 0 (the paper uses 2.0)")
        self.alpha, self.lamb = float(alpha), float(lamb)
        self.ema: dict[str, Tensor] = {}

    @torch.no_grad()
    def after_backward(self, trainer: Trainer) -> None:
        for name, p in trainer.params.items():
            if p.grad is None:
                continue
            g = p.grad.detach()
            h = self.ema.get(name)
            h = g.clone() if h is None else h
            h.mul_(self.alpha).add_(g, alpha=1.0 - self.alpha)
            self.ema[name] = h
            p.grad = g + self.lamb * h

    def state_dict(self) -> dict[str, Tensor]:
        return {f"ema/{name}": h.clone() for name, h in self.ema.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.ema = {k[len("ema/"):]: v.clone().to(self._device_of(k[len("ema/"):]))
                    for k, v in state.items() if k.startswith("ema/")}


@register_plugin("grokfast_ma")
class GrokfastMA(_GradientFilter):
    """Windowed moving-average gradient filter: g <- g + lamb * avg(last `window` gradients) (Grokfast-MA).

    Args:
        window: number of past gradients averaged (the current one included); the paper uses 100.
        lamb: amplification (>= 0); the paper uses 5.0.
        filter: "mean", "median" or "sum".
        warmup: no amplification until `window` gradients have been seen (the paper's default).
    """

    def __init__(self, window: int = 100, lamb: float = 5.0, filter: str = "mean", warmup: bool = True):
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ConfigError(f"plugins.grokfast_ma.window={window!r} must be a positive integer (the paper uses 100)")
        if lamb < 0:
            raise ConfigError(f"plugins.grokfast_ma.lamb={lamb!r} must be >= 0 (the paper uses 5.0)")
        if filter not in MA_FILTERS:
            raise ConfigError(f"plugins.grokfast_ma.filter={filter!r} is not valid; choose one of {list(MA_FILTERS)}")
        self.window, self.lamb, self.filter, self.warmup = window, float(lamb), filter, bool(warmup)
        self.buffers: dict[str, Tensor] = {}  # name -> [window, *param.shape], circular: gradient t in slot t % window
        self.counts: dict[str, int] = {}  # name -> gradients seen so far

    def _average(self, gradients: Tensor) -> Tensor:
        if self.filter == "mean":
            return gradients.mean(0)
        if self.filter == "sum":
            return gradients.sum(0)
        return gradients.median(0).values

    @torch.no_grad()
    def after_backward(self, trainer: Trainer) -> None:
        for name, p in trainer.params.items():
            if p.grad is None:
                continue
            g = p.grad.detach()
            if name not in self.buffers:
                self.buffers[name] = torch.zeros((self.window, *g.shape), dtype=g.dtype, device=g.device)
                self.counts[name] = 0
            count = self.counts[name]
            self.buffers[name][count % self.window] = g
            self.counts[name] = count = count + 1
            if self.warmup and count < self.window:
                continue
            # Slots 0..n-1 hold the last n gradients (the order within the window does not matter).
            p.grad = g + self.lamb * self._average(self.buffers[name][: min(count, self.window)])

    def state_dict(self) -> dict[str, Tensor]:
        state = {f"window/{name}": buf.clone() for name, buf in self.buffers.items()}
        state.update({f"count/{name}": torch.tensor(c, dtype=torch.int64) for name, c in self.counts.items()})
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.buffers, self.counts = {}, {}
        for key, value in state.items():
            kind, _, name = key.partition("/")
            if kind == "window":
                if value.shape[0] != self.window:
                    raise ConfigError(f"grokfast_ma state holds a window of {value.shape[0]} gradients, "
                                      f"but window={self.window}; resume with the run's own plug-in config")
                self.buffers[name] = value.clone().to(self._device_of(name))
            elif kind == "count":
                self.counts[name] = int(value)
