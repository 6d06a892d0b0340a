"""The Image stand-in: Fashion-MNIST from Debian's dataset-fashion-mnist (IDX files), padded 28x28 -> 32x32.

Two zero pixels on every side make it 32x32, so length, vocabulary and class count match CIFAR-10's
grayscale sequence. Much easier than CIFAR: never report it as the benchmark.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import UserError
from .._common import int_labels

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
ALL_FILES = [f for fs in FMNIST_FILES.values() for f in fs]


def fmnist_dir(sub_dir: Optional[str]) -> Optional[Path]:
    """`task.sub_dir` (an error if it lacks the files), else the Debian path, else None (not installed)."""
    d = Path(sub_dir).expanduser() if sub_dir else Path(FMNIST_DIR)
    if all((d / f).is_file() for f in ALL_FILES):
        return d
    if sub_dir:
        raise UserError(f"task.sub_dir: {d} lacks the Fashion-MNIST IDX files {', '.join(ALL_FILES)}")
    return None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A gzipped IDX file (magic 0x0000_08_0n, big-endian dims) of unsigned bytes."""
    if not path.is_file():
        raise UserError(f"{path}: file not found (Fashion-MNIST: apt-get install dataset-fashion-mnist)")
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    magic = int.from_bytes(raw[:4], "big")
    if magic != 0x0800 + ndim:
        raise UserError(f"{path}: not an IDX file of {ndim}-d unsigned bytes (magic {magic:#010x})")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    head = 4 + 4 * ndim
    if len(raw) != head + int(np.prod(dims)):
        raise UserError(f"{path}: {len(raw) - head} data bytes, but the header says {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def read_fmnist(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1024) uint8 images padded 28x28 -> 32x32, labels (N,)."""
    img_file, lab_file = FMNIST_FILES[split]
    images, labels = read_idx(d / img_file, 3), read_idx(d / lab_file, 1)
    if len(images) != len(labels):
        raise UserError(f"{d / img_file}: {len(images)} images but {d / lab_file} has {len(labels)} labels")
    if images.shape[1:] != (28, 28):
        raise UserError(f"{d / img_file}: images are {images.shape[1:]}, expected 28x28")
    x = np.pad(images, ((0, 0), (2, 2), (2, 2))).reshape(len(images), 1024)
    return x, int_labels(labels, str(d / lab_file), 10)
