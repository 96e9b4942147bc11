"""Grokfast's EMA filter (Lee et al. 2024) in a plain full-batch loop, to copy into your own experiments.

    python examples/grokfast_by_hand.py --steps 1500 [--alpha 0.98 --lamb 2.0] [--beta1 0.9]

After backward, each gradient g becomes g + lamb * h with h <- alpha h + (1 - alpha) g (h starts at the first
gradient), then AdamW steps. The library's version is the `grokfast_ema` plug-in
(`--plugins.grokfast_ema='{"alpha": 0.98, "lamb": 2.0}'`), which also saves h for --resume.
"""

import argparse

import torch
import torch.nn.functional as F

from grokinterp.config import preset
from grokinterp.model import Transformer
from grokinterp.tasks import make_task


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--alpha", type=float, default=0.98)
    parser.add_argument("--lamb", type=float, default=2.0, help="0 turns the filter off (the baseline)")
    parser.add_argument("--beta1", type=float, default=0.9)
    args = parser.parse_args(argv)

    config = preset("quick")
    task = make_task(config.task)
    model = Transformer(config.model, config.task.d_vocab, config.task.d_vocab_out)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.optim.lr, weight_decay=config.optim.weight_decay,
                            betas=(args.beta1, config.optim.beta2))
    slow = {}  # h per parameter: the slow (low-pass) part of the gradient
    for step in range(args.steps):
        logits = model(task.train_tokens, last_position_only=True)[:, -1]
        loss = F.cross_entropy(logits, task.train_labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in params:
                h = slow.setdefault(p, p.grad.clone())
                if step:
                    h.mul_(args.alpha).add_(p.grad, alpha=1 - args.alpha)
                p.grad.add_(h, alpha=args.lamb)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            with torch.no_grad():
                test = model(task.test_tokens, last_position_only=True)[:, -1].argmax(-1)
            acc = (test == task.test_labels).float().mean().item()
            print(f"step {step:5d}  train loss {loss.item():.3g}  test acc {acc:.3f}")


if __name__ == "__main__":
    main()
