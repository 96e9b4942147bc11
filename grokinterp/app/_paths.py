"""The lab's one door to the disk: every path it reads or writes is a name inside RUNS_DIR, checked here.

A run is named by its path relative to RUNS_DIR (`quick`, `sweep_a/run_0003`). A name is refused when
it is absolute, holds `..`, `.`, an empty or hidden part, a backslash or a NUL, or when the path it names,
or a file of the run that the lab reads, resolves (through a symlink) outside RUNS_DIR.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

# What a run the lab creates may be called: one folder name, no dots in front, no separators.
NEW_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RUN_FILES = ("config.json", "metrics.csv", "summary.json", "split.safetensors", "LOCK", "ckpt", "state", "analysis",
             "fork.json")
SKIP_DIRS = {"ckpt", "state", "analysis"}
LAB_DIR = ".lab"  # the lab's own files (logs of the runs it started), inside RUNS_DIR
MAX_DEPTH = 3


class PathRefused(ValueError):
    """A run name or path that would leave RUNS_DIR (or is not a run); the message says which and why."""


class RunsDir:
    """RUNS_DIR, and the only way the lab turns a user-given name into a path.

    >>> import tempfile; root = RunsDir(tempfile.mkdtemp())
    >>> root.path_of("../etc")
    Traceback (most recent call last):
    ...
    grokinterp.app._paths.PathRefused: run name '../etc' is refused: '..' is not allowed
    """

    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder; train a run into it first (`make train` writes "
                                    "checkpoints/quick) or pass another RUNS_DIR")
        self.root = root.resolve()

    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root)
        except ValueError:
            return False
        return True

    def path_of(self, name: str) -> Path:
        """The path of run `name` (it need not exist yet), or PathRefused."""
        if not isinstance(name, str) or not name or "\0" in name or "\\" in name:
            raise PathRefused(f"run name {name!r} is refused: it must be a non-empty relative path")
        pure = PurePosixPath(name)
        if pure.is_absolute() or name.startswith("/"):
            raise PathRefused(f"run name {name!r} is refused: absolute paths are not allowed")
        for part in name.split("/"):
            if part == "..":
                raise PathRefused(f"run name {name!r} is refused: '..' is not allowed")
            if part in ("", ".") or part.startswith("."):
                raise PathRefused(f"run name {name!r} is refused: empty, '.' or hidden parts are not allowed")
        path = self.root.joinpath(*pure.parts)
        if not self._inside(path):
            raise PathRefused(f"run name {name!r} is refused: it leads outside {self.root} (symlink)")
        return path

    def run_path(self, name: str) -> Path:
        """The path of the existing run `name`, every file the lab reads of it checked to stay inside RUNS_DIR."""
        path = self.path_of(name)
        if not (path / "config.json").is_file():
            raise PathRefused(f"{name!r} is not a run in {self.root} (no config.json)")
        for entry in RUN_FILES:
            target = path / entry
            if (target.exists() or target.is_symlink()) and not self._inside(target):
                raise PathRefused(f"run {name!r} is refused: {entry} leads outside {self.root} (symlink)")
        return path

    def checked_file(self, name: str, *parts: str) -> Path:
        """A file inside run `name` (e.g. `ckpt/step_0000100.safetensors`), refused if it resolves outside."""
        path = self.run_path(name).joinpath(*parts)
        if not self._inside(path):
            raise PathRefused(f"{name}/{'/'.join(parts)} is refused: it leads outside {self.root} (symlink)")
        return path

    def new_run_path(self, name: str) -> Path:
        """The path for a run the lab is to create: a plain folder name that holds no run yet."""
        if not isinstance(name, str) or not NEW_NAME_RE.match(name):
            raise PathRefused(f"run name {name!r} is refused: use letters, digits, '_', '.', '-' "
                              "(at most 64, not starting with '.' or '-')")
        path = self.path_of(name)
        if path.is_symlink() or (path.exists() and any(path.iterdir())):
            raise PathRefused(f"{path} already exists; choose another run name")
        return path

    def lab_file(self, *parts: str) -> Path:
        """A file of the lab's own (`.lab/...` inside RUNS_DIR); the folder is created."""
        path = self.root.joinpath(LAB_DIR, *parts)
        if not self._inside(path):
            raise PathRefused(f"{path} leads outside {self.root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def names(self) -> list[str]:
        """Every run under RUNS_DIR (folders holding config.json, at most MAX_DEPTH deep), sorted; symlinked
        folders, hidden folders and runs that resolve outside are left out."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            rel = Path(dirpath).relative_to(self.root)
            if "config.json" in filenames and rel.parts:
                name = rel.as_posix()
                try:
                    self.run_path(name)
                    found.append(name)
                except PathRefused:
                    pass
                dirnames[:] = []
                continue
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                           and not (Path(dirpath) / d).is_symlink() and len(rel.parts) < MAX_DEPTH]
        return sorted(found)
