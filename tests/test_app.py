"""The live lab's server side (grokinterp.app): paths stay inside RUNS_DIR, the launch form is read like the
CLI, live metrics are read whole while a run appends them, the token gate, the wavetable of a hand-built
model. The browser tests are in test_app_browser.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grokinterp.app import (
    Launcher,
    MetricsTail,
    PathRefused,
    RunsDir,
    arm_overrides,
    form_config,
    is_loopback,
    milestones,
    wavetable,
    writer_alive,
)
from grokinterp.cli import main
from grokinterp.config import ConfigError
from grokinterp.runs import MetricsAppender, read_metrics_csv, read_metrics_columns

from _lab_helpers import HAND_NEURONS, hand_built_run
from conftest import tiny_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


# ---------------------------------------------------------------------------------------------------------
# Paths: nothing outside RUNS_DIR
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def runs_dir(tmp_path, tiny_run):
    """RUNS_DIR with a copy of the tiny run, a nested one, a symlinked run folder that leads outside, a run whose
    metrics.csv is a symlink to a file outside, and a secret file beside RUNS_DIR."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(tiny_run.path, root / "tiny")
    shutil.copytree(tiny_run.path, root / "sweep" / "tiny2")
    outside = tmp_path / "outside"
    shutil.copytree(tiny_run.path, outside / "escaped")
    (tmp_path / "secret.csv").write_text("step\n0\n")
    (root / "link").symlink_to(outside / "escaped")
    shutil.copytree(tiny_run.path, root / "sneaky")
    (root / "sneaky" / "metrics.csv").unlink()
    (root / "sneaky" / "metrics.csv").symlink_to(tmp_path / "secret.csv")
    return root


@pytest.mark.parametrize("name", ["../outside/escaped", "/etc", "sweep/../../outside/escaped", "..", ".", "",
                                  "tiny/../../secret.csv", ".lab", "a\\..\\b", "tiny\0"])
def test_traversal_and_absolute_names_are_refused(runs_dir, name):
    with pytest.raises(PathRefused):
        RunsDir(runs_dir).run_path(name)


def test_symlinks_out_are_refused_and_not_listed(runs_dir):
    root = RunsDir(runs_dir)
    assert root.names() == ["sweep/tiny2", "tiny"]  # not `link` (leads outside), not `sneaky` (metrics.csv does)
    with pytest.raises(PathRefused, match="outside"):
        root.run_path("link")
    with pytest.raises(PathRefused, match="metrics.csv leads outside"):
        root.run_path("sneaky")
    with pytest.raises(PathRefused):
        root.checked_file("tiny", "..", "..", "secret.csv")
    assert root.run_path("sweep/tiny2") == runs_dir.resolve() / "sweep" / "tiny2"


def test_launcher_refuses_bad_names_and_starts_nothing(runs_dir):
    launcher = Launcher(RunsDir(runs_dir), slots=2)
    before = sorted(p for p in runs_dir.parent.rglob("*"))
    config = tiny_config(train__steps=5)
    for name in ["../evil", "/tmp/evil", "sub/dir", ".hidden", "-x", "tiny", "a" * 65, "link"]:
        with pytest.raises(PathRefused):
            launcher.start(name, config)
    assert launcher.procs == {}
    assert sorted(p for p in runs_dir.parent.rglob("*")) == before


def test_launcher_keeps_to_its_slots(runs_dir):
    """A run whose writer holds its LOCK counts as training, whoever started it: with 1 slot nothing starts."""
    from grokinterp.runs import RunLock

    launcher = Launcher(RunsDir(runs_dir), slots=1)
    with RunLock(runs_dir / "tiny"):
        assert launcher.live() == {"tiny"}
        with pytest.raises(ConfigError, match="1 runs are training .tiny. and this machine has 1 cores"):
            launcher.start("another", tiny_config(train__steps=5))
        with pytest.raises(ConfigError, match="tiny is running"):
            launcher.resume("tiny")
    assert not (runs_dir / "another").exists() and launcher.procs == {}
    assert launcher.live() == set()


def test_lab_callbacks_refuse_names_from_the_browser(runs_dir):
    pytest.importorskip("dash")
    from grokinterp.app._dash import Lab

    lab = Lab(runs_dir)
    with pytest.raises(PathRefused):
        lab.wavetable_figures("../outside/escaped", 0)
    with pytest.raises(PathRefused):
        lab.wavetable_figures("tiny/../../outside/escaped", 0)
    assert set(lab.curves(["link", "sneaky", "../secret.csv"])) == set()
    assert [r["run"] for r in lab.table()] == ["sweep/tiny2", "tiny"]


# ---------------------------------------------------------------------------------------------------------
# The launch form is read like `grokinterp train`
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["--task.p=100", "--optim.lrr=1", "--task.p=abc", "--bogus", "--optim.lr",
                                  "--plugins.nope={}", "--train.state_every=33", "--optim.beta1=1.5"])
def test_bad_override_gives_the_cli_message(text, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "--no-progress", "--out", str(out), *text.split()]) == 2
    cli_line = capsys.readouterr().err.strip()
    with pytest.raises(ConfigError) as e:
        form_config("quick", text)
    assert "grokinterp train: error: " + str(e.value) == cli_line
    assert not out.exists()


def test_form_config_equals_the_cli_config(capsys):
    text = "--optim.lr=3e-3 --task.p=53 --plugins.grokfast_ema='{\"alpha\": 0.9}'"
    assert main(["train", "--print-config", *["--optim.lr=3e-3", "--task.p=53", '--plugins.grokfast_ema={"alpha": 0.9}']]) == 0
    assert form_config("quick", text).to_json() == capsys.readouterr().out.strip()


def test_arms_set_the_study_keys():
    config = form_config("quick", "", arm_overrides("stencil", offsets=[1, -1], lamb=0.05))
    assert config.plugins == {"probe_stencil": {"offsets": [-1, 1], "lamb": 0.05}}
    assert form_config("quick", "", arm_overrides("beta1", beta1=0.5)).optim.beta1 == 0.5
    assert form_config("quick", "", arm_overrides("grokfast", alpha=0.9, grokfast_lamb=1.0)).plugins == {
        "grokfast_ema": {"alpha": 0.9, "lamb": 1.0}}
    with pytest.raises(ConfigError, match="probe_stencil.offsets"):
        form_config("quick", "", arm_overrides("stencil", offsets=[]))
    with pytest.raises(ConfigError, match="optim.beta1"):
        form_config("quick", "", arm_overrides("beta1", beta1=1.0))


def test_only_loopback_is_local():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.4", "example.org", "::"))


def test_token_gate(runs_dir):
    pytest.importorskip("dash")
    from grokinterp.app import create_app

    client = create_app(runs_dir, token="s3cret").server.test_client()
    assert client.get("/").status_code == 403
    response = client.get("/?token=wrong")
    assert response.status_code == 403 and "s3cret" not in str(response.headers)
    assert client.get("/_dash-layout").status_code == 403
    assert client.get("/?token=s3cret").status_code == 200
    assert client.get("/_dash-layout").status_code == 200  # the cookie set by the line above
    open_client = create_app(runs_dir).server.test_client()
    assert open_client.get("/").status_code == 200


# ---------------------------------------------------------------------------------------------------------
# Live metrics
# ---------------------------------------------------------------------------------------------------------


def test_a_row_being_appended_is_not_read(tmp_path):
    path = tmp_path / "metrics.csv"
    rows = [{"step": s, "train_acc": s / 10, "test_acc": float("nan")} for s in range(3)]
    appender = MetricsAppender(path, rows[:1])
    appender.write(rows)
    whole = path.read_bytes()
    for cut in range(len(whole) + 1):  # every prefix a reader could see, mid-row ones included
        path.write_bytes(whole[:cut])
        got = read_metrics_csv(path) if cut else []
        complete = max(whole[:cut].count(b"\n") - 1, 0)
        assert [r["step"] for r in got] == list(range(complete))
        assert all(not np.isnan(r["train_acc"]) for r in got)
        tail = MetricsTail(path).read()
        assert tail["step"].tolist() == list(range(complete))
    path.write_bytes(whole)
    # a new column: the file is rewritten (atomically), old rows get empty cells
    appender.write(rows + [{"step": 3, "train_acc": 0.3, "test_acc": 0.1, "probe/reg": 1.0}])
    cols = read_metrics_columns(path)
    assert cols["step"].tolist() == [0, 1, 2, 3] and np.isnan(cols["probe/reg"][:3]).all() and cols["probe/reg"][3] == 1
    # opening an appender rewinds (a resume): rows past the resume point and a torn tail are dropped
    with open(path, "ab") as f:
        f.write(b"4,0.4,0.")
    MetricsAppender(path, rows[:2])
    assert [r["step"] for r in read_metrics_csv(path)] == [0, 1]


def test_live_reads_are_whole_while_a_run_appends(tmp_path):
    """A real training process appends a row group at every checkpoint (every step here); a reader polling
    as fast as it can sees only whole rows, steps 0..n-1 with no gap, and the file grows while the run lives."""
    out = tmp_path / "run"
    args = ["--task.p=23", "--task.frac_train=0.6", "--model.d_model=32", "--model.d_head=8", "--model.d_mlp=64",
            "--train.steps=400", "--train.ckpt_every=1", "--train.state_every=50", "--train.early_stop_after=None",
            "--train.threads=1"]
    proc = subprocess.Popen([sys.executable, "-m", "grokinterp.cli", "train", "--no-progress", "--out", str(out), *args],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tail, lengths, alive_seen, reads = MetricsTail(out / "metrics.csv"), set(), False, 0
    started = time.perf_counter()
    try:
        while proc.poll() is None and time.perf_counter() - started < 240:
            if not (out / "metrics.csv").is_file():
                time.sleep(0.01)
                continue
            rows = read_metrics_csv(out / "metrics.csv")
            live = tail.read()
            reads += 1
            steps = [r["step"] for r in rows]
            assert steps == list(range(len(rows)))
            assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["train_acc"]) for r in rows)
            assert live["step"].tolist() == list(range(len(live["step"])))
            assert np.isfinite(live["train_loss"]).all()
            lengths.add(len(rows))
            alive_seen |= writer_alive(out)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert alive_seen and not writer_alive(out)
    assert len(lengths) >= 10, f"the file grew only {len(lengths)} times in {reads} reads"
    final = read_metrics_columns(out / "metrics.csv")
    assert final["step"].tolist() == list(range(401))
    assert tail.read()["step"].tolist() == final["step"].tolist()
    mem, grok = milestones(tail.arrays())
    assert mem is not None


# ---------------------------------------------------------------------------------------------------------
# Wavetable
# ---------------------------------------------------------------------------------------------------------


def test_wavetable_sorts_neurons_by_their_known_frequency(tmp_path):
    run = hand_built_run(tmp_path / "hand")
    table = wavetable(run.model(1), run.task)
    want = [HAND_NEURONS[j][0] for j in table.order]
    assert table.freq.tolist() == want == sorted(want)
    assert sorted(table.order.tolist()) == list(range(len(HAND_NEURONS)))
    assert table.key_freqs == [1, 2, 5]
    assert np.allclose(table.frac, 1.0, atol=1e-4)  # each neuron is one pure frequency
    # over a with b = 0: row r is cos(w_k a + phi) + 1 + 3 for neuron order[r]
    a = np.arange(13)
    k, phase = HAND_NEURONS[table.order[0]]
    wave = (np.cos if phase == "cos" else np.sin)(2 * np.pi * k * a / 13)
    assert np.allclose(table.over_a[0], wave + (np.cos if phase == "cos" else np.sin)(0.0) + 3, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# `grokinterp serve`
# ---------------------------------------------------------------------------------------------------------


def test_serve_without_dash_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dash", None)  # `import dash` raises ImportError
    assert main(["serve", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("grokinterp serve: error:") and "pip install 'grokinterp[app]'" in err


@pytest.mark.parametrize("host, needs_token", [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_serve_binds_localhost_unless_told_and_then_requires_a_token(tmp_path, monkeypatch, capsys, host, needs_token):
    pytest.importorskip("dash")
    import grokinterp.app as app_module

    seen = {}

    class FakeApp:
        class lab:
            class launcher:
                stop_all = staticmethod(lambda: seen.setdefault("stopped", True))

        def run(self, **kwargs):
            seen["run"] = kwargs

    monkeypatch.setattr(app_module, "create_app", lambda runs_dir, token=None, poll_ms=2000: seen.update(token=token) or FakeApp())
    monkeypatch.delenv("GROKINTERP_LAB_TOKEN", raising=False)
    args = ["serve", str(tmp_path)] + ([] if host == "127.0.0.1" else ["--host", host])
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert seen["run"]["host"] == host and seen["run"]["debug"] is False and seen["stopped"]
    assert (seen["token"] is not None) == needs_token
    assert ("warning" in err) == needs_token
    if needs_token:
        assert f"?token={seen['token']}" in out and len(seen["token"]) >= 20
