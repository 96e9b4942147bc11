"""Multi-run studies built on ordinary run directories: forks (continue a run from a step with changed
settings), and the source documents' transplant experiments that use them.

>>> from grokinterp.experiments import fork_run
>>> fork = fork_run("checkpoints/nanda", step=6000, out="checkpoints/nanda_wd025",
...                 overrides={"optim.weight_decay": 0.25})          # doctest: +SKIP
"""

import importlib

# Imported on first use, so `grokinterp --help` and config errors stay fast (the modules import torch).
_EXPORTS = {
    "FORK_FILE": "fork", "ReplayMismatchWarning": "fork", "fork_config": "fork", "fork_run": "fork",
    "replay_parent": "fork", "repair_run": "repair",
    "Reproduction": "repro", "write_reproduction_doc": "repro",
    "REPRODUCTIONS": "reproductions", "run_reproduction": "reproductions", "export_reproduction": "reproductions",
    "ReproData": "repro_data", "load_data": "repro_data", "export_data": "repro_data",
    "CLAIMS": "claims", "verdict": "claims", "write_ledger": "claims",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = sorted(_EXPORTS)
