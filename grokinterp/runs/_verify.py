"""`verify_run`: check every file of a run directory against its recorded hash and its expected contents.

`grokinterp verify RUN` prints what it finds. A file is "ok" (its hash recorded and matching, its content
as expected), "unrecorded" (written before grokinterp recorded hashes: its content was checked, its bytes
could not be), "bad" (unreadable, not matching its hash, or not what the run needs) or "missing" (a
checkpoint the run's schedule wrote that is not there). The analysis cache is not listed: it is checked
whenever it is read and recomputed when it does not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..model import build_model
from ._checks import check_split, check_state_dict, metrics_record
from ._files import TEMP_RE, RunError, list_steps, read_json, read_tensors, step_filename
from ._run import Run
from ..milestones import FINAL_STATUSES

STATUSES = ("ok", "unrecorded", "bad", "missing")


@dataclass(frozen=True)
class Finding:
    """What `verify_run` found about one file: its path, status (one of `STATUSES`) and a message."""

    path: Path
    status: str
    message: str = ""


@dataclass
class VerifyReport:
    """Every file's `Finding`; `ok` is True when nothing is bad or missing."""

    run_path: Path
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status in ("bad", "missing")]

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.findings)

    def summary_line(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in STATUSES if self.count(s))
        verdict = "intact" if self.ok else "damaged"
        return f"{self.run_path}: {verdict} ({len(self.findings)} files: {counts or 'none'})"


def _check(report: VerifyReport, path: Path, fn) -> object:
    """Run `fn()` -> (value, hash checked); record ok / unrecorded / bad; return the value (None if bad)."""
    try:
        value, hashed = fn()
    except RunError as e:
        report.findings.append(Finding(path, "bad", str(e)))
        return None
    report.findings.append(Finding(path, "ok" if hashed else "unrecorded",
                                   "" if hashed else "no hash recorded (written before grokinterp recorded hashes)"))
    return value


def expected_checkpoints(run: Run, present: list[int], states: bool = False) -> list[int]:
    """Steps a trained run's schedule wrote a checkpoint at (`states`: a state at): every `ckpt_every` and
    `state_every` step (`state_every` only) from its first file to its final step (or its last file while
    unfinished or diverged), and the final step."""
    if not present or "source" in run.record:
        return present  # an imported run's checkpoints are whatever the source had
    train, summary = run.config.train, run.summary
    final = summary.get("final_step") if summary.get("status") in FINAL_STATUSES[:-1] else None
    last = int(final) if isinstance(final, int) else present[-1]
    grid = {s for s in range(present[0], last + 1)
            if s % train.state_every == 0 or (not states and s % train.ckpt_every == 0)}
    return sorted(grid | {present[0], last})


def verify_run(path: str | Path) -> VerifyReport:
    """Check every file of the run directory `path` (see the module docstring); never raises for a bad file.

    Raises:
        RunError: `path` is not a run directory (no config.json).
    """
    run = Run(path)
    report = VerifyReport(run.path)
    cfg_path = run.path / "config.json"
    if _check(report, cfg_path, lambda: (run.config, read_json(cfg_path, run.hashed)[1])) is None:
        return report  # nothing else can be judged without the config
    split = run.path / "split.safetensors"
    trained = "source" not in run.record
    _check(report, split, lambda: (check_split(split, run.config.task, trained, run.hashed), run.hashed))
    summary = run.path / "summary.json"
    if summary.is_file():
        _check(report, summary, lambda: read_json(summary, run.hashed))
    _check_metrics(report, run)
    _check_files(report, run)
    for extra in sorted(run.path.glob("*.json")):
        if extra.name not in ("config.json", "summary.json"):
            _check(report, extra, lambda extra=extra: read_json(extra))
    for folder in (run.path, run.path / "ckpt", run.path / "state"):
        for leftover in sorted(folder.glob(".*.tmp")) if folder.is_dir() else []:
            if TEMP_RE.match(leftover.name):
                report.findings.append(Finding(leftover, "bad", "a temp file left by a killed writer; the next "
                                                                "`grokinterp train --resume` (or repair) removes it"))
    return report


def _check_metrics(report: VerifyReport, run: Run) -> None:
    """metrics.csv: present once a resume point exists, matching its record, one row per step up to the end."""
    path = run.path / "metrics.csv"
    if not path.is_file():
        if [s for s in list_steps(run.path / "state") if s > 0]:
            report.findings.append(Finding(path, "missing", "the run's resume points need it; `grokinterp repair` "
                                                            "cannot rebuild it: retrain the run"))
        return

    def read() -> tuple[object, bool]:
        return Run(run.path).metrics, _recorded(run)  # a fresh reader: hashes, rows, steps, final step

    _check(report, path, read)


def _recorded(run: Run) -> bool:
    return metrics_record(run.path)[0] is not None


def _check_files(report: VerifyReport, run: Run) -> None:
    """Every checkpoint (hash, names, shapes, finiteness), every state (hash), and the checkpoints missing."""
    reference = build_model(run.config).state_dict()
    present = list_steps(run.path / "ckpt")
    for step in present:
        path = run.path / "ckpt" / step_filename(step)

        def read(path=path) -> tuple[object, bool]:
            tensors, _, hashed = read_tensors(path, run.hashed)
            check_state_dict(path, tensors, reference)
            return True, hashed

        _check(report, path, read)
    for step in sorted(set(expected_checkpoints(run, present)) - set(present)):
        report.findings.append(Finding(run.path / "ckpt" / step_filename(step), "missing",
                                       f"`grokinterp repair {run.path}` regenerates it by exact replay"))
    states = list_steps(run.path / "state")
    for step in states:
        path = run.path / "state" / step_filename(step)
        _check(report, path, lambda path=path: (True, read_tensors(path, run.hashed)[2]))
    for step in sorted(set(expected_checkpoints(run, states, states=True)) - set(states)):
        report.findings.append(Finding(run.path / "state" / step_filename(step), "missing",
                                       f"`grokinterp repair {run.path}` regenerates it by exact replay"))
