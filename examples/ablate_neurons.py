"""Ablate MLP neurons of a trained run through TransformerLens hooks; print loss and accuracy.

    python examples/ablate_neurons.py checkpoints/quick                       # Fourier neurons vs the rest
    python examples/ablate_neurons.py checkpoints/quick --neurons 3,17,42 --mode mean --step 1000

Without --neurons it compares: no ablation; the Fourier neurons (dominant frequency is a key frequency,
>= 50% of variance explained); all other neurons; as many random neurons (a control). The same
intervention by hand, on any model with TransformerLens hook names:

    def zero(post, hook):                                  # post: [batch, pos, d_mlp]
        post = post.clone(); post[..., neurons] = 0.0; return post
    with model.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", zero)]):
        logits = model(tokens)
"""

import argparse

import torch

from grokinterp.analysis.interventions import fourier_neurons, neuron_intervention_metrics
from grokinterp.runs import Run


def print_row(name: str, n: int, m: dict) -> None:
    print(f"{name:<24} {n:>5}  {m['train_loss']:>10.4g} {m['train_acc']:>9.4f}  "
          f"{m['test_loss']:>10.4g} {m['test_acc']:>9.4f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run directory, e.g. checkpoints/quick")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the last)")
    parser.add_argument("--neurons", default=None, help="comma-separated neuron indices (default: Fourier neurons)")
    parser.add_argument("--mode", choices=["zero", "mean"], default="zero", help="zero or mean ablation")
    parser.add_argument("--layer", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random control set")
    args = parser.parse_args(argv)

    run = Run(args.run)
    model, task = run.model(args.step), run.task
    d_mlp = model.cfg.d_mlp
    if args.neurons:
        sets = {"chosen": [int(j) for j in args.neurons.split(",")]}
    else:
        fourier = fourier_neurons(model, task, layer=args.layer).tolist()
        random = torch.randperm(d_mlp, generator=torch.Generator().manual_seed(args.seed))[: len(fourier)].tolist()
        sets = {"fourier neurons": fourier, "all other neurons": [j for j in range(d_mlp) if j not in fourier],
                "random (control)": random}

    step = run.steps[-1] if args.step is None else args.step
    print(f"{run.path} step {step}: {args.mode}-ablating blocks.{args.layer}.mlp.hook_post (d_mlp {d_mlp})")
    print(f"{'ablated':<24} {'n':>5}  {'train_loss':>10} {'train_acc':>9}  {'test_loss':>10} {'test_acc':>9}")
    print_row("nothing", 0, neuron_intervention_metrics(model, task, intervention="none", layer=args.layer))
    for name, neurons in sets.items():
        print_row(name, len(neurons), neuron_intervention_metrics(model, task, neurons, args.mode, layer=args.layer))


if __name__ == "__main__":
    main()
