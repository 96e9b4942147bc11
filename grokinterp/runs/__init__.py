"""The run directory: one writer (`RunWriter`), a lazy reader (`Run`), and the summary's definitions.

```
<run>/config.json  split.safetensors  metrics.csv  summary.json  LOCK
<run>/ckpt/step_<NNNNNNN>.safetensors    the HookedTransformer state dict of theta_step
<run>/state/step_<NNNNNNN>.safetensors   optimizer, RNG and plug-in state at that step
```
Every file is written to a temporary name, fsynced and renamed. Only safetensors, JSON and CSV are read
back; nothing is unpickled.

- `_files`: the file primitives (atomic writes, tensors, CSV and the appended metrics.csv, versions, the lock);
- `_writer`: `RunWriter`, the one writer of a run directory;
- `_summary`: `ACC_THRESHOLD`, `FINAL_STATUSES`, `Milestones`, `summarize` (summary.json);
- `_run`: `Run`, the reader.
"""

from ._files import (
    STEP_RE,
    MetricsAppender,
    TEMP_RE,
    RunError,
    RunLock,
    atomic_write_bytes,
    atomic_write_json,
    list_steps,
    load_tensors,
    read_metrics_columns,
    read_metrics_csv,
    remove_stale_temp_files,
    save_tensors,
    step_filename,
    versions,
    write_csv,
    write_metrics_csv,
)
from ._run import Run
from ._summary import ACC_THRESHOLD, FINAL_STATUSES, Milestones, summarize
from ._writer import RunWriter

__all__ = [
    "ACC_THRESHOLD", "FINAL_STATUSES", "MetricsAppender", "Milestones", "Run", "RunError", "RunLock", "RunWriter", "STEP_RE",
    "TEMP_RE", "atomic_write_bytes", "atomic_write_json", "list_steps", "load_tensors", "read_metrics_columns",
    "read_metrics_csv", "remove_stale_temp_files", "save_tensors", "step_filename", "summarize", "versions",
    "write_csv", "write_metrics_csv",
]
