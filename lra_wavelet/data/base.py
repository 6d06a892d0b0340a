"""The task interface: a Task knows its shape (kind, seq_len, vocab, classes, pad) and yields splits.

Splits are plain numpy arrays so that every model and the one training loop can use every task:

    classify:  ArraySplit(x: (N, L) int, y: (N,) int)
    retrieve:  ArraySplit(x: (N, 2, L) int, y: (N,) int)      two documents per example
    lm:        StreamSplit(tokens: (M,) int, seq_len)          one token stream, windows of seq_len

A split answers `train_batch(step, batch_size, seed)` (a pure function of the step, so a resumed run
sees exactly the data an uninterrupted run would) and `eval_batches(batch_size)`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError

SOURCES = ("official", "generated", "hf", "substitute")


def cache_root() -> Path:
    return Path(os.environ.get("LRA_WAVELET_CACHE", Path.home() / ".cache" / "lra_wavelet"))


class ArraySplit:
    """Fixed examples: x (N, L) or (N, 2, L) token ids, y (N,) labels."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        self.x, self.y = x, y
        self._perm: dict[tuple, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: Optional[int]) -> "ArraySplit":
        return self if n is None or n >= len(self) else ArraySplit(self.x[:n], self.y[:n])

    def get(self, idx: np.ndarray) -> dict:
        return {"x": np.asarray(self.x[idx]), "y": np.asarray(self.y[idx])}

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        """Batch `step` of an endless sequence of seeded epoch permutations."""
        n = len(self)
        pos = step * batch_size + np.arange(batch_size)
        epochs, offs = pos // n, pos % n
        idx = np.empty(batch_size, dtype=np.int64)
        for e in np.unique(epochs):
            key = (seed, int(e))
            if key not in self._perm:
                self._perm = {key: np.random.default_rng([seed, int(e)]).permutation(n)}
            sel = epochs == e
            idx[sel] = self._perm[key][offs[sel]]
        return self.get(idx)

    def eval_batches(self, batch_size: int, max_batches: int = 0) -> Iterator[dict]:
        n = len(self) if not max_batches else min(len(self), max_batches * batch_size)
        for s in range(0, n, batch_size):
            yield self.get(np.arange(s, min(s + batch_size, n)))


class StreamSplit:
    """One token stream; training draws random windows, evaluation walks fixed non-overlapping ones."""

    def __init__(self, tokens: np.ndarray, seq_len: int):
        if len(tokens) < seq_len + 1:
            raise ValueError(f"stream of {len(tokens)} tokens is shorter than one window ({seq_len} + 1)")
        self.tokens, self.seq_len = tokens, seq_len

    def __len__(self) -> int:  # number of evaluation windows
        return (len(self.tokens) - 1) // self.seq_len

    def head(self, n: Optional[int]) -> "StreamSplit":
        return self if n is None or n >= len(self) else StreamSplit(self.tokens[: n * self.seq_len + 1], self.seq_len)

    def _windows(self, starts: np.ndarray) -> dict:
        ix = starts[:, None] + np.arange(self.seq_len + 1)[None, :]
        w = np.asarray(self.tokens[ix]).astype(np.int64)
        return {"x": w[:, :-1], "y": w[:, 1:]}

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        rng = np.random.default_rng([seed, step, 7])
        return self._windows(rng.integers(0, len(self.tokens) - self.seq_len - 1, size=batch_size))

    def eval_batches(self, batch_size: int, max_batches: int = 0) -> Iterator[dict]:
        n = len(self) if not max_batches else min(len(self), max_batches * batch_size)
        for s in range(0, n, batch_size):
            yield self._windows(np.arange(s, min(s + batch_size, n)) * self.seq_len)


class Task:
    """Base class of every registered task. Subclasses set the class attributes and implement `load`.

    `source` is set by `load` to one of SOURCES and ends up in every result row as `data_source`.
    """

    Config = TaskConfig
    version: int = 1
    kind: str = "classify"  # classify | retrieve | lm
    seq_len: int = 0
    vocab_size: int = 0
    n_classes: int = 0  # lm: 0
    pad_id: Optional[int] = 0  # None: no position is padding
    chance: float = 0.0  # accuracy of a constant majority-free guess (lm: not applicable)
    headline_metric: Optional[str] = None  # what tables report (test split); None: accuracy, lm: loss (nats/token)
    yaml_family: Optional[str] = None  # a variant sharing tasks/<family>.yaml (text-1000: text); None: its own only
    description: str = ""
    default_source: str = "generated"  # what `list tasks` shows when no data dir is given

    def __init__(self, cfg: TaskConfig):
        self.cfg = cfg
        self.name = cfg.name or getattr(type(self), "registered_name", "")
        self.source = self.default_source
        self._splits: Optional[dict] = None
        max_len = getattr(cfg, "max_len", None)  # tasks with a truncation length take it as their seq_len
        if max_len is not None:
            if max_len <= 0:
                raise UserError(f"task.max_len must be positive, got {max_len}")
            self.seq_len = max_len

    # -- what subclasses implement -------------------------------------------------------
    def load(self) -> dict:
        """Return {'train': split, 'val': split, 'test': split} and set self.source."""
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------
    def splits(self) -> dict:
        if self._splits is None:
            raw = self.load_prepared(Path(self.cfg.prepared).expanduser()) if self.cfg.prepared else self.load()
            caps = {"train": self.cfg.n_train, "val": self.cfg.n_val, "test": self.cfg.n_test}
            self._splits = {k: raw[k].head(caps[k]) for k in ("train", "val", "test")}
            for k, s in self._splits.items():
                if len(s) == 0:
                    raise UserError(f"task '{self.name}': the {k} split is empty")
        return self._splits

    # -- portable splits: `prepare --export DIR` here, `--set task.prepared=DIR` on another machine --------
    def export(self, out: Path) -> Path:
        """Write the splits (after caps) as .npy files plus meta.json; no source files are needed to read them."""
        arrays, kinds = {}, {}
        for k, s in self.splits().items():
            if isinstance(s, StreamSplit):
                arrays[f"{k}_tokens"], kinds[k] = np.asarray(s.tokens), "stream"
            else:
                arrays[f"{k}_x"], arrays[f"{k}_y"], kinds[k] = np.asarray(s.x), np.asarray(s.y), "array"
        meta = {"task": self.name, "version": self.version, "data_source": self.source, "splits": kinds,
                "settings": asdict(self.cfg)}
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            raise UserError(f"{out}: export folder exists and is not empty")
        if out.exists():
            out.rmdir()
        save_arrays(out, **arrays)
        (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return out

    def load_prepared(self, d: Path) -> dict:
        meta_path = d / "meta.json"
        if not meta_path.is_file():
            raise UserError(f"{d}: not a prepared folder (no meta.json); make one with `prepare --task {self.name} "
                            "--export DIR`")
        meta = json.loads(meta_path.read_text())
        if meta.get("task") != self.name or meta.get("version") != self.version:
            raise UserError(f"{meta_path}: holds task '{meta.get('task')}' version {meta.get('version')}, "
                            f"expected '{self.name}' version {self.version}")
        self.source = meta["data_source"]
        out = {}
        for k, kind in meta["splits"].items():
            if kind == "stream":
                (tokens,) = load_arrays(d, f"{k}_tokens")
                out[k] = StreamSplit(tokens, self.seq_len)
            else:
                x, y = load_arrays(d, f"{k}_x", f"{k}_y")
                out[k] = ArraySplit(x, y)
        return out

    def data_dir(self, *parts: str) -> Optional[Path]:
        """The user's data root joined with `parts`, or None when no data dir is configured."""
        if not self.cfg.data_dir:
            return None
        root = Path(self.cfg.data_dir).expanduser()
        if not root.is_dir():
            raise UserError(f"data dir {root} does not exist (from --data-dir / task.data_dir / $LRA_DATA)")
        return root.joinpath(*parts)

    def fingerprint(self, **extra) -> str:
        """Hash of the task's settings (minus split caps) and `extra`: names a cache entry."""
        d = asdict(self.cfg)
        for k in ("n_train", "n_val", "n_test"):
            d.pop(k, None)
        d.update(extra, task=self.name, version=self.version)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def cache_dir(self, **extra) -> Path:
        return cache_root() / self.name / self.fingerprint(**extra)

    def info(self) -> dict:
        return {"task": self.name, "kind": self.kind, "seq_len": self.seq_len, "n_classes": self.n_classes,
                "vocab_size": self.vocab_size, "data_source": self.source, "version": self.version}


def find_first(root: Path, candidates: list[str]) -> Optional[Path]:
    """The first of `candidates` (paths relative to root) that exists, else None."""
    for c in candidates:
        p = root / c
        if p.exists():
            return p
    return None


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays as .npy files in `path` atomically (a temp dir renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        np.save(tmp / f"{k}.npy", v)
    if path.exists():  # another process won the race; keep theirs
        import shutil

        shutil.rmtree(tmp)
        return
    os.replace(tmp, path)


def load_arrays(path: Path, *names: str, mmap: bool = True) -> list[np.ndarray]:
    return [np.load(path / f"{n}.npy", mmap_mode="r" if mmap else None) for n in names]
