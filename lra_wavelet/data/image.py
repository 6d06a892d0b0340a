"""Image (LRA): grayscale CIFAR-10 as a sequence of 1024 pixel tokens, 10 classes.

Official data (the benchmark takes it from TFDS `cifar10`):
    <data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}     python pickles, as released
    (also under cifar10/ or cifar/), or a Hugging Face copy with an image column (`img` or `image`,
    PNG bytes) and `label`, splits train/test (`DatasetDict.save_to_disk`, or the Hub's
    <data_dir>/cifar10/plain_text/{train,test}-*.parquet); or a Hub id (`task.hf=uoft-cs/cifar10`)
Each pickle holds b'data' (N, 3072) uint8, channel-major (1024 R, 1024 G, 1024 B, each row-major) and
b'labels'. Grayscale as the benchmark's tf.image.rgb_to_grayscale computes it: 0.2989 R + 0.5870 G +
0.1140 B on pixels scaled to [0, 1] (float32), times 255.5, truncated (`grayscale`). The pixel
value is the token id (vocab 256); 1024 tokens in row-major order. The benchmark masks pixel value 0 as
padding (`inputs > 0`), hiding black pixels from attention; `task.pixel0_is_pad=true` reproduces that
(pad_id 0), and the reference configs of `transformer` and `wavspa` set it (tasks/image.yaml); the
dataclass default treats every pixel as a token (pad_id None). Splits in the benchmark's proportions:
train = the first 90% of the training batches in the pickles' order (45,000), val = the last 10%
(5,000), test = test_batch (10,000). The benchmark's TFDS `train[:90%]` / `train[90%:]` slice TFDS's own
stored order of the same 50,000 images, a fixed shuffle, so its validation images are another 5,000 of
them (the training set differs by those): a named deviation, the same size and distribution.

Offline stand-in (`standins/fashion_mnist.py`): Fashion-MNIST padded to 32x32. Splits follow the same rule
as CIFAR: the first 90% of the 60,000 training images (54,000) / the last 10% (6,000) / the 10,000 test
images. Much easier than CIFAR: never report it as the benchmark.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserError
from ..registry import TASKS
from ._common import int_labels
from ._hub import hf_source, read_tables, table_layout
from .base import HubConfig, Source, Task, first_dir
from .standins import fashion_mnist

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TREE = "<data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}"


@dataclass
class ImageConfig(HubConfig):
    pixel0_is_pad: bool = False  # the benchmark's quirk: pixel value 0 is masked as padding (as Pathfinder's)
    # offline substitute (Fashion-MNIST, Debian dataset-fashion-mnist), used when no data dir is given
    sub_dir: Optional[str] = None  # directory of the four IDX .gz files (default: the Debian path)
    sub_train: int = 54000  # the first sub_train training images
    sub_val: int = 6000  # the last sub_val training images
    sub_test: int = 10000  # the first sub_test test images


# ----------------------------------------------------------------------------- CIFAR-10


def grayscale(rgb: np.ndarray) -> np.ndarray:
    """(N, 3072) channel-major uint8 -> (N, 1024) uint8, the benchmark's tf.image.rgb_to_grayscale.

    TF scales the pixels to [0, 1] in float32 (x * (1/255)), takes 0.2989 R + 0.5870 G + 0.1140 B and
    converts back with convert_image_dtype, which multiplies by 255.5 and truncates: floor(g * 255.5 / 255),
    not round(g) (that differs by one level on about a quarter of the pixels, and maps some of the pixels
    the benchmark calls 0 to 1). The same float32 operations here, so the token ids are the benchmark's (up to
    the summation order of TF's tensordot, which could only move a value lying within float32 rounding of an
    integer).
    """
    f = rgb.reshape(len(rgb), 3, 1024).astype(np.float32) * np.float32(1.0 / 255)
    w = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)
    g = f[:, 0] * w[0] + f[:, 1] * w[1] + f[:, 2] * w[2]
    return (g * np.float32(255.5)).astype(np.uint8)  # a float -> uint8 cast truncates, as TF's


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
    if isinstance(labels, (str, bytes, dict)) or not hasattr(labels, "__len__"):
        raise UserError(f"{path}: b'labels' is {type(labels).__name__}; expected a list of {len(data)} integer labels")
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    return grayscale(data), int_labels(list(labels), str(path), 10)


def decode_images(table, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A Hub-schema table (PNG bytes in `img`, `label`) -> grayscale (N, 1024) uint8, labels."""
    from PIL import Image
    from ._common import progress_bar

    cells = table.column("img").to_pylist()
    rgb = np.empty((len(cells), 3072), dtype=np.uint8)
    for i, cell in enumerate(progress_bar(cells, desc="decoding CIFAR-10 images", unit="img")):
        raw = cell.get("bytes") if isinstance(cell, dict) else cell
        try:
            im = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        except Exception as e:
            raise UserError(f"{where}: row {i}: image cannot be decoded ({e})") from None
        if im.shape != (32, 32, 3):
            raise UserError(f"{where}: row {i}: image is {im.shape}, expected 32x32 RGB")
        rgb[i] = im.transpose(2, 0, 1).reshape(-1)  # HWC -> channel-major, as the pickles
    return grayscale(rgb), int_labels(table.column("label").to_pylist(), where, 10)


def find_cifar(root: Path) -> tuple[str, object]:
    """('pickle', folder) or ('table', {split: files}), or a UserError showing both layouts."""
    d = first_dir(root, ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar/cifar-10-batches-py", ""),
                  lambda d: (d / "data_batch_1").is_file())
    if d is not None:
        return "pickle", d
    tables = table_layout(ImageTask, root, ("cifar10", "uoft-cs___cifar10", "uoft-cs/cifar10", "cifar", ""))
    if tables is not None:
        return "table", tables
    raise UserError(f"{root}: no CIFAR-10 data found; expected {TREE} (python pickles, also under cifar10/) "
                    "or a Hugging Face copy with img,label columns (DatasetDict.save_to_disk, or "
                    "<data_dir>/cifar10/plain_text/{train,test}-*.parquet)")


def split_train(x: np.ndarray, y: np.ndarray, where: str) -> dict:
    """The benchmark's train[:90%] / train[90%:] in the original order."""
    cut = round(0.9 * len(y))
    if cut == 0 or cut == len(y):
        raise UserError(f"{where}: {len(y)} training images are too few for a 90/10 train/val split")
    return {"train": (x[:cut], y[:cut]), "val": (x[cut:], y[cut:])}


# ----------------------------------------------------------------------------- the task


@TASKS.register("image")
class ImageTask(Task):
    version = 3  # 2: a Hugging Face copy under the data dir is data_source=official (was hf); 3: TF's grayscale
    Config = ImageConfig
    kind = "classify"
    seq_len = 1024
    vocab_size = 256
    n_classes = 10
    pad_id = None  # every pixel is a token
    chance = 0.10
    description = "grayscale CIFAR-10, 1024 pixel tokens (LRA Image)"
    default_source = "substitute"
    hub_columns = (("img", "image"), "label")
    hub_splits = ("train", "test")
    volatile = Task.volatile + ("pixel0_is_pad",)  # the mask is the model's: the arrays are the same

    def __init__(self, cfg: ImageConfig):
        super().__init__(cfg)
        self.pad_id = 0 if cfg.pixel0_is_pad else None
        self.padding_leads = cfg.pixel0_is_pad  # an image may start with a black pixel

    def sources(self) -> list[Source]:
        c = self.cfg
        return [
            Source("official", lambda: self.data_dir() and find_cifar(self.data_dir()), self.read_official,
                   inputs=self._inputs, missing=f"--data-dir with {TREE}"),
            hf_source(self),
            Source("substitute", lambda: fashion_mnist.fmnist_dir(c.sub_dir), self.build_substitute,
                   inputs=lambda d: [d / f for f in fashion_mnist.ALL_FILES],
                   missing="the offline stand-in, Fashion-MNIST: apt-get update && apt-get install "
                           f"dataset-fashion-mnist (files under {fashion_mnist.FMNIST_DIR})",
                   notice=lambda d: f"Fashion-MNIST padded to 32x32 from {d}"),
        ]

    @staticmethod
    def _inputs(found) -> list[Path]:
        layout, where = found
        if layout == "table":
            return [f for fs in where.values() for f in fs]
        files = [where / b for b in TRAIN_BATCHES + ("test_batch",)]
        for f in files:
            if not f.is_file():
                raise UserError(f"{f}: file not found; expected {TREE}")
        return files

    def read_official(self, found) -> dict:
        layout, where = found
        if layout == "table":
            return read_tables(self, where)
        parts = [read_batch(where / b) for b in TRAIN_BATCHES]
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return {**split_train(x, y, str(where / "data_batch_*")), "test": read_batch(where / "test_batch")}

    def from_tables(self, tables: dict, where: str) -> dict:
        x, y = decode_images(tables["train"], f"{where} [train]")
        return {**split_train(x, y, f"{where} [train]"), "test": decode_images(tables["test"], f"{where} [test]")}

    def build_substitute(self, d: Path) -> dict:
        c = self.cfg
        x, y = fashion_mnist.read_fmnist(d, "train")
        xt, yt = fashion_mnist.read_fmnist(d, "test")
        if min(c.sub_train, c.sub_val, c.sub_test) <= 0 or c.sub_train + c.sub_val > len(y):
            raise UserError(f"task.sub_train + task.sub_val must be positive and at most {len(y)}, "
                            f"got {c.sub_train} + {c.sub_val} (sub_test {c.sub_test})")
        return {"train": (x[:c.sub_train], y[:c.sub_train]), "val": (x[len(y) - c.sub_val:], y[len(y) - c.sub_val:]),
                "test": (xt[:c.sub_test], yt[:c.sub_test])}
