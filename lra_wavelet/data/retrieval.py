"""Retrieval (LRA): do two long documents cite each other? Byte-level, two documents per example.

Official data, the benchmark's ACL Anthology Network pairs:
    <data_dir>/tsv_data/new_aan_pairs.{train,eval,test}.tsv
    (also <data_dir>/lra_release/tsv_data, <data_dir>/lra_release/lra_release/tsv_data, <data_dir>/aan)
    or a Hugging Face copy with columns `label`, `text1`, `text2` (splits train/validation/test), or a Hub
    id (`task.hf`)
No header; five tab-separated columns `label, id1, id2, text1, text2`, read without quote handling
(the benchmark's use_quote_delim=False). The label is read as a number and must be 0 or 1. Each text is
cut to its first 10,000 bytes (as the benchmark does), then to `max_len` byte ids (id = byte + 1, pad 0).
x has shape (N, 2, max_len); the model encodes the two documents separately (see model.retrieval_combine).

Offline stand-in (`standins/kernel_docs.py`): link prediction between pages of the Linux kernel
documentation as Debian's linux-doc-* package ships it; ~30x fewer pairs than AAN: never the benchmark.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserError
from ..registry import TASKS
from ._common import BYTE_VOCAB, byte_ids, count_lines, int_labels
from ._hub import hf_source, read_tables, table_layout
from .base import HubConfig, Source, Task, first_dir
from .standins import kernel_docs

SPLIT_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}
TREE = "<data_dir>/tsv_data/new_aan_pairs.{train,eval,test}.tsv"
TEXT_CUT = 10_000  # bytes of each text the benchmark keeps before tokenising


@dataclass
class RetrievalConfig(HubConfig):
    max_len: int = 4000  # byte ids per document (the benchmark's)
    # offline substitute (Linux kernel documentation, Debian linux-doc-*), used when no data dir is given
    sub_doc_dir: Optional[str] = None  # a Sphinx HTML tree; default: the newest /usr/share/doc/linux-doc-*/html
    sub_min_bytes: int = 500  # pages with less body text are left out
    sub_max_links: int = 20  # links kept per page (index-like pages list hundreds)
    sub_val_frac: float = 0.1  # fraction of pages held out for val / test
    sub_test_frac: float = 0.1
    sub_max_pages: Optional[int] = None  # parse only the first N pages (sorted by path): quick tests
    sub_seed: int = 0
    sub_workers: int = 0  # processes for parsing HTML (0: all cores)

    def __post_init__(self):  # checked when the config is built (`validate` too), before any work
        v, t = self.sub_val_frac, self.sub_test_frac
        if not (0 <= v and 0 <= t and v + t < 1):
            raise ValueError(f"sub_val_frac and sub_test_frac must be >= 0 and sum to less than 1 (the fractions "
                             f"of pages held out), got {v} and {t}")


# ----------------------------------------------------------------------------- official AAN


def read_aan_tsv(path: Path, max_len: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One official AAN TSV -> x (N, 2, max_len) uint16 byte ids, y (N,) in {0, 1}."""
    if not path.is_file():
        raise UserError(f"{path}: file not found; expected {TREE}")
    csv.field_size_limit(sys.maxsize)
    n_lines = count_lines(path)
    x = np.zeros((n_lines, 2, max_len), dtype=np.uint16)
    y = np.zeros(n_lines, dtype=np.int64)
    cut = min(TEXT_CUT, max_len)
    n = 0
    from ._common import progress_bar

    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in progress_bar(reader, total=n_lines, desc=f"reading {path.name}", unit="pair", show=progress):
            lineno = reader.line_num
            if not row:  # a blank line
                continue
            if len(row) != 5:
                raise UserError(f"{path}:{lineno}: expected 5 tab-separated columns "
                                f"(label, id1, id2, text1, text2), got {len(row)}")
            try:
                label = float(row[0]) if row[0].isascii() else None  # float() reads '١' (Arabic-Indic 1) as 1
            except ValueError:
                label = None
            if label is None:
                raise UserError(f"{path}:{lineno}: label {row[0]!r} is not a number (expected 0 or 1)")
            if label not in (0.0, 1.0):
                raise UserError(f"{path}:{lineno}: label {row[0]!r} is not 0 or 1")
            y[n] = int(label)
            for j, text in enumerate(row[3:5]):
                # a character is at least one byte, so the first `cut` characters hold the first `cut` bytes
                b = text[:cut].encode("utf-8", "surrogateescape")[:cut]
                ids = np.frombuffer(b, dtype=np.uint8)
                x[n, j, : len(ids)] = ids.astype(np.uint16) + 1
            n += 1
    if n == 0:
        raise UserError(f"{path}: no rows; expected {TREE} with rows label<TAB>id1<TAB>id2<TAB>text1<TAB>text2")
    return x[:n], y[:n]


def text_ids(texts, max_len: int) -> np.ndarray:
    """Texts (str) -> (N, max_len) uint16 byte ids of their first min(10,000, max_len) bytes."""
    cut = min(TEXT_CUT, max_len)
    return byte_ids((str(t or "").encode("utf-8", "surrogateescape")[:cut] for t in texts), len(texts), max_len)


def find_aan(root: Path) -> tuple[str, object]:
    """('tsv', {split: file}) or ('table', {split: files}), or a UserError showing the layout."""
    d = first_dir(root, ("tsv_data", "lra_release/tsv_data", "lra_release/lra_release/tsv_data", "aan", ""),
                  lambda d: (d / SPLIT_FILES["train"]).is_file())
    if d is not None:
        files = {s: d / f for s, f in SPLIT_FILES.items()}
        for f in files.values():
            if not f.is_file():
                raise UserError(f"{f}: file not found; expected {TREE}")
        return "tsv", files
    tables = table_layout(Retrieval, root, ("aan", "tsv_data", ""))
    if tables is not None:
        return "table", tables
    raise UserError(f"{root}: no AAN retrieval files found; expected {TREE} "
                    "(also under lra_release/tsv_data or aan/) or a Hugging Face copy with label,text1,text2 columns")


# ----------------------------------------------------------------------------- the task


@TASKS.register("retrieval")
class Retrieval(Task):
    Config = RetrievalConfig
    kind = "retrieve"
    seq_len = 4000  # per document
    vocab_size = BYTE_VOCAB
    n_classes = 2
    pad_id = 0
    chance = 0.5
    description = "do two byte-level documents cite each other (LRA Retrieval, AAN), 2 x 4000"
    default_source = "substitute"
    hub_columns = ("label", "text1", "text2")
    hub_splits = ("train", "val", "test")

    def sources(self) -> list[Source]:
        c = self.cfg
        return [
            Source("official", lambda: self.data_dir() and find_aan(self.data_dir()), self.read_official,
                   inputs=lambda found: list(found[1].values()) if found[0] == "tsv"
                   else [f for fs in found[1].values() for f in fs],
                   missing=f"--data-dir with {TREE}"),
            hf_source(self),
            Source("substitute", lambda: kernel_docs.find_docs(c.sub_doc_dir), self.build_substitute,
                   inputs=lambda root: [root],
                   missing="the offline stand-in, the Linux kernel documentation: apt-get update && apt-get "
                           f"install linux-doc-6.1 (any linux-doc-* works; files under {kernel_docs.DOC_GLOB})",
                   notice=lambda root: f"link prediction between Linux kernel documentation pages in {root}"),
        ]

    def read_official(self, found) -> dict:
        layout, where = found
        if layout == "table":
            return read_tables(self, where)
        return {s: read_aan_tsv(f, self.cfg.max_len) for s, f in where.items()}

    def from_tables(self, tables: dict, where: str) -> dict:
        out = {}
        for split, t in tables.items():
            y = int_labels(t.column("label").to_pylist(), f"{where} [{split}]", 2)
            x = np.stack([text_ids(t.column(c).to_pylist(), self.cfg.max_len) for c in ("text1", "text2")], axis=1)
            out[split] = (x, y)
        return out

    def build_substitute(self, root: Path) -> dict:
        c = self.cfg
        pages = kernel_docs.parse_docs(root, c.sub_max_pages, c.sub_workers)
        pairs = kernel_docs.make_pairs(pages, c)
        used = sorted({p for rows in pairs.values() for a, b, _ in rows for p in (a, b)})
        row = {p: i for i, p in enumerate(used)}
        docs = text_ids([pages[p][0] for p in used], c.max_len)
        out = {}
        for split, rows in pairs.items():
            idx = np.array([(row[a], row[b]) for a, b, _ in rows], dtype=np.int64).reshape(-1, 2)
            out[split] = (docs[idx], np.array([y for _, _, y in rows], dtype=np.int64))
        return out
