"""Generate docs/hooks.md: every hook point of grokinterp's model, its shape and its meaning, found by running it.

    python -m grokinterp.hook_reference            # rewrite docs/hooks.md
    python -m grokinterp.hook_reference --check    # exit 1 if docs/hooks.md is not what this would write

Shapes come from forwards of Nanda et al.'s configuration (p 113, d_model 128, 4 heads of 32, d_mlp 512)
with and without LayerNorm, on a batch of 5 sequences [a, b, =]; each axis is named by its size. The
meanings are written here, one per hook, and a hook without one is an error, so the page cannot fall
behind the model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .config import ModelConfig
from .model import Transformer
from .tl_surface import SWITCHES, switch_of
from .tl_surface_table import markdown as surface_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"
P, BATCH = 113, 5
AXES = {BATCH: "batch", 3: "pos", 128: "d_model", 4: "n_heads", 32: "d_head", 512: "d_mlp", P: "d_vocab_out",
        P + 1: "d_vocab", 1: "1"}

# Meaning of each hook, by its name with the layer index replaced by L.
MEANINGS = {
    "hook_embed": "token embedding W_E[token] of each position",
    "hook_pos_embed": "positional embedding W_pos[position]",
    "blocks.L.hook_resid_pre": "residual stream entering block L (block 0: embed + pos_embed)",
    "blocks.L.ln1.hook_scale": "LayerNorm before attention: sqrt(mean of squares of the centred residual + eps)",
    "blocks.L.ln1.hook_normalized": "LayerNorm before attention: centred residual / scale, before its weight and bias",
    "blocks.L.hook_attn_in": "each head's copy of resid_pre, the input of ln1 and attention (TL's use_attn_in)",
    "blocks.L.hook_q_input": "each head's copy of resid_pre as its query input (TL's use_split_qkv_input)",
    "blocks.L.hook_k_input": "each head's copy of resid_pre as its key input (TL's use_split_qkv_input)",
    "blocks.L.hook_v_input": "each head's copy of resid_pre as its value input (TL's use_split_qkv_input)",
    "blocks.L.attn.hook_q": "queries per head, x W_Q + b_Q",
    "blocks.L.attn.hook_k": "keys per head, x W_K + b_K",
    "blocks.L.attn.hook_v": "values per head, x W_V + b_V",
    "blocks.L.attn.hook_attn_scores": "q.k / sqrt(d_head), -inf above the causal diagonal (before softmax)",
    "blocks.L.attn.hook_pattern": "attention pattern, softmax of the scores over key positions",
    "blocks.L.attn.hook_z": "pattern-weighted values per head, before W_O",
    "blocks.L.attn.hook_result": "each head's output z W_O; attn_out is their sum + b_O (TL's use_attn_result)",
    "blocks.L.hook_attn_out": "attention output added to the residual, z W_O + b_O summed over heads",
    "blocks.L.hook_resid_mid": "residual stream after attention (resid_pre + attn_out)",
    "blocks.L.ln2.hook_scale": "LayerNorm before the MLP: scale, as ln1's",
    "blocks.L.ln2.hook_normalized": "LayerNorm before the MLP: normalized residual, as ln1's",
    "blocks.L.hook_mlp_in": "the MLP's input resid_mid, before ln2 (TL's use_hook_mlp_in)",
    "blocks.L.mlp.hook_pre": "neuron pre-activations, x W_in + b_in",
    "blocks.L.mlp.hook_post": "neuron activations, act_fn(pre): what Fourier-neuron analyses and transplants read",
    "blocks.L.hook_mlp_out": "MLP output added to the residual, post W_out + b_out",
    "blocks.L.hook_resid_post": "residual stream leaving block L (resid_mid + mlp_out)",
    "ln_final.hook_scale": "final LayerNorm: scale",
    "ln_final.hook_normalized": "final LayerNorm: normalized residual",
    "unembed.hook_in": "input of the unembedding (the final residual stream, after ln_final)",
    "unembed.hook_out": "logits over the p answers, x W_U + b_U",
}


def _generic(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "blocks":
        parts[1] = "L"
    return ".".join(parts)


def _axes(name: str, shape: tuple[int, ...]) -> str:
    names = [AXES.get(n, str(n)) for n in shape]
    if name.endswith(("hook_attn_scores", "hook_pattern")):
        names[-2:] = ["query_pos" if shape[-2] != 1 else "1", "key_pos"]
    return "[" + ", ".join(names) + "]"


def hook_shapes(normalization_type: str | None, n_layers: int = 1, switches: bool = False
                ) -> dict[str, tuple[str | None, str | None]]:
    """{hook name: (shape of the full forward, shape of `last_position_only`)}, None where it does not fire;
    with `switches`, every TL switch (use_attn_result, ...) on."""
    config = ModelConfig(n_layers=n_layers, normalization_type=normalization_type)
    model = Transformer(config, d_vocab=P + 1, d_vocab_out=P).eval()
    for switch in SWITCHES if switches else ():
        getattr(model, f"set_{switch}")(True)
    tokens = torch.randint(0, P, (BATCH, 3), generator=torch.Generator().manual_seed(0))
    tokens[:, -1] = P
    shapes: dict[str, list] = {name: [None, None] for name in model.hook_dict}
    for column, kwargs in enumerate(({}, {"last_position_only": True})):
        def record(acts, hook, column=column):
            shapes[hook.name][column] = _axes(hook.name, tuple(acts.shape))

        with torch.no_grad(), model.hooks(fwd_hooks=[(name, record) for name in model.hook_dict]):
            model(tokens, **kwargs)
    return {name: (full, fast) for name, (full, fast) in shapes.items()}


def render() -> str:
    """The full text of docs/hooks.md."""
    plain, with_ln = hook_shapes(None), hook_shapes("LN")
    switched = hook_shapes(None, switches=True)
    for name, (full, fast) in plain.items():
        if full is None:  # fires only behind one of TL's switches: show its shapes with the switch on
            on = f" with `{switch_of(name)}`"
            plain[name] = (switched[name][0] + on, switched[name][1] + on)
    missing = sorted({_generic(n) for n in with_ln} - set(MEANINGS))
    if missing:
        raise KeyError(f"hooks without a meaning in grokinterp/hook_reference.py: {missing}")
    two_layers = set(hook_shapes(None, n_layers=2))
    per_block = {n for n in plain if n.startswith("blocks.0.")}
    expected = (set(plain) - per_block) | {n.replace("blocks.0.", f"blocks.{i}.", 1) for n in per_block for i in (0, 1)}
    assert two_layers == expected, "a 2-layer model's hooks are not the 1-layer ones repeated per block"

    lines = [
        "# Hook reference",
        "",
        "<!-- Generated by `python -m grokinterp.hook_reference`; do not edit by hand "
        "(tests/test_hook_reference.py checks it is current). -->",
        "",
        "Every hook point of `grokinterp.model.Transformer`, with the same names as TransformerLens 3's",
        "`HookedTransformer` and TransformerLens 4's `TransformerBridge` (see README, \"Coming from",
        "TransformerLens\"). Shapes were recorded by running Nanda et al.'s configuration (p = 113, d_model 128,",
        "4 heads of 32, d_mlp 512, 1 layer) on a batch of 5 sequences `[a, b, =]`; `pos` is 3.",
        "",
        "- **full forward**: `model(tokens)` or `model.run_with_cache(tokens)`, what analyses use.",
        "- **last position**: `model(tokens, last_position_only=True)`, what training uses: the query side",
        "  runs at the final position only (a position axis of 1); keys and values keep every position. In a",
        "  1-layer model, ln1 then normalizes the table of every (position, token) embedding, [pos, d_vocab, ...].",
        "- \"with `use_...`\": the hook point fires only behind that TL switch (`model.set_use_attn_result(True)`,",
        "  ...), off by default as in TL; the shapes are those with the switch on (it changes no other hook's shape,",
        "  except that ln1's hooks then get a head axis, [batch, pos, n_heads, ...]).",
        "- **n layers**: every `blocks.0.*` hook exists once per block, `blocks.L.*` for L = 0 .. n_layers - 1",
        "  (checked by the generator on a 2-layer model); the other hooks exist once.",
        "- **TransformerLens 4 bridge** (`grokinterp.bridge.to_bridge`): the same names fire with the same values,",
        "  except that TransformerLens 4.3.0's native bridge fires `blocks.L.attn.hook_attn_scores` with the",
        "  softmax pattern; the bridge also has `hook_in` / `hook_out` hooks on every component.",
        "",
    ]
    for title, shapes, note in (
        ("Without LayerNorm (`model.normalization_type=None`, the default)", plain, ""),
        ("With LayerNorm (`--model.normalization_type=LN`)", with_ln,
         "The LayerNorm hooks are added; every other hook is as above.\n"),
    ):
        lines += [f"## {title}", "", note] if note else [f"## {title}", ""]
        lines += ["| hook | full forward | last position | meaning |", "|---|---|---|---|"]
        for name in shapes if not note else [n for n in shapes if ".ln" in n or n.startswith("ln_final")]:
            full, fast = shapes[name]
            lines.append(f"| `{name}` | {full or 'not fired'} | {fast or 'not fired'} | {MEANINGS[_generic(name)]} |")
        lines.append("")
    lines += surface_markdown()
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grokinterp.hook_reference", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/hooks.md is out of date; write nothing")
    parser.add_argument("--out", type=Path, default=DOC, help=f"where to write (default {DOC})")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date: run `python -m grokinterp.hook_reference`", file=sys.stderr)
            return 1
        return 0
    from .atomic import atomic_write_bytes

    atomic_write_bytes(args.out, text.encode())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
