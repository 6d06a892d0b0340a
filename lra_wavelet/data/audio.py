"""Raw audio as 8-bit tokens: mono mix, polyphase resampling to 16 kHz, 256-level mu-law (WaveNet's).

    mu_law_encode: x in [-1, 1] -> y = sign(x) ln(1 + 255|x|) / ln 256 -> id = floor((y + 1) / 2 * 255 + 1/2)
    mu_law_decode: id -> y = 2 id / 255 - 1 -> x = sign(y) (256^|y| - 1) / 255

Ids 0..255 run from -1 to +1 (silence is 127/128). The error of a round trip is at most the distance from the
level to the edge of its bin (half a step in the companded domain): 8.8e-5 near silence, 0.022 at full scale.

Files are read with `soundfile` block by block and resampled with scipy's polyphase filter
(`scipy.signal.resample_poly`, Kaiser-windowed sinc), with enough context at block edges that the result equals
resampling the whole file at once.

Rendering notes to audio (the offline stand-in): fluidsynth with a General-MIDI soundfont (Acoustic Grand Piano,
program 0) when both are installed, else a small additive piano-like synthesiser in numpy. This module registers
nothing.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserError

MU = 255
SAMPLE_RATE = 16000
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/sounds/sf3/default-GM.sf3", "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3",
              "/usr/share/soundfonts/default.sf2")
PEAK = 0.9  # each rendered piece is scaled to this peak (mastered, as recordings are)


# ----------------------------------------------------------------------------- mu-law


def mu_law_encode(x: np.ndarray, mu: int = MU) -> np.ndarray:
    """Float samples in [-1, 1] (clipped) -> uint8 ids 0..mu."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / math.log1p(mu)
    return np.floor((y + 1) / 2 * mu + 0.5).astype(np.uint8)


def mu_law_decode(q: np.ndarray, mu: int = MU) -> np.ndarray:
    """uint8 ids -> float32 samples in [-1, 1]."""
    y = 2 * np.asarray(q, dtype=np.float64) / mu - 1
    return (np.sign(y) * np.expm1(np.abs(y) * math.log1p(mu)) / mu).astype(np.float32)


# ----------------------------------------------------------------------------- reading and resampling


def _ratio(sr_in: int, sr_out: int) -> tuple[int, int]:
    g = math.gcd(int(sr_in), int(sr_out))
    return int(sr_out) // g, int(sr_in) // g


def resample(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of a 1-D signal (identity when the rates agree)."""
    up, down = _ratio(sr_in, sr_out)
    if up == down:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(x, dtype=np.float64), up, down).astype(np.float32)


def read_audio(path, sr: int = SAMPLE_RATE, max_seconds: Optional[float] = None,
               block_seconds: float = 60.0) -> np.ndarray:
    """A sound file -> float32 mono samples at `sr` (at most `max_seconds` of them).

    Reads `block_seconds` at a time; each block is resampled with `pad` input samples of context on both sides,
    and block starts are multiples of `down`, so the output equals `resample` of the whole file.
    """
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sr_in, n_in = f.samplerate, f.frames
        up, down = _ratio(sr_in, sr)
        if max_seconds is not None:
            n_in = min(n_in, int(math.ceil(max_seconds * sr_in)) + 1)
        n_out = -(-n_in * up // down)  # ceil, as resample_poly gives
        if max_seconds is not None:
            n_out = min(n_out, int(round(max_seconds * sr)))
        block = max(1, int(block_seconds * sr_in) // down) * down
        pad = 0 if up == down else (20 * max(up, down) // up // down + 2) * down  # > the filter's half length
        out = np.empty(n_out, dtype=np.float32)
        pos_out = 0
        for a in range(0, n_in, block):
            lo, hi = max(0, a - pad), min(n_in, a + block + pad)
            f.seek(lo)
            x = f.read(hi - lo, dtype="float32", always_2d=True).mean(axis=1)
            if up == down:
                y = x[a - lo: a - lo + block]
            else:
                from scipy.signal import resample_poly

                # treat the block as part of the whole: zero-extend where the file ends, as resample_poly does
                y = resample_poly(x.astype(np.float64), up, down)
                skip = (a - lo) * up // down
                y = y[skip: skip + block * up // down]
            take = min(len(y), n_out - pos_out)
            out[pos_out: pos_out + take] = y[:take]
            pos_out += take
            if pos_out >= n_out:
                break
    return np.clip(out[:pos_out], -1.0, 1.0)


# ----------------------------------------------------------------------------- rendering notes


def find_soundfont(path: Optional[str] = None) -> Optional[Path]:
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise UserError(f"{p}: soundfont not found (task.soundfont)")
        return p
    for c in SOUNDFONTS:
        if Path(c).is_file():
            return Path(c)
    found = sorted(Path("/usr/share/sounds/sf2").glob("*.sf2")) if Path("/usr/share/sounds/sf2").is_dir() else []
    return found[0] if found else None


def fluidsynth_binary() -> Optional[str]:
    return shutil.which("fluidsynth")


def _normalise(y: np.ndarray) -> np.ndarray:
    peak = float(np.abs(y).max()) if len(y) else 0.0
    return (y * (PEAK / peak)).astype(np.float32) if peak > 0 else y.astype(np.float32)


def render_fluidsynth(pieces: list[np.ndarray], soundfont: Path, sr: int = SAMPLE_RATE, gap: float = 1.0,
                      batch_seconds: float = 1800.0) -> list[np.ndarray]:
    """Notes (N, 4) per piece -> float32 mono audio per piece (each piece followed by `gap` s of ring-out).

    Pieces are laid end to end in one MIDI file per ~30 minutes, so fluidsynth loads the soundfont once per batch.
    """
    from .music import write_midi

    exe = fluidsynth_binary()
    if exe is None:
        raise UserError("fluidsynth not found: apt-get install -y fluidsynth fluid-soundfont-gm")
    out: list[np.ndarray] = []
    i = 0
    with tempfile.TemporaryDirectory() as tmp:
        while i < len(pieces):
            batch, offsets, t = [], [], 0.0
            while i < len(pieces) and (not batch or t < batch_seconds):
                notes = np.asarray(pieces[i], dtype=np.float64).copy()
                start = notes[:, 0].min() if len(notes) else 0.0
                dur = (notes[:, 1].max() - start) if len(notes) else 0.0
                notes[:, :2] += t - start
                batch.append(notes)
                offsets.append((t, dur))
                t += dur + gap
                i += 1
            mid, raw = Path(tmp) / "batch.mid", Path(tmp) / "batch.f32"
            write_midi(np.concatenate(batch), mid, program=0, tail=gap)
            r = subprocess.run([exe, "-ni", "-q", "-g", "1.0", "-r", str(sr), "-O", "float", "-T", "raw",
                                "-F", str(raw), str(soundfont), str(mid)], capture_output=True, text=True)
            if r.returncode != 0 or not raw.is_file():
                raise UserError(f"fluidsynth failed on {soundfont}: {(r.stderr or r.stdout).strip()[-300:]}")
            y = np.fromfile(raw, dtype=np.float32).reshape(-1, 2).mean(axis=1)
            for start, dur in offsets:
                a = int(round(start * sr))
                seg = y[a: a + int(round((dur + gap) * sr))]
                out.append(_normalise(seg))
    return out


class AdditivePiano:
    """A piano-like tone per pitch: 8 decaying harmonics (1/k amplitudes), decay faster for high notes and
    upper partials, a 5 ms attack, a 100 ms release after the key is let go. Plain numpy, no dependencies."""

    def __init__(self, sr: int = SAMPLE_RATE, max_seconds: float = 6.0):
        self.sr, self.n = sr, int(max_seconds * sr)
        self._tones: dict[int, np.ndarray] = {}

    def tone(self, pitch: int) -> np.ndarray:
        if pitch not in self._tones:
            t = np.arange(self.n) / self.sr
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            tau = 1.5 * (261.63 / f0) ** 0.5  # seconds; ~1.5 s at middle C
            y = np.zeros(self.n)
            for k in range(1, 9):
                if k * f0 >= self.sr / 2:
                    break
                y += np.sin(2 * np.pi * k * f0 * t) * np.exp(-t * k ** 0.5 / tau) / k
            y *= np.minimum(1.0, t / 0.005)
            self._tones[pitch] = y.astype(np.float32)
        return self._tones[pitch]

    def render(self, notes: np.ndarray, gap: float = 1.0) -> np.ndarray:
        notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
        if not len(notes):
            return np.zeros(0, np.float32)
        t0 = notes[:, 0].min()
        total = int(round((notes[:, 1].max() - t0 + gap) * self.sr))
        y = np.zeros(total, np.float32)
        rel = int(0.1 * self.sr)
        for s, e, p, v in notes:
            a = int(round((s - t0) * self.sr))
            hold = max(1, int(round((e - s) * self.sr)))
            n = min(hold + rel, self.n, total - a)
            if n <= 0:
                continue
            env = np.ones(n, np.float32)
            if n > hold:
                env[hold:] = np.linspace(1.0, 0.0, n - hold, dtype=np.float32)
            y[a: a + n] += self.tone(int(p))[:n] * env * (float(v) / 127.0)
        return _normalise(y)


def render_additive(pieces: list[np.ndarray], sr: int = SAMPLE_RATE, gap: float = 1.0) -> list[np.ndarray]:
    synth = AdditivePiano(sr)
    return [synth.render(p, gap) for p in pieces]
