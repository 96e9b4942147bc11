"""The probe-stencil write-up's probe stencil with TransformerLens hooks, in a plain loop, to copy into your own experiments.

    python examples/stencil_by_hand.py --steps 1500 --offsets=-1,0,1 [--lamb 0.1]

The probe (d_model -> 64 -> ReLU -> d_mlp, its own Adam) predicts the MLP's hidden activations
(`blocks.0.mlp.hook_post`) from its input (`blocks.0.hook_resid_mid`) across epochs: k = 0 pairs mlp_in(t) with
mlp_hidden(t), k = -1 mlp_in(t) with mlp_hidden(t-1), k = +1 mlp_in(t-1) with mlp_hidden(t). Phase 1: model
frozen, the probe steps on detached activations. Phase 2: probe frozen, the model steps on
L_task + lamb * mean_k MSE_k. The library's version is the `probe_stencil` plug-in (state saved for --resume,
per-offset losses as metric columns).
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from grokinterp.config import preset
from grokinterp.model import Transformer
from grokinterp.tasks import make_task

HOOKS = ("blocks.0.hook_resid_mid", "blocks.0.mlp.hook_post")


def forward_with_mlp_activations(model, tokens):
    """Logits at the last position, and the MLP's input and hidden activations there (through hooks)."""
    seen = {}

    def keep(acts, hook):
        seen[hook.name] = acts[:, -1]

    with model.hooks(fwd_hooks=[(name, keep) for name in HOOKS]):
        logits = model(tokens, last_position_only=True)[:, -1]
    return logits, seen[HOOKS[0]], seen[HOOKS[1]]


def stencil_pairs(offsets, x, y, past):
    """(probe input, target) per offset; `past` holds the previous epoch's (x, y), detached."""
    pairs = {}
    for k in offsets:
        if k == 0:
            pairs[k] = (x, y)
        elif past is not None:
            pairs[k] = (x, past[1]) if k == -1 else (past[0], y)
    return pairs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--offsets", default="-1,0,1", help="comma-separated subset of -1,0,1 ('' = baseline)")
    parser.add_argument("--lamb", type=float, default=0.1)
    args = parser.parse_args(argv)
    offsets = [int(k) for k in args.offsets.split(",") if k.strip()]

    config = preset("quick")
    task = make_task(config.task)
    model = Transformer(config.model, config.task.d_vocab, config.task.d_vocab_out)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.optim.lr,
                            weight_decay=config.optim.weight_decay, betas=(config.optim.beta1, config.optim.beta2))
    probe = nn.Sequential(nn.Linear(config.model.d_model, 64), nn.ReLU(), nn.Linear(64, config.model.d_mlp))
    probe_opt = torch.optim.Adam(probe.parameters(), lr=1e-3)
    past = None
    for step in range(args.steps):
        if offsets:  # phase 1: model frozen, probe learns on detached activations
            with torch.no_grad():
                _, x, y = forward_with_mlp_activations(model, task.train_tokens)
            probe_loss = sum(F.mse_loss(probe(a), b) for a, b in stencil_pairs(offsets, x, y, past).values())
            probe_opt.zero_grad(set_to_none=True)
            probe_loss.backward()
            probe_opt.step()
        logits, x, y = forward_with_mlp_activations(model, task.train_tokens)  # phase 2: fresh forward
        loss = F.cross_entropy(logits, task.train_labels)
        pairs = stencil_pairs(offsets, x, y, past)
        probe.requires_grad_(False)
        reg = sum(F.mse_loss(probe(a), b) for a, b in pairs.values()) / len(pairs) if pairs else torch.zeros(())
        probe.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        (loss + args.lamb * reg).backward()
        opt.step()
        past = (x.detach(), y.detach())  # only what SGD already computed: no future information
        if step % 100 == 0 or step == args.steps - 1:
            with torch.no_grad():
                acc = (model(task.test_tokens)[:, -1].argmax(-1) == task.test_labels).float().mean().item()
            print(f"step {step:5d}  train loss {loss.item():.3g}  probe reg {float(reg.detach()):.3g}  test acc {acc:.3f}")


if __name__ == "__main__":
    main()
