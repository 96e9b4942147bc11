# %% [markdown]
# # Replay a run: what changed inside the model while it grokked
#
# Loads a run directory (default `checkpoints/quick`, what `make train` writes; set `GROKINTERP_RUN`
# for another), replays the standard analyses over its checkpoints (Fourier / character spectra and
# Nanda et al.'s progress measures; cached in `<run>/analysis/`, so a second run of this file
# computes nothing), registers one analysis of our own, and plots a few figures.
#
# Runs top to bottom as a script (`.venv/bin/python examples/replay_quickstart.py`) or cell by cell
# in Jupyter / VS Code. In a notebook the figures are shown inline; as a script they are written to
# one offline page, `<run>/quickstart.html`.

# %%
import os
import sys
from pathlib import Path

import numpy as np

from grokinterp.analysis import register_analysis, replay
from grokinterp.report import (
    embedding_spectrum_heatmap,
    gini_curves,
    loss_curves,
    neuron_frequency_histogram,
    progress_curves,
    render_report,
)
from grokinterp.runs import Run, atomic_write_bytes

RUN = Path(os.environ.get("GROKINTERP_RUN", "checkpoints/quick"))
IN_NOTEBOOK = "ipykernel" in sys.modules

if not (RUN / "config.json").is_file():
    # No run yet: train the `quick` preset there, exactly as `make train` does (about 2 minutes on CPU).
    from grokinterp.config import preset
    from grokinterp.runs import train_run

    print(f"{RUN} holds no run; training the quick preset into it (like `make train`)")
    train_run(preset("quick"), RUN)

run = Run(RUN)
summary = run.summary
print(run)
print({k: summary.get(k) for k in ("status", "memorization_step", "grokking_step", "gap")})

# %% [markdown]
# ## Replay the standard analyses
# `result["spectra"][key]` and `result["progress"][key]` are arrays indexed like `result.steps`.
# Parallel workers (`workers=2`) need the script's code under `if __name__ == "__main__":`
# (worker processes are spawned and re-import the main module), so this notebook uses one.

# %%
result = replay(run, stride=1, workers=1, progress=True)
print(result)
key_freqs = result.context["progress"]["key_freqs"]
print("key frequencies (of the last checkpoint):", key_freqs)

progress = result["progress"]
i_peak = int(np.nanargmax(progress["excluded_loss"]))
print(f"excluded loss peaks at step {result.steps[i_peak]} ({progress['excluded_loss'][i_peak]:.3g}); "
      f"restricted loss at the end: {progress['restricted_loss'][-1]:.3g}")
print("embedding Gini: first", round(float(result["spectra"]["embed_gini"][0]), 3),
      "last", round(float(result["spectra"]["embed_gini"][-1]), 3))

# %% [markdown]
# ## An analysis of our own
# A pure function of (model, task), registered once with a version; its results are cached beside
# the standard ones. Bump `version` when its definition changes.


# %%
@register_analysis("quickstart_norms", version=1)
def quickstart_norms(model, task, context):
    """Frobenius norms of the residue embeddings W_E[:p] and of the unembedding W_U."""
    return {"W_E": model.W_E[: task.p].detach().norm().item(), "W_U": model.W_U.detach().norm().item()}


norms = replay(run, ["quickstart_norms"], stride=1, progress=False)["quickstart_norms"]
print("||W_E[:p]|| first -> last:", round(float(norms["W_E"][0]), 3), "->", round(float(norms["W_E"][-1]), 3))

# %% [markdown]
# ## Figures

# %%
figures = {
    "loss": loss_curves(run),
    "progress": progress_curves(result, run),
    "embedding_spectrum": embedding_spectrum_heatmap(result),
    "neuron_frequencies": neuron_frequency_histogram(result),
    "gini": gini_curves(result, run),
}
if IN_NOTEBOOK:
    for fig in figures.values():
        fig.show()
else:
    out = run.path / "quickstart.html"
    atomic_write_bytes(out, render_report(run, result, figures).encode())
    print(f"figures written to {out} (offline; open it in a browser)")
