"""Built-in training plug-ins; importing this package registers them with `grokinterp.train.register_plugin`.

- `grokfast_ema`, `grokfast_ma`: Grokfast gradient filters (Lee et al. 2024).
- `probe_stencil`: seed 001's temporal probe regularizer.

Plug-ins sit beside the training loop: they import `grokinterp.train`, never the reverse.
Configure them by name: `plugins={"grokfast_ema": {"alpha": 0.98, "lamb": 2.0}}`, or on the command line
`--plugins.probe_stencil='{"offsets": [-1, 0, 1]}'`.
"""

from .grokfast import GrokfastEMA, GrokfastMA
from .probe_stencil import ActivationBuffer, Probe, ProbeStencil, offset_column, stencil_pairs

__all__ = ["ActivationBuffer", "GrokfastEMA", "GrokfastMA", "Probe", "ProbeStencil", "offset_column", "stencil_pairs"]
