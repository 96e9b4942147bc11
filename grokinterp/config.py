"""Run configuration: frozen dataclasses, presets as plain override dicts, typed overrides.

A `RunConfig` round-trips exactly through `config.json` (`to_dict` / `from_dict`).
Derived values are properties; `__post_init__` only validates.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

OPS = ("add", "sub", "mul", "div", "x2+y2", "x2+xy+y2", "x3+xy", "random")
ACT_FNS = ("relu", "gelu")
NORMALIZATION_TYPES = (None, "LN")
INITS = ("tl", "nanda")
SHUFFLES = ("torch", "python")
TRAIN_BIASES = ("all", "mlp", "none")
OPTIMIZERS = ("adamw", "adam")
LOSS_DTYPES = ("float32", "float64")


class ConfigError(ValueError):
    """A bad config value, unknown key or bad override; the CLI turns it into exit 2."""


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {list(choices)}")


MAX_P = 1_000_003  # p² pairs: beyond this no machine holds the task (train_run also checks memory)
DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")  # what train.device may name; availability is checked by train_run


def _check_finite(section: str, obj) -> None:
    """Every float field of a config section must be finite (a NaN or inf cannot be written to config.json)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{f.name}={value!r} must be a finite number")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}={value!r} must be {bound}")


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))


@dataclass(frozen=True)
class TaskConfig:
    """The modular-arithmetic task a∘b mod p and its train/test split."""

    p: int = 113
    op: str = "add"
    frac_train: float = 0.3
    seed: int = 598  # data seed: which pairs are in the train split
    # how the seed shuffles the pairs: "torch" = torch.manual_seed(seed); randperm (TL's Grokking_Demo),
    # "python" = random.seed(seed); random.shuffle(pairs) (Nanda et al.'s original code)
    shuffle: str = "torch"

    def __post_init__(self):
        _check_finite("task", self)
        _check_choice("task.shuffle", self.shuffle, SHUFFLES)
        if not isinstance(self.p, int) or not 2 <= self.p <= MAX_P:
            raise ConfigError(f"task.p={self.p!r} must be a prime between 2 and {MAX_P:,} (the task holds p² pairs)")
        if not is_prime(self.p):
            raise ConfigError(f"task.p={self.p} is not prime; modular-arithmetic tasks need a prime p (e.g. 53, 97, 113)")
        _check_choice("task.op", self.op, OPS)
        if not 0.0 < self.frac_train < 1.0:
            raise ConfigError(f"task.frac_train={self.frac_train} must lie strictly between 0 and 1")
        if not 0 < int(self.frac_train * self.p * self.p) < self.p * self.p:
            raise ConfigError(f"task.frac_train={self.frac_train} leaves an empty train or test split of the "
                              f"{self.p * self.p} pairs of p={self.p}")

    @property
    def d_vocab(self) -> int:
        return self.p + 1  # tokens 0..p-1 and '=' (= p)

    @property
    def d_vocab_out(self) -> int:
        return self.p


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and initialisation; names follow TransformerLens's HookedTransformerConfig."""

    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    act_fn: str = "relu"
    normalization_type: str | None = None
    init: str = "tl"  # "tl": TL 3's gpt2 init; "nanda": Nanda et al.'s randn/sqrt(d_model)
    train_biases: str = "all"  # which biases train: all, only the MLP's (Nanda et al.), none
    seed: int = 999  # init seed

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"model.{name}={getattr(self, name)!r} must be a positive integer")
        _check_choice("model.act_fn", self.act_fn, ACT_FNS)
        _check_choice("model.normalization_type", self.normalization_type, NORMALIZATION_TYPES)
        _check_choice("model.init", self.init, INITS)
        _check_choice("model.train_biases", self.train_biases, TRAIN_BIASES)


@dataclass(frozen=True)
class OptimConfig:
    """Full-batch Adam(W). `adam` adds weight decay to the gradient (coupled L2)."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8
    warmup_steps: int = 0  # linear warm-up from 0 to lr

    def __post_init__(self):
        _check_finite("optim", self)
        _check_choice("optim.name", self.name, OPTIMIZERS)
        _check_positive("optim.lr", self.lr)
        _check_positive("optim.weight_decay", self.weight_decay, allow_zero=True)
        _check_positive("optim.eps", self.eps)
        _check_positive("optim.warmup_steps", self.warmup_steps, allow_zero=True)
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"optim.{name}={getattr(self, name)} must lie in [0, 1)")

    def lr_at(self, step: int) -> float:
        """The learning rate of step `step`: linear warm-up from 0 over `warmup_steps`, then constant `lr`.

        >>> OptimConfig(lr=1e-2, warmup_steps=10).lr_at(5)
        0.005
        """
        warmup = self.warmup_steps
        return self.lr * (min(1.0, step / warmup) if warmup else 1.0)


@dataclass(frozen=True)
class TrainConfig:
    """Schedule of the loop, its checkpoints and its stop test."""

    steps: int = 25_000
    eval_every: int = 10  # test loss/accuracy every k steps (train metrics are every step)
    ckpt_every: int = 50  # model weights; 50 resolves a 150-step oscillation
    state_every: int = 500  # optimizer, RNG and plug-in state for --resume and curvature
    early_stop_after: int | None = None  # stop this many steps after grokking; None: never
    loss_dtype: str = "float32"
    threads: int | None = None  # torch threads; None: torch's default
    device: str = "cpu"

    def __post_init__(self):
        for name in ("steps", "eval_every", "ckpt_every", "state_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self, name)!r} must be a positive integer")
        if self.state_every % self.ckpt_every:
            raise ConfigError(
                f"train.state_every={self.state_every} must be a multiple of train.ckpt_every={self.ckpt_every} "
                "(resume restarts from a step that has both)"
            )
        if self.early_stop_after is not None and self.early_stop_after < 0:
            raise ConfigError(f"train.early_stop_after={self.early_stop_after} must be >= 0 or None")
        _check_choice("train.loss_dtype", self.loss_dtype, LOSS_DTYPES)
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"train.threads={self.threads} must be >= 1 or None")
        if not isinstance(self.device, str) or not DEVICE_RE.match(self.device):
            raise ConfigError(f"train.device={self.device!r} is not a device; choose cpu, cuda, cuda:N or mps")


@dataclass(frozen=True)
class RunConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Training plug-ins by registered name -> their keyword arguments, e.g. {"grokfast_ema": {"alpha": 0.98}}.
    plugins: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.plugins, dict):
            raise ConfigError(f"plugins={self.plugins!r} must be a dict of plug-in name -> keyword arguments")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        data = dict(data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config section(s) {sorted(unknown)}; valid: {SECTIONS}")
        kwargs = {}
        for section, sub_cls in _SECTION_CLASSES.items():
            values = data.get(section, {})
            valid = {f.name for f in dataclasses.fields(sub_cls)}
            bad = set(values) - valid
            if bad:
                raise ConfigError(f"unknown key(s) {sorted(f'{section}.{k}' for k in bad)}; valid: {sorted(valid)}")
            kwargs[section] = sub_cls(**values)
        return cls(**kwargs, plugins=dict(data.get("plugins", {})))


_SECTION_CLASSES = {"task": TaskConfig, "model": ModelConfig, "optim": OptimConfig, "train": TrainConfig}
SECTIONS = sorted([*_SECTION_CLASSES, "plugins"])

# Presets: only what differs from the defaults above (the defaults are the probe-stencil write-up's Nanda configuration).
PRESETS: dict[str, dict[str, Any]] = {
    # The probe-stencil write-up / Nanda et al. 2023 exactly: p 113, 1 layer, 30% train, AdamW wd 1, seed 999 for the init and
    # the split. Nanda et al.'s code: their init stream and biases (only the MLP's train), their split
    # (random.shuffle of the pair list), 10-step warm-up, float64 log-softmax. Measured: memorized at 139,
    # grokked at 5,160 (the probe-stencil write-up: 5,760; DESIGN's plain reimplementation: 140 / 5,060).
    "nanda": {
        "task.seed": 999,
        "task.shuffle": "python",
        "model.init": "nanda",
        "model.train_biases": "mlp",
        "optim.warmup_steps": 10,
        "train.loss_dtype": "float64",
        "train.early_stop_after": 1000,  # dense series ends ~1,000 steps after grokking
    },
    # `make train`'s default: small p and a larger train fraction so it groks in about a minute on 2 cores,
    # still memorizing first (train acc >= 0.99 while test acc < 0.5).
    "quick": {
        "task.p": 59,
        "task.frac_train": 0.4,
        "model.init": "nanda",
        "model.train_biases": "mlp",
        "optim.lr": 3e-3,
        "optim.warmup_steps": 10,
        "train.steps": 4000,
        "train.early_stop_after": 300,
    },
    # The grokking-dynamics write-up's model: a+b mod 113, 2 layers (d_model 128, 4 heads, d_mlp 512), AdamW
    # wd 1, beta1 0.9; 3,000-step budget as in its weight-decay sweep. Nanda et al.'s init and biases as in
    # the other presets. Train fraction and learning rate: being calibrated so that it memorizes first and
    # groks near step 1,500 (docs/reproductions/calibration.md); these are the first candidate's.
    "twolayer": {
        "model.n_layers": 2,
        "model.init": "nanda",
        "model.train_biases": "mlp",
        "task.frac_train": 0.3,
        "optim.lr": 3e-3,
        "train.steps": 3000,
    },
    # Sweep workhorse: one run in at most about a minute on one thread.
    "fast": {
        "task.p": 53,
        "task.frac_train": 0.4,
        "model.init": "nanda",
        "model.train_biases": "mlp",
        "optim.lr": 3e-3,
        "train.steps": 3000,
        "train.early_stop_after": 200,
        "train.threads": 1,
    },
}


PRESET_NOTES = {
    "nanda": "Nanda et al. 2023 (the probe-stencil write-up's baseline): p 113, 1 layer, 30% train, AdamW wd 1, seed 999, their init, split "
             "and float64 loss; groks at 5,160",
    "quick": "make train's default: p 59, 40% train; memorizes first, groks in about a minute on 2 cores",
    "twolayer": "the grokking-dynamics write-up's a+b mod 113 2-layer transformer, 3,000-step budget; "
                "30% train and lr 3e-3 chosen so it groks near step 1,500 (docs/reproductions/calibration.md)",
    "fast": "sweep workhorse: p 53, one torch thread, early stop; about a minute per run",
}


def _field_type(section_cls, key: str):
    hints = typing.get_type_hints(section_cls)
    return hints[key]


def _coerce(full_key: str, value: Any, expected) -> Any:
    """Check `value` against a dataclass field type (int, float, str, bool, `X | None`)."""
    args = typing.get_args(expected)
    if args and type(None) in args:
        if value is None:
            return None
        expected = next(a for a in args if a is not type(None))
    if value is None and expected is str:
        return "none"  # the bare word `none` is a string where None is not allowed (model.train_biases=none)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is dict and isinstance(value, dict):
        return value
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{full_key}={value!r} has type {type(value).__name__}; expected {getattr(expected, '__name__', expected)}")


def parse_literal(text: str) -> Any:
    """`3e-4` -> 3e-4, `None` -> None, `relu` -> 'relu' (a bare word is a string)."""
    if text in ("null", "none"):
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_override_args(extra: list[str]) -> dict:
    """['--optim.lr=3e-4', '--task.p', '97'] -> {'optim.lr': 3e-4, 'task.p': 97}."""
    overrides, i, extra = {}, 0, list(extra)
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            raise ConfigError(f"unrecognized argument {arg!r}; config overrides look like --optim.lr=3e-4 (see --help)")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra):
                raise ConfigError(f"--{key} needs a value, e.g. --{key}=VALUE")
            value, i = extra[i + 1], i + 1
        overrides[key] = parse_literal(value)
        i += 1
    return overrides


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a new config with dotted overrides applied, e.g. {"optim.lr": 3e-4, "task.p": 97}.

    Unknown keys and wrong types raise ConfigError naming the key and the valid choices.
    """
    data = config.to_dict()
    for full_key, value in overrides.items():
        section, _, key = full_key.partition(".")
        if section == "plugins":
            if key:
                data["plugins"][key] = _coerce(full_key, value, dict)
            else:
                data["plugins"] = _coerce(full_key, value, dict)
            continue
        if section not in _SECTION_CLASSES:
            raise ConfigError(f"unknown config key {full_key!r}: section must be one of {SECTIONS}")
        section_cls = _SECTION_CLASSES[section]
        valid = [f.name for f in dataclasses.fields(section_cls)]
        if key not in valid:
            raise ConfigError(f"unknown config key {full_key!r}; valid keys of {section}: {valid}")
        data[section][key] = _coerce(full_key, value, _field_type(section_cls, key))
    return RunConfig.from_dict(data)


def preset(name: str, **overrides: Any) -> RunConfig:
    """The named preset as a RunConfig; keyword overrides use `__` for the dot (`optim__lr=3e-4`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    merged = dict(PRESETS[name])
    merged.update({k.replace("__", "."): v for k, v in overrides.items()})
    return apply_overrides(RunConfig(), merged)


def all_keys() -> list[tuple[str, Any, str]]:
    """Every overridable key with its default and type name, for `--help`."""
    rows = []
    for section, section_cls in _SECTION_CLASSES.items():
        hints = typing.get_type_hints(section_cls)
        for f in dataclasses.fields(section_cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            rows.append((f"{section}.{f.name}", default, _type_name(hints[f.name])))
    return rows


def _type_name(hint) -> str:
    """`int`, `float`, `str | None`: a type as it is written in code."""
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def step_flops(config: RunConfig, n_train: int | None = None) -> float:
    """Estimated matmul FLOPs of one training step, evaluation share included: 3x the forward (backward costs
    about twice the forward) on the training set, plus a test forward every `train.eval_every` steps.

    Forward per example (2 FLOPs per multiply-add), as `last_position_only` computes it: the last layer at the
    final position only (values and W_O, d_model·d_head·n_heads each; MLP in and out, d_model·d_mlp each),
    earlier layers at all 3 positions (Q, K, V, O and the MLP), the unembedding (d_model·p). Attention scores
    over 3 positions and the p-row token tables are negligible. The `fast` preset: ~1.2 GFLOP a step.
    """
    m, t = config.model, config.task
    pairs = t.p * t.p
    n_train = round(t.frac_train * pairs) if n_train is None else n_train
    attn = m.d_model * m.n_heads * m.d_head
    mlp = 2 * m.d_model * m.d_mlp
    per_example = 2 * ((m.n_layers - 1) * 3 * (4 * attn + mlp) + 2 * attn + mlp + m.d_model * t.d_vocab_out)
    return per_example * (3 * n_train + (pairs - n_train) / config.train.eval_every)
