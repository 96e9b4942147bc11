"""Read a torch-saved file without unpickling code: `torch.load(weights_only=True)` and named records only.

Published runs are `torch.save`d dicts of tensors, numbers and lists, sometimes with one config object.
Such an object is admitted by its exact pickled class path (e.g. TransformerLens 3's
`transformer_lens.config.hooked_transformer_config.HookedTransformerConfig`) and rebuilt as a
`PickledRecord`, a stand-in class with no behaviour registered under that path through torch's
safe-globals mechanism: its attributes are restored as data, nothing of the original class runs.
numpy scalars inside such a record (TL 3 stores `initializer_range` as one) are decoded for numeric
dtypes only. Any other class in the file is refused before loading, by name.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch


class ImportFormatError(ValueError):
    """A file that is not what an importer expects (wrong layout, shape, key or a refused class)."""


class PickledRecord:
    """Stand-in for an allowed config class: only its attributes, as plain data."""

    def __repr__(self) -> str:
        return f"PickledRecord({vars(self)})"


def _numpy_scalar(dtype: np.dtype, data: bytes):
    """Stand-in for numpy's scalar reconstructor: numbers only (an object dtype would need a real unpickle)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"refusing a numpy scalar of dtype {dtype!r}: only numeric scalars are read")
    return np.frombuffer(data, dtype=dtype)[0].item()


_NUMPY_GLOBALS = {
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy.dtype": np.dtype,
}


# numpy restores a dtype's byte order and flags on the dtype instance itself: allow the numeric dtype classes.
_NUMERIC_DTYPE_CLASSES = sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}, key=lambda c: c.__name__)


def _unsafe_globals(path: Path) -> list[str]:
    """Globals in the file beyond what `weights_only` admits by default, read without executing it."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # a legacy (non-zip) file: torch.load below still refuses what it must
        return []


def load_torch_file(path: str | Path, record_classes: list[str] | tuple[str, ...] = (),
                    record_pattern: str | None = None) -> object:
    """`torch.load(path, weights_only=True)` on CPU, admitting only the named config classes as records.

    Args:
        path: a file written by `torch.save`.
        record_classes: full pickled class paths ("module.QualName") rebuilt as `PickledRecord`s.
        record_pattern: a regular expression matched against class paths, for classes whose module path
            varies (e.g. Nanda et al.'s `transformers.Config` inside a package).

    Returns:
        The loaded object; every allowed record replaced by a plain dict of its attributes.

    Raises:
        FileNotFoundError: no such file.
        ImportFormatError: the file holds any other class, or is not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    unsafe = _unsafe_globals(path)
    records = set(record_classes) | {g for g in unsafe if record_pattern and re.fullmatch(record_pattern, g)}
    refused = sorted(g for g in unsafe if g not in records and g not in _NUMPY_GLOBALS)
    if refused:
        raise ImportFormatError(
            f"{path} holds Python objects of class {', '.join(refused)}; grokinterp loads only tensors, numbers, "
            f"lists and dicts (plus the config classes {sorted(set(record_classes)) or 'none'} as plain records) "
            "and never unpickles anything else")
    stand_ins = ([(PickledRecord, name) for name in sorted(records)] + [(f, name) for name, f in _NUMPY_GLOBALS.items()]
                 + _NUMERIC_DTYPE_CLASSES)
    try:
        with torch.serialization.safe_globals(stand_ins):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ImportFormatError(f"{path} needs code to be unpickled ({_first_reason(e)}); grokinterp never does "
                                "that: export the run's tensors and numbers only") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError) as e:
        raise ImportFormatError(f"{path} is not a readable torch-saved file ({type(e).__name__}: "
                                f"{_first_reason(e)})") from None
    _check_tensors(path, data)
    return _plain(data)


MAX_TENSOR_BYTES = 4 * 10**9  # a tensor an imported file may hold (a published run's largest is ~100 MB)


def _first_reason(error: Exception) -> str:
    """The first line of torch's message, without its advice to retry with weights_only=False."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    keep = [line for line in lines if "weights_only" not in line and "Re-running" not in line]
    return (keep or ["refused by torch.load(weights_only=True)"])[0][:200]


def _check_tensors(path: Path, obj, depth: int = 0) -> None:
    """Every tensor in the loaded object must be backed by its own bytes: a view larger than its storage
    (stride 0, overlapping strides) would make copying it allocate without bound; and within MAX_TENSOR_BYTES."""
    if depth > 100:
        raise ImportFormatError(f"{path} nests containers more than 100 deep")
    if isinstance(obj, torch.Tensor):
        nbytes = obj.numel() * obj.element_size()
        if nbytes > MAX_TENSOR_BYTES or nbytes > obj.untyped_storage().nbytes() - obj.storage_offset() * obj.element_size():
            raise ImportFormatError(f"{path} holds a tensor of shape {tuple(obj.shape)} and strides {obj.stride()} "
                                    f"that claims {nbytes:,} bytes over {obj.untyped_storage().nbytes():,} stored "
                                    f"(a broadcast view, or over {MAX_TENSOR_BYTES:,} bytes); refusing it")
    elif isinstance(obj, dict):
        for value in obj.values():
            _check_tensors(path, value, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _check_tensors(path, value, depth + 1)
    elif isinstance(obj, PickledRecord):
        _check_tensors(path, vars(obj), depth + 1)


def _plain(obj):
    """Records -> dicts, recursively through dicts, lists and tuples (tensors are left as they are)."""
    if isinstance(obj, PickledRecord):
        return {k: _plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj
