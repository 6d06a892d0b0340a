"""Image (LRA): grayscale CIFAR-10 as a sequence of 1024 pixel tokens, 10 classes.

Official data (the benchmark takes it from TFDS `cifar10`):
    <data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}     python pickles, as released
    (also under cifar10/ or cifar/), or a `datasets` copy with an image column (`img` or `image`,
    PNG bytes) and `label`, e.g. <data_dir>/cifar10/plain_text/{train,test}-*.parquet
Each pickle holds b'data' (N, 3072) uint8, channel-major (1024 R, 1024 G, 1024 B, each row-major) and
b'labels'. Grayscale = 0.2989 R + 0.5870 G + 0.1140 B rounded to the nearest integer (halves up; TF's
rgb_to_grayscale scales by 255.5 and truncates instead, which differs by at most one level). The pixel
value is the token id (vocab 256, no padding); 1024 tokens in row-major order. Splits as the benchmark:
train = the first 90% of the training batches in order (45,000), val = the last 10% (5,000), test =
test_batch (10,000).

Offline stand-in (no data dir): Fashion-MNIST from Debian's dataset-fashion-mnist (IDX files), 28x28
padded with two zero pixels on every side to 32x32, so length, vocabulary and class count match.
Splits follow the same rule as CIFAR: the first 90% of the 60,000 training images (54,000) / the last
10% (6,000) / the 10,000 test images. Much easier than CIFAR: never report it as the benchmark.
"""

from __future__ import annotations

import gzip
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import Task
from ._common import cached, file_key, int_labels, read_table, substitute_notice, table_files

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TREE = "<data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}"
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


@dataclass
class ImageConfig(TaskConfig):
    # offline substitute (Fashion-MNIST, Debian dataset-fashion-mnist), used when no data dir is given
    sub_dir: Optional[str] = None  # directory of the four IDX .gz files (default: the Debian path)
    sub_train: int = 54000  # the first sub_train training images
    sub_val: int = 6000  # the last sub_val training images
    sub_test: int = 10000  # the first sub_test test images


# ----------------------------------------------------------------------------- CIFAR-10


def grayscale(rgb: np.ndarray) -> np.ndarray:
    """(N, 3072) channel-major uint8 -> (N, 1024) uint8: round(0.2989 R + 0.5870 G + 0.1140 B).

    Integer arithmetic, so the rounding of exact halves (e.g. B = 250 alone: 28.5 -> 29) never
    depends on floating point.
    """
    c = rgb.astype(np.int32).reshape(len(rgb), 3, 1024)
    return ((2989 * c[:, 0] + 5870 * c[:, 1] + 1140 * c[:, 2] + 5000) // 10000).astype(np.uint8)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python pickle -> grayscale (N, 1024) uint8, labels (N,)."""
    if not path.is_file():
        raise UserError(f"{path}: file not found; expected {TREE}")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # any unpickling failure means the file is not what we expect
        raise UserError(f"{path}: not a CIFAR-10 python pickle ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: expected a pickled dict with b'data' and b'labels', got {type(d).__name__}")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    for key, v in (("data", data), ("labels", labels)):
        if v is None:
            raise UserError(f"{path}: missing key b'{key}' (expected b'data' (N, 3072) uint8 and b'labels')")
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise UserError(f"{path}: b'data' is {data.dtype} {data.shape}; expected uint8 (N, 3072), channel-major RGB")
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    return grayscale(data), int_labels(list(labels), str(path), 10)


def read_image_table(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """A `datasets` copy (PNG bytes in `img` or `image`) -> grayscale (N, 1024) uint8, labels."""
    from PIL import Image
    from tqdm import tqdm

    t = read_table(files, (("img", "image"), "label"))
    cells = t.column("img").to_pylist()
    rgb = np.empty((len(cells), 3072), dtype=np.uint8)
    for i, cell in enumerate(tqdm(cells, desc="decoding CIFAR-10 images", unit="img", leave=False)):
        raw = cell.get("bytes") if isinstance(cell, dict) else cell
        try:
            im = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        except Exception as e:
            raise UserError(f"{files[0]}: row {i}: image cannot be decoded ({e})") from None
        if im.shape != (32, 32, 3):
            raise UserError(f"{files[0]}: row {i}: image is {im.shape}, expected 32x32 RGB")
        rgb[i] = im.transpose(2, 0, 1).reshape(-1)  # HWC -> channel-major, as the pickles
    return grayscale(rgb), int_labels(t.column("label").to_pylist(), str(files[0]), 10)


def find_cifar(root: Path) -> tuple[str, object]:
    for cand in (root / "cifar-10-batches-py", root / "cifar10" / "cifar-10-batches-py",
                 root / "cifar" / "cifar-10-batches-py", root):
        if (cand / "data_batch_1").is_file():
            return "pickle", cand
    for cand in (root / "cifar10", root / "uoft-cs___cifar10", root / "uoft-cs" / "cifar10", root / "cifar", root):
        if cand.is_dir():
            files = {s: table_files(cand, s) for s in ("train", "test")}
            if files["train"] and files["test"]:
                return "table", files
    raise UserError(f"{root}: no CIFAR-10 data found; expected {TREE} (python pickles, also under cifar10/) "
                    "or a datasets copy <data_dir>/cifar10/plain_text/{train,test}-*.parquet with img,label columns")


def split_train(x: np.ndarray, y: np.ndarray, where: str) -> dict:
    """The benchmark's train[:90%] / train[90%:] in the original order."""
    cut = round(0.9 * len(y))
    if cut == 0 or cut == len(y):
        raise UserError(f"{where}: {len(y)} training images are too few for a 90/10 train/val split")
    return {"train": (x[:cut], y[:cut]), "val": (x[cut:], y[cut:])}


# ----------------------------------------------------------------------------- Fashion-MNIST


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


# ----------------------------------------------------------------------------- the task


@TASKS.register("image")
class ImageTask(Task):
    Config = ImageConfig
    kind = "classify"
    seq_len = 1024
    vocab_size = 256
    n_classes = 10
    pad_id = None  # every pixel is a token
    chance = 0.10
    description = "grayscale CIFAR-10, 1024 pixel tokens (LRA Image)"
    default_source = "substitute"

    def load(self) -> dict:
        root = self.data_dir()
        if root is None:
            return self._substitute()
        layout, where = find_cifar(root)
        self.source = "official" if layout == "pickle" else "hf"
        if layout == "pickle":
            files = [where / b for b in TRAIN_BATCHES + ("test_batch",)]
            for f in files:
                if not f.is_file():
                    raise UserError(f"{f}: file not found; expected {TREE}")
            key = [file_key(f) for f in files]
        else:
            key = {s: [file_key(f) for f in fs] for s, fs in where.items()}

        def build():
            if layout == "pickle":
                parts = [read_batch(f) for f in files[:5]]
                x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
                test = read_batch(files[5])
                where_train = str(where / "data_batch_*")
            else:
                x, y = read_image_table(where["train"])
                test = read_image_table(where["test"])
                where_train = str(where["train"][0])
            return {**split_train(x, y, where_train), "test": test}

        return cached(self.cache_dir(layout=layout, files=key), build)

    def _substitute(self) -> dict:
        c = self.cfg
        d = Path(c.sub_dir).expanduser() if c.sub_dir else Path(FMNIST_DIR)
        if not all((d / f).is_file() for fs in FMNIST_FILES.values() for f in fs):
            if c.sub_dir:
                raise UserError(f"task.sub_dir: {d} lacks the Fashion-MNIST IDX files "
                                f"{', '.join(f for fs in FMNIST_FILES.values() for f in fs)}")
            raise UserError("the offline Image substitute needs Fashion-MNIST: apt-get update && apt-get install "
                            f"dataset-fashion-mnist (files under {FMNIST_DIR}), or give --data-dir with {TREE}")
        substitute_notice(self.name, f"Fashion-MNIST padded to 32x32 from {d}")
        self.source = "substitute"

        def build():
            x, y = read_fmnist(d, "train")
            xt, yt = read_fmnist(d, "test")
            if min(c.sub_train, c.sub_val, c.sub_test) <= 0 or c.sub_train + c.sub_val > len(y):
                raise UserError(f"task.sub_train + task.sub_val must be positive and at most {len(y)}, "
                                f"got {c.sub_train} + {c.sub_val} (sub_test {c.sub_test})")
            return {"train": (x[:c.sub_train], y[:c.sub_train]), "val": (x[len(y) - c.sub_val:], y[len(y) - c.sub_val:]),
                    "test": (xt[:c.sub_test], yt[:c.sub_test])}

        key = [file_key(d / f) for fs in FMNIST_FILES.values() for f in fs]
        return cached(self.cache_dir(layout="fashion-mnist", files=key), build)
