"""`python -m grokinterp.vision --data DIR --out RUN_DIR [--steps N --n-train N ...]`: the vision control."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ._train import VisionRunConfig, train_vision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grokinterp.vision",
                                     description="Train the tiny ViT on CIFAR-10 binary files into a run directory.")
    parser.add_argument("--data", type=Path, required=True, help="folder with data_batch_1..5.bin and test_batch.bin")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/vit_cifar"), help="run directory")
    parser.add_argument("--no-progress", action="store_true")
    for f in dataclasses.fields(VisionRunConfig):
        if f.name not in ("vit", "batch_size", "threads"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    parser.add_argument("--batch-size", type=int, default=500, help="0: full batch")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(VisionRunConfig) if f.name != "vit"}
    values["batch_size"] = values["batch_size"] or None
    try:
        out = train_vision(VisionRunConfig(**values), args.data, args.out, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as e:
        print(f"python -m grokinterp.vision: error: {e}", file=sys.stderr)
        return 2
    print(f"run written to {out}: {(out / 'summary.json').read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
