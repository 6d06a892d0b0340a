"""Symbolic music (the WaveletGPT paper's MAESTRO setting): performance events (see `music.py`) + DOC after
each piece, 389 ids.

Real data: MAESTRO (`maestro-v3.0.0.csv` + MIDI) - task.path, $MAESTRO_DIR or <data_dir>/maestro-v3.0.0 - with
its own train / validation / test splits. Stand-in: music21's bundled scores, split 90/5/5 by work.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import Source
from .corpora import SPLITS, _Corpus, need, split_works


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


@TASKS.register("music")
class Music(_Corpus):
    """Symbolic music as Music-Transformer performance events (389 ids)."""

    Config = MusicConfig
    vocab_size = 389
    dtype = np.uint16
    description = "performance-event LM on MAESTRO MIDI (389 ids); stand-in: music21's bundled scores"

    def sources(self) -> list[Source]:
        from . import music

        assert self.vocab_size == music.VOCAB_SIZE
        return [Source("official", self._official, self._maestro,
                       inputs=lambda found: [found[0]] + [p for _, p in found[1]],
                       missing="a MAESTRO folder (task.path, $MAESTRO_DIR or <data_dir>/maestro-v3.0.0)"),
                Source("substitute", self._stand_in, self._music21,
                       inputs=lambda splits: [music.music21_corpus_dir() / f for k in SPLITS for f in splits[k]],
                       key=lambda splits: music.music21_cache().name,
                       missing="the stand-in's scores: pip install music21")]

    def _official(self):
        """(csv, [(split, MIDI path)]) of the MAESTRO folder, or None (no folder given)."""
        src = self.locate(self.cfg.path, "MAESTRO_DIR", ["maestro-v3.0.0", "maestro-v2.0.0", "maestro", "."],
                          "a MAESTRO folder: maestro-v3.0.0.csv (columns split, midi_filename) + the MIDI files")
        if src is None:
            return None
        need("mido", "reading MIDI files")
        csv_path = self._csv(src)
        return csv_path, self._rows(csv_path)

    def _stand_in(self) -> Optional[dict]:
        """{split: music21 corpus files}, or None when music21 is not installed."""
        from . import music
        from ._common import package_dir

        if package_dir("music21") is None:
            return None
        c = self.cfg
        return split_works(music.music21_files(tuple(c.music21_include)), c.split_seed, c.max_files, "music stand-in")

    def _maestro(self, found) -> dict:
        csv_path, rows = found
        out, meta = self._build_maestro(csv_path, rows)
        return self.corpus(out, dict(meta, name=str(csv_path)))

    def _music21(self, splits) -> dict:
        out, meta = self._build_music21(splits)
        return self.corpus(out, dict(meta, name="the music stand-in (music21's corpus)"))

    def stand_in_line(self) -> str:
        return (f"music: no MAESTRO folder given (task.path, $MAESTRO_DIR or <data_dir>/maestro-v3.0.0); using the "
                f"offline stand-in: {self.meta['pieces']:,} pieces from {self.meta['files']:,} music21 scores as "
                f"performance events")

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
        from ._common import progress_bar

        workers = min(self.cfg.workers or os.cpu_count() or 1, max(1, len(jobs)))
        if workers == 1 or len(jobs) < 8:
            return [fn(j) for j in progress_bar(jobs, desc=desc, unit="file")]
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            return list(progress_bar(pool.map(fn, jobs, chunksize=2), total=len(jobs), desc=desc, unit="file"))

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
