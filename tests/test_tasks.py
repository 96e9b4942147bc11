import pytest
import torch

from grokinterp.config import ConfigError, TaskConfig
from grokinterp.tasks import make_split, make_task

REFERENCE = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: next(c for c in range(p) if (c * b) % p == a),
    "x2+y2": lambda a, b, p: (a * a + b * b) % p,
    "x2+xy+y2": lambda a, b, p: (a * a + a * b + b * b) % p,
    "x3+xy": lambda a, b, p: (a**3 + a * b) % p,
}


@pytest.mark.parametrize("op", sorted(REFERENCE))
def test_labels_match_brute_force(op):
    p = 13
    task = make_task(TaskConfig(p=p, op=op, frac_train=0.5))
    pairs = [(a, b) for a in range(p) for b in range(p) if not (op == "div" and b == 0)]
    assert task.tokens.tolist() == [[a, b, p] for a, b in pairs]
    assert task.labels.tolist() == [REFERENCE[op](a, b, p) for a, b in pairs]


def test_split_is_a_deterministic_partition():
    t1, t2 = make_task(TaskConfig(p=17, seed=3)), make_task(TaskConfig(p=17, seed=3))
    assert torch.equal(t1.train_idx, t2.train_idx)
    assert sorted(torch.cat([t1.train_idx, t1.test_idx]).tolist()) == list(range(17 * 17))
    assert len(t1.train_idx) == int(0.3 * 17 * 17)
    t3 = make_task(TaskConfig(p=17, seed=4))
    assert not torch.equal(t1.train_idx, t3.train_idx)


def test_stored_split_replays_exactly():
    task = make_task(TaskConfig(p=11))
    again = make_task(TaskConfig(p=11, seed=12345), (task.train_idx, task.test_idx))
    assert torch.equal(again.train_tokens, task.train_tokens) and torch.equal(again.test_labels, task.test_labels)


def test_random_table_is_fixed_by_seed_and_not_an_operation():
    t1 = make_task(TaskConfig(p=31, op="random", seed=1))
    t2 = make_task(TaskConfig(p=31, op="random", seed=1))
    assert torch.equal(t1.labels, t2.labels)
    add = make_task(TaskConfig(p=31, op="add")).labels
    assert (t1.labels == add).float().mean() < 0.2
    assert len(t1.labels.unique()) > 25


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ConfigError, match="not prime"):
        TaskConfig(p=100)
    with pytest.raises(ConfigError, match="task.op"):
        TaskConfig(op="pow")
    with pytest.raises(ValueError, match="partition"):
        make_task(TaskConfig(p=11), (torch.arange(5), torch.arange(5, 100)))
    with pytest.raises(ConfigError, match="empty"):
        make_split(10, 0.01, 0)


def test_python_shuffle_split_is_nanda_et_al_gen_train_test():
    import random

    from grokinterp.config import TaskConfig
    from grokinterp.tasks import make_task

    p, seed = 17, 999
    pairs = [(i, j, p) for i in range(p) for j in range(p)]
    random.seed(seed)
    random.shuffle(pairs)
    cut = int(0.3 * len(pairs))
    task = make_task(TaskConfig(p=p, frac_train=0.3, seed=seed, shuffle="python"))
    assert {tuple(t) for t in task.train_tokens.tolist()} == {tuple(x) for x in pairs[:cut]}
    assert {tuple(t) for t in task.test_tokens.tolist()} == {tuple(x) for x in pairs[cut:]}
