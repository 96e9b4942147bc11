"""Sweep specs: a base config and a grid of config keys, expanded into named runs.

A grid axis is a dotted config key with a list of values; the runs are the
Cartesian product of the axes in the order given. Each run is an ordinary run
directory named from its grid values, e.g. `optim.beta1=0.5__model.seed=3`.
The spec and the resolved grid live in `<sweep>/sweep.json`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import PRESETS, ConfigError, RunConfig, apply_overrides, parse_literal, preset
from ..runs import FINAL_STATUSES

SWEEP_FILE = "sweep.json"
SEP = "__"  # between the key=value parts of a run name
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._+-]+$")


@dataclass(frozen=True)
class SweepRun:
    """One point of the grid: its directory name, its grid values and its resolved config."""

    name: str
    values: dict
    config: RunConfig


@dataclass(frozen=True)
class SweepSpec:
    """A base configuration (preset + overrides) and a grid of config keys.

    Args:
        grid: dotted config key -> list of values; the runs are their Cartesian product, in this order.
        preset: the starting preset (see `grokinterp presets`).
        overrides: dotted config keys applied to the preset before the grid.
        seed_keys: grid keys whose values are replicates, not conditions (aggregation pools over them);
            None: every grid key whose last part is `seed` (`model.seed`, `task.seed`).
        threads: torch threads per run (`train.threads` of every run); 1 lets a pool use every core.
        arms: named conditions that differ in several keys at once, label -> overrides (e.g. {"grokfast":
            {"plugins.grokfast_ema": {}}, "beta1=0.5": {"optim.beta1": 0.5}}); the runs are arms x grid,
            named `arm=<label>__...`, and "arm" is a cell key. None: the grid alone.

    >>> spec = SweepSpec({"optim.beta1": [0.0, 0.9], "model.seed": [0, 1]}, preset="fast")
    >>> [run.name for run in spec.runs()][:2]
    ['optim.beta1=0.0__model.seed=0', 'optim.beta1=0.0__model.seed=1']
    >>> spec.cell_keys
    ['optim.beta1']
    """

    grid: dict
    preset: str = "fast"
    overrides: dict = field(default_factory=dict)
    seed_keys: tuple | None = None
    threads: int = 1
    arms: dict | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if not self.grid and not self.arms:
            raise ConfigError("a sweep needs at least one grid axis, e.g. --grid model.seed=0:30")
        if self.arms is not None:
            if not isinstance(self.arms, dict) or not all(isinstance(v, dict) for v in self.arms.values()):
                raise ConfigError(f"arms must map a label to a dict of overrides, got {self.arms!r}")
            bad = [label for label in self.arms if not _SAFE_VALUE.match(str(label))]
            if bad:
                raise ConfigError(f"arm label(s) {bad} must be file-safe (letters, digits, . _ + -)")
        for key, values in self.grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"grid axis {key!r} needs a non-empty list of values, got {values!r}")
        size = math.prod(len(v) for v in self.grid.values()) * max(len(self.arms or {}), 1)
        if size > MAX_GRID_RUNS:
            raise ConfigError(f"the grid has {size:,} runs; a sweep holds at most {MAX_GRID_RUNS:,} (split it into "
                              "several sweeps)")
        if self.seed_keys is not None:
            unknown = [k for k in self.seed_keys if k not in self.grid]
            if unknown:
                raise ConfigError(f"seed key(s) {unknown} are not grid axes; axes: {list(self.grid)}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"threads={self.threads!r} must be a positive integer")
        # canonical values (the field's type: `0` for a float key is 0.0), so equal grids give equal run names
        base = self.base_config().to_dict()
        canonical = {}
        for key, values in self.grid.items():
            section, _, name = key.partition(".")
            canonical[key] = [apply_overrides(RunConfig.from_dict(base), {key: v}).to_dict()[section][name]
                              if section != "plugins" else v for v in values]
        object.__setattr__(self, "grid", canonical)
        for key, values in canonical.items():
            if len(set(map(_value_token, values))) != len(values):
                raise ConfigError(f"grid axis {key!r} repeats a value: {list(values)}")
        for _ in self.runs():  # unknown keys, bad types or values: fail before anything runs
            pass

    @property
    def replicate_keys(self) -> list[str]:
        if self.seed_keys is not None:
            return list(self.seed_keys)
        return [k for k in self.grid if k.rsplit(".", 1)[-1] == "seed"]

    @property
    def cell_keys(self) -> list[str]:
        """Keys that define a condition: "arm" when there are arms, then every grid key but the seed keys."""
        return (["arm"] if self.arms else []) + [k for k in self.grid if k not in self.replicate_keys]

    @property
    def axes(self) -> list[str]:
        return (["arm"] if self.arms else []) + list(self.grid)

    def base_config(self) -> RunConfig:
        return apply_overrides(preset(self.preset), {**self.overrides, "train.threads": self.threads})

    def runs(self):
        """Yield every SweepRun of the grid, in grid order (later axes vary fastest)."""
        base = self.base_config()
        keys = list(self.grid)
        for label, arm in (self.arms or {None: {}}).items():
            for combo in itertools.product(*(self.grid[k] for k in keys)):
                values = dict(zip(keys, combo))
                named = values if label is None else {"arm": label, **values}
                yield SweepRun(run_name(named), named, apply_overrides(base, {**arm, **values}))

    def to_dict(self) -> dict:
        return {"preset": self.preset, "overrides": dict(self.overrides), "grid": {k: list(v) for k, v in self.grid.items()},
                "seed_keys": None if self.seed_keys is None else list(self.seed_keys), "threads": self.threads,
                "arms": None if self.arms is None else {k: dict(v) for k, v in self.arms.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        """A spec from a JSON-like dict; grid values may be lists, `"0:30"` ranges or `{"range": [0, 30]}`."""
        unknown = set(data) - {"preset", "overrides", "grid", "seed_keys", "threads", "arms"}
        if unknown:
            raise ConfigError(f"unknown sweep spec field(s) {sorted(unknown)}; valid: preset, overrides, grid, seed_keys, threads, arms")
        grid = {key: parse_axis_values(key, values) for key, values in dict(data.get("grid", {})).items()}
        seed_keys = data.get("seed_keys")
        return cls(grid=grid, preset=data.get("preset", "fast"), overrides=dict(data.get("overrides", {})),
                   seed_keys=None if seed_keys is None else tuple(seed_keys), threads=int(data.get("threads", 1)),
                   arms=data.get("arms"))

    @classmethod
    def from_file(cls, path: str | Path) -> "SweepSpec":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sweep spec {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"sweep spec {path} is not valid JSON: {e}") from None
        return cls.from_dict(data)


MAX_GRID_RUNS = 100_000  # runs per sweep: checked before any list of runs is built


def parse_axis_values(key: str, values: Any) -> list:
    """Grid values from a list, a `start:stop[:step]` range string, `{"range": [start, stop, step]}`,
    `range(30)` or a comma-separated string of literals.

    >>> parse_axis_values("model.seed", "0:3"), parse_axis_values("optim.beta1", "0,0.5,0.9")
    ([0, 1, 2], [0, 0.5, 0.9])
    """
    if isinstance(values, dict):
        if set(values) != {"range"}:
            raise ConfigError(f"grid axis {key!r}: a dict value must be {{\"range\": [start, stop, step]}}, got {values!r}")
        return _range(key, values["range"])
    if isinstance(values, (list, tuple)):
        return list(values)
    if not isinstance(values, str):
        return [values]
    text = values.strip()
    match = re.fullmatch(r"range\(([^)]*)\)", text)
    if match:
        return _range(key, [parse_literal(x.strip()) for x in match.group(1).split(",")])
    if text.startswith("["):
        parsed = parse_literal(text)
        if not isinstance(parsed, list):
            raise ConfigError(f"grid axis {key!r}: {text!r} is not a list literal")
        return parsed
    if re.fullmatch(r"-?\d+:-?\d+(:-?\d+)?", text):
        return _range(key, [int(x) for x in text.split(":")])
    return [parse_literal(x.strip()) for x in text.split(",") if x.strip()]


def _range(key: str, args) -> list[int]:
    if not isinstance(args, (list, tuple)) or not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
        raise ConfigError(f"grid axis {key!r}: a range needs 1 to 3 integers (stop, start:stop or start:stop:step), got {args!r}")
    span = range(*args)
    if len(span) > MAX_GRID_RUNS:
        raise ConfigError(f"grid axis {key!r}: range{tuple(args)} has {len(span):,} values; a sweep holds at most "
                          f"{MAX_GRID_RUNS:,} runs (split it into several sweeps)")
    values = list(span)
    if not values:
        raise ConfigError(f"grid axis {key!r}: range{tuple(args)} is empty")
    return values


def parse_grid_arg(text: str) -> tuple[str, list]:
    """`optim.beta1=0,0.5,0.9` -> ('optim.beta1', [0, 0.5, 0.9]); `model.seed=0:30` -> range(0, 30)."""
    key, eq, values = text.partition("=")
    key = key.strip().removeprefix("--")
    if not eq or "." not in key or not values.strip():
        raise ConfigError(f"--grid {text!r} must look like KEY=VALUES, e.g. optim.beta1=0,0.5,0.9 or model.seed=0:30")
    return key, parse_axis_values(key, values)


def _value_token(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if _SAFE_VALUE.match(text):
        return text
    # unsafe for a file name (a dict of plug-in arguments, a path): a short stable digest
    return "h" + hashlib.sha1(text.encode()).hexdigest()[:10]


def run_name(values: dict) -> str:
    """The run directory name of a grid point: `key=value` parts joined by `__`.

    >>> run_name({"optim.beta1": 0.5, "model.seed": 3})
    'optim.beta1=0.5__model.seed=3'
    """
    return SEP.join(f"{key}={_value_token(value)}" for key, value in values.items())


def _jsonable(value):
    return json.loads(json.dumps(value))


def write_sweep_file(sweep_dir: Path, spec: SweepSpec) -> dict:
    """Create or extend `<sweep_dir>/sweep.json`; returns its content.

    An existing sweep may be extended with new grid values (its runs are kept and listed first), but not
    changed: a different base config or different grid keys raise ConfigError.
    """
    from ..runs import atomic_write_json

    sweep_dir = Path(sweep_dir)
    base = spec.base_config().to_dict()
    runs = [{"name": r.name, "values": _jsonable(r.values)} for r in spec.runs()]
    path = sweep_dir / SWEEP_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old["base_config"] != _jsonable(base):
            raise ConfigError(f"{sweep_dir} holds a sweep with a different base config (preset, overrides or threads); "
                              "choose another --out, or repeat the original preset and overrides")
        if old["axes"] != spec.axes:
            raise ConfigError(f"{sweep_dir} holds a sweep over {old['axes']}, not {spec.axes}; choose another --out")
        known = {r["name"] for r in old["runs"]}
        runs = old["runs"] + [r for r in runs if r["name"] not in known]
    data = {"spec": _jsonable(spec.to_dict()), "axes": spec.axes, "cell_keys": spec.cell_keys,
            "seed_keys": spec.replicate_keys, "base_config": _jsonable(base), "runs": runs}
    atomic_write_json(path, data, sort_keys=False)  # grid axes and plug-ins keep their order
    return data


def read_sweep_file(sweep_dir: str | Path) -> dict:
    """The content of `<sweep_dir>/sweep.json` (FileNotFoundError naming the fix when absent)."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{sweep_dir} is not a sweep directory (no {SWEEP_FILE}); "
                                f"run `grokinterp sweep --grid ... --out {sweep_dir}` first")
    return json.loads(path.read_text())


def run_status(run_dir: Path) -> str | None:
    """The status in `<run_dir>/summary.json` ('running' for an interrupted run), or None when absent."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("status")
    except json.JSONDecodeError:
        return None


def is_finished(run_dir: Path) -> bool:
    return run_status(run_dir) in FINAL_STATUSES
