"""Reliability of a run directory (issue 3, DESIGN.md "A run directory"), with real subprocesses.

- SIGKILL at random moments (many inside a checkpoint write), then `--resume`, ends bit-identical
  to an uninterrupted run: every parameter of every checkpoint, every optimizer moment, metrics, summary.
- A second writer of the same run directory fails with a clear error naming the first; the first is unaffected.
- NaN/inf loss: the run stops as "diverged"; only good checkpoints are kept.
- Bad config, unknown key, CLI misuse: exit 2, one error line naming the key, nothing written.
- A truncated or corrupted checkpoint: RunError naming the file; `--resume` skips it.
- `--resume` with a different config: exit 2, nothing modified.
- A kill while metrics.csv is being appended (it grows at every checkpoint): whole rows only, resume bit-identical.

Subprocesses start in about 4 s (importing transformer_lens), so each test starts as few as it can.
CPU results are bit-reproducible at a fixed thread count: every run here uses train.threads=1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grokinterp.config import preset
from grokinterp.runs import TEMP_RE, Run, RunError, list_steps, read_metrics_csv, step_filename

from conftest import tiny_config

DRIVER = Path(__file__).with_name("_resume_driver.py")
# conftest's tiny config, denser checkpoints, one thread; 290 steps so the last step is a checkpoint
# step but not a state step (the final save writes a state off the state_every grid).
CONFIG = tiny_config(train__steps=290, train__ckpt_every=10, train__state_every=20, train__threads=1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
VOLATILE_SUMMARY = {"wall_time_s", "steps_per_s"}  # the only summary fields a resume may change
VOLATILE_STATE = {"trainer/wall_time_s"}


def cli_overrides(config) -> list[str]:
    """The `--section.key=value` arguments that turn the `quick` preset (the CLI default) into `config`."""
    base, want = preset("quick").to_dict(), config.to_dict()
    assert not want["plugins"]
    return [f"--{section}.{key}={value!r}" for section in want if section != "plugins"
            for key, value in want[section].items() if base[section][key] != value]


ARGS = cli_overrides(CONFIG)


def cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "grokinterp.cli", *map(str, args)]


def driver(out: Path, fsync_delay: float | Path, *args: str | Path, log: Path) -> subprocess.Popen:
    """`grokinterp train --out OUT ARGS` with slow fsyncs; stdout is a pipe (READY first), stderr goes to `log`."""
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, str(DRIVER), str(fsync_delay), "train", "--no-progress", "--out",
                                 str(out), *ARGS, *map(str, args)], stdout=subprocess.PIPE, stderr=err,
                                env=ENV, bufsize=0)


def wait_ready(proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""
    assert line.startswith(b"READY"), f"driver did not start ({line!r}): {log.read_text()[-2000:]}"


@pytest.fixture
def keep_threads():
    """In-process training sets torch's thread count (train.threads); give the rest of the suite its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


class Reference:
    """CONFIG trained once, uninterrupted, by a fresh `python -m grokinterp.cli` like every run it is compared
    with. It starts at once in the background; `.path` waits for it (the kill test overlaps it)."""

    def __init__(self, out: Path):
        self.out = out
        self.proc = subprocess.Popen(cli("train", "--no-progress", "--out", out, *ARGS), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=ENV)

    @property
    def path(self) -> Path:
        if self.proc is not None:
            _, stderr = self.proc.communicate(timeout=600)
            assert self.proc.returncode == 0, stderr
            self.proc = None
            summary = Run(self.out).summary
            assert summary["final_step"] == 290 and summary["memorization_step"] is not None, summary
        return self.out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ref = Reference(tmp_path_factory.mktemp("reference") / "run")
    yield ref
    if ref.proc is not None:
        ref.proc.kill()
        ref.proc.wait()


def temp_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob("*") if TEMP_RE.match(p.name))


def same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_consistent(run_dir: Path) -> None:
    """What a kill must never break: every visible file is whole (safetensors load, JSON and CSV parse)."""
    for path in run_dir.rglob("*.safetensors"):
        if not TEMP_RE.match(path.name):
            load_file(path)  # raises on a half-written file
    for name in ("config.json", "summary.json"):
        if (run_dir / name).is_file():
            json.loads((run_dir / name).read_text())
    if (run_dir / "metrics.csv").is_file():
        rows = read_metrics_csv(run_dir / "metrics.csv")
        assert [r["step"] for r in rows] == list(range(len(rows)))


def assert_same_run(run_dir: Path, ref_dir: Path) -> None:
    """Bit-identical to the reference: every checkpoint tensor, every state tensor (optimizer moments and
    step counts, RNG, milestones), metrics (NaN-aware) and summary; nothing stray; everything loads."""
    run, ref = Run(run_dir), Run(ref_dir)
    assert temp_files(run_dir) == [], "stray temp files after completion"
    for path in run_dir.rglob("*.safetensors"):
        load_file(path)
    assert run.steps == ref.steps
    assert run.state_steps == ref.state_steps
    for step in ref.steps:
        got, want = run.state_dict(step), ref.state_dict(step)
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), f"ckpt step {step}: {key} differs"
    for step in ref.state_steps:
        got, want = run.optimizer_state(step), ref.optimizer_state(step)
        assert got.keys() == want.keys()
        for key in set(want) - VOLATILE_STATE:
            assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), f"state step {step}: {key} differs"
    final = run.optimizer_state(ref.state_steps[-1])
    moments = [k for k in final if k.endswith("/exp_avg") or k.endswith("/exp_avg_sq")]
    assert len(moments) == 2 * sum(1 for k in final if k.endswith("/exp_avg")) > 0
    got_rows, want_rows = read_metrics_csv(run_dir / "metrics.csv"), read_metrics_csv(ref_dir / "metrics.csv")
    assert len(got_rows) == len(want_rows) == 291
    for got, want in zip(got_rows, want_rows):
        assert list(got) == list(want)
        assert all(same_value(got[k], want[k]) for k in want), f"metrics row {want['step']} differs"
    got_summary, want_summary = run.summary, ref.summary
    for key in set(want_summary) - VOLATILE_SUMMARY:
        assert got_summary[key] == want_summary[key], f"summary {key}: {got_summary[key]} != {want_summary[key]}"
    assert json.loads((run_dir / "config.json").read_text())["config"] == json.loads((ref_dir / "config.json").read_text())["config"]
    torch.testing.assert_close(run.model().embed.W_E, ref.model().embed.W_E, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------
# 1. SIGKILL at random moments, resume, bit-identical
# ---------------------------------------------------------------------------------------------------------

N_KILLS = 10
FSYNC_DELAY = 0.05  # seconds added to every file fsync: most of a save's time is inside the write


def _wait_for_writes(run_dir: Path, proc: subprocess.Popen, stale: set[str], n: int, timeout: float = 60.0) -> bool:
    """Until the `n`-th new checkpoint or state write has begun (its temp file appeared in ckpt/ or state/)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < n:
        if time.monotonic() > deadline or proc.poll() is not None:
            return False
        for folder in (run_dir / "ckpt", run_dir / "state"):
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            seen.update(name for name in names if TEMP_RE.match(name) and name not in stale)
        time.sleep(0.002)
    return True


def test_sigkill_resume_is_bit_identical(reference, tmp_path):
    """Kill moments are random but tied to progress, not to the clock (so a loaded machine changes
    nothing): after `n` checkpoint/state writes have begun (n random, 0: right after start-up), either
    at once, which lands inside that write (its fsync sleeps FSYNC_DELAY), or after a random delay."""
    out = tmp_path / "run"
    rng = random.Random(31337)
    modes = ["in-write", "delay"] * (N_KILLS // 2)
    rng.shuffle(modes)
    kills = []  # (mode, writes waited for, newest state before the kill, temp files the kill left)
    started = time.monotonic()
    for i, mode in enumerate(modes):
        newest = (list_steps(out / "state") or [0])[-1]
        near_end = newest >= 0.75 * CONFIG.train.steps  # keep the run from finishing before every kill is spent
        n = 1 if near_end else rng.randint(0 if mode == "delay" else 1, 8)
        stale = {p.name for p in temp_files(out)}
        log = tmp_path / f"kill{i}.log"
        proc = driver(out, FSYNC_DELAY, *(["--resume"] if i else []), log=log)
        try:
            wait_ready(proc, log)
            assert _wait_for_writes(out, proc, stale, n), f"kill {i}: write {n} never began: {log.read_text()[-2000:]}"
            time.sleep(rng.uniform(0.0, 0.5 * FSYNC_DELAY) if mode == "in-write" else rng.uniform(0.0, 0.3))
            assert proc.poll() is None, f"run finished before kill {i + 1} of {N_KILLS}: {log.read_text()[-2000:]}"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        left = [p.relative_to(out) for p in temp_files(out) if p.name not in stale]
        kills.append((mode, n, newest, left))
        assert_consistent(out)  # a kill never leaves a visible half-written file

    final = subprocess.run(cli("train", "--no-progress", "--resume", "--out", out, *ARGS), capture_output=True,
                           text=True, env=ENV, timeout=300)
    assert final.returncode == 0, final.stderr
    elapsed = time.monotonic() - started

    report = "; ".join(f"{m}(n={n})@state {s}: {[str(p) for p in left]}" for m, n, s, left in kills)
    in_ckpt_write = [k for k in kills if any(p.parts[0] in ("ckpt", "state") for p in k[3])]
    aimed = [k for k in kills if k[0] == "in-write"]
    assert len(kills) >= 10
    assert len(in_ckpt_write) >= 3, f"too few kills inside a checkpoint write: {report}"
    assert sum(k in in_ckpt_write for k in aimed) >= 0.6 * len(aimed), f"kills aimed at writes missed: {report}"
    assert len({k[2] for k in kills}) >= 4, f"too little progress between kills: {report}"
    assert_same_run(out, reference.path)
    print(f"\n{len(kills)} kills + final resume in {elapsed:.1f} s; {len(in_ckpt_write)} inside a checkpoint/state "
          f"write: {report}")


# ---------------------------------------------------------------------------------------------------------
# 2. Two writers
# ---------------------------------------------------------------------------------------------------------


def test_second_writer_fails_and_first_is_unaffected(reference, tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "first.log"
    delay = tmp_path / "fsync_delay"
    delay.write_text("0.3")  # very slow writes: the first is still training when the others reach the lock
    first = driver(out, delay, log=log)
    try:
        wait_ready(first, log)
        # `train` and `train --resume` into it, each a process of its own (forked after one shared import)
        results = run_cli_cases({name: (["train", "--no-progress", "--out", out, *ARGS, *extra], tmp_path)
                                 for name, extra in (("train", []), ("resume", ["--resume"]))}, tmp_path)
        assert first.poll() is None, "the first run ended before the others tried: the test proved nothing"
        delay.write_text("0")  # the first may finish at full speed now
        for name, result in results.items():
            assert result["code"] == 1, (name, result)
            lines = result["stderr"].strip().splitlines()
            assert len(lines) == 1, (name, result)
            assert "another process" in lines[0] and f"pid {first.pid}" in lines[0] and str(out) in lines[0], lines[0]
        assert first.wait(timeout=180) == 0, log.read_text()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stdout.close()
    assert_same_run(out, reference.path)


# ---------------------------------------------------------------------------------------------------------
# 3. NaN/inf
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def poison_plugin():
    """A plug-in that writes NaN into W_E after the update of step `at`: theta_{at+1} holds NaN weights."""
    from grokinterp.train import PLUGINS, Plugin, register_plugin

    @register_plugin("test_poison")
    class Poison(Plugin):
        def __init__(self, at: int):
            self.at = at

        def after_step(self, trainer):
            if trainer.step == self.at:
                with torch.no_grad():
                    trainer.model.embed.W_E[0, 0] = float("nan")

    yield
    PLUGINS.pop("test_poison")


@pytest.mark.parametrize("overrides", [
    # lr ramps up without end: weights stay finite, logits overflow, the loss turns inf (near step 40);
    # a checkpoint at every step, so the diverged step has one, which must not survive
    dict(optim__lr=1e3, optim__warmup_steps=10_000, train__ckpt_every=1, train__state_every=2),
    # NaN weights at step 25, a checkpoint step: that checkpoint must not survive
    dict(train__ckpt_every=5, train__state_every=10),
], ids=["inf-loss", "nan-weights"])
def test_divergence_stops_and_keeps_only_good_checkpoints(tmp_path, keep_threads, poison_plugin, overrides):
    from grokinterp.config import apply_overrides
    from grokinterp.runs import train_run

    config = tiny_config(**{**dict(train__steps=200, train__ckpt_every=10, train__state_every=20, train__threads=1),
                            **overrides})
    if "optim__lr" not in overrides:
        config = apply_overrides(config, {"plugins.test_poison": {"at": 24}})
    run = train_run(config, tmp_path / "run", progress=False)
    summary = run.summary
    assert summary["status"] == "diverged"
    step = summary["diverged_step"]
    assert 0 < step < config.train.steps and summary["final_step"] == step
    if config.plugins:
        assert step == 25
    metrics = run.metrics
    assert metrics["step"][-1] == step, "training went on after the loss became non-finite"
    assert not math.isfinite(metrics["train_loss"][-1]) and all(math.isfinite(x) for x in metrics["train_loss"][:-1])
    last_good = (step - 1) // config.train.ckpt_every * config.train.ckpt_every
    assert run.steps[-1] == last_good and run.state_steps[-1] <= last_good
    for s in run.steps:  # parameters only: buffers such as attn.IGNORE are -inf by design
        assert all(torch.isfinite(p).all() for p in run.model(s).parameters()), f"ckpt {s} holds non-finite weights"
    model = run.model(last_good)  # the last good checkpoint loads (strict) and gives a finite loss
    task = run.task
    with torch.no_grad():
        logits = model(task.train_tokens)[:, -1]
    assert torch.isfinite(torch.nn.functional.cross_entropy(logits, task.train_labels))
    assert temp_files(run.path) == []


# ---------------------------------------------------------------------------------------------------------
# 4. Bad config / CLI misuse
# ---------------------------------------------------------------------------------------------------------

BAD = {
    "not-prime": (["--task.p=100"], "task.p"),
    "unknown-key": (["--optim.lrr=1"], "optim.lrr"),
    "wrong-type": (["--task.p=abc"], "task.p"),
    "unknown-preset": (["--preset", "nope"], "nope"),
    "bogus-flag": (["--bogus"], "--bogus"),
    "no-value": (["--optim.lr"], "optim.lr"),
    "unknown-plugin": (["--plugins.nope={}"], "nope"),
    "state-not-multiple": (["--train.state_every=30"], "train.state_every"),
}


def run_cli_cases(cases: dict[str, tuple[list], Path], tmp_path: Path, fresh: str | None = None) -> dict[str, dict]:
    """Each case `name: (argv, cwd)` as a process of its own: case `fresh` as a fresh `python -m grokinterp.cli`
    (interpreter start-up included), the others forked one by one from tests/_cli_cases.py after one shared
    import (a start costs about 4 s), concurrently with the fresh one. Returns name -> code, stdout, stderr."""
    spec, out = tmp_path / "cases.json", tmp_path / "results.json"
    names = [name for name in cases if name != fresh]
    spec.write_text(json.dumps([{"argv": [str(a) for a in cases[name][0]], "cwd": str(cases[name][1])} for name in names]))
    helper = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_cli_cases.py")), str(spec), str(out)],
                              env=ENV, stderr=subprocess.PIPE, text=True)
    results = {}
    if fresh is not None:
        argv, cwd = cases[fresh]
        single = subprocess.run(cli(*argv), cwd=cwd, capture_output=True, text=True, env=ENV, timeout=180)
        results[fresh] = {"code": single.returncode, "stdout": single.stdout, "stderr": single.stderr}
    _, stderr = helper.communicate(timeout=180)
    assert helper.returncode == 0, stderr
    results.update(zip(names, json.loads(out.read_text())))
    return results


def test_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path):
    cases = {}
    for name, (args, _) in BAD.items():
        (tmp_path / name).mkdir()
        cases[name] = (["train", "--no-progress", "--out", tmp_path / name / "out", *args], tmp_path / name)
    results = run_cli_cases(cases, tmp_path, fresh="not-prime")
    for name, result in results.items():
        key = BAD[name][1]
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == 2, (name, result)
        assert len(lines) == 1 and "error" in lines[0] and key in lines[0], (name, result)
        assert result["stdout"] == "", (name, result)
        assert list((tmp_path / name).iterdir()) == [], f"{name}: something was written"


# ---------------------------------------------------------------------------------------------------------
# 5. Truncated / corrupted checkpoints
# ---------------------------------------------------------------------------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip(path: Path, start: int, n: int = 8) -> None:
    data = bytearray(path.read_bytes())
    for i in range(start, start + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_checkpoint_raises_run_error_naming_the_file(reference, tmp_path, keep_threads):
    out = tmp_path / "run"
    shutil.copytree(reference.path, out)
    damaged = {
        100: lambda p: truncate(p),
        110: lambda p: flip(p, 8),  # inside the JSON header
        120: lambda p: flip(p, 0),  # the header-length prefix
        130: lambda p: p.write_bytes(b""),
    }
    for step, damage in damaged.items():
        damage(out / "ckpt" / step_filename(step))
    truncate(out / "state" / step_filename(140))
    run = Run(out)
    for step in damaged:
        with pytest.raises(RunError, match=step_filename(step)):
            run.model(step)
    with pytest.raises(RunError, match=step_filename(140)):
        run.optimizer_state(140)
    run.model(90)  # neighbours are fine
    run.model(150)


def test_resume_skips_corrupt_newest_checkpoint_and_state(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference.path, out)
    truncate(out / "state" / step_filename(290))  # newest state: unreadable
    flip(out / "ckpt" / step_filename(280), 8)  # newest ckpt that has a state: unreadable -> resume from 260
    before = {s: os.stat(out / "ckpt" / step_filename(s)).st_ino for s in (250, 260, 270)}
    proc = subprocess.run(cli("train", "--no-progress", "--resume", "--out", out, *ARGS), capture_output=True,
                          text=True, env=ENV, timeout=180)
    assert proc.returncode == 0, proc.stderr
    after = {s: os.stat(out / "ckpt" / step_filename(s)).st_ino for s in before}
    assert after[250] == before[250] and after[260] == before[260], "resumed from before 260"
    assert after[270] != before[270], "did not resume from 260 (the newest good checkpoint with a state)"
    assert_same_run(out, reference.path)  # the corrupt files were rewritten, bit-identical


def test_resume_skips_a_state_whose_metrics_are_missing(reference, tmp_path, keep_threads):
    """A state file newer than metrics.csv (a kill between the two, as the old write order allowed) is no
    resume point: its rows would be lost. Resumes from the newest state the metrics cover; in this process."""
    from grokinterp.runs import train_run

    out = tmp_path / "run"
    shutil.copytree(reference.path, out)
    lines = (out / "metrics.csv").read_text().splitlines(keepends=True)
    (out / "metrics.csv").write_text("".join(lines[: 1 + 240]))  # header + rows of steps 0..239
    before = {s: os.stat(out / "state" / step_filename(s)).st_ino for s in (240, 260)}
    train_run(CONFIG, out, resume=True, progress=False)
    assert os.stat(out / "state" / step_filename(240)).st_ino == before[240]
    assert os.stat(out / "state" / step_filename(260)).st_ino != before[260], "did not resume from 240"
    assert_same_run(out, reference.path)


def _wait_for_appends(path: Path, proc: subprocess.Popen, n: int, timeout: float = 60.0) -> bool:
    """Until metrics.csv has grown `n` times (each growth is one append of a checkpoint's rows)."""
    seen, size, deadline = 0, -1, time.monotonic() + timeout
    while seen < n:
        if time.monotonic() > deadline or proc.poll() is not None:
            return False
        try:
            now = path.stat().st_size
        except FileNotFoundError:
            now = -1
        if now > size >= 0 or (size < 0 <= now):
            seen += 1
        size = now
        time.sleep(0.001)
    return True


def test_kill_mid_append_resumes_bit_identical(reference, tmp_path):
    """metrics.csv grows by appends while a run trains (readable live). Kill right after an append's write, inside
    its fsync (which sleeps FSYNC_DELAY), then add half a row as a kill inside the write itself would leave:
    a reader sees only whole rows, and --resume (which rewinds the file) ends bit-identical."""
    out = tmp_path / "run"
    for i, appends in enumerate((4, 3)):
        log = tmp_path / f"append{i}.log"
        proc = driver(out, FSYNC_DELAY, *(["--resume"] if i else []), log=log)
        try:
            wait_ready(proc, log)
            assert _wait_for_appends(out / "metrics.csv", proc, appends), log.read_text()[-2000:]
            assert proc.poll() is None, "the run finished before the kill"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        rows = read_metrics_csv(out / "metrics.csv")
        assert [r["step"] for r in rows] == list(range(len(rows))) and len(rows) % CONFIG.train.ckpt_every == 0
        with open(out / "metrics.csv", "a") as f:
            f.write(f"{len(rows)},0.5,0.")  # a torn row: no newline
        assert len(read_metrics_csv(out / "metrics.csv")) == len(rows)
        assert_consistent(out)
    final = subprocess.run(cli("train", "--no-progress", "--resume", "--out", out, *ARGS), capture_output=True,
                           text=True, env=ENV, timeout=300)
    assert final.returncode == 0, final.stderr
    assert_same_run(out, reference.path)


# ---------------------------------------------------------------------------------------------------------
# 6. --resume with a different config; train into an existing run without --resume
# ---------------------------------------------------------------------------------------------------------


def snapshot(run_dir: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(run_dir)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_resume_with_a_different_config_is_refused_and_touches_nothing(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference.path, out)
    before = snapshot(out)
    expected = {
        "lr": (["--resume", "--optim.lr=0.02"], 2, ["optim.lr", "0.01 -> 0.02", "--resume"]),
        "steps": (["--resume", "--train.steps=400"], 2, ["train.steps", "290 -> 400"]),
        "no-resume": ([], 2, ["already holds a run", "--resume"]),
    }
    cases = {name: (["train", "--no-progress", "--out", out, *ARGS, *args], tmp_path)
             for name, (args, _, _) in expected.items()}
    results = run_cli_cases(cases, tmp_path, fresh="lr")
    for name, result in results.items():
        _, code, words = expected[name]
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == code, (name, result)
        assert len(lines) == 1 and all(w in lines[0] for w in words), (name, result)
    after = snapshot(out)
    # the refused resumes touch nothing at all; plain `train` into a run may rewrite LOCK's pid hint, nothing else
    assert {k: v for k, v in after.items() if k != "LOCK"} == {k: v for k, v in before.items() if k != "LOCK"}
    assert after.keys() == before.keys()
