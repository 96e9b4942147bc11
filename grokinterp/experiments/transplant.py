"""Fourier-neuron transplants (the Grokking Dynamics write-up): move a grokked donor's Fourier neurons into an early checkpoint
of another run and see whether the recipient groks sooner.

The neurons are the donor's Fourier neurons (`grokinterp.analysis.fourier_neurons`: dominant frequency
a key frequency, explaining >= 0.85 of the neuron's variance; Nanda et al. 2023). Two modes:

- "weights": the recipient's checkpoint at `step` gets the donor's W_in columns, b_in entries and W_out
  rows of those neurons (`transplant_neuron_weights`), then training continues (a fork of the recipient
  at `step`, so its optimizer state is the recipient's own);
- "activations": training continues from the recipient's own weights, but for `patch_steps` steps the
  training forward's `blocks.0.mlp.hook_post` of those neurons is replaced by the donor's activations
  (the `activation_transplant` plug-in, through TransformerLens hooks).

The control is the recipient itself, trained on untouched (a fork without changes is bit-identical to
it). Each transplant is an ordinary run directory (a fork: `fork.json` names the recipient and step, and
`transplant.json` the donor and neurons), so every analysis replays it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..analysis.interventions import fourier_neurons, transplant_neuron_weights
from ..config import ConfigError
from ..runs import Run, atomic_write_json, step_filename
from .fork import fork_run

MODES = ("weights", "activations")
TRANSPLANT_FILE = "transplant.json"


def donor_neurons(donor: Run, step: int | None = None, frac_threshold: float | None = None) -> list[int]:
    """The donor's Fourier neurons at `step` (default its last checkpoint)."""
    step = donor.steps[-1] if step is None else step
    kwargs = {} if frac_threshold is None else {"frac_threshold": frac_threshold}
    return fourier_neurons(donor.model(step), donor.task, **kwargs).tolist()


def transplant_run(recipient: str | Path | Run, step: int, donor: str | Path | Run, out: str | Path,
                   mode: str = "weights", donor_step: int | None = None, neurons: list[int] | None = None,
                   patch_steps: int = 300, progress: bool = True) -> Run:
    """Continue `recipient` from `step` with the donor's neurons transplanted; returns the new run.

    Args:
        recipient, donor: runs of the same architecture (and task).
        step: a checkpoint step of the recipient (e.g. during memorization).
        out: the new run directory.
        mode: "weights" or "activations" (see the module docstring).
        donor_step: the donor checkpoint (default its last).
        neurons: default the donor's Fourier neurons at donor_step.
        patch_steps: activations mode: how many steps the activations are patched.
    """
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} must be one of {list(MODES)}")
    recipient = recipient if isinstance(recipient, Run) else Run(recipient)
    donor = donor if isinstance(donor, Run) else Run(donor)
    same_model = replace(donor.config.model, seed=0) == replace(recipient.config.model, seed=0)
    if not same_model or donor.config.task.p != recipient.config.task.p:
        raise ConfigError(f"donor {donor.path} and recipient {recipient.path} differ in model or task: a transplant "
                          "needs one architecture")
    donor_step = donor.steps[-1] if donor_step is None else donor_step
    if donor_step not in donor.steps:
        raise ConfigError(f"donor {donor.path} has no checkpoint at step {donor_step}; its steps: "
                          f"{donor.steps[0]}..{donor.steps[-1]}")
    neurons = donor_neurons(donor, donor_step) if neurons is None else list(neurons)
    if not neurons:
        raise ConfigError(f"donor {donor.path} has no Fourier neurons at step {donor_step} (has it grokked?)")
    out = Path(out)
    record = {"mode": mode, "donor": str(donor.path.resolve()), "donor_step": donor_step, "neurons": neurons,
              "recipient": str(recipient.path.resolve()), "step": step}
    donor_file = str((donor.path / "ckpt" / step_filename(donor_step)).resolve())
    if mode == "activations":
        record["patch_steps"] = patch_steps
        overrides = {"plugins.activation_transplant": {"donor": donor_file, "neurons": neurons, "start": step,
                                                       "stop": step + patch_steps}}
        run = fork_run(recipient, step, out, overrides, resume=(out / "config.json").is_file(), progress=progress)
    else:
        run = _weight_transplant(recipient, step, donor, donor_step, neurons, out, progress)
    atomic_write_json(out / TRANSPLANT_FILE, record)
    return run


def _weight_transplant(recipient: Run, step: int, donor: Run, donor_step: int, neurons: list[int], out: Path,
                       progress: bool) -> Run:
    """A fork of the recipient at `step` whose starting weights carry the donor's neurons (the fork writes them
    before its config.json, so a killed transplant restarts from scratch rather than resuming unedited)."""
    model = transplant_neuron_weights(recipient.model(step), donor.model(donor_step), neurons)
    moved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return fork_run(recipient, step, out, {}, resume=(out / "config.json").is_file(), progress=progress,
                    edit_weights=lambda _: moved)


STUDY_ARMS = ("noop", "self", "other", "random")  # the controlled study's forks of each recipient


def random_neurons(d_mlp: int, count: int, seed: int) -> list[int]:
    """`count` distinct neurons drawn uniformly from all `d_mlp` (seeded): the control for choosing Fourier ones."""
    if not 0 <= count <= d_mlp:
        raise ConfigError(f"cannot draw {count} of {d_mlp} neurons")
    import numpy as np

    return sorted(int(i) for i in np.random.default_rng([seed, count]).choice(d_mlp, size=count, replace=False))


def transplant_study(sweep_dir: str | Path, step: int = 100, donor_seed: int = 0, arms: tuple = STUDY_ARMS,
                     patch_steps: int = 300, progress: bool = True) -> Path:
    """Fork every seed of a `model.seed` sweep but the donor at `step`, once per arm; runs go to
    `<sweep_dir>/transplants/<recipient>__<arm>` (finished ones are kept).

    Arms (all weight transplants but the first and "activations"):
        noop: the fork with nothing changed (the control: bit-identical to the recipient's own run);
        self: the Fourier neurons of the recipient's own final checkpoint (the same init seed, grokked): the
            cleanest form of "pre-learned Fourier neurons";
        other: the Fourier neurons of the donor seed's final checkpoint;
        random: as many neurons as "other" moves, drawn at random (seeded by the recipient's seed) from the donor;
        activations: the donor's Fourier-neuron activations patched into training for `patch_steps` steps.
    """
    from ..sweep import collect

    unknown = set(arms) - set(STUDY_ARMS) - {"activations"}
    if unknown:
        raise ConfigError(f"unknown transplant arm(s) {sorted(unknown)}; choose from {[*STUDY_ARMS, 'activations']}")
    records = {rec.values.get("model.seed"): rec for rec in collect(sweep_dir)}
    if donor_seed not in records or records[donor_seed].summary.get("status") != "grokked":
        raise ConfigError(f"{sweep_dir}: the donor (model.seed={donor_seed}) must be a grokked run")
    donor = Run(records[donor_seed].path)
    donor_set = donor_neurons(donor)
    folder = Path(sweep_dir) / "transplants"
    for seed, rec in records.items():
        if seed == donor_seed or not rec.finished:
            continue
        recipient = Run(rec.path)
        for arm in arms:
            out = folder / f"{rec.name}__{arm}"
            if (out / "summary.json").is_file() and (out / TRANSPLANT_FILE).is_file():
                continue
            if arm == "noop":
                fork_run(recipient, step, out, {}, resume=(out / "config.json").is_file(), progress=progress)
                atomic_write_json(out / TRANSPLANT_FILE, {"mode": "noop", "neurons": [], "step": step,
                                                          "recipient": str(recipient.path.resolve())})
            elif arm == "self":
                if rec.summary.get("status") != "grokked":
                    continue  # its own final checkpoint has no Fourier circuit to give
                transplant_run(recipient, step, recipient, out, progress=progress)
            elif arm == "random":
                neurons = random_neurons(donor.config.model.d_mlp, len(donor_set), seed)
                transplant_run(recipient, step, donor, out, neurons=neurons, progress=progress)
            else:
                transplant_run(recipient, step, donor, out, mode="weights" if arm == "other" else arm,
                               neurons=donor_set, patch_steps=patch_steps, progress=progress)
    return folder
