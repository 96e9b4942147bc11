"""CIFAR-10's binary version read with numpy (no pickle): `data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`.

Each file is a sequence of 3073-byte records: one label byte (0-9), then 3072 pixel bytes, the 1024 red,
then green, then blue values of a 32x32 image in row-major order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
RECORD_BYTES = 1 + 3 * 32 * 32
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BINARY_DIR = "cifar-10-batches-bin"  # the folder cifar-10-binary.tar.gz extracts to


def _data_dir(path: Path, files: tuple[str, ...]) -> Path:
    path = Path(path)
    for candidate in (path, path / BINARY_DIR):
        if all((candidate / f).is_file() for f in files):
            return candidate
    missing = [f for f in files if not (path / f).is_file()]
    raise FileNotFoundError(
        f"CIFAR-10 binary files not found in {path} (nor in {path / BINARY_DIR}): missing {missing}. "
        f"Expected the binary version: {', '.join(TRAIN_FILES + TEST_FILES)} (from cifar-10-binary.tar.gz, "
        "not the Python pickle version); pass the folder that holds them.")


def read_cifar10_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch file -> (images uint8 [n, 3, 32, 32], labels int64 [n])."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ValueError(f"{path} is not a CIFAR-10 binary batch: {raw.size} bytes is not a positive multiple of "
                         f"{RECORD_BYTES} (1 label byte + 3072 pixel bytes per image)")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"{path}: label {int(labels.max())} is out of range 0-9; is this CIFAR-100 or another format?")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def read_cifar10(path: str | Path, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10's train (50,000 images) or test (10,000) split from its binary files.

    Args:
        path: the folder holding the .bin files, or its parent holding `cifar-10-batches-bin/`.
        split: "train" (data_batch_1..5.bin) or "test" (test_batch.bin).
        limit: keep the first `limit` images (in file order).

    Returns:
        (images uint8 [n, 3, 32, 32] as channels, rows, columns; labels int64 [n] in 0-9).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not valid; choose 'train' or 'test'")
    files = TRAIN_FILES if split == "train" else TEST_FILES
    folder = _data_dir(Path(path), files)
    images, labels, count = [], [], 0
    for name in files:
        x, y = read_cifar10_file(folder / name)
        images.append(x)
        labels.append(y)
        count += len(y)
        if limit is not None and count >= limit:
            break
    x, y = np.concatenate(images), np.concatenate(labels)
    return (x[:limit], y[:limit]) if limit is not None else (x, y)


def write_cifar10_file(path: str | Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write images uint8 [n, 3, 32, 32] and labels [n] in CIFAR-10's binary record format (for tests and
    small synthetic data sets)."""
    from ..runs import atomic_write_bytes

    images, labels = np.asarray(images), np.asarray(labels)
    if images.shape[1:] != (3, 32, 32) or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(f"need uint8 images [n, 3, 32, 32] and labels [n], got {images.dtype} {images.shape} "
                         f"and {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError("labels must lie in 0-9")
    records = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(images), -1)], axis=1)
    atomic_write_bytes(Path(path), records.tobytes())
