"""Raw audio (the WaveletGPT paper's YouTube-Mix-8 setting): 16 kHz mono, 8-bit mu-law (see `audio.py`), 256 ids.

Real data: a folder of WAV / FLAC (any soundfile format) - task.path, $AUDIO_DIR or <data_dir>/audio - split
90/5/5 by file. Stand-in: music21's keyboard-playable scores rendered to piano, split 90/5/5 by work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import Source
from .corpora import SPLITS, _Corpus, need, split_counts, split_works

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
    unit = "samples"
    description = "raw-audio LM, 16 kHz 8-bit mu-law (256 ids); stand-in: music21 scores rendered to piano"

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.sample_rate < 1000:
            raise UserError(f"task.sample_rate must be at least 1000, got {cfg.sample_rate}")
        if cfg.max_seconds is not None and cfg.max_seconds <= 0:
            raise UserError(f"task.max_seconds must be positive, got {cfg.max_seconds}")

    def sources(self) -> list[Source]:
        from . import audio, music

        def rendering(splits) -> dict:  # what the stand-in's sound depends on beyond the scores
            renderer, sf2 = self._renderer()
            return {"renderer": renderer, "soundfont": [str(sf2), sf2.stat().st_size] if sf2 else None,
                    "music21": music.music21_cache().name, "peak": audio.PEAK}

        return [Source("official", self._official, self._folder, inputs=lambda src: [src],
                       missing="a folder of WAV / FLAC files (task.path, $AUDIO_DIR or <data_dir>/audio)"),
                Source("substitute", self._stand_in, self._rendered, key=rendering,
                       inputs=lambda splits: [music.music21_corpus_dir() / f for k in SPLITS for f in splits[k]],
                       missing="the stand-in's scores: pip install music21")]

    def _official(self) -> Optional[Path]:
        src = self.locate(self.cfg.path, "AUDIO_DIR", ["audio"], "a folder of WAV / FLAC files")
        if src is None:
            return None
        if not src.is_dir():
            raise UserError(f"{src}: not a folder; expected a folder of WAV / FLAC files")
        need("soundfile", "reading audio files")
        if not any(p.is_file() for p in src.rglob("*")):
            raise UserError(f"{src}: empty folder; expected WAV / FLAC files")
        return src

    def _stand_in(self) -> Optional[dict]:
        from . import music
        from ._common import package_dir

        if package_dir("music21") is None:
            return None
        c = self.cfg
        return split_works(music.music21_files(tuple(c.music21_include)), c.split_seed, None, "audio stand-in")

    def _folder(self, src: Path) -> dict:
        out, meta = self._build_folder(src, sorted(p for p in src.rglob("*") if p.is_file()))
        return self.corpus(out, dict(meta, name=str(src)))

    def _rendered(self, splits) -> dict:
        renderer, sf2 = self._renderer()
        if renderer == "fluidsynth":
            need("mido", "rendering scores with fluidsynth")
        out, meta = self._build_rendered(splits, renderer, sf2)
        return self.corpus(out, dict(meta, name="the audio stand-in (music21 scores rendered to piano)",
                                     soundfont=sf2.name if sf2 else None))

    def stand_in_line(self) -> str:
        c, m = self.cfg, self.meta
        how = (f"fluidsynth with {m['soundfont']}" if m["renderer"] == "fluidsynth" else
               "additive synthesis (fluidsynth or a GM soundfont is not installed: apt-get install -y fluidsynth "
               "fluid-soundfont-gm)" if c.renderer == "auto" else "additive synthesis")
        return (f"audio: no audio folder given (task.path, $AUDIO_DIR or <data_dir>/audio); using the offline "
                f"stand-in: {m['pieces']:,} music21 scores rendered to piano by {how}, "
                f"{m['seconds'] / 3600:.2f} h at {c.sample_rate} Hz")

    def _cap(self, k: str) -> Optional[int]:
        c = self.cfg
        if c.max_seconds is None:
            return None
        return int(c.max_seconds * c.sample_rate * (0.9 if k == "train" else 0.05))

    def _build_folder(self, src: Path, files: list[Path]):
        import soundfile as sf
        from ._common import progress_bar

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
        bar = progress_bar(total=len(good), desc="reading audio", unit="file")
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
        from ._common import progress_bar

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
        bar = progress_bar(total=n_pieces, desc=f"rendering piano audio ({renderer})", unit="piece")
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
