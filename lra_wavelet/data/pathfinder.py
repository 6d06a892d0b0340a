"""Pathfinder-32 and Path-X (LRA): are the two markers joined by one dashed contour? Pixels as tokens.

Reads the official layout (`pathfinder{32,128}/<difficulty dir>/{imgs/<k>/sample_<n>.png,
metadata/<k>.npy}`; the metadata "npy" files are text, one image per line, fields 0 (subdir),
1 (file) and 3 (label) used). Zero-byte PNGs are skipped and counted, as the benchmark's loaders do;
anything else wrong is an error naming the file and line. Examples are split 80/10/10 by a seeded
permutation over the metadata files sorted numerically (lines in order).

Without a data dir, `snakes.py` generates the data with the benchmark's settings into the cache, in
the same layout, and the same reader reads it back.

The benchmark masks pixel value 0 as padding (`inputs > 0`), which hides the black background from
attention; `task.pixel0_is_pad=true` reproduces that quirk (pad_id 0), the default treats every
pixel as a token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from . import snakes
from ._common import file_key
from .base import ArraySplit, Task

TREE = "pathfinder{size}/{difficulty}/{{imgs/<k>/sample_<n>.png, metadata/<k>.npy}}"


@dataclass
class PathfinderConfig(TaskConfig):
    pixel0_is_pad: bool = False  # the benchmark's quirk: pixel value 0 is masked as padding
    split_seed: int = 42  # the seeded 80/10/10 split
    gen_total: int = 200_000  # generator: images (the benchmark's 200k per difficulty)
    gen_seed: int = 0
    gen_workers: int = 0  # processes (0: all cores)


def read_official(root: Path, size: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """(x (N, size*size) uint8, y (N,), skipped zero-byte files) from one difficulty folder."""
    from PIL import Image
    from tqdm import tqdm

    meta_dir = root / "metadata"
    files = sorted(meta_dir.glob("*.npy"), key=lambda p: (not p.stem.isdigit(), int(p.stem) if p.stem.isdigit() else 0))
    if not files:
        raise UserError(f"{meta_dir}: no metadata/<k>.npy files; expected {root}/{{imgs,metadata}}")
    entries = []
    for f in files:
        for lineno, line in enumerate(f.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) < 4:
                raise UserError(f"{f}:{lineno}: expected at least 4 space-separated fields "
                                f"(subdir, file, index, label, ...), got {len(parts)}")
            if parts[3] not in ("0", "1"):
                raise UserError(f"{f}:{lineno}: label {parts[3]!r} is not 0 or 1")
            entries.append((root / parts[0] / parts[1], int(parts[3]), f, lineno))
    x = np.zeros((len(entries), size * size), dtype=np.uint8)
    y = np.zeros(len(entries), dtype=np.int64)
    skipped, n = [], 0
    for img, label, f, lineno in tqdm(entries, desc=f"reading pathfinder{size}", unit="img",
                                      disable=None if progress else True, leave=False):
        if not img.is_file():
            raise UserError(f"{f}:{lineno}: image {img} not found")
        if img.stat().st_size == 0:  # the released archive has one; every loader skips it
            skipped.append(img)
            continue
        try:
            with Image.open(img) as im:
                a = np.asarray(im.convert("L") if im.mode != "L" else im)
        except (OSError, SyntaxError, ValueError) as e:
            raise UserError(f"{img}: not a readable PNG ({e}); listed at {f}:{lineno}") from None
        if a.shape != (size, size):
            raise UserError(f"{img}: image is {a.shape[1]}x{a.shape[0]}, expected {size}x{size} ({f}:{lineno})")
        x[n], y[n] = a.reshape(-1), label
        n += 1
    return x[:n], y[:n], skipped


def split_80_10_10(n: int, seed: int) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    a, b = n * 8 // 10, n * 9 // 10
    return {"train": np.sort(perm[:a]), "val": np.sort(perm[a:b]), "test": np.sort(perm[b:])}


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
    description = "are two markers joined by a dashed contour, 32x32 pixels (LRA Pathfinder, hard)"
    default_source = "generated"

    def __init__(self, cfg: PathfinderConfig):
        super().__init__(cfg)
        self.seq_len = self.size * self.size
        self.pad_id = 0 if cfg.pixel0_is_pad else None
        self.skipped: list[Path] = []

    @property
    def folder(self) -> str:
        return f"pathfinder{self.size}/{snakes.DIFFICULTY_DIRS[self.difficulty]}"

    def official_dir(self) -> Optional[Path]:
        root = self.data_dir()
        if root is None:
            return None
        for prefix in ("", "lra_release", "lra_release/lra_release", "pathfinder"):
            cand = root / prefix / self.folder
            if (cand / "metadata").is_dir():
                return cand
        raise UserError(f"{root}: no {self.folder}/metadata found; expected "
                        f"{root}/{TREE.format(size=self.size, difficulty=snakes.DIFFICULTY_DIRS[self.difficulty])}")

    def generated_dir(self) -> Path:
        c = self.cfg
        p = snakes.lra_params(self.size, snakes.DIFFICULTIES[self.difficulty])
        d = self.cache_dir(stage="png", params=repr(p), total=c.gen_total, seed=c.gen_seed) / self.folder
        return snakes.write_dataset(d, p, c.gen_total, seed=c.gen_seed, workers=c.gen_workers)

    def load(self) -> dict:
        src = self.official_dir()
        self.source = "official" if src is not None else "generated"
        if src is None:
            src = self.generated_dir()
        metas = sorted((src / "metadata").glob("*.npy"))
        d = self.cache_dir(stage="pixels", metadata=[file_key(m) for m in metas])
        if not (d / "x.npy").is_file():
            x, y, skipped = read_official(src, self.size)
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / "x.npy", x)
            np.save(d / "y.npy", y)
            (d / "skipped.json").write_text(json.dumps([str(s) for s in skipped]))
        x, y = np.load(d / "x.npy", mmap_mode="r"), np.load(d / "y.npy")
        self.skipped = [Path(s) for s in json.loads((d / "skipped.json").read_text())]
        if self.skipped:
            import sys

            print(f"warning: {self.name}: skipped {len(self.skipped)} empty PNG file(s), e.g. {self.skipped[0]}",
                  file=sys.stderr)
        return {k: ArraySplit(x[idx], y[idx]) for k, idx in split_80_10_10(len(y), self.cfg.split_seed).items()}


@TASKS.register("pathfinder-intermediate")
class PathfinderIntermediate(Pathfinder):
    """Pathfinder-32, contour length 9."""

    difficulty = "intermediate"
    description = "Pathfinder 32x32, intermediate (contour length 9)"


@TASKS.register("pathfinder-easy")
class PathfinderEasy(Pathfinder):
    """Pathfinder-32, contour length 6 (the 'baseline' set)."""

    difficulty = "easy"
    description = "Pathfinder 32x32, easy (contour length 6)"


@TASKS.register("pathx")
class PathX(Pathfinder):
    """Path-X: Pathfinder at 128x128 (16,384 tokens), hard."""

    size = 128
    seq_len = 16384
    description = "Path-X: Pathfinder at 128x128, 16,384 pixel tokens (LRA, hard)"
