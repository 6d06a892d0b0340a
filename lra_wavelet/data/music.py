"""MIDI -> performance events, Music-Transformer style (Oore et al. 2018; Huang et al. 2019).

A piece is a list of notes (start s, end s, pitch, velocity). It becomes one token stream:

    ids   0..127   NOTE_ON(pitch)
        128..255   NOTE_OFF(pitch)
        256..355   TIME_SHIFT(k * 10 ms), k = 1..100 (id 256 + k - 1); longer gaps repeat TIME_SHIFT(100)
        356..387   VELOCITY(bin), bin = (velocity - 1) // 4 (32 bins); it applies to the NOTE_ONs after it
             388   DOC: end of a document (pieces are concatenated into one stream per split)

Times are quantised to 10 ms steps. Canonical form (what decoding gives back): every note lasts at least one
step; a note still sounding when the same pitch starts again ends there; at one instant NOTE_OFFs come before
NOTE_ONs (so a repeated note re-strikes), VELOCITY is written only when the bin changes.

MIDI files are read with `mido` (tempo maps, type 0/1). The sustain pedal (CC 64 >= 64 = down) is applied as in
Music Transformer: a note released while the pedal is down sounds on until the pedal comes up (or the same
pitch is struck again). Channel 10 (General MIDI percussion) is dropped.

The offline stand-in for MAESTRO reads scores from music21's bundled corpus (`music21_notes`): notes with their
times in seconds from the score's tempo marks (120 quarter notes per minute where there are none), tied notes
merged, velocity 90 where the score gives none, repeats not expanded. This module registers nothing.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import UserError

NOTE_ON, NOTE_OFF, TIME_SHIFT, VELOCITY = 0, 128, 256, 356
N_SHIFTS, N_VEL_BINS = 100, 32
DOC = 388
VOCAB_SIZE = 389
STEP = 0.01  # seconds per time step
DEFAULT_VELOCITY = 90  # music21's MIDI default where a score has no velocity
DRUM_CHANNEL = 9


def id_name(i: int) -> str:
    """Human-readable name of a token id, e.g. 'NOTE_ON(60)', 'TIME_SHIFT(250ms)'."""
    i = int(i)
    if i < NOTE_OFF:
        return f"NOTE_ON({i})"
    if i < TIME_SHIFT:
        return f"NOTE_OFF({i - NOTE_OFF})"
    if i < VELOCITY:
        return f"TIME_SHIFT({(i - TIME_SHIFT + 1) * 10}ms)"
    if i < DOC:
        return f"VELOCITY({i - VELOCITY})"
    if i == DOC:
        return "DOC"
    raise ValueError(f"token id {i} is outside the vocabulary (0..{VOCAB_SIZE - 1})")


def velocity_bin(v):
    return (np.clip(np.asarray(v, dtype=np.int64), 1, 127) - 1) // 4


def bin_velocity(b):
    """The velocity a bin decodes to: the middle of its range (bin b covers 4b+1 .. 4b+4)."""
    return np.asarray(b) * 4 + 3


# ----------------------------------------------------------------------------- MIDI files


def read_midi(src: Union[str, Path, bytes], sustain: bool = True) -> np.ndarray:
    """Notes of a MIDI file as float64 (N, 4): start s, end s, pitch, velocity; sorted by (start, pitch).

    Raises whatever mido raises on a broken file; callers decide whether that is a skip or an error.
    """
    import mido

    mid = mido.MidiFile(file=io.BytesIO(src)) if isinstance(src, bytes) else mido.MidiFile(str(src))
    t = 0.0
    held: dict[tuple[int, int], tuple[float, int]] = {}  # (channel, pitch) -> (start, velocity): key down
    ringing: dict[tuple[int, int], tuple[float, int]] = {}  # released while the pedal is down
    pedal = [False] * 16
    out: list[tuple[float, float, int, int]] = []

    def close(key, table, end):
        start, vel = table.pop(key)
        out.append((start, end, key[1], vel))

    for msg in mid:  # merged tracks, msg.time = seconds since the previous message
        t += msg.time
        kind = msg.type
        if kind not in ("note_on", "note_off", "control_change") or msg.channel == DRUM_CHANNEL:
            continue
        ch = msg.channel
        if kind == "control_change":
            if msg.control == 64 and sustain:
                down = msg.value >= 64
                if pedal[ch] and not down:
                    for key in [k for k in ringing if k[0] == ch]:
                        close(key, ringing, t)
                pedal[ch] = down
            continue
        key = (ch, msg.note)
        if kind == "note_on" and msg.velocity > 0:
            for table in (held, ringing):  # the same pitch struck again ends the sounding note
                if key in table:
                    close(key, table, t)
            held[key] = (t, msg.velocity)
        elif key in held:  # note_off, or note_on with velocity 0
            if pedal[ch]:
                ringing[key] = held.pop(key)
            else:
                close(key, held, t)
    for table in (held, ringing):
        for key in list(table):
            close(key, table, t)
    notes = np.array(out, dtype=np.float64).reshape(-1, 4)
    return notes[np.lexsort((notes[:, 2], notes[:, 0]))] if len(notes) else notes


def write_midi(notes: np.ndarray, path: Union[str, Path, None] = None, program: int = 0,
               tail: float = 0.0) -> bytes:
    """Notes (N, 4) -> a type-0 MIDI file on one channel (120 bpm, 1 ms ticks); returns its bytes.

    `tail` seconds of silence are kept after the last note (a final no-op controller event), so that a renderer
    lets the last notes ring out.
    """
    import mido

    mid = mido.MidiFile(type=0, ticks_per_beat=500)  # 120 bpm: one tick = 1 ms
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    ev = []  # (tick, order, message kwargs): offs before ons at the same tick
    for start, end, pitch, vel in np.asarray(notes).reshape(-1, 4):
        a, b = int(round(start * 1000)), int(round(end * 1000))
        ev.append((a, 1, int(pitch), int(vel)))
        ev.append((max(b, a + 1), 0, int(pitch), 0))
    ev.sort()
    now = 0
    for tick, order, pitch, vel in ev:
        kind = "note_on" if order else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=vel, channel=0, time=tick - now))
        now = tick
    end = (ev[-1][0] if ev else 0) + int(round(tail * 1000))
    track.append(mido.Message("control_change", control=20, value=0, channel=0, time=end - now))
    buf = io.BytesIO()
    mid.save(file=buf)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


# ----------------------------------------------------------------------------- tokens


def quantise(notes: np.ndarray) -> np.ndarray:
    """Canonical int64 (N, 4) notes in steps: start, end, pitch, velocity bin; what a token round trip keeps."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    s = np.rint(notes[:, 0] / STEP).astype(np.int64)
    e = np.maximum(np.rint(notes[:, 1] / STEP).astype(np.int64), s + 1)
    q = np.stack([s, e, notes[:, 2].astype(np.int64), velocity_bin(notes[:, 3])], axis=1)
    q = q[np.lexsort((q[:, 2], q[:, 0]))]
    q = q[(q[:, 2] >= 0) & (q[:, 2] < 128)]
    # per pitch: a note ends where the next note of that pitch starts; of two onsets at one step the later wins
    order = np.lexsort((q[:, 0], q[:, 2]))
    p = q[order]
    same = p[1:, 2] == p[:-1, 2]
    nxt = np.where(same, p[1:, 0], np.iinfo(np.int64).max)
    p[:-1, 1] = np.minimum(p[:-1, 1], nxt)
    keep = p[:, 1] > p[:, 0]
    p = p[keep]
    return p[np.lexsort((p[:, 2], p[:, 0]))]


def notes_to_tokens(notes: np.ndarray) -> np.ndarray:
    """Notes (N, 4) in seconds -> uint16 performance-event ids (no DOC token)."""
    q = quantise(notes)
    n = len(q)
    if n == 0:
        return np.zeros(0, dtype=np.uint16)
    # events: time, kind (0 off, 1 on), pitch, velocity bin; offs first at equal times
    t = np.concatenate([q[:, 1], q[:, 0]])
    kind = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    pitch = np.concatenate([q[:, 2], q[:, 2]])
    vbin = np.concatenate([np.full(n, -1, np.int64), q[:, 3]])
    o = np.lexsort((pitch, kind, t))
    t, kind, pitch, vbin = t[o], kind[o], pitch[o], vbin[o]
    ev_id = np.where(kind == 1, NOTE_ON + pitch, NOTE_OFF + pitch)
    # a VELOCITY token before each NOTE_ON whose bin differs from the previous NOTE_ON's
    on = np.flatnonzero(kind == 1)
    need_vel = np.zeros(len(t), dtype=bool)
    need_vel[on] = np.diff(vbin[on], prepend=-1) != 0
    dt = np.diff(t, prepend=0)
    full, rest = dt // N_SHIFTS, dt % N_SHIFTS
    n_tok = full + (rest > 0) + need_vel + 1
    start = np.cumsum(n_tok) - n_tok
    out = np.empty(int(n_tok.sum()), dtype=np.uint16)
    # TIME_SHIFT(100) x full, then TIME_SHIFT(rest), then VELOCITY, then the event
    idx = np.repeat(np.arange(len(t)), full)
    within = np.arange(len(idx)) - np.repeat(np.cumsum(full) - full, full)
    out[start[idx] + within] = TIME_SHIFT + N_SHIFTS - 1
    has_rest = rest > 0
    out[(start + full)[has_rest]] = TIME_SHIFT + rest[has_rest] - 1
    pos = start + full + has_rest
    out[pos[need_vel]] = VELOCITY + vbin[need_vel]
    out[pos + need_vel] = ev_id
    return out


def tokens_to_notes(tokens: np.ndarray) -> np.ndarray:
    """Token ids -> int64 (N, 4) notes in steps (start, end, pitch, velocity bin), as `quantise` gives them.

    DOC ends every sounding note and restarts the clock at 0; a NOTE_OFF without a NOTE_ON is ignored.
    """
    t, vbin = 0, 0
    sounding: dict[int, tuple[int, int]] = {}
    out = []
    for tok in np.asarray(tokens).tolist():
        if tok < NOTE_OFF:
            if tok in sounding:
                s, b = sounding.pop(tok)
                out.append((s, t, tok, b))
            sounding[tok] = (t, vbin)
        elif tok < TIME_SHIFT:
            p = tok - NOTE_OFF
            if p in sounding:
                s, b = sounding.pop(p)
                out.append((s, t, p, b))
        elif tok < VELOCITY:
            t += tok - TIME_SHIFT + 1
        elif tok < DOC:
            vbin = tok - VELOCITY
        else:
            for p, (s, b) in sounding.items():
                out.append((s, max(t, s + 1), p, b))
            sounding, t = {}, 0
    for p, (s, b) in sounding.items():
        out.append((s, max(t, s + 1), p, b))
    q = np.array(out, dtype=np.int64).reshape(-1, 4)
    return q[np.lexsort((q[:, 2], q[:, 0]))]


def steps_to_seconds(q: np.ndarray) -> np.ndarray:
    """Quantised notes (steps, velocity bins) -> float (N, 4) notes in seconds with velocities."""
    q = np.asarray(q)
    return np.stack([q[:, 0] * STEP, q[:, 1] * STEP, q[:, 2], bin_velocity(q[:, 3])], axis=1).astype(np.float64)


# ----------------------------------------------------------------------------- music21's corpus (stand-in)

SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")  # what music21 parses (not .mus / .musx)
FOLK = ("airdsAirs", "essenFolksong", "josquin", "miscFolk", "nottingham-dataset", "oneills1850", "ryansMammoth")


def music21_corpus_dir() -> Path:
    """music21's bundled corpus folder, found without importing music21 (slow to import)."""
    from ._common import package_dir

    pkg = package_dir("music21")
    if pkg is None:
        raise UserError("the offline music stand-in reads music21's bundled corpus: pip install music21")
    d = pkg / "corpus"
    if not d.is_dir():
        raise UserError(f"{d}: music21 is installed without its corpus folder (reinstall: pip install music21)")
    return d


def music21_version() -> str:
    import music21

    return str(music21.__version__)


NOTES_FORMAT = 2  # bump when `_score_notes` changes: names the shared cache of parsed scores


def music21_cache() -> Path:
    """Where parsed corpus scores are kept, shared by every task that reads them."""
    from .base import cache_root

    return cache_root() / "music21-notes" / f"{music21_version()}-{NOTES_FORMAT}"


def music21_files(include: tuple = ()) -> list[str]:
    """Score files of music21's corpus (paths relative to it, sorted).

    `include`: relative path prefixes to keep, e.g. ("bach/", "mozart/k545"); empty: every score file except the
    ABC folk-tune collections (which are single melodies, far from piano performances).
    """
    root = music21_corpus_dir()
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix.lower() in SCORE_SUFFIXES and p.is_file() and "__pycache__" not in p.parts)
    if include:
        return [f for f in files if any(f.startswith(i) for i in include)]
    return [f for f in files if f.split("/")[0] not in FOLK and not f.endswith(".abc")]


def _score_notes(score) -> np.ndarray:
    """(N, 4) notes in seconds of one music21 score, part by part.

    A note that starts where a tied note of the same pitch (in the same part) ends continues it. This agrees
    with music21's `stripTies` on 26 of 28 sampled corpus scores (two differ by a few notes where ties cross
    voices) and is ~8x faster. Quarter lengths become seconds through the score's metronome marks.
    """
    import bisect

    from music21 import chord, note, stream

    def per_quarter(mm) -> float:  # a mark with only words ("Langsam") has no tempo: 120 per minute
        try:
            return float(mm.secondsPerQuarter())
        except Exception:  # noqa: BLE001 - music21 raises its own exception types here
            return 0.5

    bounds = score.metronomeMarkBoundaries()  # [(start ql, end ql, MetronomeMark)] covering the score
    starts, spq, acc = [b[0] for b in bounds], [per_quarter(b[2]) for b in bounds], [0.0]
    for (a, b, _), s in zip(bounds, spq):
        acc.append(acc[-1] + (b - a) * s)

    def seconds(ql: float) -> float:
        i = max(0, bisect.bisect_right(starts, ql) - 1)
        return acc[i] + (ql - bounds[i][0]) * spq[i]

    parts = list(score.parts) if isinstance(score, stream.Score) and score.parts else [score]
    out: list[list] = []
    for part in parts:
        tied: dict[int, int] = {}  # pitch -> index in out of the note its tie continues
        for el in part.flatten().notes:
            if not isinstance(el, (note.Note, chord.Chord)):
                continue
            a = float(el.offset)
            b = a + float(el.duration.quarterLength)
            vel = el.volume.velocity or DEFAULT_VELOCITY
            for n in el.notes if isinstance(el, chord.Chord) else [el]:
                p = n.pitch.midi
                tie = n.tie if n.tie is not None else (el.tie if isinstance(el, chord.Chord) else None)
                going_on = tie is not None and tie.type in ("start", "continue")
                if p in tied and abs(out[tied[p]][1] - a) < 1e-6:
                    out[tied[p]][1] = b
                    if not going_on:
                        del tied[p]
                    continue
                out.append([a, b, p, vel])
                if going_on:
                    tied[p] = len(out) - 1
    notes = np.array([(seconds(a), seconds(b), p, v) for a, b, p, v in out], dtype=np.float64).reshape(-1, 4)
    return notes[np.lexsort((notes[:, 2], notes[:, 0]))] if len(notes) else notes


def parse_music21_file(path: str) -> tuple[list[np.ndarray], Optional[str]]:
    """Every piece in one corpus file (an ABC file may hold many tunes) -> ([notes], error or None)."""
    import warnings

    from music21 import converter, stream

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = converter.parse(path)
            scores = list(s.scores) if isinstance(s, stream.Opus) else [s]
            pieces = [_score_notes(x) for x in scores]
    except Exception as e:  # noqa: BLE001 - a file music21 cannot read is a counted skip
        return [], f"{type(e).__name__}: {str(e)[:200]}"
    return [p for p in pieces if len(p)], None


def _cached_parse(args) -> tuple[str, list[np.ndarray], Optional[str]]:
    rel, root, cache = args
    npy, err = cache / (rel + ".npy"), cache / (rel + ".err")
    if npy.is_file():
        a = np.load(npy)
        return rel, [a[a[:, 0] == i, 1:] for i in np.unique(a[:, 0])], None
    if err.is_file():
        return rel, [], err.read_text()
    pieces, error = parse_music21_file(str(root / rel))
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(npy.name + f".tmp{os.getpid()}")
    if error is None:
        a = np.concatenate([np.c_[np.full(len(p), i, np.float64), p] for i, p in enumerate(pieces)]) \
            if pieces else np.zeros((0, 5))
        with open(tmp, "wb") as f:
            np.save(f, a)
        os.replace(tmp, npy)
    else:
        tmp.write_text(error)
        os.replace(tmp, err)
    return rel, pieces, error


def music21_notes(files: list[str], cache: Path, workers: int = 0, progress: bool = True,
                  desc: str = "parsing music21 scores") -> dict[str, tuple[list[np.ndarray], Optional[str]]]:
    """{relative path: ([notes per piece], error)} for corpus files; each file is parsed once and cached under
    `cache` (shared by every task that uses the corpus)."""
    from ._common import progress_bar

    root = music21_corpus_dir()
    jobs = [(rel, root, cache) for rel in files]
    todo = [j for j in jobs if not (cache / (j[0] + ".npy")).is_file() and not (cache / (j[0] + ".err")).is_file()]
    workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
    out = {}
    bar = progress_bar(total=len(jobs), desc=desc, unit="file", show=bool(progress and todo))
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for rel, pieces, err in pool.map(_cached_parse, jobs, chunksize=4):
                out[rel] = (pieces, err)
                bar.update(1)
    else:
        for job in jobs:
            rel, pieces, err = _cached_parse(job)
            out[rel] = (pieces, err)
            bar.update(1)
    bar.close()
    return out
