"""Built-in training plug-ins; importing this package registers them with `grokinterp.train.register_plugin`.

- `grokfast_ema`, `grokfast_ma`: Grokfast gradient filters (Lee et al. 2024).
- `probe_stencil`: seed 001's temporal probe regularizer.
- `activation_transplant`: seed 000's Fourier-neuron transplant, patching donor activations while training.
- `grad_agreement`: seed 000's half-batch gradient agreement, recorded every k steps (a diagnostic).
- `norm_clamp`, `gradient_noise`, `logit_temperature`: seed 002's delay-law and logit-scale interventions.

Plug-ins sit beside the training loop: they import `grokinterp.train`, never the reverse.
Configure them by name: `plugins={"grokfast_ema": {"alpha": 0.98, "lamb": 2.0}}`, or on the command line
`--plugins.probe_stencil='{"offsets": [-1, 0, 1]}'`.
"""

from .activation_transplant import ActivationTransplant
from .grad_agreement import GradAgreement
from .grokfast import GrokfastEMA, GrokfastMA
from .probe_stencil import ActivationBuffer, Probe, ProbeStencil, offset_column, stencil_pairs
from .gradient_noise import GradientNoise
from .logit_temperature import LogitTemperature
from .norm_clamp import NormClamp

__all__ = ["ActivationBuffer", "ActivationTransplant", "GradAgreement", "GradientNoise", "GrokfastEMA", "GrokfastMA", "LogitTemperature",
           "NormClamp", "Probe", "ProbeStencil", "offset_column", "stencil_pairs"]
