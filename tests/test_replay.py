"""The replay engine on a real (tiny) trained run: values, cache reuse, resume, versions, workers, errors."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from grokinterp.analysis import ReplayResult, get_analysis, register_analysis, replay, select_steps
from grokinterp.analysis.replay_engine import _REGISTRY
from grokinterp.runs import Run

CALLS: collections.Counter = collections.Counter()
FAIL_ON_CALL: dict[str, int] = {}  # analysis name -> raise on this call number (1-based)


class Interrupted(RuntimeError):
    pass


def _count(name: str) -> None:
    CALLS[name] += 1
    if FAIL_ON_CALL.get(name) == CALLS[name]:
        raise Interrupted(f"{name} interrupted on call {CALLS[name]}")


@register_analysis("t_embed", version=1)
def t_embed(model, task, context):
    """Norm of the embedding and the logit of the first pair's answer (a real function of the weights)."""
    _count("t_embed")
    with torch.no_grad():
        logits = model(task.tokens[:4])[:, -1]
        return {"embed_norm": float(model.W_E.norm()), "logits": logits.numpy(), "argmax": logits.argmax(-1).numpy()}


def _final_embed_norm(run):
    return {"final_norm": np.float32(run.model(run.steps[-1]).W_E.detach().norm().item()), "from_step": run.steps[-1]}


@register_analysis("t_relative", version=1, prepare=_final_embed_norm)
def t_relative(model, task, context):
    """Embedding norm relative to the final checkpoint's (uses the prepared context)."""
    _count("t_relative")
    return {"ratio": model.W_E.detach().norm().item() / context["final_norm"]}


@register_analysis("t_series", version=1, kind="series")
def t_series(metrics):
    """Running minimum of the train loss."""
    _count("t_series")
    return {"best_train_loss": np.minimum.accumulate(metrics["train_loss"])}


@pytest.fixture
def run_path(tiny_run, tmp_path) -> Path:
    """A private copy of conftest's tiny trained run (each test fills its own cache), thinned to every
    2nd checkpoint and the last (8 or more) to keep the tests fast; no optimizer state."""
    steps = tiny_run.steps
    keep = {_name(s) for s in steps[::2] + steps[-1:]}

    def ignore(folder, names):
        if Path(folder).name == "ckpt":
            return [n for n in names if n not in keep]
        return [n for n in names if n in ("analysis", "state", "report.html", "LOCK")]

    path = Path(shutil.copytree(tiny_run.path, tmp_path / "run", ignore=ignore))
    assert len(Run(path).steps) >= 8
    return path


def _name(step: int) -> str:
    return f"step_{step:07d}.safetensors"


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    FAIL_ON_CALL.clear()
    saved = dict(_REGISTRY)
    yield
    for name in [n for n in _REGISTRY if n.startswith("t_")]:  # the standard analyses stay registered
        del _REGISTRY[name]
    _REGISTRY.update(saved)


def test_values_match_direct_computation(run_path):
    run = Run(run_path)
    steps = run.steps
    result = replay(run, ["t_embed", "t_relative"], progress=False)
    assert list(result.steps) == steps and len(steps) > 5
    final = run.model(steps[-1]).W_E.detach().norm().item()
    for i, step in enumerate(steps):
        model = run.model(step)
        assert result["t_embed"]["embed_norm"][i] == pytest.approx(model.W_E.detach().norm().item(), rel=1e-6)
        with torch.no_grad():
            np.testing.assert_allclose(result["t_embed"]["logits"][i], model(run.task.tokens[:4])[:, -1].numpy(),
                                       rtol=1e-5, atol=1e-6)
        assert result["t_relative"]["ratio"][i] == pytest.approx(model.W_E.detach().norm().item() / final, rel=1e-6)
    n, p = len(steps), run.config.task.p
    assert result["t_embed"]["logits"].shape == (n, 4, p) and result["t_embed"]["embed_norm"].shape == (n,)
    assert result["t_embed"]["argmax"].dtype == np.int64
    assert result["t_relative"]["ratio"][-1] == pytest.approx(1.0)
    assert result.context["t_relative"]["from_step"] == steps[-1]
    assert result.at("t_embed", steps[2])["embed_norm"] == result["t_embed"]["embed_norm"][2]
    assert (run_path / "analysis" / "t_embed" / "v1" / _name(steps[1])).is_file()
    stored = json.loads((run_path / "analysis/t_relative/v1/prepare.json").read_text())
    assert stored["context"]["from_step"] == steps[-1]


def test_second_replay_computes_nothing(run_path):
    n = len(Run(run_path).steps)
    first = replay(run_path, ["t_embed", "t_relative", "t_series"], progress=False)
    assert CALLS == {"t_embed": n, "t_relative": n, "t_series": 1}
    assert first.computed == {"t_embed": n, "t_relative": n, "t_series": 1}
    CALLS.clear()
    second = replay(run_path, ["t_embed", "t_relative", "t_series"], progress=False)
    assert sum(CALLS.values()) == 0
    assert second.computed == {"t_embed": 0, "t_relative": 0, "t_series": 0}
    for name in first:
        for key in first[name]:
            np.testing.assert_array_equal(first[name][key], second[name][key])
            assert first[name][key].dtype == second[name][key].dtype


def test_interrupted_replay_resumes_with_missing_steps_only(run_path):
    steps = Run(run_path).steps
    FAIL_ON_CALL["t_embed"] = 4  # the 4th checkpoint raises
    with pytest.raises(Interrupted):
        replay(run_path, ["t_embed"], progress=False)
    cached = sorted(p.name for p in (run_path / "analysis/t_embed/v1").glob("step_*"))
    assert cached == [_name(s) for s in steps[:3]]
    CALLS.clear()
    FAIL_ON_CALL.clear()
    result = replay(run_path, ["t_embed"], progress=False)
    assert CALLS["t_embed"] == len(steps) - 3 and result.computed["t_embed"] == len(steps) - 3
    fresh = Path(shutil.copytree(run_path, run_path.parent / "fresh", ignore=shutil.ignore_patterns("analysis")))
    reference = replay(fresh, ["t_embed"], progress=False)
    np.testing.assert_array_equal(result["t_embed"]["embed_norm"], reference["t_embed"]["embed_norm"])


def test_corrupted_cache_file_is_recomputed(run_path):
    replay(run_path, ["t_embed"], progress=False)
    path = run_path / "analysis" / "t_embed" / "v1" / _name(Run(run_path).steps[2])
    path.write_bytes(path.read_bytes()[:40])
    CALLS.clear()
    result = replay(run_path, ["t_embed"], progress=False)
    assert CALLS["t_embed"] == 1 and result.computed["t_embed"] == 1


def test_version_bump_recomputes_and_old_version_stays_cached(run_path):
    n = len(Run(run_path).steps)
    replay(run_path, ["t_embed"], progress=False)
    register_analysis("t_embed", version=2)(t_embed)
    CALLS.clear()
    replay(run_path, ["t_embed"], progress=False)
    assert CALLS["t_embed"] == n
    assert len(list((run_path / "analysis/t_embed/v2").glob("step_*"))) == n
    register_analysis("t_embed", version=1)(t_embed)
    CALLS.clear()
    replay(run_path, ["t_embed"], progress=False)
    assert CALLS["t_embed"] == 0


def test_changed_context_recomputes_dependent_steps(run_path):
    steps = Run(run_path).steps
    first = replay(run_path, ["t_relative", "t_embed"], progress=False)
    (run_path / "ckpt" / _name(steps[-1])).unlink()  # the last checkpoint changes: so does the context
    CALLS.clear()
    second = replay(run_path, ["t_relative", "t_embed"], progress=False)
    assert CALLS == {"t_relative": len(steps) - 1}  # t_embed has no context: its cache stays valid
    assert second.context["t_relative"]["from_step"] == steps[-2]
    assert second["t_relative"]["ratio"][-1] == pytest.approx(1.0)
    assert not np.allclose(second["t_relative"]["ratio"], first["t_relative"]["ratio"][:-1])


def test_step_selection(run_path):
    steps = Run(run_path).steps
    result = replay(run_path, ["t_embed"], stride=3, progress=False)
    expected = steps[::3] if steps[::3][-1] == steps[-1] else steps[::3] + [steps[-1]]  # every third, and the last
    assert list(result.steps) == expected
    result = replay(run_path, ["t_embed"], start=steps[1] + 1, stop=steps[4], progress=False)
    assert list(result.steps) == steps[2:5]
    result = replay(run_path, ["t_embed", "t_series"], steps=[steps[3], steps[1]], progress=False)
    assert list(result.steps) == [steps[1], steps[3]] and result["t_embed"]["embed_norm"].shape == (2,)
    series = replay(run_path, ["t_series"], start=10, stop=20, progress=False)
    assert list(series.steps_of("t_series")) == list(range(10, 21))
    metrics = Run(run_path).metrics
    np.testing.assert_array_equal(series["t_series"]["best_train_loss"],
                                  np.minimum.accumulate(metrics["train_loss"])[10:21])


def test_select_steps_errors():
    available = [0, 50, 100]
    with pytest.raises(ValueError, match=r"steps \[75\] have no checkpoint; the run has 3 checkpoints from 0 to 100"):
        select_steps(available, steps=[50, 75])
    with pytest.raises(ValueError, match="start=100 is after stop=50"):
        select_steps(available, start=100, stop=50)
    with pytest.raises(ValueError, match="no checkpoint in the range start=60, stop=90"):
        select_steps(available, start=60, stop=90)
    with pytest.raises(ValueError, match="stride=0 must be a positive integer"):
        select_steps(available, stride=0)
    with pytest.raises(ValueError, match="no checkpoints"):
        select_steps([])


def test_unknown_analysis_lists_valid_names(run_path):
    with pytest.raises(ValueError, match=r"unknown analysis 'spectrum'; registered analyses: \[.*'t_embed'.*\]"):
        replay(run_path, ["spectrum"], progress=False)
    with pytest.raises(ValueError, match="workers=0"):
        replay(run_path, ["t_embed"], workers=0, progress=False)
    with pytest.raises(ValueError, match="kind='snapshot' is not valid"):
        register_analysis("x", kind="snapshot")


def test_inconsistent_shapes_raise_naming_the_analysis(run_path):
    @register_analysis("t_bad", version=1)
    def t_bad(model, task, context):
        CALLS["t_bad"] += 1
        return {"x": np.zeros(CALLS["t_bad"])}

    with pytest.raises(ValueError, match="analysis 't_bad' gave keys/shapes .* at step .* bump its version"):
        replay(run_path, ["t_bad"], progress=False)


def test_workers_give_identical_arrays(run_path):
    n = len(Run(run_path).steps)
    serial = replay(run_path, ["t_embed", "t_relative"], progress=False)
    parallel_path = Path(shutil.copytree(run_path, run_path.parent / "par", ignore=shutil.ignore_patterns("analysis")))
    parallel = replay(parallel_path, ["t_embed", "t_relative"], workers=2, progress=False)
    assert isinstance(parallel, ReplayResult)
    assert parallel.computed == {"t_embed": n, "t_relative": n}
    assert CALLS["t_embed"] == n  # the serial replay only: the parallel one ran in the workers
    for name in serial:
        for key in serial[name]:
            np.testing.assert_array_equal(serial[name][key], parallel[name][key])
    assert len(list((parallel_path / "analysis/t_embed/v1").glob("step_*"))) == n  # workers wrote the cache


def test_standard_analyses_match_the_math(run_path):
    fourier = pytest.importorskip("grokinterp.analysis.fourier._spectra")
    progress = pytest.importorskip("grokinterp.analysis.fourier._progress")
    run = Run(run_path)
    mid, last = run.steps[len(run.steps) // 2], run.steps[-1]
    result = replay(run, steps=[mid, last], progress=False)
    assert list(result) == ["spectra", "progress", "trig_fit"]  # trig_fit: tested in test_nanda_views.py
    key_freqs = [int(k) for k in fourier.key_frequencies(run.model(last), run.task)]
    assert result.context["progress"]["key_freqs"] == key_freqs
    with torch.no_grad():
        direct = fourier.checkpoint_spectra(run.model(mid), run.task)
        measures = progress.progress_measures(run.model(mid), run.task, key_freqs)
    assert set(direct) == set(result["spectra"]) and set(measures) == set(result["progress"])
    for key, value in direct.items():
        np.testing.assert_allclose(result["spectra"][key][0], np.asarray(value), rtol=1e-6, atol=1e-7)
    for key, value in measures.items():
        np.testing.assert_allclose(result["progress"][key][0], np.asarray(value), rtol=1e-6, atol=1e-7)
    assert get_analysis("progress").prepare is not None


def test_an_analysis_defined_in_a_closure_is_refused_for_workers(run_path):
    from grokinterp.analysis.replay_engine import _not_importable

    @register_analysis("t_local", version=1)
    def t_local(model, task, context):
        return {"x": 0.0}

    assert _not_importable(t_embed) == ""
    assert "closure" in _not_importable(t_local) and "lambda" in _not_importable(lambda m, t, c: {})
    with pytest.raises(ValueError, match="'t_local' cannot be sent to worker processes"):
        replay(run_path, ["t_local"], workers=2, progress=False)
