"""Language-model pre-training corpora of the WaveletGPT paper: characters, symbolic music, raw audio.

Each task is of kind "lm": three token streams (train / val / test), read as windows of `seq_len` (512, the
paper's context) by `StreamSplit`. Every corpus is built once into the cache (`save_arrays`, keyed by a
fingerprint of its sources and settings; uint8 / uint16, memory-mapped on load) and read back instantly.

    text8   27 symbols: id 0 = space, ids 1..26 = a..z.
            Real: the 100,000,000-character `text8` (or text8.zip), split 90M / 5M / 5M.
            Stand-in: GCIDE + the Linux kernel docs + Jane Austen's novels (Debian packages), normalised the
            way text8 was (lower case, digits spelled out one by one, everything else a single space),
            cut into blocks assigned 18:1:1 to train / val / test so that every split mixes all sources.
    music   389 ids: performance events (see `music.py`) + DOC after each piece.
            Real: MAESTRO (`maestro-v3.0.0.csv` + MIDI), its own train / validation / test splits.
            Stand-in: music21's bundled scores, split 90/5/5 by work.
    audio   256 ids: 8-bit mu-law of 16 kHz mono (see `audio.py`).
            Real: a folder of WAV / FLAC (any soundfile format), split 90/5/5 by file.
            Stand-in: music21's keyboard-playable scores rendered to piano, split 90/5/5 by work.

Unreadable inputs (a corrupt MIDI file, a non-audio file in the audio folder, a score music21 cannot read)
are counted, skipped and reported in one warning line that names them; an empty corpus, or a split shorter than
one window, is a UserError naming the source.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import struct
import sys
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import StreamSplit, Task, load_arrays, save_arrays

SPLITS = ("train", "val", "test")


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stat(p: Path) -> list:
    st = p.stat()
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


def _skips_line(skipped: list, total: int, what: str) -> str:
    """'skipped 2 of 40 MIDI files: a.mid (EOFError: ...); b.mid (...)' (at most five named)."""
    shown = "; ".join(f"{p} ({why if len(why) <= 100 else why[:97] + '...'})" for p, why in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f"skipped {len(skipped)} of {total} {what}: {shown}{more}"


def need(module: str, why: str):
    """Import an optional dependency, or a UserError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{why} needs the Python package '{module}': pip install {module}") from None


def split_counts(n: int, frac: float = 0.05) -> tuple[int, int, int]:
    """(train, val, test) counts for n items split 90/5/5, with at least one item in each split."""
    if n < 3:
        raise ValueError(f"{n} items cannot be split three ways")
    n_val = n_test = max(1, round(n * frac))
    return n - n_val - n_test, n_val, n_test


class _Corpus(Task):
    """Shared machinery of the LM corpora: cached build, windows check, source lookup."""

    kind = "lm"
    n_classes = 0
    pad_id = None
    chance = 0.0
    default_source = "substitute"
    dtype = np.uint8

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.seq_len < 1:
            raise UserError(f"task.seq_len must be positive, got {cfg.seq_len}")
        self.seq_len = cfg.seq_len
        self.meta: dict = {}

    def fingerprint(self, **extra) -> str:
        """Only what determines the tokens (sources + build settings, passed in `extra`) names the cache entry:
        seq_len, split caps and the like do not trigger a rebuild."""
        return _digest(dict(extra, task=self.name, version=self.version))

    def cached(self, build, **key) -> dict[str, np.ndarray]:
        """The arrays of `build()` (-> ({split: tokens}, meta)), built once under cache_dir(**key)."""
        d = self.cache_dir(**key)
        if not (d / "test.npy").is_file():
            t0 = time.time()
            arrays, meta = build()
            meta["build_seconds"] = round(time.time() - t0, 1)
            save_arrays(d, meta=np.array(json.dumps(meta)), **{k: np.ascontiguousarray(arrays[k], dtype=self.dtype)
                                                                for k in SPLITS})
        self.meta = json.loads(str(np.load(d / "meta.npy")))
        self.cache_path = d
        if self.meta.get("skipped"):
            warn(f"{self.name}: " + _skips_line(self.meta["skipped"], self.meta["files_total"], self.meta["unit"]))
        return dict(zip(SPLITS, load_arrays(d, *SPLITS)))

    def streams(self, arrays: dict, source: str, unit: str = "tokens") -> dict:
        out = {}
        for k in SPLITS:
            n = len(arrays[k])
            if n < self.seq_len + 1:
                raise UserError(f"{source}: the {k} split has {n:,} {unit}, fewer than one window "
                                f"(task.seq_len {self.seq_len} + 1); give it more data or use a smaller seq_len")
            out[k] = StreamSplit(arrays[k], self.seq_len)
        return out

    def locate(self, path: Optional[str], env: str, data_dir_names: list[str], what: str) -> Optional[Path]:
        """task.path, else $env, else the first of `data_dir_names` under the data dir, else None (stand-in)."""
        for given, origin in ((path, "task.path"), (os.environ.get(env), f"${env}")):
            if given:
                p = Path(given).expanduser()
                if not p.exists():
                    raise UserError(f"{p}: not found (from {origin}); expected {what}")
                return p
        root = self.data_dir()
        if root is None:
            return None
        for name in data_dir_names:
            if (root / name).exists():
                return root / name
        raise UserError(f"{root}: no {data_dir_names[0]} found; expected {what} at {root}/{data_dir_names[0]} "
                        f"(or pass --set task.data_dir=null for the offline stand-in)")


# ============================================================================= text8

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


# ----------------------------------------------------------------------------- R lazy-load databases (Austen)


class RList(list):
    """An R vector read back: a list with its R attributes (names, class, ...) in `.attrs`."""

    attrs: dict = {}


_PAIRLISTS = {2, 3, 5, 6, 17, 239, 240}  # LISTSXP CLOSXP PROMSXP LANGSXP DOTSXP ATTRLANGSXP ATTRLISTSXP


class RReader:
    """R's XDR serialisation (formats 2 and 3) for data: vectors, lists, pairlists, attributes, strings.

    Enough for packaged data sets; code objects (byte code, closures' bodies beyond pairlists) are not needed.
    """

    def __init__(self, data: bytes):
        self.b, self.i, self.refs = data, 0, []

    def _int(self) -> int:
        v = struct.unpack_from(">i", self.b, self.i)[0]
        self.i += 4
        return v

    def _take(self, n: int) -> bytes:
        v = self.b[self.i: self.i + n]
        self.i += n
        return v

    def read(self):
        if self._take(2) != b"X\n":
            raise ValueError("not an R XDR serialisation (expected 'X\\n')")
        version = self._int()
        self._int(), self._int()  # writer's R version, oldest R that reads it
        if version == 3:
            self._take(self._int())  # native encoding name
        return self._item()

    def _len(self) -> int:
        n = self._int()
        return (self._int() << 32) + self._int() if n == -1 else n

    def _item(self):
        flags = self._int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t in (254, 253, 252, 251, 250, 242, 241):  # NULL, the global/base/empty environments, markers
            return None
        if t == 255:  # a back-reference to a symbol or environment read before
            return self.refs[(flags >> 8 or self._int()) - 1]
        if t in (247, 248, 249):  # persistent name, package, namespace: a string vector
            self._int()
            v = [self._item() for _ in range(self._int())]
            self.refs.append(v)
            return v
        if t == 1:  # symbol
            v = self._item()
            self.refs.append(v)
            return v
        if t == 4:  # environment: locked flag, enclosure, frame, hash table, attributes
            self.refs.append(None)
            self._int()
            for _ in range(4):
                self._item()
            return None
        if t in _PAIRLISTS:  # the whole chain, iteratively: {tag or position: value}
            out, pos = {}, 0
            while t in _PAIRLISTS:
                if has_attr:
                    self._item()
                tag = self._item() if has_tag else None
                out[tag if tag is not None else pos] = self._item()
                pos += 1
                flags = self._int()
                t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            self.i -= 4
            self._item()  # the terminating NULL
            return out
        if t == 9:  # CHARSXP; bit 2 of the levels marks latin-1
            n = self._int()
            return None if n == -1 else self._take(n).decode("latin-1" if (flags >> 12) & 4 else "utf-8", "replace")
        if t in (10, 13):  # logical, integer
            v = RList(np.frombuffer(self._take(4 * self._len()), ">i4").tolist())
        elif t == 14:  # double
            v = RList(np.frombuffer(self._take(8 * self._len()), ">f8").tolist())
        elif t == 15:  # complex, as pairs of doubles
            v = RList(np.frombuffer(self._take(16 * self._len()), ">f8").tolist())
        elif t == 24:  # raw
            v = RList(self._take(self._len()))
        elif t in (16, 19, 20):  # character, list, expression
            v = RList(self._item() for _ in range(self._len()))
        elif t == 25:  # S4 object: only attributes
            v = RList()
        else:
            raise ValueError(f"unsupported R object type {t}")
        if has_attr:
            v.attrs = self._item()
        return v


def _r_blob(blob: bytes) -> bytes:
    """A lazy-load DB record: 4-byte big-endian length, then zlib (or a type byte Z/2/X/0 and the data)."""
    body = blob[4:]
    if body[:1] == b"x":  # zlib header
        return zlib.decompress(body)
    kind, body = body[:1], body[1:]
    if kind == b"Z":
        return zlib.decompress(body)
    if kind == b"2":
        import bz2

        return bz2.decompress(body)
    if kind == b"X":
        import lzma

        return lzma.decompress(body)
    if kind == b"0":
        return body
    raise ValueError(f"unknown R lazy-load compression {kind!r}")


def read_lazyload(rdb: Path) -> dict:
    """Every object of an R lazy-load database (<name>.rdb + <name>.rdx) as {name: value}."""
    rdx = RReader(gzip.decompress(rdb.with_suffix(".rdx").read_bytes())).read()
    index = dict(zip(rdx.attrs["names"], rdx))
    data = rdb.read_bytes()
    return {name: RReader(_r_blob(data[int(off): int(off) + int(n)])).read()
            for name, (off, n) in zip(index["variables"].attrs["names"], index["variables"])}


# ----------------------------------------------------------------------------- the stand-in's sources

APT_TEXT = "apt-get update && apt-get install -y --no-install-recommends dict-gcide linux-doc-6.1 r-cran-janeaustenr"
AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
_GCIDE_PRON = re.compile(r"\\[^\\\n]{0,120}\\")  # \Co*ag"u*late\  (pronunciation / syllables)
_GCIDE_SRC = re.compile(r"\[(?:[^\]\n]*?(?:Webster|WordNet|PJC|Century|Jargon|RFC|Chambers)[^\]\n]*)\]")


def gcide_path(root: Path) -> Optional[Path]:
    p = root / "usr/share/dictd/gcide.dict.dz"
    return p if p.is_file() else None


def linux_doc_files(root: Path) -> list[Path]:
    """English RST / text sources of the newest installed linux-doc-* package (translations left out)."""
    dirs = sorted((root / "usr/share/doc").glob("linux-doc-*/Documentation"),
                  key=lambda d: [int(x) if x.isdigit() else x for x in re.split(r"[.-]", d.parent.name)])
    if not dirs:
        return []
    top = dirs[-1]
    return sorted(p for p in top.rglob("*") if p.is_file() and "translations" not in p.relative_to(top).parts
                  and re.search(r"\.(rst|txt)(\.gz)?$", p.name))


def austen_path(root: Path) -> Optional[Path]:
    for lib in ("usr/lib/R/site-library", "usr/local/lib/R/site-library", "usr/lib/R/library"):
        p = root / lib / "janeaustenr/data/Rdata.rdb"
        if p.is_file():
            return p
    return None


def _read_text(p: Path) -> str:
    raw = gzip.decompress(p.read_bytes()) if p.name.endswith((".gz", ".dz")) else p.read_bytes()
    return raw.decode("utf-8", errors="replace")


def gcide_text(p: Path) -> str:
    """The dictionary without pronunciation keys and source tags ('[1913 Webster]'), which are not prose."""
    return _GCIDE_SRC.sub(" ", _GCIDE_PRON.sub(" ", _read_text(p)))


def austen_texts(p: Path) -> dict[str, str]:
    books = read_lazyload(p)
    return {k: "\n".join(s or "" for s in books[k]) for k in AUSTEN_BOOKS if k in books}


# ----------------------------------------------------------------------------- the task


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
    block = 100_000  # stand-in: characters per block in the 18:1:1 interleaving

    def load(self) -> dict:
        c = self.cfg
        src = self.locate(c.path, "TEXT8_PATH", ["text8", "text8.zip"], "the 100,000,000-character text8 file "
                          "(or text8.zip)")
        if src is not None and src.is_dir():
            inside = [src / n for n in ("text8", "text8.zip") if (src / n).is_file()]
            if not inside:
                raise UserError(f"{src}: folder without a 'text8' or 'text8.zip' file")
            src = inside[0]
        if src is not None:
            self.source = "official"
            arrays = self.cached(lambda: self._build_official(src), file=_stat(src))
            name = str(src)
        else:
            self.source = "substitute"
            root = Path(c.system_root)
            sources = self._substitute_sources(root)
            arrays = self.cached(lambda: self._build_substitute(sources), sources=self._source_key(sources))
            name = "the text8 stand-in (" + " + ".join(self.meta["sources"]) + ")"
            warn(f"text8: no text8 file given (task.path, $TEXT8_PATH or <data_dir>/text8); using the offline "
                 f"stand-in: {' + '.join(self.meta['sources'])} characters, text8-normalised "
                 f"({self.meta['chars']:,} in all)")
        if c.max_chars is not None:
            if c.max_chars < 1:
                raise UserError(f"task.max_chars must be positive, got {c.max_chars}")
            caps = (c.max_chars * 90 // 100, c.max_chars * 5 // 100, c.max_chars * 5 // 100)
            arrays = {k: arrays[k][:cap] for k, cap in zip(SPLITS, caps)}
        return self.streams(arrays, name, unit="characters")

    def _build_official(self, src: Path):
        data = read_text8(src).rstrip(b"\n")
        ids = text8_ids(data, str(src))
        n = len(ids)
        if n != 100_000_000:
            warn(f"{src}: {n:,} characters, not text8's 100,000,000; split 90/5/5 in proportion")
        a, b = n * 90 // 100, n * 95 // 100
        return {"train": ids[:a], "val": ids[a:b], "test": ids[b:]}, {"chars": n, "sources": [str(src)]}

    # -- the stand-in
    def _substitute_sources(self, root: Path) -> dict:
        s = {"gcide": gcide_path(root), "linux-doc": linux_doc_files(root), "austen": austen_path(root)}
        s = {k: v for k, v in s.items() if v}
        if not s:
            raise UserError(f"text8: no text8 file given (task.path, $TEXT8_PATH or <data_dir>/text8) and none of "
                            f"the stand-in's sources is installed under {root}; install them with: {APT_TEXT}")
        return s

    @staticmethod
    def _source_key(sources: dict) -> dict:
        key = {}
        for k, v in sources.items():
            if isinstance(v, list):  # many files: their folder, count, total size and newest time
                st = [p.stat() for p in v]
                key[k] = [str(v[0].parent), len(v), sum(s.st_size for s in st), max(s.st_mtime_ns for s in st)]
            else:
                key[k] = _stat(v)
        return key

    def _build_substitute(self, sources: dict):
        from tqdm import tqdm

        parts: list[bytes] = []
        counts = {}
        if "gcide" in sources:
            parts.append(text8_normalise(gcide_text(sources["gcide"])))
            counts["GCIDE"] = len(parts[-1])
        if "linux-doc" in sources:
            files = sources["linux-doc"]
            n0 = len(parts)
            for p in tqdm(files, desc="text8 stand-in: kernel docs", unit="file", leave=False):
                t = text8_normalise(_read_text(p))
                if t:
                    parts.append(t)
            package = next(q for q in files[0].parents if q.name == "Documentation").parent.name  # linux-doc-6.1
            counts[package] = sum(len(x) for x in parts[n0:])
        if "austen" in sources:
            n0 = len(parts)
            parts.extend(text8_normalise(t) for t in austen_texts(sources["austen"]).values())
            counts["Jane Austen"] = sum(len(x) for x in parts[n0:])
        ids = text8_ids(b" ".join(parts), "text8 stand-in")
        return self.interleave(ids), {"chars": len(ids), "sources": [f"{k} {v / 1e6:.1f}M" for k, v in counts.items()]}

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


# ============================================================================= music


@dataclass
class MusicConfig(TaskConfig):
    seq_len: int = 512  # context length (the paper's 512)
    path: Optional[str] = None  # MAESTRO folder (with maestro-v*.csv); else $MAESTRO_DIR; else <data_dir>/maestro-v3.0.0
    sustain: bool = True  # extend notes while the sustain pedal is down (Music Transformer)
    max_files: Optional[int] = None  # read at most this many files (MAESTRO: in proportion per split)
    music21_include: tuple[str, ...] = ()  # stand-in: corpus path prefixes (empty: all scores but folk tunes)
    split_seed: int = 0  # stand-in: the 90/5/5 split by work
    workers: int = 0  # processes for parsing (0: all cores)


MAESTRO_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def _midi_tokens(args):
    path, sustain = args
    from .music import notes_to_tokens, read_midi

    try:
        notes = read_midi(path, sustain=sustain)
    except Exception as e:  # noqa: BLE001 - any failure of the parser is a counted skip
        return path, None, f"{type(e).__name__}: {str(e)[:120]}"
    if not len(notes):
        return path, None, "no notes"
    return path, notes_to_tokens(notes), None


def _works(files: list[str]) -> dict[str, list[str]]:
    """Corpus files grouped by work: a sub-folder of movements (mozart/k545/...) is one work, else each file."""
    works: dict[str, list[str]] = {}
    for f in files:
        parts = f.split("/")
        works.setdefault("/".join(parts[:2]) if len(parts) > 2 else f, []).append(f)
    return works


def split_works(files: list[str], seed: int, max_files: Optional[int], what: str) -> dict[str, list[str]]:
    """music21 corpus files -> {split: files}, 90/5/5 by work in a seeded order; max_files caps the files taken."""
    works = _works(files)
    names = [sorted(works)[i] for i in np.random.default_rng(seed).permutation(len(works))]
    if max_files is not None:
        keep, n = [], 0
        for w in names:
            if n >= max_files:
                break
            keep.append(w)
            n += len(works[w])
        names = keep
    if len(names) < 3:
        raise UserError(f"{what}: {len(names)} work(s) selected; at least 3 are needed for train / val / test "
                        f"(check task.music21_include / task.max_files)")
    a, b, _ = split_counts(len(names))
    groups = {"train": names[:a], "val": names[a:a + b], "test": names[a + b:]}
    return {k: [f for w in ws for f in works[w]] for k, ws in groups.items()}


@TASKS.register("music")
class Music(_Corpus):
    """Symbolic music as Music-Transformer performance events (389 ids)."""

    Config = MusicConfig
    vocab_size = 389
    dtype = np.uint16
    description = "performance-event LM on MAESTRO MIDI (389 ids); stand-in: music21's bundled scores"

    def load(self) -> dict:
        from . import music

        assert self.vocab_size == music.VOCAB_SIZE
        c = self.cfg
        src = self.locate(c.path, "MAESTRO_DIR", ["maestro-v3.0.0", "maestro-v2.0.0", "maestro", "."],
                          "a MAESTRO folder: maestro-v3.0.0.csv (columns split, midi_filename) + the MIDI files")
        if src is not None:
            need("mido", "reading MIDI files")
            self.source = "official"
            csv_path = self._csv(src)
            rows = self._rows(csv_path)
            midi = _digest([_stat(p)[1:] if p.is_file() else None for _, p in rows])  # sizes, times
            key = dict(csv=_stat(csv_path), midi=midi, sustain=c.sustain, max_files=c.max_files)
            arrays = self.cached(lambda: self._build_maestro(csv_path, rows), **key)
            name = str(csv_path)
        else:
            self.source = "substitute"
            files = music.music21_files(tuple(c.music21_include))
            splits = split_works(files, c.split_seed, c.max_files, "music stand-in")
            key = dict(music21=music.music21_cache().name, files=_digest(splits), seed=c.split_seed)
            arrays = self.cached(lambda: self._build_music21(splits), **key)
            name = "the music stand-in (music21's corpus)"
            warn(f"music: no MAESTRO folder given (task.path, $MAESTRO_DIR or <data_dir>/maestro-v3.0.0); using the "
                 f"offline stand-in: {self.meta['pieces']:,} pieces from {self.meta['files']:,} music21 scores as "
                 f"performance events")
        return self.streams(arrays, name)

    # -- MAESTRO
    @staticmethod
    def _csv(src: Path) -> Path:
        if src.is_file():
            return src
        found = sorted(src.glob("maestro-v*.csv"))
        if not found:
            raise UserError(f"{src}: no maestro-v*.csv; expected the MAESTRO layout: maestro-v3.0.0.csv "
                            f"(columns incl. split, midi_filename) beside the YEAR/*.midi folders")
        return found[-1]

    @staticmethod
    def _rows(csv_path: Path) -> list[tuple[str, Path]]:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            for col in ("split", "midi_filename"):
                if col not in cols:
                    raise UserError(f"{csv_path}:1: no '{col}' column (has {', '.join(cols)}); expected MAESTRO's "
                                    f"csv with columns incl. split, midi_filename")
            rows = []
            for line, r in enumerate(reader, start=2):
                split = (r["split"] or "").strip()
                if split not in MAESTRO_SPLITS:
                    raise UserError(f"{csv_path}:{line}: split {split!r}; expected train, validation or test")
                rows.append((MAESTRO_SPLITS[split], csv_path.parent / r["midi_filename"].strip()))
        if not rows:
            raise UserError(f"{csv_path}: no rows after the header")
        return rows

    def _build_maestro(self, csv_path: Path, rows: list):
        c = self.cfg
        by_split = {k: [p for s, p in rows if s == k] for k in SPLITS}
        if c.max_files is not None:
            share = {k: max(1, round(c.max_files * len(v) / len(rows))) for k, v in by_split.items()}
            by_split = {k: v[: share[k]] for k, v in by_split.items()}
        jobs = [(str(p), c.sustain) for k in SPLITS for p in by_split[k]]
        results = self._parallel(_midi_tokens, jobs, "tokenising MAESTRO MIDI")
        return self._assemble(by_split, {p: (t, e) for p, t, e in results}, csv_path, "MIDI files")

    def _parallel(self, fn, jobs, desc):
        from tqdm import tqdm

        workers = min(self.cfg.workers or os.cpu_count() or 1, max(1, len(jobs)))
        if workers == 1 or len(jobs) < 8:
            return [fn(j) for j in tqdm(jobs, desc=desc, unit="file", leave=False)]
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            return list(tqdm(pool.map(fn, jobs, chunksize=2), total=len(jobs), desc=desc, unit="file", leave=False))

    @staticmethod
    def _assemble(by_split: dict, tokens: dict, source, unit: str):
        from .music import DOC

        out, skipped, docs = {}, [], 0
        for k in SPLITS:
            parts = []
            for p in by_split[k]:
                toks, err = tokens[str(p)]
                if err is not None:
                    skipped.append((str(p), err))
                    continue
                for t in toks if isinstance(toks, list) else [toks]:
                    parts += [t, np.array([DOC], np.uint16)]
                    docs += 1
            out[k] = np.concatenate(parts) if parts else np.zeros(0, np.uint16)
        total = sum(len(v) for v in by_split.values())
        if docs == 0:
            raise UserError(f"{source}: no readable {unit} ({len(skipped)} of {total} failed"
                            + (f", e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else "") + ")")
        return out, {"pieces": docs, "files": total - len(skipped), "files_total": total, "skipped": skipped,
                     "unit": unit, "tokens": {k: len(v) for k, v in out.items()}}

    # -- music21 stand-in
    def _build_music21(self, splits: dict):
        from . import music

        files = [f for k in SPLITS for f in splits[k]]
        parsed = music.music21_notes(files, music.music21_cache(),
                                     workers=self.cfg.workers)
        tokens = {f: ([music.notes_to_tokens(n) for n in pieces], err) for f, (pieces, err) in parsed.items()}
        tokens = {f: (t, e if e or t else "no notes") for f, (t, e) in tokens.items()}
        return self._assemble(splits, tokens, "music21's corpus", "music21 scores")


# ============================================================================= audio

KEYBOARD = ("bach/", "beach/", "chopin/", "cpebach/", "joplin/", "mozart/k545/", "schubert/",
            "schumann_clara/polonaise", "schumann_robert/dichterliebe")  # chorales + piano works + lieder


@dataclass
class AudioConfig(TaskConfig):
    seq_len: int = 512  # context length (the paper's 512: 32 ms at 16 kHz)
    path: Optional[str] = None  # folder of WAV / FLAC (searched recursively); else $AUDIO_DIR; else <data_dir>/audio
    sample_rate: int = 16000
    max_seconds: Optional[float] = None  # use at most this much audio, 90/5/5 over the splits (None: all)
    split_seed: int = 0  # the 90/5/5 split by file (stand-in: by work)
    renderer: Literal["auto", "fluidsynth", "additive"] = "auto"  # stand-in: auto = fluidsynth when installed
    soundfont: Optional[str] = None  # stand-in: a .sf2 for fluidsynth (None: the installed GM soundfont)
    music21_include: tuple[str, ...] = KEYBOARD  # stand-in: corpus path prefixes of the scores rendered
    workers: int = 0  # processes for parsing scores (0: all cores)


@TASKS.register("audio")
class Audio(_Corpus):
    """Raw audio at 16 kHz, 8-bit mu-law (256 ids), the paper's YouTube-Mix-8 setting."""

    Config = AudioConfig
    vocab_size = 256
    description = "raw-audio LM, 16 kHz 8-bit mu-law (256 ids); stand-in: music21 scores rendered to piano"

    def load(self) -> dict:
        c = self.cfg
        if c.sample_rate < 1000:
            raise UserError(f"task.sample_rate must be at least 1000, got {c.sample_rate}")
        if c.max_seconds is not None and c.max_seconds <= 0:
            raise UserError(f"task.max_seconds must be positive, got {c.max_seconds}")
        src = self.locate(c.path, "AUDIO_DIR", ["audio"], "a folder of WAV / FLAC files")
        if src is not None:
            if not src.is_dir():
                raise UserError(f"{src}: not a folder; expected a folder of WAV / FLAC files")
            need("soundfile", "reading audio files")
            self.source = "official"
            files = sorted(p for p in src.rglob("*") if p.is_file())
            if not files:
                raise UserError(f"{src}: empty folder; expected WAV / FLAC files")
            key = dict(folder=str(src.resolve()), files=_digest([_stat(p)[1:] + [str(p.relative_to(src))]
                                                                 for p in files]),
                       rate=c.sample_rate, max_seconds=c.max_seconds, seed=c.split_seed)
            arrays = self.cached(lambda: self._build_folder(src, files), **key)
            name = str(src)
        else:
            from . import audio, music

            self.source = "substitute"
            renderer, sf2 = self._renderer()
            if renderer == "fluidsynth":
                need("mido", "rendering scores with fluidsynth")
            files = music.music21_files(tuple(c.music21_include))
            splits = split_works(files, c.split_seed, None, "audio stand-in")
            key = dict(music21=music.music21_cache().name, files=_digest(splits), seed=c.split_seed,
                       renderer=renderer, soundfont=_stat(sf2) if sf2 else None, rate=c.sample_rate,
                       max_seconds=c.max_seconds, peak=audio.PEAK)
            arrays = self.cached(lambda: self._build_rendered(splits, renderer, sf2), **key)
            name = "the audio stand-in (music21 scores rendered to piano)"
            how = (f"fluidsynth with {sf2.name}" if renderer == "fluidsynth" else
                   "additive synthesis (fluidsynth or a GM soundfont is not installed: apt-get install -y fluidsynth "
                   "fluid-soundfont-gm)" if c.renderer == "auto" else "additive synthesis")
            warn(f"audio: no audio folder given (task.path, $AUDIO_DIR or <data_dir>/audio); using the offline "
                 f"stand-in: {self.meta['pieces']:,} music21 scores rendered to piano by {how}, "
                 f"{self.meta['seconds'] / 3600:.2f} h at {c.sample_rate} Hz")
        return self.streams(arrays, name, unit="samples")

    def _cap(self, k: str) -> Optional[int]:
        c = self.cfg
        if c.max_seconds is None:
            return None
        return int(c.max_seconds * c.sample_rate * (0.9 if k == "train" else 0.05))

    def _build_folder(self, src: Path, files: list[Path]):
        import soundfile as sf
        from tqdm import tqdm

        from .audio import mu_law_encode, read_audio

        c = self.cfg
        good, skipped = [], []
        for p in files:
            try:
                info = sf.info(str(p))
                if info.frames <= 0:
                    raise RuntimeError("no samples")
                good.append(p)
            except Exception as e:  # noqa: BLE001 - whatever soundfile cannot read is not audio
                skipped.append((str(p.relative_to(src)), str(e).splitlines()[0][:80] if str(e) else type(e).__name__))
        if len(good) < 3:
            raise UserError(f"{src}: {len(good)} readable audio file(s) (of {len(files)}); at least 3 are needed to "
                            f"split by file into train / val / test" + (f"; unreadable: {skipped[0][0]}" if skipped else ""))
        order = [good[i] for i in np.random.default_rng(c.split_seed).permutation(len(good))]
        a, b, _ = split_counts(len(order))
        by_split = {"train": order[:a], "val": order[a:a + b], "test": order[a + b:]}
        out = {}
        bar = tqdm(total=len(good), desc="reading audio", unit="file", leave=False)
        for k in SPLITS:
            cap, parts, n = self._cap(k), [], 0
            for p in by_split[k]:
                bar.update(1)
                if cap is not None and n >= cap:
                    continue
                x = read_audio(p, c.sample_rate, None if cap is None else (cap - n) / c.sample_rate)
                parts.append(mu_law_encode(x))
                n += len(x)
            out[k] = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        bar.close()
        return out, {"files_total": len(files), "skipped": skipped, "unit": "files (not readable as audio)",
                     "pieces": len(good),
                     "seconds": sum(len(v) for v in out.values()) / c.sample_rate}

    def _renderer(self):
        from .audio import find_soundfont, fluidsynth_binary

        c = self.cfg
        sf2 = find_soundfont(c.soundfont)
        if c.renderer == "fluidsynth" and (fluidsynth_binary() is None or sf2 is None):
            raise UserError("task.renderer=fluidsynth but " + ("fluidsynth" if fluidsynth_binary() is None else
                            "a GM soundfont") + " is not installed: apt-get install -y fluidsynth fluid-soundfont-gm")
        if c.renderer == "additive" or fluidsynth_binary() is None or sf2 is None:
            return "additive", None
        return "fluidsynth", sf2

    def _build_rendered(self, splits: dict, renderer: str, sf2):
        from tqdm import tqdm

        from . import audio, music

        c = self.cfg
        gap = 1.0  # seconds of ring-out after each piece
        files = [f for k in SPLITS for f in splits[k]]
        parsed = music.music21_notes(files, music.music21_cache(),
                                     workers=c.workers)
        chosen, skipped = {}, []
        for k in SPLITS:  # the pieces of each split, up to its share of max_seconds
            cap, seconds, chosen[k] = self._cap(k), 0.0, []
            for f in splits[k]:
                pieces, err = parsed[f]
                if err or not pieces:
                    skipped.append((f, err or "no notes"))
                    continue
                for n in pieces:
                    if cap is None or seconds * c.sample_rate < cap:
                        chosen[k].append(n)
                        seconds += n[:, 1].max() - n[:, 0].min() + gap
        n_pieces = sum(len(v) for v in chosen.values())
        if n_pieces == 0:
            raise UserError("music21's corpus: no score could be read for the audio stand-in"
                            + (f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
        out = {}
        bar = tqdm(total=n_pieces, desc=f"rendering piano audio ({renderer})", unit="piece", leave=False)
        for k in SPLITS:
            parts = []
            for i in range(0, len(chosen[k]), 25):  # a slice at a time, so the bar moves
                chunk = chosen[k][i: i + 25]
                ys = (audio.render_fluidsynth(chunk, sf2, c.sample_rate, gap) if renderer == "fluidsynth"
                      else audio.render_additive(chunk, c.sample_rate, gap))
                parts += [audio.mu_law_encode(y) for y in ys]
                bar.update(len(chunk))
            y = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
            out[k] = y[: self._cap(k)] if c.max_seconds is not None else y
        bar.close()
        return out, {"pieces": n_pieces, "files_total": len(files), "skipped": skipped, "unit": "music21 scores",
                     "renderer": renderer, "seconds": sum(len(v) for v in out.values()) / c.sample_rate}
