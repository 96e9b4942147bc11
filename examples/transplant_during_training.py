"""Transplant a grokked donor's Fourier neurons into an early checkpoint and keep training (the Grokking Dynamics write-up).

    python examples/transplant_during_training.py RECIPIENT_RUN DONOR_RUN --step 100 --out checkpoints/transplants

Two forks of the recipient at --step: one whose starting weights carry the donor's Fourier neurons
(W_in columns, b_in, W_out rows), one whose training forward sees the donor's activations at
`blocks.0.mlp.hook_post` for --patch-steps steps (the `activation_transplant` plug-in, a TransformerLens
hook). The control is the recipient itself. Prints the grokking step of each. The forks are ordinary
runs: `grokinterp analyze` and `grokinterp report RECIPIENT FORK1 FORK2 --out cmp.html` work on them.

The same hook by hand, during any forward:

    _, donor_cache = donor.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")
    def patch(post, hook):
        post = post.clone(); post[..., neurons] = donor_cache[hook.name][..., neurons]; return post
    with recipient.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", patch)]):
        logits = recipient(tokens)
"""

import argparse
from pathlib import Path

from grokinterp.experiments.transplant import MODES, donor_neurons, transplant_run
from grokinterp.runs import Run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipient", type=Path, help="the recipient's run directory (trained to the end: the control)")
    parser.add_argument("donor", type=Path, help="a grokked run of the same architecture")
    parser.add_argument("--step", type=int, default=100, help="recipient checkpoint to transplant into (default 100)")
    parser.add_argument("--patch-steps", type=int, default=300, help="activations mode: steps patched (default 300)")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/transplants"))
    args = parser.parse_args(argv)

    recipient, donor = Run(args.recipient), Run(args.donor)
    neurons = donor_neurons(donor)
    print(f"{len(neurons)} Fourier neurons of {donor.path.name}; transplanting at step {args.step}")
    print(f"{'control (untouched recipient)':<32} grokked at {recipient.summary.get('grokking_step')}")
    for mode in MODES:
        run = transplant_run(recipient, args.step, donor, args.out / f"{recipient.path.name}__{mode}", mode=mode,
                             neurons=neurons, patch_steps=args.patch_steps)
        print(f"{mode + ' transplant':<32} grokked at {run.summary.get('grokking_step')}  ({run.path})")


if __name__ == "__main__":
    main()
