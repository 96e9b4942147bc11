"""The standard analyses that `replay(run)` and `grokinterp analyze` run, registered by name.

- "spectra": Fourier (add/sub) or multiplicative-character (mul/div) spectra of one checkpoint:
  embedding, neuron and logit spectra and their sparsity (Gini, IPR), per Nanda et al. 2023,
  "Progress measures for grokking via mechanistic interpretability". See `_fourier.checkpoint_spectra`.
- "progress": Nanda et al.'s progress measures at one checkpoint: restricted loss, excluded loss,
  train/test loss and total squared weight norm, all relative to the key frequencies of the LAST
  checkpoint (as in the paper, so every step is measured against the circuit the run ends with).
  See `_progress.progress_measures`.

Both read one forward pass over all p^2 pairs (`grid_forward`), shared through the step context, as
does the third standard analysis, "trig_fit" (`_nanda.py`: the trig-identity fit of the logits).
Imported by `grokinterp.analysis`, so importing the package registers them.
"""

from __future__ import annotations

import torch

from ...runs import Run
from ...tasks import ModularTask
from ._spectra import checkpoint_spectra, grid_forward, key_frequencies
from ._progress import progress_measures
from ..replay_engine import register_analysis


@register_analysis("spectra", version=1, kind="checkpoint")
def spectra(model, task: ModularTask, context: dict) -> dict:
    """Fourier / character spectra of one checkpoint (`_fourier.checkpoint_spectra`, Nanda et al. 2023).

    Returns:
        embed_freq_norm, logit_freq_norm, key_freq_mask: [n_freq]; neuron_freq, neuron_frac_explained:
        [d_mlp]; embed_gini, embed_ipr, neuron_gini, logit_gini: scalars.
    """
    grid = context.shared("grid_forward", lambda: grid_forward(model, task))
    with torch.no_grad():
        return checkpoint_spectra(model, task, grid)


def _final_key_frequencies(run: Run) -> dict:
    """Key frequencies of the run's last checkpoint (Nanda et al. 2023 fix them from the final model)."""
    step = run.steps[-1]
    with torch.no_grad():
        freqs = key_frequencies(run.model(step), run.task)
    return {"key_freqs": [int(k) for k in freqs], "from_step": int(step)}


@register_analysis("progress", version=1, kind="checkpoint", prepare=_final_key_frequencies)
def progress(model, task: ModularTask, context: dict) -> dict:
    """Progress measures against the final key frequencies (`_progress.progress_measures`, Nanda et al. 2023).

    restricted loss: loss of the logits projected onto the key-frequency directions cos/sin(w_k (a+b))
    (plus the constant term); excluded loss: train loss with those directions removed; train/test loss;
    weight_norm_sq: total sum of squared parameters. All scalars per checkpoint.
    """
    grid = context.shared("grid_forward", lambda: grid_forward(model, task))
    with torch.no_grad():
        return progress_measures(model, task, context["key_freqs"], grid)
