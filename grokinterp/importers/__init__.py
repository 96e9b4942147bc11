"""Importers for published grokking runs: each file becomes an ordinary grokinterp run directory.

- `import_nanda(FILE, OUT)`: Nanda et al. 2023's full training-run file (`full_run_data.pth`, the
  progress-measures paper's mainline run: 1 layer, p = 113, snapshots every 100 epochs).
- `import_tl_demo(FILE, OUT)`: the file TransformerLens's Grokking_Demo notebook saves.

Files are read with `torch.load(weights_only=True)` only; a config object is admitted by its class
name as a plain record, and any other class is refused (`_safe_load`). Every tensor's shape is checked
against the config, with an error naming the key. The run directory is written by `grokinterp.runs`'s
writers, so `Run`, `replay` and `grokinterp analyze` read it like any trained run.

    run = import_nanda("full_run_data.pth", "checkpoints/nanda_original")
    replay(run)["progress"]["excluded_loss"]
"""

from __future__ import annotations

from pathlib import Path

from ..runs import Run
from ._nanda import nanda_to_tl, read_nanda_run
from ._safe_load import ImportFormatError, PickledRecord, load_torch_file
from ._tl_demo import read_tl_demo_run
from ._write import ImportedRun, write_imported_run

IMPORTERS = {"nanda": read_nanda_run, "tl-demo": read_tl_demo_run}


def import_nanda(path: str | Path, out: str | Path, progress: bool = True) -> Run:
    """Convert Nanda et al.'s full-run file into the run directory `out` (see `_nanda`)."""
    return write_imported_run(read_nanda_run(path), out, progress=progress)


def import_tl_demo(path: str | Path, out: str | Path, progress: bool = True) -> Run:
    """Convert the TransformerLens Grokking_Demo's saved file into the run directory `out` (see `_tl_demo`)."""
    return write_imported_run(read_tl_demo_run(path), out, progress=progress)


__all__ = ["IMPORTERS", "ImportFormatError", "ImportedRun", "PickledRecord", "import_nanda", "import_tl_demo",
           "load_torch_file", "nanda_to_tl", "read_nanda_run", "read_tl_demo_run", "write_imported_run"]
