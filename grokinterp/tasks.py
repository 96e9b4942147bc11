"""Modular-arithmetic data: a∘b mod p as token sequences [a, b, =] with `=` = p.

The dataset holds every valid pair (a, b) in row-major order (a outer, b inner);
`div` drops b = 0. The train/test split is a deterministic permutation from the
data seed and is stored with each run (`split.safetensors`) so replays are exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import OPS, ConfigError, TaskConfig, is_prime


def apply_op(op: str, a: Tensor, b: Tensor, p: int, seed: int = 0) -> Tensor:
    """Labels c = a∘b mod p for int64 tensors a, b (b != 0 for div).

    `random` is the control task: labels from a fixed random function of (a, b)
    drawn with `seed`: memorizable, not generalizable.
    """
    if op == "add":
        return (a + b) % p
    if op == "sub":
        return (a - b) % p
    if op == "mul":
        return (a * b) % p
    if op == "div":
        if bool((b % p == 0).any()):
            raise ValueError("div is undefined for b = 0 mod p")
        b_inv = torch.tensor([pow(int(x), p - 2, p) for x in range(p)])[b % p]
        return (a * b_inv) % p
    if op == "x2+y2":
        return (a * a + b * b) % p
    if op == "x2+xy+y2":
        return (a * a + a * b + b * b) % p
    if op == "x3+xy":
        return (a * a * a + a * b) % p
    if op == "random":
        generator = torch.Generator().manual_seed(seed)
        table = torch.randint(0, p, (p, p), generator=generator)
        return table[a % p, b % p]
    raise ConfigError(f"task.op={op!r} is not valid; choose one of {list(OPS)}")


def make_split(n_examples: int, frac_train: float, seed: int, shuffle: str = "torch") -> tuple[Tensor, Tensor]:
    """Deterministic split of range(n_examples): (sorted train indices, sorted test indices).

    The first floor(frac_train * n) of a seeded permutation train. `shuffle` picks the permutation:
    "torch" is `torch.manual_seed(seed); torch.randperm(n)` (TransformerLens's Grokking_Demo);
    "python" is `random.seed(seed); random.shuffle(pairs)` on the row-major pair list (Nanda et al.).
    """
    if shuffle == "python":
        order = list(range(n_examples))
        random.Random(seed).shuffle(order)
        perm = torch.tensor(order, dtype=torch.int64)
    elif shuffle == "torch":
        perm = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed))
    else:
        raise ConfigError(f"task.shuffle={shuffle!r} is not valid; choose one of ['torch', 'python']")
    n_train = int(frac_train * n_examples)  # floor, as Nanda et al. and the TL Grokking_Demo cut it
    if not 0 < n_train < n_examples:
        raise ConfigError(f"task.frac_train={frac_train} leaves an empty train or test split of {n_examples} pairs")
    return perm[:n_train].sort().values, perm[n_train:].sort().values


@dataclass(frozen=True)
class ModularTask:
    """All pairs of a task, their labels, and the split.

    Attributes:
        config: the TaskConfig.
        a, b: operands, int64 [n_examples].
        tokens: int64 [n_examples, 3], rows [a, b, p].
        labels: int64 [n_examples].
        train_idx, test_idx: int64 indices into the rows above.
    """

    config: TaskConfig
    a: Tensor
    b: Tensor
    tokens: Tensor
    labels: Tensor
    train_idx: Tensor
    test_idx: Tensor

    @property
    def p(self) -> int:
        return self.config.p

    @property
    def op(self) -> str:
        return self.config.op

    @property
    def train_tokens(self) -> Tensor:
        return self.tokens[self.train_idx]

    @property
    def train_labels(self) -> Tensor:
        return self.labels[self.train_idx]

    @property
    def test_tokens(self) -> Tensor:
        return self.tokens[self.test_idx]

    @property
    def test_labels(self) -> Tensor:
        return self.labels[self.test_idx]

    def to(self, device: str | torch.device) -> "ModularTask":
        moved = {k: getattr(self, k).to(device) for k in ("a", "b", "tokens", "labels", "train_idx", "test_idx")}
        return ModularTask(config=self.config, **moved)


def all_pairs(p: int, op: str) -> tuple[Tensor, Tensor]:
    """Operands of every valid pair, a outer and b inner; div skips b = 0."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    if op == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
    return a, b


def make_task(config: TaskConfig, split: tuple[Tensor, Tensor] | None = None) -> ModularTask:
    """Build the task; `split` (train_idx, test_idx) replays a stored split exactly."""
    if not is_prime(config.p):
        raise ConfigError(f"p={config.p} is not prime")
    a, b = all_pairs(config.p, config.op)
    labels = apply_op(config.op, a, b, config.p, seed=config.seed)
    tokens = torch.stack([a, b, torch.full_like(a, config.p)], dim=1)
    if split is None:
        split = make_split(len(a), config.frac_train, config.seed, config.shuffle)
    train_idx, test_idx = (t.to(torch.int64) for t in split)
    n = len(a)
    covered = torch.cat([train_idx, test_idx])
    if covered.numel() != n or not torch.equal(covered.sort().values, torch.arange(n)):
        raise ValueError(f"split does not partition the {n} pairs of p={config.p}, op={config.op}")
    return ModularTask(config, a, b, tokens, labels, train_idx, test_idx)
