"""Fuzz the run directory (issue 17): flip random bytes in every file of a tiny run, then read it every way a user
does (`grokinterp verify`, `grokinterp analyze`, the `Run` reader, a replay). Each must either give the true values or fail with
one message naming the damaged file: never a traceback, never a silently different number.

`GROKINTERP_FUZZ_FLIPS` sets the damaged copies per file (default 4; the closing note of issue 17 used more).
The counts are printed (`pytest -s`) and checked.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from grokinterp.analysis import replay
from grokinterp.cli import main
from grokinterp.runs import Run, RunError

from conftest import train_tiny

SCHEDULE = dict(train__steps=120, train__ckpt_every=20, train__state_every=40)
FLIPS = int(os.environ.get("GROKINTERP_FUZZ_FLIPS", "4"))


def truth(path: Path) -> dict:
    """Everything the readers give for an intact run: config, summary, metrics, split, weights, a replay."""
    run = Run(path)
    return {"config": run.config, "summary": run.summary, "metrics": run.metrics,
            "split": (run.task.train_idx, run.task.test_idx),
            "weights": {s: run.state_dict(s) for s in run.steps},
            "states": {s: run.optimizer_state(s) for s in run.state_steps},
            "spectra": replay(path, ["spectra"], progress=False)["spectra"]}


def same_arrays(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k]), equal_nan=True) for k in a)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def read_all(path: Path, true: dict) -> list[str]:
    """Read the run every way; returns what differs from the truth (empty: all true). RunError propagates."""
    run = Run(path)
    wrong = []
    wrong += [] if run.config == true["config"] else ["config"]
    wrong += [] if run.summary == true["summary"] else ["summary"]
    wrong += [] if same_arrays(run.metrics, true["metrics"]) else ["metrics"]
    split = (run.task.train_idx, run.task.test_idx)
    wrong += [] if all(torch.equal(a, b) for a, b in zip(split, true["split"])) else ["split"]
    wrong += [] if run.steps == list(true["weights"]) else ["steps"]
    wrong += [f"ckpt {s}" for s in run.steps if not same_tensors(run.model(s).state_dict(), true["weights"][s])]
    wrong += [f"state {s}" for s in run.state_steps if not same_tensors(run.optimizer_state(s), true["states"][s])]
    result = replay(path, ["spectra"], progress=False)["spectra"]
    wrong += [] if same_arrays(result, true["spectra"]) else ["replay"]
    return wrong


def flip_random(path: Path, rng: random.Random) -> bytes:
    """XOR 1 to 4 random bytes of `path` with random non-zero masks; returns the original bytes."""
    data = path.read_bytes()
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        damaged[rng.randrange(len(damaged))] ^= rng.randint(1, 255)
    path.write_bytes(bytes(damaged))
    return data


def cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


def fuzz_case(run_dir: Path, victim: Path, true: dict) -> str:
    """One damaged file: 'detected' (every failure names it), 'harmless' (all values true), 'silent' (a wrong
    value or verify passing a real difference), 'unnamed' (an error not naming the file), or 'traceback'."""
    name = str(victim)
    try:
        code, text = cli("verify", str(run_dir))
        analyzed, said = cli("analyze", str(run_dir), "--no-progress", "--analyses", "spectra")
    except Exception as e:  # noqa: BLE001  (anything but a clean exit is what this test hunts)
        return f"traceback: {type(e).__name__}: {e}"
    if analyzed not in (0, 1) or (analyzed == 1 and (victim.name not in said or len(said.strip().splitlines()) != 1)):
        return f"unnamed: analyze exit {analyzed}: {said.strip()[-300:]}"
    try:
        wrong = read_all(run_dir, true)
    except RunError as e:
        if name not in str(e) and victim.name not in str(e):
            return f"unnamed: {e}"
        return "detected" if code == 1 and victim.name in text else f"silent: verify exit {code} for {victim.name}"
    except Exception as e:  # noqa: BLE001
        return f"traceback: {type(e).__name__}: {e}"
    if wrong:
        return f"silent: {wrong}"
    if analyzed != 0:
        return f"silent: analyze refused an intact read ({said.strip()[-200:]})"
    return "harmless" if code in (0, 1) else f"silent: verify exit {code}"


def test_flipped_bytes_in_every_file_are_detected_or_harmless(tmp_path, capsys):
    pristine = train_tiny(tmp_path / "pristine", **SCHEDULE)
    true = truth(pristine)
    shutil.rmtree(pristine / "analysis")
    run_dir = tmp_path / "run"
    shutil.copytree(pristine, run_dir)
    files = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name != "LOCK")
    rng = random.Random(17)
    outcomes: dict[str, list[str]] = {}
    for victim in files:
        for _ in range(FLIPS):
            original = flip_random(victim, rng)
            try:
                outcome = fuzz_case(run_dir, victim, true)
            finally:
                victim.write_bytes(original)
                shutil.rmtree(run_dir / "analysis", ignore_errors=True)
                (run_dir / "report.html").unlink(missing_ok=True)
            outcomes.setdefault(outcome.split(":")[0], []).append(f"{victim.relative_to(run_dir)}: {outcome}")
    counts = {k: len(v) for k, v in outcomes.items()}
    with capsys.disabled():
        print(f"\nfuzz: {len(files)} files x {FLIPS} flips = {len(files) * FLIPS} damaged copies: {json.dumps(counts)}")
    problems = [line for k in ("silent", "unnamed", "traceback") for line in outcomes.get(k, [])]
    assert not problems, "\n".join(problems[:20])
    assert counts.get("detected", 0) >= 0.9 * len(files) * FLIPS  # almost every flip changes a hashed value
