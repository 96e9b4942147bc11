import json

import pytest

from grokinterp.config import PRESETS, ConfigError, RunConfig, apply_overrides, parse_literal, preset


def test_defaults_are_seed001_nanda_configuration():
    c = preset("nanda")
    assert (c.task.p, c.task.op, c.task.frac_train) == (113, "add", 0.3)
    assert (c.model.n_layers, c.model.d_model, c.model.n_heads, c.model.d_head, c.model.d_mlp) == (1, 128, 4, 32, 512)
    assert (c.model.act_fn, c.model.normalization_type, c.model.seed) == ("relu", None, 999)
    assert (c.optim.name, c.optim.lr, c.optim.weight_decay, c.optim.beta1, c.optim.beta2) == ("adamw", 1e-3, 1.0, 0.9, 0.98)
    assert (c.task.d_vocab, c.task.d_vocab_out) == (114, 113)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    c = preset(name)
    assert RunConfig.from_dict(json.loads(c.to_json())) == c


def test_overrides_are_typed():
    c = apply_overrides(RunConfig(), {"optim.lr": 3e-4, "task.p": 97, "train.early_stop_after": None, "optim.weight_decay": 1})
    assert c.optim.lr == 3e-4 and c.task.p == 97 and c.train.early_stop_after is None
    assert isinstance(c.optim.weight_decay, float)
    assert c.task.d_vocab == 98  # derived from p, not stored


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"optim.lrr": 1.0}, "optim.lrr"),
        ({"nosuch.key": 1}, "nosuch.key"),
        ({"task.p": "abc"}, "task.p"),
        ({"task.p": 100}, "not prime"),
        ({"task.op": "pow"}, "task.op"),
        ({"model.act_fn": "tanh"}, "model.act_fn"),
        ({"task.frac_train": 1.5}, "task.frac_train"),
        ({"train.state_every": 75}, "multiple"),
        ({"model.n_layers": True}, "model.n_layers"),
    ],
)
def test_bad_overrides_name_the_key(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        apply_overrides(RunConfig(), overrides)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("nope")


def test_parse_literal():
    assert parse_literal("3e-4") == 3e-4 and parse_literal("None") is None and parse_literal("relu") == "relu"
    assert parse_literal("true") is True and parse_literal("[1, 2]") == [1, 2]


def test_bare_word_none_is_a_string_where_the_key_is_not_optional():
    from grokinterp.config import RunConfig, apply_overrides, parse_override_args

    config = apply_overrides(RunConfig(), parse_override_args(["--model.train_biases=none", "--train.threads=none"]))
    assert config.model.train_biases == "none"
    assert config.train.threads is None
