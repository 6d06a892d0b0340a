"""text8 (Mahoney): character-level LM over 27 symbols, id 0 = space, ids 1..26 = a..z.

Real data: the 100,000,000-character `text8` (or text8.zip) - task.path, $TEXT8_PATH or <data_dir>/text8 -
split 90M / 5M / 5M. Stand-in (`standins/text8_sources.py`): GCIDE + the Linux kernel docs + Jane Austen's
novels (Debian packages), normalised the way text8 was (lower case, digits spelled out one by one, everything
else a single space), cut into blocks assigned 18:1:1 to train / val / test so that every split mixes all
sources. Not Wikipedia: bits per character are not comparable with published text8 numbers.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import Source
from .corpora import SPLITS, _Corpus, warn
from .standins.text8_sources import APT_TEXT, austen_path, austen_texts, gcide_path, gcide_text, linux_doc_files, \
    read_text

TEXT8_SYMBOLS = " abcdefghijklmnopqrstuvwxyz"  # id = position: space 0, a 1, ..., z 26
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_LUT = np.full(256, 255, dtype=np.uint8)
_LUT[ord(" ")] = 0
_LUT[ord("a"): ord("z") + 1] = np.arange(1, 27)
_KEEP = bytes(c if (97 <= c <= 122) else 32 for c in range(256))  # bytes.translate table: non a-z -> space


def text8_normalise(text: str) -> bytes:
    """Text -> text8's alphabet: accents stripped, lower case, each digit a word, every other run -> one space."""
    b = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").lower()
    for d, word in enumerate(DIGIT_WORDS):
        b = b.replace(str(d).encode(), f" {word} ".encode())
    return re.sub(rb" +", b" ", b.translate(_KEEP)).strip()


def text8_ids(b: bytes, source: str = "") -> np.ndarray:
    """text8 bytes -> uint8 ids; a byte outside 'a'..'z' and ' ' is a UserError naming the source."""
    ids = _LUT[np.frombuffer(b, dtype=np.uint8)]
    bad = np.flatnonzero(ids == 255)
    if len(bad):
        raise UserError(f"{source}: byte {bytes(b[bad[0]:bad[0] + 1])!r} at offset {bad[0]:,} is not a text8 "
                        f"character; expected only 'a'-'z' and spaces")
    return ids


def text8_decode(ids) -> str:
    return np.frombuffer(TEXT8_SYMBOLS.encode(), np.uint8)[np.asarray(ids, dtype=np.int64)].tobytes().decode()


def read_text8(path: Path) -> bytes:
    """The bytes of a text8 file or of the (single / 'text8') member of a zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            member = next((n for n in names if Path(n).name == "text8"), names[0] if len(names) == 1 else None)
            if member is None:
                raise UserError(f"{path}: zip without a 'text8' member (has {', '.join(names[:5])})")
            return z.read(member)
    return path.read_bytes()


@dataclass
class Text8Config(TaskConfig):
    seq_len: int = 512  # context length (the paper's 512)
    path: Optional[str] = None  # the text8 file / text8.zip; else $TEXT8_PATH; else <data_dir>/text8
    max_chars: Optional[int] = None  # use at most this many characters, 90/5/5 over the splits (None: all)
    system_root: str = "/"  # where the stand-in's Debian files are looked up (e.g. a `dpkg-deb -x` folder)


@TASKS.register("text8")
class Text8(_Corpus):
    """Character-level text8 (Mahoney): 27 symbols; bits per character = loss in nats / ln 2."""

    Config = Text8Config
    vocab_size = 27
    description = "character LM on text8 (27 symbols); stand-in: GCIDE + kernel docs + Austen, text8-normalised"
    unit = "characters"
    block = 100_000  # stand-in: characters per block in the 18:1:1 interleaving

    def sources(self) -> list[Source]:
        root = Path(self.cfg.system_root)
        return [Source("official", self._official, self._build_official, inputs=lambda src: [src],
                       missing="the text8 file (task.path, $TEXT8_PATH or <data_dir>/text8)"),
                Source("substitute", lambda: self._substitute_sources(root), self._build_substitute,
                       inputs=self._source_files,
                       missing=f"the stand-in's sources under {root}: {APT_TEXT}")]

    def _official(self) -> Optional[Path]:
        src = self.locate(self.cfg.path, "TEXT8_PATH", ["text8", "text8.zip"],
                          "the 100,000,000-character text8 file (or text8.zip)")
        if src is not None and src.is_dir():
            inside = [src / n for n in ("text8", "text8.zip") if (src / n).is_file()]
            if not inside:
                raise UserError(f"{src}: folder without a 'text8' or 'text8.zip' file")
            src = inside[0]
        return src

    def stand_in_line(self) -> str:
        return (f"text8: no text8 file given (task.path, $TEXT8_PATH or <data_dir>/text8); using the offline "
                f"stand-in: {' + '.join(self.meta['sources'])} characters, text8-normalised "
                f"({self.meta['chars']:,} in all)")

    def cut(self, arrays: dict) -> dict:
        c = self.cfg
        if c.max_chars is None:
            return arrays
        if c.max_chars < 1:
            raise UserError(f"task.max_chars must be positive, got {c.max_chars}")
        caps = (c.max_chars * 90 // 100, c.max_chars * 5 // 100, c.max_chars * 5 // 100)
        return {k: arrays[k][:cap] for k, cap in zip(SPLITS, caps)}

    def _build_official(self, src: Path):
        data = read_text8(src).rstrip(b"\n")
        ids = text8_ids(data, str(src))
        n = len(ids)
        if n != 100_000_000:
            warn(f"{src}: {n:,} characters, not text8's 100,000,000; split 90/5/5 in proportion")
        a, b = n * 90 // 100, n * 95 // 100
        return self.corpus({"train": ids[:a], "val": ids[a:b], "test": ids[b:]},
                           {"chars": n, "sources": [str(src)], "name": str(src)})

    # -- the stand-in
    def _substitute_sources(self, root: Path) -> Optional[dict]:
        """{source: path or files} of the stand-in's sources installed under root; None when none is."""
        s = {"gcide": gcide_path(root), "linux-doc": linux_doc_files(root), "austen": austen_path(root)}
        return {k: v for k, v in s.items() if v} or None

    @staticmethod
    def _source_files(sources: dict) -> list[Path]:
        files = [f for v in sources.values() for f in (v if isinstance(v, list) else [v])]
        return files + [sources["austen"].with_suffix(".rdx")] if "austen" in sources else files

    def _build_substitute(self, sources: dict):
        from ._common import progress_bar

        parts: list[bytes] = []
        counts = {}
        if "gcide" in sources:
            parts.append(text8_normalise(gcide_text(sources["gcide"])))
            counts["GCIDE"] = len(parts[-1])
        if "linux-doc" in sources:
            files = sources["linux-doc"]
            n0 = len(parts)
            for p in progress_bar(files, desc="text8 stand-in: kernel docs", unit="file"):
                t = text8_normalise(read_text(p))
                if t:
                    parts.append(t)
            package = next(q for q in files[0].parents if q.name == "Documentation").parent.name  # linux-doc-6.1
            counts[package] = sum(len(x) for x in parts[n0:])
        if "austen" in sources:
            n0 = len(parts)
            parts.extend(text8_normalise(t) for t in austen_texts(sources["austen"]).values())
            counts["Jane Austen"] = sum(len(x) for x in parts[n0:])
        ids = text8_ids(b" ".join(parts), "text8 stand-in")
        sources = [f"{k} {v / 1e6:.1f}M" for k, v in counts.items()]
        return self.corpus(self.interleave(ids), {"chars": len(ids), "sources": sources,
                                                  "name": "the text8 stand-in (" + " + ".join(sources) + ")"})

    def interleave(self, ids: np.ndarray, seed: int = 0) -> dict:
        """Blocks of `block` characters (fewer for a small corpus: at least 400 blocks) go 18:1:1 to train / val /
        test in turn; each split's blocks are then put in a seeded random order, so a prefix is a fair sample."""
        block = max(1, min(self.block, len(ids) // 400))
        starts = np.arange(0, len(ids), block)
        rng = np.random.default_rng(seed)
        out = {}
        for k, sel in zip(SPLITS, (starts % (20 * block) < 18 * block, starts % (20 * block) == 18 * block,
                                   starts % (20 * block) == 19 * block)):
            mine = rng.permutation(starts[sel])
            out[k] = np.concatenate([ids[s: s + block] for s in mine]) if len(mine) else ids[:0]
        return out
