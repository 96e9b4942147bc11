"""The vision control of the Grokking Dynamics write-up: a tiny ViT (about 0.8M parameters) on 5,000 CIFAR-10 images.

CIFAR-10 is read from its binary files (no pickle) at a path you give; nothing is downloaded.

>>> from grokinterp.vision import VisionRunConfig, train_vision
>>> train_vision(VisionRunConfig(), "data/cifar-10-batches-bin", "checkpoints/vit_cifar")   # doctest: +SKIP

or `python -m grokinterp.vision --data data/cifar-10-batches-bin --out checkpoints/vit_cifar`.
"""

from ._cifar import CLASSES, TEST_FILES, TRAIN_FILES, read_cifar10, read_cifar10_file, write_cifar10_file
from ._train import VisionRunConfig, load_vision_data, train_vision
from ._vit import TinyViT, ViTConfig

__all__ = [
    "CLASSES",
    "TEST_FILES",
    "TRAIN_FILES",
    "TinyViT",
    "ViTConfig",
    "VisionRunConfig",
    "load_vision_data",
    "read_cifar10",
    "read_cifar10_file",
    "train_vision",
    "write_cifar10_file",
]
