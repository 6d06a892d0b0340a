"""Pathfinder-32 and Path-X (LRA): are the two markers joined by one dashed contour? Pixels as tokens.

Reads the official layout (`pathfinder{32,128}/<difficulty dir>/{imgs/<k>/sample_<n>.png,
metadata/<k>.npy}`, also under `lra_release/`, `lra_release/lra_release/` or `pathfinder/`); the
metadata "npy" files are text, one image per line, of which fields 0 (subdir), 1 (file) and 3
(label) are used. Zero-byte PNGs are skipped and counted, as the benchmark's loaders do (the
released archive has one); anything else wrong is an error naming the file and line.

Split: 80/10/10 by a seeded permutation over all examples (metadata files sorted numerically, lines
in order) - the same split as S4's loader (`torch.randperm` with `split_seed`, default 42; val and
test int(0.1 N) each) when the same images are read.

Without a data dir, `snakes.py` generates `gen_total` images with the benchmark's settings into the
cache, in the same layout, and the same reader reads them back (`source = generated`).

Tokens: the pixel value (0..255), row-major; vocab 256. The benchmark masks pixel value 0 as padding
(`inputs > 0`), which hides the black background from attention; `task.pixel0_is_pad=true`
reproduces that quirk (pad_id 0), and the reference configs of `transformer` and `wavspa` set it
(tasks/pathfinder.yaml); the dataclass default treats every pixel as a token (pad_id None).

Sources, in order: the official tree under the data dir, else our generator (see base.py). Decoded
pixels are cached once (uint8, all examples; the split and the padding switch are applied on load, so
neither rebuilds), keyed on every file of the difficulty folder (path, size, modification time) or, for
generated data, on the generator's settings; a PNG changed, corrupted or deleted since is read again
(and then reported). The generated images themselves stay in the cache beside the pixels.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import ArraySplit, Source, Task, cache_root, first_dir


def _snakes():
    """The generator module, imported when needed (so `python -m lra_wavelet.data.snakes` runs it fresh)."""
    from . import snakes

    return snakes


TREE = "pathfinder{size}/{difficulty}/{{imgs/<k>/sample_<n>.png, metadata/<k>.npy}}"
PREFIXES = ("", "lra_release", "lra_release/lra_release", "pathfinder")  # where the tree may sit


@dataclass
class PathfinderConfig(TaskConfig):
    pixel0_is_pad: bool = False  # the benchmark's quirk: pixel value 0 is masked as padding
    split_seed: int = 42  # the seeded 80/10/10 split (S4's default seed)
    gen_total: int = 200_000  # generator: images (the benchmark's 200k per difficulty)
    gen_seed: int = 0
    gen_workers: int = 0  # processes (0: all cores); the images do not depend on it

    def __post_init__(self):  # checked when the config is built (`validate` too), before any work
        if self.gen_total <= 0:
            raise ValueError(f"gen_total must be positive, got {self.gen_total}")


# ----------------------------------------------------------------------------- reading


def _metadata_files(root: Path) -> list[Path]:
    """metadata/*.npy sorted by their integer names (S4's order); a non-integer name is an error."""
    meta_dir = root / "metadata"
    files = list(meta_dir.glob("*.npy"))
    if not files:
        raise UserError(f"{meta_dir}: no metadata/<k>.npy files; expected {root}/{{imgs,metadata}}")
    bad = [f for f in files if not f.stem.isdigit()]
    if bad:
        raise UserError(f"{bad[0]}: metadata files are named <k>.npy with an integer k")
    return sorted(files, key=lambda p: int(p.stem))


def read_metadata(root: Path) -> list[tuple[Path, int, Path, int]]:
    """(image path, label, metadata file, line number) for every example, in file and line order."""
    entries = []
    for f in _metadata_files(root):
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            raise UserError(f"{f}: not a text file; the metadata files are text despite the .npy name, one image "
                            "per line: 'imgs/<k> sample_<n>.png <n> <label> ...'") from None
        for lineno, line in enumerate(text.splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 4:
                raise UserError(f"{f}:{lineno}: expected at least 4 space-separated fields "
                                f"(subdir, file, index, label, ...), got {len(parts)}")
            if parts[3] not in ("0", "1"):
                raise UserError(f"{f}:{lineno}: label {parts[3]!r} is not 0 or 1")
            entries.append((root / parts[0] / parts[1], int(parts[3]), f, lineno))
    return entries


def read_official(root: Path, size: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """(x (N, size*size) uint8, y (N,) int64, skipped zero-byte files) from one difficulty folder."""
    from PIL import Image
    from ._common import progress_bar

    entries = read_metadata(root)
    x = np.zeros((len(entries), size * size), dtype=np.uint8)
    y = np.zeros(len(entries), dtype=np.int64)
    skipped, n = [], 0
    for img, label, f, lineno in progress_bar(entries, desc=f"reading pathfinder{size}", unit="img",
                                              show=progress):
        try:
            empty = img.stat().st_size == 0
        except FileNotFoundError:
            raise UserError(f"{f}:{lineno}: image {img} not found") from None
        if empty:  # the released archive has one; every loader skips it
            skipped.append(img)
            continue
        try:
            with Image.open(img) as im:
                a = np.asarray(im if im.mode == "L" else im.convert("L"))
        except (OSError, SyntaxError, ValueError) as e:
            raise UserError(f"{img}: not a readable PNG ({e}); listed at {f}:{lineno}") from None
        if a.shape != (size, size):
            raise UserError(f"{img}: image is {a.shape[1]}x{a.shape[0]}, expected {size}x{size} ({f}:{lineno})")
        x[n], y[n] = a.reshape(-1), label
        n += 1
    return x[:n], y[:n], skipped


def split_80_10_10(n: int, seed: int) -> dict[str, np.ndarray]:
    """S4's split: torch.randperm(n) with the seed; val and test int(0.1 n) each, train the rest."""
    import torch

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_val = n_test = int(0.1 * n)
    a = n - n_val - n_test
    return {"train": perm[:a], "val": perm[a:a + n_val], "test": perm[a + n_val:]}


class _Rows:
    """Rows `idx` of a (memory-mapped) array, without copying them: what ArraySplit needs."""

    def __init__(self, base: np.ndarray, idx: np.ndarray):
        self.base, self.idx = base, idx
        self.shape = (len(idx),) + base.shape[1:]
        self.dtype = base.dtype

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return _Rows(self.base, self.idx[i])
        return self.base[self.idx[i]]

    def __array__(self, dtype=None, copy=None):
        a = self.base[self.idx]
        return a if dtype is None else a.astype(dtype)


# ----------------------------------------------------------------------------- the tasks


@TASKS.register("pathfinder")
class Pathfinder(Task):
    """Pathfinder-32, hard (contour length 14): the LRA task."""

    Config = PathfinderConfig
    kind = "classify"
    size = 32
    difficulty = "hard"
    seq_len = 1024
    vocab_size = 256
    n_classes = 2
    pad_id = None
    chance = 0.5
    description = "do two markers lie on one dashed contour, 32x32 pixels (LRA Pathfinder, hard)"
    default_source = "generated"
    # 2: the generator follows the benchmark's seed test and wrapper settings (no single paddles);
    # the pixel cache is keyed on every image file. Data and caches of version 1 are not reused.
    version = 2
    volatile = Task.volatile + ("split_seed", "pixel0_is_pad")  # applied on load: never rebuild the pixels

    def __init__(self, cfg: PathfinderConfig):
        super().__init__(cfg)
        self.seq_len = self.size * self.size
        self.pad_id = 0 if cfg.pixel0_is_pad else None
        self.padding_leads = cfg.pixel0_is_pad  # an image may start with a black pixel
        self.skipped: list[Path] = []  # zero-byte PNGs left out

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    @property
    def folder(self) -> str:
        return f"pathfinder{self.size}/{_snakes().DIFFICULTY_DIRS[self.difficulty]}"

    def sources(self) -> list[Source]:
        return [Source("official", self.official_dir, self.read, inputs=lambda root: [root],
                       missing=f"--data-dir with {self.tree}"),
                Source("generated", self.generated_dir, self.generate, key=lambda _: repr(self.params()))]

    @property
    def tree(self) -> str:
        return TREE.format(size=self.size, difficulty=_snakes().DIFFICULTY_DIRS[self.difficulty])

    def official_dir(self) -> Optional[Path]:
        """The difficulty folder under the data dir; None without one, a UserError when it is not there."""
        root = self.data_dir()
        if root is None:
            return None
        d = first_dir(root, [f"{prefix}/{self.folder}" if prefix else self.folder for prefix in PREFIXES],
                      lambda d: (d / "metadata").is_dir())
        if d is None:
            raise UserError(f"{root}: no {self.folder}/metadata found; expected {root}/{self.tree} "
                            f"(or the same under lra_release/ or pathfinder/)")
        return d

    def params(self):
        """The benchmark's generator settings for this size and difficulty."""
        snakes = _snakes()
        return snakes.lra_params(self.size, snakes.DIFFICULTIES[self.difficulty])

    def generated_dir(self) -> Path:
        """Where the generator writes its images (keyed as the pixels are); nothing is built here."""
        key = self.fingerprint(generator=repr(self.params()))
        return cache_root() / self.name / f"images-{key}" / self.folder

    def generate(self, root: Path) -> dict:
        """Write the images into `root` in the official layout (resuming an interrupted run), then read them."""
        c = self.cfg
        _snakes().write_dataset(root, self.params(), c.gen_total, seed=c.gen_seed, workers=c.gen_workers)
        return self.read(root)

    def read(self, root: Path) -> dict:
        x, y, skipped = read_official(root, self.size)
        return {"all": (x, y), "meta": {"skipped": [str(s) for s in skipped]}}

    def assemble(self, arrays: dict) -> dict:
        """The cached examples split 80/10/10 by `split_seed` (rows viewed, not copied)."""
        self.skipped = [Path(s) for s in self.meta.get("skipped", [])]
        if self.skipped:
            print(f"warning: {self.name}: skipped {self.n_skipped} empty PNG file(s), e.g. {self.skipped[0]}",
                  file=sys.stderr)
        x, y = arrays["x_all"], np.asarray(arrays["y_all"])
        split = split_80_10_10(len(y), self.cfg.split_seed)
        return {k: ArraySplit(_Rows(x, idx), y[idx]) for k, idx in split.items()}


@TASKS.register("pathfinder-intermediate")
class PathfinderIntermediate(Pathfinder):
    """Pathfinder-32, contour length 9."""

    yaml_family = "pathfinder"
    difficulty = "intermediate"
    description = "Pathfinder 32x32, intermediate (contour length 9)"


@TASKS.register("pathfinder-easy")
class PathfinderEasy(Pathfinder):
    """Pathfinder-32, contour length 6 (the 'baseline' set)."""

    yaml_family = "pathfinder"
    difficulty = "easy"
    description = "Pathfinder 32x32, easy (contour length 6)"


@TASKS.register("pathx")
class PathX(Pathfinder):
    """Path-X: Pathfinder at 128x128 (16,384 tokens), hard."""

    size = 128
    seq_len = 16384
    description = "Path-X: Pathfinder at 128x128, 16,384 pixel tokens (LRA, hard)"


@TASKS.register("pathx-intermediate")
class PathXIntermediate(PathX):
    """Path-X, contour length 9."""

    yaml_family = "pathx"
    difficulty = "intermediate"
    description = "Path-X 128x128, intermediate (contour length 9)"


@TASKS.register("pathx-easy")
class PathXEasy(PathX):
    """Path-X, contour length 6."""

    yaml_family = "pathx"
    difficulty = "easy"
    description = "Path-X 128x128, easy (contour length 6)"
