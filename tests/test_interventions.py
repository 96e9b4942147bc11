"""Neuron interventions: exact weight transplants, exact activation patches, hooks gone after, user hooks kept."""

import pytest
import torch
import torch.nn.functional as F

from grokinterp.analysis.interventions import (
    ablate_neurons,
    fourier_neurons,
    neuron_index,
    neuron_intervention_metrics,
    neuron_patch,
    patch_neurons,
    transplant_neuron_weights,
)
from grokinterp.tasks import make_task
from grokinterp.model import build_model

from conftest import tiny_config

POST = "blocks.0.mlp.hook_post"
SELECTED = [2, 5, 40, 63]


def model_pair(**overrides):
    config = tiny_config(**overrides)
    recipient, donor = build_model(config), build_model(tiny_config(model__seed=7, **overrides))
    with torch.no_grad():  # nonzero biases, so that b_in's transplant is visible
        for model, scale in ((recipient, 0.1), (donor, -0.2)):
            for block in model.blocks:
                block.mlp.b_in.copy_(scale * torch.arange(block.mlp.b_in.numel()))
    return recipient, donor, make_task(config.task)


def hook_counts(model):
    return {name: len(hp.fwd_hooks) + len(hp._forward_hooks) for name, hp in model.hook_dict.items()}


def clone_params(model):
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


def test_weight_transplant_moves_exactly_the_selected_rows_and_columns():
    recipient, donor, _ = model_pair(model__n_layers=2)
    before_r, before_d = clone_params(recipient), clone_params(donor)
    new = transplant_neuron_weights(recipient, donor, SELECTED, layer=1)
    sel = torch.tensor(SELECTED)
    rest = torch.tensor([j for j in range(64) if j not in SELECTED])
    after = new.state_dict()
    moved = {"blocks.1.mlp.W_in": (lambda t, i: t[:, i]), "blocks.1.mlp.b_in": (lambda t, i: t[i]),
             "blocks.1.mlp.W_out": (lambda t, i: t[i, :])}
    for name, value in after.items():
        if name in moved:
            take = moved[name]
            assert torch.equal(take(value, sel), take(before_d[name], sel)), name
            assert torch.equal(take(value, rest), take(before_r[name], rest)), name
        else:
            assert torch.equal(value, before_r[name]), name  # layer 0, attention, b_out, embeddings: untouched
    assert all(torch.equal(recipient.state_dict()[n], before_r[n]) for n in before_r)  # caller's models unchanged
    assert all(torch.equal(donor.state_dict()[n], before_d[n]) for n in before_d)
    assert new is not recipient and new.blocks[1].mlp.W_in.data_ptr() != recipient.blocks[1].mlp.W_in.data_ptr()
    with pytest.raises(ValueError, match="d_mlp"):
        transplant_neuron_weights(recipient, donor, [64], layer=1)
    with pytest.raises(ValueError, match="one architecture"):
        transplant_neuron_weights(recipient, build_model(tiny_config(model__d_mlp=32, model__n_layers=2)), [1])


def test_activation_patch_changes_exactly_the_selected_neurons():
    recipient, donor, task = model_pair()
    tokens = task.tokens[:50]
    _, clean = recipient.run_with_cache(tokens)
    _, donor_cache = donor.run_with_cache(tokens)
    sel = torch.tensor(SELECTED)
    rest = torch.tensor([j for j in range(64) if j not in SELECTED])
    with neuron_patch(recipient, sel, donor_cache[POST][..., sel]):
        logits, patched = recipient.run_with_cache(tokens)
    assert torch.equal(patched[POST][..., sel], donor_cache[POST][..., sel])
    assert torch.equal(patched[POST][..., rest], clean[POST][..., rest])
    assert torch.equal(patched["blocks.0.hook_resid_mid"], clean["blocks.0.hook_resid_mid"])  # upstream: untouched
    # downstream, by hand: logits = (resid_mid + post W_out + b_out) W_U + b_U
    mlp = recipient.blocks[0].mlp
    resid_post = clean["blocks.0.hook_resid_mid"] + patched[POST] @ mlp.W_out + mlp.b_out
    expected = resid_post @ recipient.W_U + recipient.unembed.b_U
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(patch_neurons(recipient, donor, tokens, SELECTED), logits, rtol=0, atol=0)
    # the fast last-position forward reads the last positions of the same patch
    with neuron_patch(recipient, sel, donor_cache[POST][..., sel]):
        fast = recipient(tokens, last_position_only=True)
    torch.testing.assert_close(fast[:, -1], logits[:, -1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablation_sets_the_selected_neurons(mode):
    model, _, task = model_pair()
    tokens, mean_tokens = task.tokens[:40], task.tokens
    _, clean = model.run_with_cache(tokens)
    _, everything = model.run_with_cache(mean_tokens)
    sel = torch.tensor(SELECTED)
    logits = ablate_neurons(model, tokens, SELECTED, mode=mode, mean_tokens=mean_tokens)
    target = torch.zeros(len(SELECTED)) if mode == "zero" else everything[POST].mean(0)[:, sel]  # [pos, n_sel]
    values = target.expand(len(tokens), 3, len(SELECTED))
    with neuron_patch(model, sel, values):
        expected, cache = model.run_with_cache(tokens)
    assert torch.equal(logits, expected)
    torch.testing.assert_close(cache[POST][..., sel], values)
    rest = torch.tensor([j for j in range(64) if j not in SELECTED])
    assert torch.equal(cache[POST][..., rest], clean[POST][..., rest])


def test_hooks_are_gone_after_even_on_error_and_user_hooks_survive():
    recipient, donor, task = model_pair()
    tokens = task.tokens[:10]
    seen = []
    recipient.add_hook(POST, lambda acts, hook: seen.append(acts.shape))  # the user's own hook
    baseline = hook_counts(recipient)
    assert baseline[POST] == 2  # TL's visible handle + torch's registered hook

    with pytest.raises(KeyError):
        with neuron_patch(recipient, SELECTED, torch.zeros(len(SELECTED))):
            assert hook_counts(recipient)[POST] == 4
            raise KeyError("user code fails inside the block")
    assert hook_counts(recipient) == baseline
    with pytest.raises(RuntimeError):  # the patch itself fails inside the forward (wrong value shape)
        with neuron_patch(recipient, SELECTED, torch.zeros(len(SELECTED) + 1)):
            recipient(tokens)
    assert hook_counts(recipient) == baseline
    with pytest.raises(IndexError):  # the forward fails while an intervention's hook is in place
        ablate_neurons(recipient, tokens + 1000, SELECTED, "zero")
    assert hook_counts(recipient) == baseline

    for run in (lambda: ablate_neurons(recipient, tokens, SELECTED, "zero"),
                lambda: ablate_neurons(recipient, tokens, SELECTED, "mean"),
                lambda: patch_neurons(recipient, donor, tokens, SELECTED),
                lambda: neuron_intervention_metrics(recipient, task, SELECTED, "patch", donor=donor),
                lambda: transplant_neuron_weights(recipient, donor, SELECTED)):
        run()
        assert hook_counts(recipient) == baseline and hook_counts(donor) == hook_counts(build_model(tiny_config()))
    n_seen = len(seen)
    recipient(tokens)
    assert len(seen) == n_seen + 1  # the user's hook still fires
    new = transplant_neuron_weights(recipient, donor, SELECTED)
    new(tokens)
    assert len(seen) == n_seen + 1 and hook_counts(new)[POST] == 0  # the copy does not carry the user's hook


def test_metrics_match_a_direct_computation():
    model, donor, task = model_pair()
    clean = neuron_intervention_metrics(model, task, intervention="none")
    logits = model(task.tokens)[:, -1].double()
    for split, idx in (("train", task.train_idx), ("test", task.test_idx)):
        labels = task.labels[idx]
        assert clean[f"{split}_loss"] == pytest.approx(F.cross_entropy(logits[idx], labels).item(), rel=1e-9)
        assert clean[f"{split}_acc"] == pytest.approx((logits[idx].argmax(-1) == labels).double().mean().item())
    assert neuron_intervention_metrics(model, task, [], "zero") == clean  # ablating nothing changes nothing
    assert neuron_intervention_metrics(model, task, range(64), "patch", donor=donor) != clean
    transplanted = transplant_neuron_weights(model, donor, SELECTED)
    assert neuron_intervention_metrics(transplanted, task, intervention="none") != clean
    with pytest.raises(ValueError, match="donor"):
        neuron_intervention_metrics(model, task, SELECTED, "patch")
    with pytest.raises(ValueError, match="choose one of"):
        neuron_intervention_metrics(model, task, SELECTED, "scramble")


def test_neuron_index_validates():
    assert neuron_index(torch.tensor([True, False, True]), 3).tolist() == [0, 2]
    for bad in ([3], [-1], [1, 1]):
        with pytest.raises(ValueError):
            neuron_index(bad, 3)
    with pytest.raises(ValueError, match="mask"):
        neuron_index(torch.ones(4, dtype=torch.bool), 3)


def test_fourier_neurons_are_clean_and_at_a_key_frequency(generator):
    """Hand-made activations, injected by a user hook: neurons 0-9 are cos(w_3 (a + b)) (key: most of the variance),
    neuron 10 is a tiny clean cos(w_7 (a + b)) (clean, but 7 is no key frequency), the rest small noise."""
    model, _, task = model_pair()
    p, d_mlp = task.p, 64
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    w = 2 * torch.pi / p
    acts = 0.1 * torch.randn(p * p, d_mlp, generator=generator)
    acts[:, :10] = torch.cos(w * 3 * (a + b)[:, None] + torch.arange(10))
    acts[:, 10] = 0.05 * torch.cos(w * 7 * (a + b))
    model.add_hook(POST, lambda post, hook: acts[:, None, :].expand(-1, post.shape[1], -1).clone())
    assert fourier_neurons(model, task).tolist() == list(range(10))
    assert fourier_neurons(model, task, frac_threshold=1.01).tolist() == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_interventions_on_cuda():
    recipient, donor, task = model_pair()
    on_cpu = neuron_intervention_metrics(recipient, task, SELECTED, "patch", donor=donor)
    on_gpu = neuron_intervention_metrics(recipient.cuda(), task, SELECTED, "patch", donor=donor.cuda())
    assert on_gpu == pytest.approx(on_cpu, rel=1e-4, abs=1e-6)
    mean_gpu = neuron_intervention_metrics(recipient, task, SELECTED, "mean")
    mean_cpu = neuron_intervention_metrics(recipient.cpu(), task, SELECTED, "mean")
    assert mean_gpu == pytest.approx(mean_cpu, rel=1e-4, abs=1e-6)
    new = transplant_neuron_weights(recipient.cuda(), donor.cpu(), SELECTED)
    assert new.blocks[0].mlp.W_in.is_cuda
