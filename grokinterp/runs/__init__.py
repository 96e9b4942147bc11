"""The run directory: one writer (`RunWriter`), a lazy reader (`Run`), and training into one (`train_run`).

```
<run>/config.json  split.safetensors  metrics.csv  summary.json  LOCK
<run>/ckpt/step_<NNNNNNN>.safetensors    the HookedTransformer state dict of theta_step
<run>/state/step_<NNNNNNN>.safetensors   optimizer, RNG and plug-in state at that step
```
Every file is written to a temporary name, fsynced and renamed. Only safetensors, JSON and CSV are read
back; nothing is unpickled.

- `_files`: the file primitives (atomic writes, tensors, JSON, CSV, versions, the lock);
- `_metrics`: metrics.csv, appended by whole rows and read back checked;
- `_writer`: `RunWriter`, the one writer of a run directory;
- `train_run` (`_training.py`): training into a run directory (the loop itself is `grokinterp.train`);
- `_run`: `Run`, the reader;
- re-exported from `grokinterp.milestones` (below training): `ACC_THRESHOLD`, `FINAL_STATUSES`, `Milestones`,
  `summarize` (summary.json's definitions);
- `_integrity`, `_checks`, `_verify`: content hashes recorded in every file, checks of what files hold,
  and `verify_run` (`grokinterp verify`).
"""

import importlib

# Imported on first use, so that light users (the sweep grid, CLI usage errors) do not load torch.
_EXPORTS = {
    "RunError": "_files", "RunLock": "_files", "STEP_RE": "_files", "TEMP_RE": "_files",
    "atomic_write_bytes": "_files", "atomic_write_json": "_files", "content_digest": "_files",
    "list_steps": "_files", "load_tensors": "_files", "read_json": "_files", "read_metrics_columns": "_metrics",
    "read_metrics_csv": "_metrics", "MetricsAppender": "_metrics", "read_tensors": "_files",
    "records_hashes": "_files", "remove_orphan_temp_files": "_files",
    "remove_stale_temp_files": "_files", "save_tensors": "_files", "step_filename": "_files",
    "versions": "_files", "write_csv": "_files", "write_metrics_csv": "_files", "HASH_KEY": "_integrity",
    "RECOVERY": "_integrity", "check_metrics_bytes": "_integrity", "csv_prefix": "_integrity",
    "state_metrics_record": "_integrity", "Run": "_run", "ACC_THRESHOLD": ".milestones",
    "FINAL_STATUSES": ".milestones", "Milestones": ".milestones", "summarize": ".milestones", "Finding": "_verify",
    "VerifyReport": "_verify", "expected_checkpoints": "_verify", "verify_run": "_verify",
    "RunWriter": "_writer", "train_run": "_training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
