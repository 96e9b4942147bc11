"""The copyable scripts in examples/ run (a few steps) and print what they promise."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, args", [("grokfast_by_hand", ["--steps", "3"]),
                                        ("stencil_by_hand", ["--steps", "3", "--offsets=-1,0,1"]),
                                        ("stencil_by_hand", ["--steps", "2", "--offsets="])])
def test_hand_written_loops_train(name, args, capsys):
    load(name).main(args)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("step     0") and lines[-1].startswith(f"step {int(args[1]) - 1:5d}")
    assert all("test acc" in line for line in lines)


def test_stencil_pairs_follow_the_seed_offsets():
    pairs = load("stencil_by_hand").stencil_pairs([-1, 0, 1], "x_t", "y_t", ("x_prev", "y_prev"))
    assert pairs == {-1: ("x_t", "y_prev"), 0: ("x_t", "y_t"), 1: ("x_prev", "y_t")}
    assert load("stencil_by_hand").stencil_pairs([-1, 1], "x", "y", None) == {}
