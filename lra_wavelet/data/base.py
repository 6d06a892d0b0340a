"""The task interface: a Task knows its shape (kind, seq_len, vocab, classes, pad) and yields splits.

Where the data comes from is one mechanism for every task. A task declares its `sources()` in order of
preference, each a `Source` of one kind:

    official     the benchmark's own files under the data dir (any format, Hub-schema copies included)
    hf           a Hugging Face dataset id (`task.hf`), read through the Hugging Face cache
    generated    our implementation of the benchmark's generator
    substitute   an offline stand-in from registry packages (numbers not comparable with published ones)

The first source whose `locate()` finds its inputs is used; its kind is recorded as `data_source`. Its
arrays are built once into `<cache>/<task>/<key>/` and memory-mapped on every later load, the key being
the content of the inputs (paths, sizes, modification times), the settings that shape the arrays and
the task version. `which_source()` answers which source would be used without building anything.

Splits are plain numpy arrays so that every model and the one training loop can use every task:

    classify:  ArraySplit(x: (N, L) int, y: (N,) int)
    retrieve:  ArraySplit(x: (N, 2, L) int, y: (N,) int)      two documents per example
    lm:        StreamSplit(tokens: (M,) int, seq_len)          one token stream, windows of seq_len

A split answers `train_batch(step, batch_size, seed)` (a pure function of the step, so a resumed run
sees exactly the data an uninterrupted run would) and `eval_batches(batch_size)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np

from ..config import TaskConfig
from ..errors import UserError

SOURCES = ("official", "hf", "generated", "substitute")  # in the order a task prefers them


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


@dataclass
class HubConfig(TaskConfig):
    """Settings of a task that can also read its data from the Hugging Face Hub."""

    hf: Optional[str] = None  # a Hub dataset id with the task's Hub schema, e.g. stanfordnlp/imdb
    hf_revision: Optional[str] = None  # the Hub id's branch, tag or commit (None: main); keys the cache
    allow_download: bool = False  # let `hf` fetch from the Hub; otherwise only the local Hugging Face cache is read


@dataclass
class Source:
    """One place a task's data can come from (see the module docstring).

    `locate()` returns what to read (a folder, a file list, a dataset id...) or None when this source is
    not available here; a source the user asked for (a data dir, a path) that is not as expected raises
    a UserError instead of falling through to the next one. `build(found)` returns {split: (x, y)} or
    {split: tokens}, plus an optional "meta" dict kept beside the arrays. `inputs(found)` lists the files
    or folders whose content keys the cache; `key(found)` adds anything else that shapes the arrays.
    """

    kind: str
    locate: Callable[[], Any]
    build: Callable[[Any], dict]
    inputs: Callable[[Any], Iterable[Path]] = lambda found: ()
    key: Callable[[Any], Any] = lambda found: None
    missing: str = ""  # how to make this source available, for the error when no source is
    notice: Optional[Callable[[Any], str]] = None  # substitute: what it is, for the one warning line

    def __post_init__(self):
        if self.kind not in SOURCES:
            raise ValueError(f"source kind {self.kind!r} is not one of {', '.join(SOURCES)}")


class Task:
    """Base class of every registered task. Subclasses set the class attributes and declare `sources()`
    (or, for a task outside the mechanism, implement `load`).

    `source` is set on load to one of SOURCES and ends up in every result row as `data_source`.
    """

    Config = TaskConfig
    version: int = 1
    kind: str = "classify"  # classify | retrieve | lm
    seq_len: int = 0
    vocab_size: int = 0
    n_classes: int = 0  # lm: 0
    pad_id: Optional[int] = 0  # None: no position is padding
    padding_leads: bool = False  # padding may open a sequence (black pixels as padding), not only trail it
    chance: float = 0.0  # accuracy of a constant majority-free guess (lm: not applicable)
    headline_metric: Optional[str] = None  # what tables report (test split); None: accuracy, lm: loss (nats/token)
    yaml_family: Optional[str] = None  # a variant sharing tasks/<family>.yaml (text-1000: text); None: its own only
    description: str = ""
    default_source: str = "generated"  # what `list tasks` shows when no data dir is given
    aliases: dict = {}  # a split a source does not build -> the one that stands in, e.g. {"val": "test"}
    # settings that never change the cached arrays (caps, where to look, parallelism), left out of the key
    volatile: tuple = ("name", "n_train", "n_val", "n_test", "prepared", "data_dir", "hf", "hf_revision",
                       "allow_download", "gen_workers", "sub_workers", "workers")

    def __init__(self, cfg: TaskConfig):
        self.cfg = cfg
        self.name = cfg.name or getattr(type(self), "registered_name", "")
        self.source = self.default_source
        self.meta: dict = {}
        self.stood_in: dict = {}  # the `aliases` the loaded data used: {'val': 'test'} = validation is the test split
        self._splits: Optional[dict] = None
        for key in ("max_len", "seq_len"):  # a truncation length or an LM context is the task's seq_len
            n = getattr(cfg, key, None)
            if n is not None:
                if n <= 0:
                    raise UserError(f"task.{key} must be positive, got {n}")
                self.seq_len = n

    # -- what subclasses declare ---------------------------------------------------------
    def sources(self) -> list[Source]:
        """The task's sources, in order of preference."""
        raise NotImplementedError

    def assemble(self, arrays: dict) -> dict:
        """Cached arrays ({'x_train': ..., 'y_train': ...} or {'train': tokens}) -> {split: split object}."""
        out = {}
        for k in ("train", "val", "test"):
            if k in arrays or f"y_{k}" in arrays:
                out[k] = StreamSplit(arrays[k], self.seq_len) if self.kind == "lm" else \
                    ArraySplit(arrays[f"x_{k}"], arrays[f"y_{k}"])
        for k, same in self.aliases.items():
            if k not in out:
                out[k] = out[same]
                self.stood_in[k] = same
        return out

    # -- the one mechanism -----------------------------------------------------------------
    def load(self) -> dict:
        """{'train', 'val', 'test'} splits from the first available source, built once into the cache."""
        src, found = self.pick()
        return self.assemble(self.cached_arrays(src, found))

    def pick(self) -> tuple[Source, Any]:
        """The first available source and what it found, or a UserError saying how to get one."""
        hints, error = [], None
        for src in self.sources():
            if error is not None and src.kind != "hf":
                break  # only a Hub id the user named may stand in for a data dir that lacks this task's files
            try:
                found = src.locate()
            except UserError as e:
                error = e
                continue
            if found is not None:
                return src, found
            if src.missing:
                hints.append(src.missing)
        if error is not None:
            raise error
        raise UserError(f"task '{self.name}': no data source is available: " + "; or ".join(hints))

    def which_source(self) -> str:
        """The kind of source a load would use (official / hf / generated / substitute), without building
        any arrays; a UserError (one line: what to install or pass) when none is available."""
        if self.cfg.prepared:
            return self._prepared_meta(Path(self.cfg.prepared).expanduser())["data_source"]
        try:
            return self.pick()[0].kind
        except NotImplementedError:  # a task that implements `load` itself
            return "official" if self.cfg.data_dir else self.default_source

    def cached_arrays(self, src: Source, found) -> dict:
        """The arrays of `src.build(found)`, built once under a key of inputs, settings and version."""
        d = self.cache_dir(source=src.kind, inputs=content_key(src.inputs(found)), extra=src.key(found))

        def make(tmp: Path) -> None:
            t0 = time.perf_counter()
            built = src.build(found)
            _write_built(tmp, built, self.name, round(time.perf_counter() - t0, 1))

        build_once(d, make)  # a folder there is complete: it only ever appears by an atomic rename
        self.source = src.kind
        self.meta = json.loads((d / "meta.json").read_text())
        arrays = {p.stem: np.load(p, mmap_mode="r") for p in sorted(d.glob("*.npy"))}
        if src.notice is not None:
            from ._common import substitute_notice

            substitute_notice(self.name, src.notice(found))
        return arrays

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
                "aliases": self.stood_in, "settings": asdict(self.cfg), "arrays_sha256": splits_digest(self.splits())}
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            raise UserError(f"{out}: export folder exists and is not empty")
        if out.exists():
            out.rmdir()

        def write(tmp: Path) -> None:
            for k, v in arrays.items():
                np.save(tmp / f"{k}.npy", v)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")

        return build_once(out, write, lock=False)  # the user's folder: no lock file beside it

    def export_hf(self, out: Path) -> Path:
        """Write the splits (after caps) as a Hugging Face DatasetDict (`datasets.load_from_disk(out)`)."""
        from ._hub import export_dataset_dict

        return export_dataset_dict(self, Path(out))

    def _prepared_meta(self, d: Path) -> dict:
        meta_path = d / "meta.json"
        if not meta_path.is_file():
            raise UserError(f"{d}: not a prepared folder (no meta.json); make one with `prepare --task {self.name} "
                            "--export DIR`")
        try:
            meta = json.loads(meta_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{meta_path}: not a JSON file written by `prepare --export` ({e})") from None
        if meta.get("task") != self.name or meta.get("version") != self.version:
            raise UserError(f"{meta_path}: holds task '{meta.get('task')}' version {meta.get('version')}, "
                            f"expected '{self.name}' version {self.version}")
        return meta

    def load_prepared(self, d: Path) -> dict:
        meta = self._prepared_meta(d)
        where = d / "meta.json"
        splits = meta.get("splits")
        if not isinstance(meta.get("data_source"), str) or not isinstance(splits, dict):
            raise UserError(f"{where}: expected keys 'data_source' and 'splits' (written by `prepare --export`)")
        for k in ("train", "val", "test"):
            if k not in splits:
                raise UserError(f"{where}: no '{k}' split listed; expected train, val and test")
        self.source = meta["data_source"]
        self.stood_in = dict(meta.get("aliases") or {})
        out = {}
        for k, kind in splits.items():
            if kind == "stream":
                (tokens,) = load_arrays(d, f"{k}_tokens")
                self._check_ids(d / f"{k}_tokens.npy", tokens, 1)
                if len(tokens) < self.seq_len + 1:
                    raise UserError(f"{d / f'{k}_tokens.npy'}: {len(tokens)} tokens, fewer than one window of "
                                    f"task.seq_len {self.seq_len} + 1")
                out[k] = StreamSplit(tokens, self.seq_len)
            else:
                x, y = load_arrays(d, f"{k}_x", f"{k}_y")
                self._check_ids(d / f"{k}_x.npy", x, 3 if self.kind == "retrieve" else 2)
                fy = d / f"{k}_y.npy"
                if y.ndim != 1 or len(y) != len(x):
                    raise UserError(f"{fy}: {len(y) if y.ndim == 1 else y.shape} labels for {len(x)} rows of {k}_x.npy")
                bad = _outside(y, self.n_classes)
                if bad is not None:
                    raise UserError(f"{fy}: labels must lie in 0-{self.n_classes - 1}, found {bad}")
                out[k] = ArraySplit(x, y)
        return out

    def _check_ids(self, f: Path, a: np.ndarray, ndim: int) -> None:
        """A prepared token array: the task's layout, no row longer than the task's length, ids in the vocabulary."""
        layout = {1: "(M,)", 2: "(N, L)", 3: "(N, 2, L)"}[ndim]
        if a.ndim != ndim or (ndim == 3 and a.shape[1] != 2):
            raise UserError(f"{f}: shape {a.shape}; expected {layout} for task '{self.name}' ({self.kind})")
        if ndim > 1 and a.shape[-1] > self.seq_len:
            raise UserError(f"{f}: rows of {a.shape[-1]} tokens, longer than the task's {self.seq_len}; prepare "
                            "with the same task.max_len / task.seq_len as the run")
        bad = _outside(a, self.vocab_size)
        if bad is not None:
            raise UserError(f"{f}: token ids must lie in 0-{self.vocab_size - 1} (the task's vocabulary), found {bad}")

    def data_dir(self, *parts: str) -> Optional[Path]:
        """The user's data root joined with `parts`, or None when no data dir is configured."""
        if not self.cfg.data_dir:
            return None
        root = Path(self.cfg.data_dir).expanduser()
        if not root.is_dir():
            raise UserError(f"data dir {root} does not exist (from --data-dir / task.data_dir / $LRA_DATA)")
        return root.joinpath(*parts)

    def fingerprint(self, **extra) -> str:
        """Hash of the settings that shape the arrays (not the `volatile` ones), the task version and
        `extra`: names a cache entry."""
        d = {k: v for k, v in asdict(self.cfg).items() if k not in self.volatile}
        d.update(extra, task=self.name, version=self.version)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def cache_dir(self, **extra) -> Path:
        return cache_root() / self.name / self.fingerprint(**extra)

    def info(self) -> dict:
        return {"task": self.name, "kind": self.kind, "seq_len": self.seq_len, "n_classes": self.n_classes,
                "vocab_size": self.vocab_size, "data_source": self.source, "version": self.version}

    def provenance(self, splits: Optional[dict] = None) -> dict:
        """What a run's env.json records of its data: the source kind, the task version, the content digest of
        the splits it reads (`arrays_sha256`: after caps and any split applied on load, whatever the layout they
        were stored in: a run from the cache and one from an export of it agree) and the examples per split.
        The same arrays_sha256 on two machines: the same data. `splits`: those the run reads, when given (a run
        built with its own), else the task's."""
        splits = self.splits() if splits is None else splits
        return {"data_source": self.source, "task_version": self.version,
                "arrays_sha256": splits_digest(splits),
                "stood_in": dict(self.stood_in), "examples": {k: len(v) for k, v in splits.items()}}


def splits_digest(splits: dict, chunk_bytes: int = 64 << 20) -> str:
    """Content digest of {split: ArraySplit | StreamSplit} as read (names, dtypes, shapes and bytes), streamed a
    block of rows at a time: no split is copied whole (Pathfinder's are row views of the cached pool)."""
    h = hashlib.sha256()
    for k in sorted(splits):
        s = splits[k]
        for name, a in ((("tokens", s.tokens),) if isinstance(s, StreamSplit) else (("x", s.x), ("y", s.y))):
            shape = tuple(a.shape)
            h.update(f"{k}.{name}:{np.dtype(a.dtype).str}:{shape};".encode())
            row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(a.dtype).itemsize)
            step = max(1, chunk_bytes // row)
            for i in range(0, shape[0], step):
                h.update(memoryview(np.ascontiguousarray(np.asarray(a[i:i + step])).reshape(-1).view(np.uint8)))
    return h.hexdigest()[:16]


def _write_built(d: Path, built: dict, task: str, seconds: float) -> None:
    """Store what a source built: x_<split>/y_<split>.npy (or <split>.npy for token streams) + meta.json."""
    built = dict(built)
    meta = dict(built.pop("meta", None) or {}, build_seconds=seconds)
    for split, v in built.items():
        if isinstance(v, tuple):
            x, y = v
            if len(y) == 0:
                raise UserError(f"{task}: the {split} split came out empty; check the source data")
            np.save(d / f"x_{split}.npy", np.ascontiguousarray(x))
            np.save(d / f"y_{split}.npy", np.asarray(y, dtype=np.int64))
        else:
            np.save(d / f"{split}.npy", np.ascontiguousarray(v))
    (d / "meta.json").write_text(json.dumps(meta, default=str) + "\n")


# ----------------------------------------------------------------------------- folders and cache keys


def first_dir(root: Path, candidates: Iterable[str], has: Callable[[Path], Any]) -> Optional[Path]:
    """The first of root/<candidate> for which `has(path)` is true, else None: every folder search."""
    for c in candidates:
        p = root / c if c else root
        if p.is_dir() and has(p):
            return p
    return None


def content_key(paths: Iterable[Path]) -> Optional[str]:
    """Digest of every file under `paths` (folders walked): resolved path, size and modification time.

    Any input edited, added or removed changes it, so a changed input is never served from a stale cache.
    (os.scandir, not Path.rglob: an IMDb tree of 50,000 files takes a fraction of a second.)
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return None
    h = hashlib.sha256()

    def walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            if e.is_dir():
                walk(e.path, rel + e.name + "/")
            elif e.is_file():
                st = e.stat()
                h.update(f"{rel}{e.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())

    for p in paths:
        h.update(f"{p.resolve()}\n".encode())
        if p.is_dir():
            walk(str(p), "")
        elif p.is_file():
            st = p.stat()
            h.update(f":{st.st_size}:{st.st_mtime_ns}\n".encode())
        else:
            h.update(b":missing\n")
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(lock: Path):
    """An exclusive lock on file `lock` (others wait), where the platform has flock."""
    try:
        import fcntl
    except ImportError:  # no flock: atomic renames alone still keep the cache consistent
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_once(path: Path, make: Callable[[Path], None], lock: bool = True) -> Path:
    """Folder `path`, made once: `make(tmp)` fills a private temporary folder that is then renamed into
    place, under a lock file beside it (`lock`), so concurrent callers wait for the first one and a killed
    build leaves nothing half-written."""
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(path.name + ".lock")) if lock else contextlib.nullcontext():
        if path.is_dir():
            return path
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp", dir=path.parent))
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would make the cache unreadable to the group
        try:
            make(tmp)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _outside(a: np.ndarray, n: int):
    """What keeps integer array `a` from lying in 0..n-1 (a non-integer dtype, or its lowest or highest value
    out of range), or None when it does (or is empty)."""
    if not a.size:
        return None
    if a.dtype.kind not in "iu":
        return a.dtype
    lo, hi = int(a.min()), int(a.max())
    return lo if lo < 0 else hi if hi >= n else None


def load_arrays(path: Path, *names: str, mmap: bool = True) -> list[np.ndarray]:
    """The arrays `<name>.npy` under `path`, or a UserError naming a file that is missing or not a plain array."""
    out = []
    for n in names:
        f = path / f"{n}.npy"
        if not f.is_file():
            raise UserError(f"{f}: file not found")
        try:
            out.append(np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False))
        except (ValueError, OSError, EOFError) as e:
            raise UserError(f"{f}: not a .npy array ({e})") from None
    return out
