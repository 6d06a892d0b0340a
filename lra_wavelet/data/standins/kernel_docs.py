"""The Retrieval stand-in: link prediction between pages of the Linux kernel documentation (Debian linux-doc-*).

Text = the page's article body as plain text (the table-of-contents lists removed); positive = one page
links to the other in its text. Each positive (anchor, other) gets one hard negative (anchor, C), C not
linked with the anchor either way: the split's `other` pages are dealt back to the anchors, first within
the directory of `other`, then up the tree. Every page is thus a negative partner as often as a positive
one, so neither a page's identity nor its popularity gives the label away. Labels are exactly balanced.
Pages are split 80/10/10 first: train pairs use train pages only; every val (test) pair contains at least
one val (test) page, which never appears in training, and no page of the other held-out split. Document
order inside a pair is random. It has the shape of AAN (two long documents, citation-like link, bytes)
but ~30x fewer pairs: never report it as the benchmark.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import UserError

DOC_GLOB = "/usr/share/doc/linux-doc-*/html"


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
    from .._common import progress_bar

    pages = {}
    bar = progress_bar(total=len(rels), desc="parsing kernel docs", unit="page", show=progress)
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


def make_pairs(pages: dict[str, tuple[str, set]], c) -> dict[str, list[tuple[str, str, int]]]:
    """Balanced (page1, page2, label) lists per split (`c`: the task's sub_* settings); see the module docstring."""
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


def find_docs(sub_doc_dir: Optional[str]) -> Optional[Path]:
    """`task.sub_doc_dir`, else the newest installed /usr/share/doc/linux-doc-*/html, else None."""
    if sub_doc_dir:
        root = Path(sub_doc_dir).expanduser()
        if not root.is_dir():
            raise UserError(f"task.sub_doc_dir: {root} is not a directory")
        return root
    found = [Path(p) for p in sorted(Path("/").glob(DOC_GLOB.lstrip("/"))) if Path(p).is_dir()]
    if not found:
        return None

    def version(p: Path):
        v = p.parent.name.rsplit("-", 1)[-1]
        return tuple(int(x) for x in v.split(".") if x.isdigit())

    return max(found, key=version)
