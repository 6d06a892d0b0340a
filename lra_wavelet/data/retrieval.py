"""Retrieval (LRA): do two long documents cite each other? Byte-level, two documents per example.

Official data, the benchmark's ACL Anthology Network pairs:
    <data_dir>/tsv_data/new_aan_pairs.{train,eval,test}.tsv
    (also <data_dir>/lra_release/tsv_data, <data_dir>/lra_release/lra_release/tsv_data, <data_dir>/aan)
No header; five tab-separated columns `label, id1, id2, text1, text2`, read without quote handling
(the benchmark's use_quote_delim=False). The label is read as a number and must be 0 or 1. Each text is
cut to its first 10,000 bytes (as the benchmark does), then to `max_len` byte ids (id = byte + 1, pad 0).
x has shape (N, 2, max_len); the model encodes the two documents separately (see model.retrieval_combine).

Offline stand-in (no data dir): link prediction between pages of the Linux kernel documentation as
Debian's linux-doc-* package ships it (Sphinx HTML). Text = the page's article body as plain text (the
table-of-contents lists removed); positive = one page links to the other in its text. Each positive
(anchor, other) gets one hard negative (anchor, C), C not linked with the anchor either way: the split's
`other` pages are dealt back to the anchors, first within the directory of `other`, then up the tree.
Every page is thus a negative partner as often as a positive one, so neither a page's identity nor its
popularity gives the label away. Labels are exactly balanced. Pages are split 80/10/10 first: train
pairs use train pages only; every val (test) pair contains at least one val (test) page, which never
appears in training, and no page of the other held-out split. Document order inside a pair is random.
It has the shape of AAN (two long documents, citation-like link, bytes) but ~30x fewer pairs: never
report it as the benchmark.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import Task
from ._common import BYTE_VOCAB, byte_ids, cached, count_lines, file_key, substitute_notice

SPLIT_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}
TREE = "<data_dir>/tsv_data/new_aan_pairs.{train,eval,test}.tsv"
TEXT_CUT = 10_000  # bytes of each text the benchmark keeps before tokenising
DOC_GLOB = "/usr/share/doc/linux-doc-*/html"


@dataclass
class RetrievalConfig(TaskConfig):
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
    from tqdm import tqdm

    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in tqdm(reader, total=n_lines, desc=f"reading {path.name}", unit="pair", leave=False,
                        disable=not progress):
            lineno = reader.line_num
            if not row:  # a blank line
                continue
            if len(row) != 5:
                raise UserError(f"{path}:{lineno}: expected 5 tab-separated columns "
                                f"(label, id1, id2, text1, text2), got {len(row)}")
            try:
                label = float(row[0])
            except ValueError:
                raise UserError(f"{path}:{lineno}: label {row[0]!r} is not a number (expected 0 or 1)") from None
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


def find_aan(root: Path) -> Path:
    for cand in (root / "tsv_data", root / "lra_release" / "tsv_data", root / "lra_release" / "lra_release" / "tsv_data",
                 root / "aan", root):
        if (cand / SPLIT_FILES["train"]).is_file():
            return cand
    raise UserError(f"{root}: no AAN retrieval files found; expected {TREE} "
                    "(also under lra_release/tsv_data or aan/)")


# ----------------------------------------------------------------------------- Linux docs: pages and links

_BLOCK = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "tr", "br", "dt", "dd", "table", "blockquote"}


class _Page(HTMLParser):
    """Text and cross-page links of a Sphinx page's article body, table-of-contents lists left out."""

    def __init__(self, rel: str):
        super().__init__(convert_charrefs=True)
        self.rel, self.depth, self.body, self.toc, self.script = rel, 0, 0, 0, 0
        self.parts: list[str] = []
        self.links: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "div":
            self.depth += 1
            if a.get("itemprop") == "articleBody" and not self.body:
                self.body = self.depth
            elif self.body and not self.toc and "toctree-wrapper" in cls:
                self.toc = self.depth
        elif tag in ("script", "style"):
            self.script += 1
        if not self.body or self.toc:
            return
        if tag == "a" and "reference internal" in cls:
            href = (a.get("href") or "").split("#")[0]
            if href.endswith(".html") and "://" not in href:
                target = posixpath.normpath(posixpath.join(posixpath.dirname(self.rel), href))
                if target != self.rel:
                    self.links.add(target)
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "div":
            if self.toc == self.depth:
                self.toc = 0
            if self.body == self.depth:
                self.body = 0
            self.depth -= 1
        elif tag in ("script", "style"):
            self.script = max(0, self.script - 1)

    def handle_data(self, data):
        if self.body and not self.toc and not self.script and data != "\u00b6":  # ¶ permalinks
            self.parts.append(data)

    def text(self) -> str:
        t = "".join(self.parts)
        t = re.sub(r"[ \t]+\n", "\n", t)
        return re.sub(r"\n\s*\n+", "\n\n", t).strip()


def _parse_pages(args) -> list[tuple[str, str, list[str]]]:
    root, rels = args
    out = []
    for rel in rels:
        p = _Page(rel)
        p.feed((Path(root) / rel).read_text(encoding="utf-8", errors="replace"))
        p.close()
        out.append((rel, p.text(), sorted(p.links)))
    return out


def parse_docs(root: Path, max_pages: Optional[int] = None, workers: int = 0,
               progress: bool = True) -> dict[str, tuple[str, set]]:
    """{relative path: (body text, set of linked pages)} for every .html page under root."""
    rels = sorted(str(p.relative_to(root)) for p in root.rglob("*.html")
                  if not p.name.startswith(("genindex", "search", "py-modindex")) and "_sources" not in p.parts)
    rels = rels[:max_pages] if max_pages else rels
    if not rels:
        raise UserError(f"{root}: no .html pages (expected a Sphinx HTML tree such as {DOC_GLOB})")
    workers = workers or os.cpu_count() or 1
    chunks = [rels[i:i + 64] for i in range(0, len(rels), 64)]
    from tqdm import tqdm

    pages = {}
    bar = tqdm(total=len(rels), desc="parsing kernel docs", unit="page", leave=False, disable=not progress)
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(min(workers, len(chunks))) as pool:
            results = pool.map(_parse_pages, [(str(root), ch) for ch in chunks])
            for res in results:
                for rel, text, links in res:
                    pages[rel] = (text, set(links))
                bar.update(len(res))
    else:
        for ch in chunks:
            for rel, text, links in _parse_pages((str(root), ch)):
                pages[rel] = (text, set(links))
            bar.update(len(ch))
    bar.close()
    return pages


# ----------------------------------------------------------------------------- Linux docs: pairs


def make_pairs(pages: dict[str, tuple[str, set]], c: RetrievalConfig) -> dict[str, list[tuple[str, str, int]]]:
    """Balanced (page1, page2, label) lists per split; see the module docstring for the rules."""
    rng = np.random.default_rng(c.sub_seed)
    ok = sorted(p for p, (t, _) in pages.items() if len(t.encode("utf-8")) >= c.sub_min_bytes)
    okset = set(ok)
    linked = defaultdict(set)  # either direction, every link: what a negative must avoid
    for a in ok:
        for b in pages[a][1] & okset:
            linked[a].add(b)
            linked[b].add(a)
    edges = set()
    for a in ok:
        out = sorted(pages[a][1] & okset - {a})
        if len(out) > c.sub_max_links:
            out = [out[i] for i in sorted(rng.choice(len(out), c.sub_max_links, replace=False))]
        edges.update(tuple(sorted((a, b))) for b in out)

    # pages -> splits
    perm = rng.permutation(len(ok))
    n_test, n_val = round(c.sub_test_frac * len(ok)), round(c.sub_val_frac * len(ok))
    home = {}
    for r, i in enumerate(perm):
        home[ok[i]] = "test" if r < n_test else ("val" if r < n_test + n_val else "train")

    positives = defaultdict(list)  # split -> [(anchor, other)]
    for a, b in sorted(edges):
        s = {home[a], home[b]}
        if s == {"val", "test"}:
            continue  # would leak one held-out split into the other
        split = "train" if s == {"train"} else (s - {"train"}).pop()
        if split != "train" and home[a] != home[b]:  # anchor = the held-out page
            anchor, other = (a, b) if home[a] == split else (b, a)
        else:
            anchor, other = (a, b) if rng.random() < 0.5 else (b, a)
        positives[split].append((anchor, other))

    out = {}
    for split in ("train", "val", "test"):
        pos = positives.get(split, [])
        negs = _negatives(pos, linked, rng)
        rows = []
        for (anchor, other), neg in zip(pos, negs):
            if neg is not None:  # (rare) no admissible partner anywhere: drop the positive too
                rows += [(anchor, other, 1), (anchor, neg, 0)]
        rows = [(a, b, y) if rng.random() < 0.5 else (b, a, y) for a, b, y in rows]
        out[split] = [rows[i] for i in rng.permutation(len(rows))]
    return out


def _negatives(pos: list[tuple[str, str]], linked: dict, rng) -> list[Optional[str]]:
    """One partner per positive (anchor, other): the `other` pages of the split, re-dealt to anchors.

    Every `other` is dealt back exactly once, first to anchors whose `other` lives in the same directory,
    then what is left moves up to the parent directory, and so on to the root, where a last anchor may
    swap with an earlier one. So each page is a negative partner exactly as often as it is a positive
    one (unless an anchor finds no admissible partner at all): its identity and popularity carry no label.
    A partner must not be linked with the anchor (either way) nor repeat a pair already made.
    """
    taken = {frozenset(p) for p in pos}

    def ok(anchor: str, page: str) -> bool:
        return page != anchor and page not in linked[anchor] and frozenset((anchor, page)) not in taken

    result: list[Optional[str]] = [None] * len(pos)
    demand: dict[str, list[int]] = defaultdict(list)  # directory -> positives that need a partner
    supply: dict[str, list[str]] = defaultdict(list)  # directory -> pages still to deal
    for i, (_, other) in enumerate(pos):
        demand[posixpath.dirname(other)].append(i)
        supply[posixpath.dirname(other)].append(other)
    dirs = set()
    for d in list(demand):
        while True:
            dirs.add(d)
            if not d:
                break
            d = posixpath.dirname(d)
    for d in sorted(dirs, key=lambda d: (-d.count("/") - bool(d), d)):  # deepest first, root last
        want = [demand[d][i] for i in rng.permutation(len(demand[d]))]
        have = [supply[d][i] for i in rng.permutation(len(supply[d]))]
        left = []
        for i in want:
            anchor = pos[i][0]
            for k, page in enumerate(have):
                if ok(anchor, page):
                    result[i] = have.pop(k)
                    taken.add(frozenset((anchor, page)))
                    break
            else:
                left.append(i)
        if d:
            demand[posixpath.dirname(d)] += left
            supply[posixpath.dirname(d)] += have
            continue
        # root: an anchor still without a partner takes one dealt earlier (j's), and j takes a leftover page
        dealt = [j for j in rng.permutation(len(pos)) if result[j] is not None]
        for i in left:
            swap = next(((j, k) for k, q in enumerate(have) for j in dealt
                         if ok(pos[i][0], result[j]) and ok(pos[j][0], q)), None)
            if swap is None:
                continue  # the caller drops this positive
            j, k = swap
            q = have.pop(k)
            taken.discard(frozenset((pos[j][0], result[j])))
            result[i], result[j] = result[j], q
            taken.update((frozenset((pos[i][0], result[i])), frozenset((pos[j][0], q))))
            dealt.append(i)
    return result


def find_docs(c: RetrievalConfig) -> Path:
    if c.sub_doc_dir:
        root = Path(c.sub_doc_dir).expanduser()
        if not root.is_dir():
            raise UserError(f"task.sub_doc_dir: {root} is not a directory")
        return root
    found = [Path(p) for p in sorted(Path("/").glob(DOC_GLOB.lstrip("/"))) if Path(p).is_dir()]
    if not found:
        raise UserError("the offline Retrieval substitute needs the Linux kernel documentation: "
                        "apt-get update && apt-get install linux-doc-6.1 (any linux-doc-* works; files under "
                        f"{DOC_GLOB}), or give --data-dir with {TREE}")

    def version(p: Path):
        v = p.parent.name.rsplit("-", 1)[-1]
        return tuple(int(x) for x in v.split(".") if x.isdigit())

    return max(found, key=version)


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

    def load(self) -> dict:
        root = self.data_dir()
        if root is None:
            return self._substitute()
        self.source = "official"
        d = find_aan(root)
        files = {s: d / f for s, f in SPLIT_FILES.items()}
        for s, f in files.items():
            if not f.is_file():
                raise UserError(f"{f}: file not found; expected {TREE}")

        def build():
            return {s: read_aan_tsv(f, self.cfg.max_len) for s, f in files.items()}

        key = {s: file_key(f) for s, f in files.items()}
        return cached(self.cache_dir(layout="aan", files=key), build)

    def _substitute(self) -> dict:
        c = self.cfg
        root = find_docs(c)
        substitute_notice(self.name, f"link prediction between Linux kernel documentation pages in {root}")
        self.source = "substitute"

        def build():
            pages = parse_docs(root, c.sub_max_pages, c.sub_workers)
            pairs = make_pairs(pages, c)
            cut = min(TEXT_CUT, c.max_len)
            used = sorted({p for rows in pairs.values() for a, b, _ in rows for p in (a, b)})
            row = {p: i for i, p in enumerate(used)}
            docs = byte_ids((pages[p][0].encode("utf-8")[:cut] for p in used), len(used), c.max_len)
            out = {}
            for split, rows in pairs.items():
                idx = np.array([(row[a], row[b]) for a, b, _ in rows], dtype=np.int64).reshape(-1, 2)
                out[split] = (docs[idx], np.array([y for _, _, y in rows], dtype=np.int64))
            return out

        st = root.stat()
        key = {"root": str(root.resolve()), "mtime": st.st_mtime_ns}
        return cached(self.cache_dir(layout="linux-doc", docs=key), build)
