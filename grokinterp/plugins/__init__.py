"""Training plug-ins: the `Plugin` seam of the loop, its registry, and the built-in plug-ins.

- `grokfast_ema`, `grokfast_ma`: Grokfast gradient filters (Lee et al. 2024).
- `probe_stencil`: the temporal probe regularizer of "Grokking as Manifold Selection Under Constraint".
- `activation_transplant`: the "Grokking Dynamics" write-up's Fourier-neuron transplant, patching donor
  activations while training.
- `grad_agreement`: the "Grokking Dynamics" write-up's half-batch gradient agreement, recorded every k steps.
- `norm_clamp`, `gradient_noise`, `logit_temperature`: the related-work papers' delay-law and logit-scale
  interventions.

The registry is filled here, explicitly (`BUILTIN_PLUGINS`); plug-ins import nothing from the training loop,
which imports this package to build them. Configure them by name:
`plugins={"grokfast_ema": {"alpha": 0.98, "lamb": 2.0}}`, or on the command line
`--plugins.probe_stencil='{"offsets": [-1, 0, 1]}'`. Register your own with `@register_plugin("name")`.
"""

from ._base import PLUGINS, Plugin, build_plugins, register_plugin
from .activation_transplant import ActivationTransplant
from .grad_agreement import GradAgreement
from .grokfast import GrokfastEMA, GrokfastMA
from .probe_stencil import ActivationBuffer, Probe, ProbeStencil, offset_column, stencil_pairs
from .gradient_noise import GradientNoise
from .logit_temperature import LogitTemperature
from .norm_clamp import NormClamp

# The built-in plug-ins, registered by their `@register_plugin` names when this package is imported.
BUILTIN_PLUGINS = (ActivationTransplant, GradAgreement, GradientNoise, GrokfastEMA, GrokfastMA, LogitTemperature,
                   NormClamp, ProbeStencil)

__all__ = ["BUILTIN_PLUGINS", "PLUGINS", "ActivationBuffer", "ActivationTransplant", "GradAgreement",
           "GradientNoise", "GrokfastEMA", "GrokfastMA", "LogitTemperature", "NormClamp", "Plugin", "Probe",
           "ProbeStencil", "build_plugins", "offset_column", "register_plugin", "stencil_pairs"]
