"""What the language-model pre-training corpora share (text8.py, maestro.py, rawaudio.py): the `_Corpus` base.

Each corpus is a task of kind "lm": three token streams (train / val / test), read as windows of `seq_len`
(512, the paper's context) by `StreamSplit`. Its sources are, in order, the real data (`task.path`, an
environment variable, or a folder under the data dir) and an offline stand-in; the streams are built once into
the cache (uint8 / uint16, memory-mapped on load), keyed by their inputs and the settings that shape the tokens
(not `seq_len` nor the `max_chars` cap, which only cut the cached streams).

Unreadable inputs (a corrupt MIDI file, a non-audio file in the audio folder, a score music21 cannot read)
are counted, skipped and reported in one warning line that names them; an empty corpus, or a split shorter than
one window, is a UserError naming the source. This module registers nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserError
from .base import StreamSplit, Task

SPLITS = ("train", "val", "test")


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


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


class _Corpus(Task):
    """Shared machinery of the LM corpora: streams in the corpus's dtype, the windows check, source lookup,
    the warning lines (skipped inputs; the stand-in in use)."""

    kind = "lm"
    n_classes = 0
    pad_id = None
    chance = 0.0
    default_source = "substitute"
    dtype = np.uint8
    unit = "tokens"  # what a stream counts, for the error when a split is shorter than one window
    volatile = Task.volatile + ("seq_len", "max_chars")  # windows and caps cut the cached streams

    def corpus(self, arrays: dict, meta: dict) -> dict:
        """What a build returns: the three streams in the corpus's dtype, and its meta (incl. its `name`)."""
        return {**{k: np.ascontiguousarray(arrays[k], dtype=self.dtype) for k in SPLITS}, "meta": meta}

    def assemble(self, arrays: dict) -> dict:
        m = self.meta
        if m.get("skipped"):
            warn(f"{self.name}: " + _skips_line(m["skipped"], m["files_total"], m["unit"]))
        if self.source == "substitute":
            warn(self.stand_in_line())
        arrays = self.cut(arrays)
        out = {}
        for k in SPLITS:
            n = len(arrays[k])
            if n < self.seq_len + 1:
                raise UserError(f"{m['name']}: the {k} split has {n:,} {self.unit}, fewer than one window "
                                f"(task.seq_len {self.seq_len} + 1); give it more data or use a smaller seq_len")
            out[k] = StreamSplit(arrays[k], self.seq_len)
        return out

    def cut(self, arrays: dict) -> dict:
        """The cached streams as used (text8 caps them at max_chars)."""
        return arrays

    def stand_in_line(self) -> str:
        """The warning line of the stand-in: what it is, from the build's meta."""
        raise NotImplementedError

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
