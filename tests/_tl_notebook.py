"""A TransformerLens 3.9 user's analysis notebook for a one-layer modular-addition model, as one function.

The cells are what such a notebook does (after Nanda et al.'s progress-measures analysis): the loss and
accuracy on every pair, the weights (W_E without '=', the neuron-input and neuron-logit maps, stacked
weights), the Fourier basis and the embedding's frequency norms, the OV and QK circuits as FactoredMatrix
objects, the cache by short name, residual decompositions and logit attributions, head and neuron results,
and head ablation through hook_z and through the switched-on hook_result. Written against TL 3.9's API
only, so the same source runs on TL 3.9's `HookedTransformer` (in .venv-tl3, by
tests/fixtures/tl3_surface_check.py --notebook) and on a grokinterp run's model (tests/test_tl_surface.py),
which compares every result. Imports only torch: it must run in both venvs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fourier_basis(p: int) -> torch.Tensor:
    """[p, p]: rows 1, cos(2 pi k x / p), sin(2 pi k x / p) for k = 1 .. (p - 1) / 2, unit norm."""
    x = torch.arange(p, dtype=torch.float32)
    rows = [torch.ones(p)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [torch.cos(2 * torch.pi * k * x / p), torch.sin(2 * torch.pi * k * x / p)]
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True)


def notebook(model) -> dict:
    """Every value the notebook looks at: tensors, and labels as lists of strings."""
    out: dict = {}
    p = model.cfg.d_vocab_out
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    dataset = torch.stack([a.flatten(), b.flatten(), torch.full((p * p,), p)], dim=1)
    labels = (dataset[:, 0] + dataset[:, 1]) % p
    with torch.no_grad():
        logits, cache = model.run_with_cache(dataset)
        out["logits"] = logits[:, -1]
        out["loss"] = F.cross_entropy(logits[:, -1], labels)
        out["accuracy"] = (logits[:, -1].argmax(-1) == labels).float().mean()

        # weights
        W_E = model.embed.W_E[:-1]
        out["W_neur"] = W_E @ model.blocks[0].attn.W_V @ model.blocks[0].attn.W_O @ model.blocks[0].mlp.W_in
        out["W_logit"] = model.blocks[0].mlp.W_out @ model.unembed.W_U
        out["W_in stacked"], out["b_U"] = model.W_in[0], model.b_U
        out["W_E fourier norms"] = (fourier_basis(p) @ W_E).norm(dim=-1)

        # circuits
        out["full OV"] = (model.W_E @ model.OV[0] @ model.W_U).AB
        out["QK"] = model.QK[0].AB
        out["OV singular values"] = model.OV[0].S
        out["OV head 0 eigenvalues"] = torch.view_as_real(model.OV[0, 0].eigenvalues)
        out["head labels"] = model.all_head_labels()

        # the cache by short name
        out["neuron acts"] = cache["post", 0, "mlp"][:, -1, :]
        out["attention to a"] = cache["pattern", 0][:, :, -1, 0]
        out["resid_post"] = cache["resid_post", -1][:, -1]

        # decompositions and attributions
        resid, out["resid labels"] = cache.decompose_resid(pos_slice=-1, return_labels=True)
        out["decompose_resid"] = resid
        out["logit attrs"] = cache.logit_attrs(resid, labels, pos_slice=-1)
        out["logit diff attrs"] = cache.logit_attrs(resid, labels, (labels + 1) % p, pos_slice=-1)
        accumulated, out["accumulated labels"] = cache.accumulated_resid(apply_ln=True, pos_slice=-1,
                                                                          return_labels=True)
        out["accumulated_resid"] = accumulated
        out["answer directions"] = model.tokens_to_residual_directions(labels)
        out["accumulated_bias"] = model.accumulated_bias(1)

        # head and neuron results
        heads, out["head result labels"] = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)
        out["stack_head_results"] = heads
        out["head logit attrs"] = cache.logit_attrs(heads, labels, pos_slice=-1)
        out["stack_neuron_results"] = cache.stack_neuron_results(1, pos_slice=-1)
        full, out["full labels"] = cache.get_full_resid_decomposition(pos_slice=-1, expand_neurons=True,
                                                                      return_labels=True)
        out["full decomposition"] = full

        # head ablation: through hook_z, then through hook_result with TL's switch on
        def ablate_head_0(acts, hook):
            acts[:, :, 0] = 0.0
            return acts

        out["ablate z"] = model.run_with_hooks(dataset, fwd_hooks=[("blocks.0.attn.hook_z", ablate_head_0)])[:, -1]
        model.set_use_attn_result(True)
        _, switched = model.run_with_cache(dataset)
        out["hook_result"] = switched["result", 0][:, -1]
        out["ablate result"] = model.run_with_hooks(
            dataset, fwd_hooks=[("blocks.0.attn.hook_result", ablate_head_0)])[:, -1]
        model.set_use_attn_result(False)
    return out
