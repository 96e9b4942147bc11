import math

import pytest
import torch
import torch.nn.functional as F

from grokinterp.config import ConfigError
from grokinterp.tasks import make_task
from grokinterp.train import PLUGINS, Plugin, make_trainer, register_plugin

from conftest import tiny_config


def trainer_for(**overrides):
    config = tiny_config(**overrides)
    return make_trainer(config, make_task(config.task))


def test_metrics_describe_the_parameters_before_the_update():
    t = trainer_for()
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    with torch.no_grad():
        logits = t.model(t.train_tokens)[:, -1]
        expected_loss = F.cross_entropy(logits, t.train_labels).item()
        expected_test = (t.model(t.test_tokens)[:, -1].argmax(-1) == t.test_labels).float().mean().item()
    row = t.train_step()
    assert row["step"] == 0 and t.step == 1
    assert row["train_loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert row["test_acc"] == pytest.approx(expected_test)
    assert row["weight_norm_sq"] == pytest.approx(sum(v.pow(2).sum().item() for v in before.values()), rel=1e-5)
    assert row["wnorm_sq/blocks.0.mlp.W_in"] == pytest.approx(before["blocks.0.mlp.W_in"].pow(2).sum().item(), rel=1e-5)
    assert math.isnan(row["mom_grad_cos"])  # no momentum before the first step
    assert not torch.equal(before["embed.W_E"], t.model.embed.W_E)


def test_momentum_gradient_cosine_and_gradient_norm():
    t = trainer_for()
    t.train_step()
    momentum = {p: t.optimizer.state[p]["exp_avg"].clone() for p in t.params.values()}
    captured = {}

    class Capture(Plugin):
        def after_backward(self, trainer):
            captured.update({p: p.grad.clone() for p in trainer.params.values()})

    t.plugins.append(Capture())
    row = t.train_step()
    m = torch.cat([momentum[p].flatten() for p in t.params.values()])
    g = torch.cat([captured[p].flatten() for p in t.params.values()])
    assert row["mom_grad_cos"] == pytest.approx(F.cosine_similarity(m, g, dim=0).item(), abs=1e-5)
    assert row["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-5)
    assert math.isnan(row["test_acc"])  # eval_every=5: step 1 is not evaluated


def test_warmup_is_linear():
    t = trainer_for(optim__warmup_steps=10, optim__lr=1e-2)
    assert [t.lr_at(s) for s in (0, 5, 10, 50)] == pytest.approx([0.0, 5e-3, 1e-2, 1e-2])


def test_adam_couples_weight_decay_into_the_gradient():
    adamw, adam = trainer_for(optim__name="adamw"), trainer_for(optim__name="adam")
    assert isinstance(adam.optimizer, torch.optim.Adam) and not isinstance(adam.optimizer, torch.optim.AdamW)
    adamw.train_step(), adam.train_step()
    assert not torch.equal(adamw.model.embed.W_E, adam.model.embed.W_E)


def test_gradient_filter_plugin_changes_the_update():
    """A plug-in that doubles gradients before the step: Adam is scale-invariant except for eps, so use SGD-like check
    on the momentum buffer instead: exp_avg after the first step is (1 - beta1) * filtered gradient."""

    class Double(Plugin):
        def after_backward(self, trainer):
            for p in trainer.params.values():
                p.grad.mul_(2.0)

    t = trainer_for()
    grads = {}

    class Capture(Plugin):
        def after_backward(self, trainer):
            grads.update({p: p.grad.clone() for p in trainer.params.values()})

    t.plugins += [Capture(), Double()]
    t.train_step()
    p = t.params["blocks.0.mlp.W_in"]
    torch.testing.assert_close(t.optimizer.state[p]["exp_avg"], (1 - 0.9) * 2.0 * grads[p])


def test_auxiliary_loss_gradient_is_lambda_times_its_gradient():
    lam = 0.1

    class WeightPenalty(Plugin):
        def extra_loss(self, trainer):
            return lam * trainer.model.unembed.W_U.pow(2).sum()

    plain, penalized = trainer_for(), trainer_for()
    seen = {}
    for t, key in ((plain, "plain"), (penalized, "penalized")):
        class Capture(Plugin):
            def after_backward(self, trainer, key=key):
                seen[key] = trainer.model.unembed.W_U.grad.clone()
        t.plugins.append(Capture())
    penalized.plugins.insert(0, WeightPenalty())
    W_U = plain.model.unembed.W_U.detach().clone()
    plain.train_step(), penalized.train_step()
    torch.testing.assert_close(seen["penalized"] - seen["plain"], lam * 2 * W_U, atol=1e-6, rtol=1e-4)


def test_registered_plugin_from_config_and_its_metrics():
    @register_plugin("test_counter")
    class Counter(Plugin):
        def __init__(self, start: int = 0):
            self.count = start

        def after_step(self, trainer):
            self.count += 1

        def metrics(self):
            return {"test_counter/count": float(self.count)}

        def state_dict(self):
            return {"count": torch.tensor(self.count)}

    try:
        t = trainer_for(plugins={"test_counter": {"start": 10}})
        assert t.train_step()["test_counter/count"] == 11.0
        assert int(t.state_dict()["plugin/test_counter/count"]) == 11
        with pytest.raises(ConfigError, match="bad arguments"):
            trainer_for(plugins={"test_counter": {"nope": 1}})
    finally:
        PLUGINS.pop("test_counter")
    with pytest.raises(ConfigError, match="unknown plug-in"):
        trainer_for(plugins={"test_counter": {}})


def test_tiny_run_memorizes_then_groks(tiny_run):
    s = tiny_run.summary
    assert s["status"] == "grokked", s
    assert s["memorization_step"] < s["grokking_step"] and s["gap"] == s["grokking_step"] - s["memorization_step"]
    m = tiny_run.metrics
    assert m["train_acc"][int(s["memorization_step"])] >= 0.99
    assert m["train_acc"][: int(s["memorization_step"])].max() < 0.99


def test_early_stop_after_grokking(tiny_run):
    s = tiny_run.summary
    assert s["final_step"] == s["grokking_step"] + 20 == tiny_run.steps[-1]
    assert tiny_run.metrics["step"][-1] == s["final_step"]


def test_train_run_gives_the_callers_thread_count_back(tmp_path):
    from grokinterp.runs import train_run

    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    config = tiny_config(train__steps=3, train__threads=wanted)
    try:
        torch.set_num_threads(before)
        train_run(config, tmp_path / "run", progress=False)
        assert torch.get_num_threads() == before  # a notebook keeps its own thread count
        with pytest.raises(ConfigError, match="already holds a run"):
            train_run(config, tmp_path / "run", progress=False)
        assert torch.get_num_threads() == before  # also after a refused start
    finally:
        torch.set_num_threads(before)


class MemoryWriter:
    """A `CheckpointWriter` that keeps everything in memory: the loop needs no run directory."""

    def __init__(self):
        self.checkpoints, self.states, self.rows, self.summary, self.discarded = {}, {}, [], None, None

    def write_checkpoint(self, step, state_dict):
        self.checkpoints[step] = {k: v.clone() for k, v in state_dict.items()}

    def write_state(self, step, tensors):
        self.states[step] = tensors

    def append_metrics(self, rows):
        self.rows = list(rows)

    def write_summary(self, summary):
        self.summary = summary

    def discard_from(self, step):
        self.discarded = step


def test_the_loop_writes_through_any_writer_and_matches_train_run(tmp_path):
    """`train_loop` with an in-memory writer gives the same checkpoints (torch.equal), metric rows and milestones
    as `runs.train_run` writing a run directory from the same config: the directory is only where they go."""
    from grokinterp.runs import Run, train_run
    from grokinterp.train import train_loop

    config = tiny_config(**{"train.steps": 40, "train.ckpt_every": 10, "train.state_every": 20})
    torch.manual_seed(config.model.seed + 1)  # as train_run seeds the global RNG before building the trainer
    writer = MemoryWriter()
    summary = train_loop(make_trainer(config, make_task(config.task)), writer, [], progress=False)
    run = train_run(config, tmp_path / "run", progress=False)
    assert sorted(writer.checkpoints) == run.steps == [0, 10, 20, 30, 40]
    assert sorted(writer.states) == run.state_steps == [0, 20, 40]
    for step in run.steps:
        saved = run.state_dict(step)
        assert all(torch.equal(saved[k], v) for k, v in writer.checkpoints[step].items())
    assert [r["step"] for r in writer.rows] == list(run.metrics["step"])
    assert all(summary[k] == run.summary[k] for k in ("status", "memorization_step", "grokking_step", "final_step"))
    assert writer.discarded is None
