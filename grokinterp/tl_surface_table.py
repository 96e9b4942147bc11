"""The "TransformerLens surface" table of docs/hooks.md: each public name of TL 3.9's `HookedTransformer` and
`ActivationCache`, whether grokinterp supports it for its architecture, and where it differs.

Statuses: "yes" (same call, same values as TL 3.9: tests/test_tl_surface.py compares them), "differs" (works,
with the difference noted), "no" (applies to this architecture but is not provided; the note says why and
what to use), "n/a" (does not apply to this architecture, e.g. tokenizers, pretrained checkpoints, GQA,
gated MLPs, SSM layers). tests/test_tl_surface.py fails when TL 3.9 has a public name that is neither here
nor torch.nn.Module's own.
"""

from __future__ import annotations

from .tl_surface import STACKED

YES, DIFFERS, NO, NA = "yes", "differs", "no", "n/a"
_STACKED = "stacked over layers, [n_layers, ...], as TL"
_HOOKS = "inherited from TransformerLens 4's HookedRootModule: TL 3.9's API"
_TOKENIZER = "needs a tokenizer: tokens here are ids (residues 0..p-1 and '=' = p); TL 3.9 raises too without one"
_PRETRAINED = "pretrained language models from the Hub; grokinterp trains its own (`grokinterp.runs.Run`)"
_CACHE = "TransformerLens 4's ActivationCache on our model, values equal to TL 3.9's"

# name -> (status, note); HookedTransformer's public names (torch.nn.Module's own excluded).
MODEL: dict[str, tuple[str, str]] = {
    "cfg": (DIFFERS, "`TLConfig`: every HookedTransformerConfig field with TL 3.9's value for this architecture, "
                     "read from `model.model_config` (the source of truth, frozen); `seed` is grokinterp's init "
                     "seed, `init_mode` is \"nanda\" for Nanda et al.'s init"),
    "W_E": (YES, "[d_vocab, d_model]"), "W_pos": (YES, "[n_ctx, d_model]"),
    "W_E_pos": (YES, "[d_vocab + n_ctx, d_model]"), "W_U": (YES, "[d_model, d_vocab_out]"),
    "b_U": (YES, "[d_vocab_out]"),
    **{name: (YES, _STACKED) for name in STACKED},
    "W_gate": (YES, "None: the MLP is not gated (as TL 3.9 for this architecture)"),
    "QK": (YES, "TransformerLens 4's FactoredMatrix (W_Q, W_K^T); its A, B, AB, BA, svd, eigenvalues, norm, "
                "indexing and products compared with TL 3.9's"),
    "OV": (YES, "TransformerLens 4's FactoredMatrix (W_V, W_O), as QK"),
    "all_composition_scores": (YES, "Q, K and V modes"),
    "all_head_labels": (YES, "[\"L0H0\", ...]"),
    "accumulated_bias": (DIFFERS, "same values; mlp_input at layer n_layers raises ValueError (TL: AssertionError)"),
    "tokens_to_residual_directions": (DIFFERS, "token ids (int or tensor); a string needs a tokenizer"),
    "n_params_total": (YES, ""),
    "set_use_attn_result": (YES, "fires blocks.L.attn.hook_result [batch, pos, n_heads, d_model]; also in "
                                 "`last_position_only` (pos 1)"),
    "set_use_split_qkv_input": (YES, "fires hook_q_input / hook_k_input / hook_v_input [batch, pos, n_heads, "
                                     "d_model]; `last_position_only` then uses the per-example path"),
    "set_use_attn_in": (YES, "fires blocks.L.hook_attn_in [batch, pos, n_heads, d_model]; as split_qkv for "
                             "`last_position_only`"),
    "set_use_hook_mlp_in": (YES, "fires blocks.L.hook_mlp_in [batch, pos, d_model], in both forwards"),
    "set_ungroup_grouped_query_attention": (NA, "no grouped-query attention"),
    "check_hooks_to_add": (DIFFERS, "refuses `add_hook` on a switched-off hook point with ValueError "
                                    "(TL: AssertionError)"),
    "run_with_cache": (YES, "returns (logits, ActivationCache); `last_position_only=True` passes through"),
    "forward": (DIFFERS, "`model(tokens)` and `model(tokens, last_position_only=True)`; no strings, "
                         "return_type/loss, attention_mask, past_kv_cache or start/stop_at_layer"),
    "loss_fn": (YES, "TL's next-token loss; the task's loss is on the final position (grokinterp.train)"),
    "init_weights": (DIFFERS, "re-draws from `cfg.seed`: TL 3's gpt2 init (`init=\"tl\"`) or Nanda et al.'s"),
    "fold_layer_norm": (YES, "on a state dict (TransformerLens' ProcessWeights, as TL 3.9)"),
    "center_writing_weights": (YES, "on a state dict, as fold_layer_norm"),
    "center_unembed": (YES, "on a state dict, as fold_layer_norm"),
    "fold_value_biases": (YES, "on a state dict, as fold_layer_norm"),
    "refactor_factored_attn_matrices": (YES, "on a state dict, as fold_layer_norm"),
    "process_weights_": (NO, "the model keeps its trained weights (checkpoints stay HookedTransformer state "
                             "dicts); process a state dict with the five methods above, or use TL's "
                             "`from_pretrained`-style processing on a TransformerBridge"),
    "load_and_process_state_dict": (NO, "as process_weights_; `load_state_dict(sd, strict=True)` loads"),
    "fill_missing_keys": (NO, "checkpoints are complete: `load_state_dict(strict=True)` checks the keys"),
    "to": (DIFFERS, "torch's Module.to; cfg.device and cfg.dtype follow it; no print_details argument"),
    "cuda": (DIFFERS, "torch's, as `to`"), "cpu": (DIFFERS, "torch's, as `to`"),
    "mps": (DIFFERS, "`to(\"mps\")`, as `to`"),
    "move_model_modules_to_device": (NO, "one device per model: use `model.to(device)`"),
    "generate": (NO, "the model predicts one answer token: `model(tokens)[:, -1].argmax(-1)`"),
    "generate_stream": (NO, "as generate"),
    "input_to_embed": (NO, "internal step of TL's forward (embedding + positions): hook_embed, hook_pos_embed"),
    "get_residual": (NO, "internal step of TL's forward, as input_to_embed"),
    "get_pos_offset": (NA, "for TL's key-value cache while generating"),
    "tokenizer": (YES, "None, as TL for a model built without a tokenizer"),
    **{name: (NA, _TOKENIZER) for name in ("set_tokenizer", "to_tokens", "to_string", "to_str_tokens",
                                           "to_single_token", "to_single_str_token", "get_token_position")},
    **{name: (NA, _PRETRAINED) for name in ("from_pretrained", "from_pretrained_no_processing",
                                            "load_sample_training_dataset", "sample_datapoint", "dataset")},
    **{name: (YES, "module, TL's name and parameters") for name in ("embed", "pos_embed", "blocks", "unembed")},
    "ln_final": (DIFFERS, "LayerNorm with LN; without LN an nn.Identity (TL 3.9 has no ln_final then)"),
    **{name: (YES, "hook point") for name in ("hook_embed", "hook_pos_embed")},
    **{name: (YES, _HOOKS) for name in (
        "add_caching_hooks", "add_hook", "add_perma_hook", "cache_all", "cache_some", "check_and_add_hook",
        "clear_contexts", "context_level", "get_caching_hooks", "hook_dict", "hook_points", "hooks", "is_caching",
        "list_hooks", "mod_dict", "remove_all_hook_fns", "reset_hooks", "run_with_hooks", "setup")},
    "training": (YES, "torch's flag"),
}

# ActivationCache's public names (and its indexing).
CACHE: dict[str, tuple[str, str]] = {
    "__getitem__": (YES, "full names and TL's short names: cache[\"pattern\", 0], cache[\"resid_post\", -1], "
                         "cache[\"scale\", 0, \"ln1\"], cache[\"embed\"], ..."),
    **{name: (YES, _CACHE) for name in (
        "accumulated_resid", "decompose_resid", "logit_attrs", "get_full_resid_decomposition", "stack_head_results",
        "get_neuron_results", "apply_ln_to_stack", "stack_activation", "compute_head_results",
        "remove_batch_dim", "apply_slice_to_batch_dim", "keys", "values", "items", "to", "toggle_autodiff",
        "cache_dict", "model", "has_batch_dim", "has_embed", "has_pos_embed")},
    "stack_neuron_results": (DIFFERS, _CACHE + "; an int neuron_slice also works (TL 3.9 raises TypeError)"),
    **{name: (NA, "no SSM / recurrent layers") for name in ("ssm_layers", "compute_ssm_effective_attention",
                                                             "compute_ssm_state")},
}


def counts() -> tuple[int, int]:
    """(supported, applicable) over both tables: supported = yes or differs; applicable = not n/a."""
    rows = [*MODEL.values(), *CACHE.values()]
    supported = sum(status in (YES, DIFFERS) for status, _ in rows)
    return supported, sum(status != NA for status, _ in rows)


def markdown() -> list[str]:
    """The section's lines (docs/hooks.md is generated by grokinterp.hook_reference)."""
    supported, applicable = counts()
    lines = [
        "## TransformerLens surface",
        "",
        "Beyond hook names: every public name of TL 3.9's `HookedTransformer` and `ActivationCache` (torch's",
        "`nn.Module` methods aside), and what `grokinterp.model.Transformer` does with it. \"yes\": same call, same",
        "values as TL 3.9 (tests/test_tl_surface.py loads one state dict into both, 1 and 2 layers, with and",
        "without LayerNorm, ReLU and GELU, each `use_*` switch on and off, and compares to 1e-5); \"differs\":",
        "works, with the difference noted; \"no\": applies but is not provided; \"n/a\": does not apply to this",
        f"architecture. Supported: {supported} of {applicable} applicable names.",
        "",
        "`model.cfg` is TL's view of the config; `model.model_config` is grokinterp's `ModelConfig`. The switches",
        "(`model.set_use_attn_result(True)`, or `model.cfg.use_attn_result = True`) are off by default, as in TL,",
        "and cost nothing when off.",
        "",
        "A TL 3.9 user's analysis notebook for a one-layer modular-addition model (weights, circuits, cache",
        "decompositions, head and neuron results, head ablation: tests/_tl_notebook.py) runs unchanged on a",
        "trained grokinterp run and on TL 3.9's `HookedTransformer` loaded from the run's checkpoint file, with the",
        "same values (tests/test_tl_surface.py).",
        "",
    ]
    for title, table in (("`HookedTransformer`", MODEL), ("`ActivationCache`", CACHE)):
        lines += [f"### {title}", "", "| name | status | notes |", "|---|---|---|"]
        lines += [f"| `{name}` | {status} | {note} |" for name, (status, note) in sorted(table.items(),
                                                                                         key=lambda kv: kv[0].lower())]
        lines.append("")
    return lines
