"""The plug-in seam of the training loop: the `Plugin` base class and the registry of plug-ins by name.

The registry is filled explicitly: `grokinterp.plugins` registers its built-in plug-ins when imported
(`BUILTIN_PLUGINS`), and a user's plug-in registers with `@register_plugin("name")`. This module imports
nothing above `config`; the trainer is passed to every hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from torch import Tensor

from ..config import ConfigError, RunConfig

if TYPE_CHECKING:
    from ..train import Trainer


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
    """The plug-ins `config.plugins` names, built with their keyword arguments (in config order).

    Raises:
        ConfigError: an unknown plug-in name, or arguments its class does not take.
    """
    plugins = []
    for name, kwargs in config.plugins.items():
        if name not in PLUGINS:
            raise ConfigError(f"unknown plug-in {name!r}; registered plug-ins: {sorted(PLUGINS)}")
        try:
            plugins.append(PLUGINS[name](**kwargs))
        except TypeError as e:
            raise ConfigError(f"bad arguments for plug-in {name!r}: {e}") from None
    return plugins
