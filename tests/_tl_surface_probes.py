"""Every TransformerLens-surface call that tests/test_tl_surface.py compares, run on any model with TL 3's API.

The same functions run on TL 3.9's `HookedTransformer` (in .venv-tl3, by tests/fixtures/tl3_surface_check.py)
and on grokinterp's `Transformer` (in the test), so both sides make exactly the same calls. Each probe's
result is stored under a key: a tensor (compared allclose 1e-5), a JSON value (labels, shapes, counts:
compared equal), or {"error": ExceptionName} when the call raises (both sides must then raise the same).
Imports only torch: it must run in both venvs.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import torch

# Switch settings compared: TL's default (all off), each switch alone, all on.
SWITCH_SETS = {
    "default": (),
    "attn_result": ("use_attn_result",),
    "split_qkv": ("use_split_qkv_input",),
    "attn_in": ("use_attn_in",),
    "mlp_in": ("use_hook_mlp_in",),
    "all": ("use_attn_result", "use_split_qkv_input", "use_attn_in", "use_hook_mlp_in"),
}
PROPERTIES = ("W_E", "W_pos", "W_E_pos", "W_U", "b_U", "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O",
              "W_in", "W_out", "b_in", "b_out", "W_gate")


def set_switches(model, switches: tuple[str, ...]) -> None:
    """Through TL's setters (set_use_attn_result, ...), everything off first."""
    for name in ("use_attn_result", "use_split_qkv_input", "use_attn_in", "use_hook_mlp_in"):
        getattr(model, f"set_{name}")(name in switches)


class Results(dict):
    def probe(self, key: str, fn: Callable[[], Any]) -> None:
        try:
            value = fn()
        except Exception as error:  # noqa: BLE001: the exception's type is the result
            self[key] = {"error": type(error).__name__}
            return
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], list):  # (tensor, labels)
            self[key + "#labels"] = value[1]
            value = value[0]
        self[key] = value


def _plain(value: Any) -> Any:
    """JSON-able form of a config value (dtypes and numpy scalars to str / float)."""
    if isinstance(value, torch.dtype):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    return value


def probe_model(model) -> Results:
    """Weights, circuits, FactoredMatrix methods, residual helpers and cfg: independent of the switches."""
    r = Results()
    cfg = model.cfg
    r.probe("cfg.to_dict", lambda: {k: _plain(v) for k, v in cfg.to_dict().items()})
    for name in PROPERTIES:
        r.probe(f"model.{name}", lambda name=name: getattr(model, name))
    r.probe("model.all_head_labels", lambda: model.all_head_labels())
    r.probe("model.n_params_total", lambda: model.n_params_total)
    for name in ("QK", "OV"):
        fm = lambda name=name: getattr(model, name)  # noqa: E731
        for attr in ("A", "B", "AB", "BA", "S", "U", "V", "shape", "ldim", "rdim", "mdim", "ndim"):
            r.probe(f"{name}.{attr}", lambda fm=fm, attr=attr: _as_value(getattr(fm(), attr)))
        r.probe(f"{name}.T.AB", lambda fm=fm: fm().T.AB)
        r.probe(f"{name}.eigenvalues", lambda fm=fm: torch.view_as_real(fm().eigenvalues))
        r.probe(f"{name}.norm", lambda fm=fm: fm().norm())
        r.probe(f"{name}.get_corner", lambda fm=fm: fm().get_corner(3))
        r.probe(f"{name}.collapse_l", lambda fm=fm: fm().collapse_l())
        r.probe(f"{name}.collapse_r", lambda fm=fm: fm().collapse_r())
        r.probe(f"{name}.svd", lambda fm=fm: torch.cat([t.flatten() for t in fm().svd()]))
        r.probe(f"{name}[0, 1].AB", lambda fm=fm: fm()[0, 1].AB)
        r.probe(f"{name}.make_even.A", lambda fm=fm: fm().make_even().A)
    r.probe("full_OV", lambda: (model.W_E @ model.OV @ model.W_U).AB)
    r.probe("full_QK", lambda: (model.W_E_pos @ model.QK @ model.W_E_pos.T).AB)
    for mode in "QKV":
        r.probe(f"all_composition_scores.{mode}", lambda mode=mode: model.all_composition_scores(mode))
    r.probe("tokens_to_residual_directions.int", lambda: model.tokens_to_residual_directions(5))
    r.probe("tokens_to_residual_directions.0d", lambda: model.tokens_to_residual_directions(torch.tensor(5)))
    r.probe("tokens_to_residual_directions.1d", lambda: model.tokens_to_residual_directions(torch.tensor([1, 2, 3])))
    r.probe("tokens_to_residual_directions.2d",
            lambda: model.tokens_to_residual_directions(torch.tensor([[1, 2], [3, 4]])))
    fresh = lambda: {k: v.detach().clone() for k, v in model.state_dict().items()}  # noqa: E731
    processing = {
        "fold_layer_norm": lambda: model.fold_layer_norm(fresh()),
        "fold_layer_norm(no biases, not centred)": lambda: model.fold_layer_norm(fresh(), False, False),
        "center_writing_weights": lambda: model.center_writing_weights(fresh()),
        "center_unembed": lambda: model.center_unembed(fresh()),
        "fold_value_biases": lambda: model.fold_value_biases(fresh()),
        "refactor_factored_attn_matrices": lambda: model.refactor_factored_attn_matrices(fresh()),
    }
    for name, call in processing.items():
        try:
            processed = call()
        except Exception as error:  # noqa: BLE001
            r[name] = {"error": type(error).__name__}
            continue
        r[f"{name}.keys"] = sorted(processed)
        r.update({f"{name}[{k}]": v for k, v in processed.items()})
    n_layers = cfg.n_layers
    for layer in range(n_layers + 1):
        for mlp_input in (False, True):
            for include_mlp_biases in (False, True):
                r.probe(f"accumulated_bias({layer}, {mlp_input}, {include_mlp_biases})",
                        lambda a=(layer, mlp_input, include_mlp_biases): model.accumulated_bias(*a))
    return r


def _as_value(value: Any) -> Any:
    if isinstance(value, torch.Size):
        return list(value)
    return value


def probe_cache(model, tokens: torch.Tensor) -> Results:
    """Logits, every cached activation and every ActivationCache method, under the model's current switches."""
    r = Results()
    n_layers, last = model.cfg.n_layers, n_layers_plus_none(model.cfg.n_layers)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    r["logits"] = logits
    r["cache.keys"] = sorted(cache.keys())
    r["len(cache)"] = len(cache)
    for name in cache.keys():
        r[f"cache[{name}]"] = cache[name]
    answers, wrong = tokens[:, 0] % model.cfg.d_vocab_out, tokens[:, 1] % model.cfg.d_vocab_out

    # short-name and tuple indexing
    for key in [("pattern", 0), ("attn_scores", -1), ("q", 0), ("k", 0, "attn"), ("v", -1), ("z", 0),
                ("resid_pre", 0), ("resid_mid", -1), ("resid_post", -1), ("attn_out", 0), ("mlp_out", -1),
                ("pre", 0), ("post", -1), ("post", 0, "mlp"), ("scale", 0, "ln1"), ("normalized", -1, "ln2"),
                ("result", 0), ("q_input", 0), ("k_input", -1), ("v_input", 0), ("attn_in", 0), ("mlp_in", -1),
                "embed", "pos_embed", "scale", "normalized", "pattern"]:
        r.probe(f"cache{key!r}", lambda key=key: cache[key])

    for layer in last:
        for mlp_input in (False, True):
            for mode in ("all", "mlp", "attn"):
                for apply_ln in (False, True):
                    for pos_slice in (None, -1):
                        r.probe(f"decompose_resid({layer}, {mlp_input}, {mode}, {apply_ln}, {pos_slice})",
                                lambda a=(layer, mlp_input, mode, apply_ln, pos_slice): cache.decompose_resid(
                                    *a[:2], mode=a[2], apply_ln=a[3], pos_slice=a[4], return_labels=True))
        r.probe(f"decompose_resid({layer}, incl_embeds=False)",
                lambda layer=layer: cache.decompose_resid(layer, incl_embeds=False, return_labels=True))
        for incl_mid in (False, True):
            for apply_ln in (False, True):
                for mlp_input in (False, True):
                    for pos_slice in (None, -1):
                        r.probe(f"accumulated_resid({layer}, {incl_mid}, {apply_ln}, {mlp_input}, {pos_slice})",
                                lambda a=(layer, incl_mid, apply_ln, mlp_input, pos_slice): cache.accumulated_resid(
                                    a[0], incl_mid=a[1], apply_ln=a[2], mlp_input=a[3], pos_slice=a[4],
                                    return_labels=True))
        for mlp_input in (False, True):
            for expand_neurons in (False, True):
                for apply_ln in (False, True):
                    for pos_slice in (None, -1):
                        r.probe(f"get_full_resid_decomposition({layer}, {mlp_input}, {expand_neurons}, {apply_ln}, "
                                f"{pos_slice})",
                                lambda a=(layer, mlp_input, expand_neurons, apply_ln, pos_slice):
                                cache.get_full_resid_decomposition(a[0], mlp_input=a[1], expand_neurons=a[2],
                                                                   apply_ln=a[3], pos_slice=a[4], return_labels=True))
        for incl_remainder in (False, True):
            for apply_ln in (False, True):
                for pos_slice in (None, -1):
                    r.probe(f"stack_head_results({layer}, {incl_remainder}, {apply_ln}, {pos_slice})",
                            lambda a=(layer, incl_remainder, apply_ln, pos_slice): cache.stack_head_results(
                                -1 if a[0] is None else a[0], incl_remainder=a[1], apply_ln=a[2], pos_slice=a[3],
                                return_labels=True))
        stack_layer = n_layers if layer is None else layer
        for mlp_input in (False, True):
            r.probe(f"apply_ln_to_stack({layer}, {mlp_input})",
                    lambda a=(layer, stack_layer, mlp_input): cache.apply_ln_to_stack(
                        cache.decompose_resid(a[1]), a[0], mlp_input=a[2]))
    for layer in range(1, n_layers + 1):
        for incl_remainder in (False, True):
            for apply_ln in (False, True):
                for neuron_slice in (None, slice(2, 7)):
                    r.probe(f"stack_neuron_results({layer}, {incl_remainder}, {apply_ln}, {neuron_slice})",
                            lambda a=(layer, incl_remainder, apply_ln, neuron_slice): cache.stack_neuron_results(
                                a[0], incl_remainder=a[1], apply_ln=a[2], neuron_slice=a[3], return_labels=True))
        r.probe(f"stack_neuron_results({layer}, pos_slice=-1)",
                lambda layer=layer: cache.stack_neuron_results(layer, pos_slice=-1))
    for layer in range(n_layers):
        r.probe(f"get_neuron_results({layer})", lambda layer=layer: cache.get_neuron_results(layer))
        r.probe(f"get_neuron_results({layer}, 3, -1)",
                lambda layer=layer: cache.get_neuron_results(layer, neuron_slice=3, pos_slice=-1))
    for name, sublayer in (("pattern", None), ("resid_pre", None), ("scale", "ln1"), ("post", None)):
        r.probe(f"stack_activation({name})",
                lambda a=(name, sublayer): cache.stack_activation(a[0], sublayer_type=a[1]))

    stack = lambda: cache.decompose_resid(pos_slice=-1)  # noqa: E731
    r.probe("logit_attrs(answers)", lambda: cache.logit_attrs(stack(), answers, pos_slice=-1))
    r.probe("logit_attrs(answers, wrong)", lambda: cache.logit_attrs(stack(), answers, wrong, pos_slice=-1))
    r.probe("logit_attrs(int)", lambda: cache.logit_attrs(cache.decompose_resid(), 3))
    r.probe("logit_attrs(heads)", lambda: cache.logit_attrs(cache.stack_head_results(pos_slice=-1), answers,
                                                            pos_slice=-1))
    r.probe("logit_attrs(batch_slice)", lambda: cache.logit_attrs(stack()[:, :2], answers[:2], pos_slice=-1,
                                                                  batch_slice=slice(0, 2)))

    sliced = cache.apply_slice_to_batch_dim(slice(1, 3))
    r["apply_slice_to_batch_dim.keys"] = sorted(sliced.keys())
    r.probe("apply_slice_to_batch_dim.decompose_resid", lambda: sliced.decompose_resid(apply_ln=True))
    cache.compute_head_results()
    r.probe("compute_head_results", lambda: cache["result", n_layers - 1])

    # batch of one, batch dimension removed
    with torch.no_grad():
        _, single = model.run_with_cache(tokens[:1], remove_batch_dim=True)
    r.probe("single.keys", lambda: sorted(single.keys()))
    r.probe("single.accumulated_resid", lambda: single.accumulated_resid(apply_ln=True, return_labels=True))
    r.probe("single.decompose_resid", lambda: single.decompose_resid(apply_ln=True, pos_slice=-1))
    r.probe("single.stack_head_results", lambda: single.stack_head_results(apply_ln=True))
    r.probe("single.get_full_resid_decomposition", lambda: single.get_full_resid_decomposition(apply_ln=True))
    return r


def n_layers_plus_none(n_layers: int) -> list:
    return [None, *range(n_layers + 1)]


def probe_patching(model, tokens: torch.Tensor, switches: tuple[str, ...]) -> Results:
    """Per-head patching through the switched-on hook points: logits after each edit."""
    r = Results()

    def scale_head(head: int, factor: float):
        def hook(acts, hook):
            acts[:, :, head] = acts[:, :, head] * factor
            return acts
        return hook

    edits = {
        "use_attn_result": [("blocks.0.attn.hook_result", scale_head(1, 0.0))],
        "use_split_qkv_input": [("blocks.0.hook_q_input", scale_head(0, 0.5)),
                                ("blocks.0.hook_k_input", scale_head(1, 2.0)),
                                ("blocks.0.hook_v_input", scale_head(2, -1.0))],
        "use_attn_in": [("blocks.0.hook_attn_in", scale_head(3, 3.0))],
        "use_hook_mlp_in": [("blocks.0.hook_mlp_in", lambda acts, hook: acts + 1.0)],
    }
    for switch in switches:
        for name, fn in edits[switch]:
            with torch.no_grad():
                r.probe(f"patch {name}", lambda a=(name, fn): model.run_with_hooks(tokens, fwd_hooks=[a]))
    return r


def save_results(results: dict, prefix: str) -> None:
    """Tensors to PREFIX.safetensors, everything else to PREFIX.json."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in results.items() if isinstance(v, torch.Tensor)}
    other = {k: v for k, v in results.items() if not isinstance(v, torch.Tensor)}
    save_file(tensors, prefix + ".safetensors")
    with open(prefix + ".json", "w") as f:
        json.dump(other, f)


def load_results(prefix: str) -> dict:
    from safetensors.torch import load_file

    with open(prefix + ".json") as f:
        return {**json.load(f), **load_file(prefix + ".safetensors")}
