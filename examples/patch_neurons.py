"""Patch a donor's MLP neurons into a recipient (activations through hooks, or weights); print loss and accuracy.

    python examples/patch_neurons.py checkpoints/quick --step 100            # early recipient, last step as donor
    python examples/patch_neurons.py RUN --step 100 --donor OTHER_RUN --donor-step 2000 --neurons 3,17,42

Recipient and donor are checkpoints of one run by default (the Grokking Dynamics write-up's Fourier transplant: a grokked donor,
a memorizing recipient); metrics use the recipient's train/test split. Without --neurons the donor's
Fourier neurons are moved, and as many random neurons as a control. Activation patching by hand, on any
model with TransformerLens hook names:

    _, donor_cache = donor.run_with_cache(tokens)
    def patch(post, hook):                                 # post: [batch, pos, d_mlp]
        post = post.clone(); post[..., neurons] = donor_cache[hook.name][..., neurons]; return post
    with recipient.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", patch)]):
        logits = recipient(tokens)
"""

import argparse

import torch

from grokinterp.analysis.interventions import fourier_neurons, neuron_intervention_metrics, transplant_neuron_weights
from grokinterp.runs import Run


def print_row(name: str, n: int, m: dict) -> None:
    print(f"{name:<38} {n:>5}  {m['train_loss']:>10.4g} {m['train_acc']:>9.4f}  "
          f"{m['test_loss']:>10.4g} {m['test_acc']:>9.4f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the recipient's run directory")
    parser.add_argument("--step", type=int, default=None,
                        help="recipient checkpoint (default: the first at or after the memorization step)")
    parser.add_argument("--donor", default=None, help="the donor's run directory (default: the recipient's run)")
    parser.add_argument("--donor-step", type=int, default=None, help="donor checkpoint (default: its last)")
    parser.add_argument("--neurons", default=None,
                        help="comma-separated neuron indices (default: the donor's Fourier neurons)")
    parser.add_argument("--layer", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random control set")
    args = parser.parse_args(argv)

    run = Run(args.run)
    donor_run = Run(args.donor) if args.donor else run
    step = args.step
    if step is None:
        memorized = run.summary.get("memorization_step")
        step = next((s for s in run.steps if memorized is not None and s >= memorized), run.steps[0])
    donor_step = donor_run.steps[-1] if args.donor_step is None else args.donor_step
    recipient, donor, task = run.model(step), donor_run.model(donor_step), run.task
    d_mlp = recipient.cfg.d_mlp

    if args.neurons:
        sets = {"chosen": [int(j) for j in args.neurons.split(",")]}
    else:
        fourier = fourier_neurons(donor, donor_run.task, layer=args.layer).tolist()
        random = torch.randperm(d_mlp, generator=torch.Generator().manual_seed(args.seed))[: len(fourier)].tolist()
        sets = {"fourier neurons": fourier, "random (control)": random}

    print(f"recipient {run.path} step {step}; donor {donor_run.path} step {donor_step}; blocks.{args.layer}.mlp")
    print(f"{'model':<38} {'n':>5}  {'train_loss':>10} {'train_acc':>9}  {'test_loss':>10} {'test_acc':>9}")
    print_row("recipient", 0, neuron_intervention_metrics(recipient, task, intervention="none"))
    print_row("donor", 0, neuron_intervention_metrics(donor, task, intervention="none"))
    for name, neurons in sets.items():
        patched = neuron_intervention_metrics(recipient, task, neurons, "patch", donor=donor, layer=args.layer)
        print_row(f"{name}: activations patched", len(neurons), patched)
        transplanted = transplant_neuron_weights(recipient, donor, neurons, layer=args.layer)
        print_row(f"{name}: weights transplanted", len(neurons),
                  neuron_intervention_metrics(transplanted, task, intervention="none"))


if __name__ == "__main__":
    main()
