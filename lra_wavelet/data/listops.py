"""ListOps (LRA): nested MIN/MAX/MED/SM expressions over digits, 10-way classification of the value.

Reads the official `listops-1000/basic_{train,val,test}.tsv` (header `Source\tTarget`, fully
parenthesised sources). Without a data dir, an independent implementation of the benchmark's
generator writes the same TSV format into the cache and the same reader reads it back.

Tokenisation (the benchmark's since its 2021 fix): drop `(` and `)`, map `]` to `X`, split on
whitespace, fixed id map below (pad 0, OOV last), truncate at 2000, pad with 0.
"""

from __future__ import annotations

import csv
import math
import os
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import TaskConfig
from ..errors import UserError
from ..registry import TASKS
from .base import ArraySplit, Task, load_arrays, save_arrays

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
SYMBOLS = tuple(str(d) for d in range(10)) + OPERATORS + ("X",)
VOCAB = {s: i + 1 for i, s in enumerate(SYMBOLS)}  # 0 is padding
OOV_ID = len(SYMBOLS) + 1  # 16
SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}


@dataclass
class ListOpsConfig(TaskConfig):
    max_len: int = 2000  # truncation / padding length of the token sequence
    # generator settings (used when no data dir is given): the benchmark's defaults
    gen_train: int = 96000
    gen_val: int = 2000
    gen_test: int = 2000
    gen_min_length: int = 500  # keep trees with min_length < length < max_length (strict)
    gen_max_length: int = 2000
    gen_max_depth: int = 10
    gen_max_args: int = 10
    gen_seed: int = 0
    gen_workers: int = 0  # processes for generation (0: all cores)


# ----------------------------------------------------------------------------- reading


def encode(source: str, max_len: int) -> list[int]:
    toks = source.replace("(", " ").replace(")", " ").replace("]", "X").split()
    return [VOCAB.get(t, OOV_ID) for t in toks[:max_len]]


def read_tsv(path: Path, max_len: int) -> ArraySplit:
    """Read one official ListOps TSV into padded ids; errors name the file and line."""
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected listops-1000/basic_{{train,val,test}}.tsv)")
    csv.field_size_limit(sys.maxsize)
    xs, ys = [], []
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise UserError(f"{path}: empty file (expected a header 'Source<TAB>Target')")
        cols = [h.strip() for h in header]
        if "Source" not in cols or "Target" not in cols:
            raise UserError(f"{path}:1: header {header!r} lacks a column: expected 'Source<TAB>Target'")
        si, ti = cols.index("Source"), cols.index("Target")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= max(si, ti):
                raise UserError(f"{path}:{lineno}: expected {len(cols)} tab-separated columns, got {len(row)}")
            label = row[ti].strip()
            try:
                y = int(label)
            except ValueError:
                raise UserError(f"{path}:{lineno}: Target {label!r} is not an integer label 0-9") from None
            if not 0 <= y <= 9:
                raise UserError(f"{path}:{lineno}: Target {y} is outside 0-9")
            xs.append(encode(row[si], max_len))
            ys.append(y)
    if not ys:
        raise UserError(f"{path}: no examples after the header")
    x = np.zeros((len(xs), max_len), dtype=np.uint8)
    for i, ids in enumerate(xs):
        x[i, : len(ids)] = ids
    return ArraySplit(x, np.asarray(ys, dtype=np.int64))


# ----------------------------------------------------------------------------- generating


class _TooLong(Exception):
    pass


def _tree(rng: random.Random, depth: int, max_depth: int, max_args: int, max_length: int):
    """A random expression as (node, token length); node is a digit or (operator index, children)."""
    r = rng.random
    if depth < max_depth and r() <= 0.25:  # operator node with P = 0.25
        n = 2 + int(r() * (max_args - 1))  # uniform on 2..max_args
        kids = [_tree(rng, depth + 1, max_depth, max_args, max_length) for _ in range(n)]
        length = 2 + sum(k[1] for k in kids)
        if length >= max_length:  # rejected whatever happens above it: stop early
            raise _TooLong
        return (int(r() * 4), [k[0] for k in kids]), length
    return int(r() * 10), 1


def _render(node) -> tuple[str, int]:
    """(official fully parenthesised source, value): nested pairs (((op, c1), c2), ..., ']')."""
    if isinstance(node, int):
        return str(node), node
    op, kids = node
    parts = [_render(k) for k in kids]
    vals = sorted(v for _, v in parts)
    if op == 0:
        v = vals[0]
    elif op == 1:
        v = vals[-1]
    elif op == 2:  # int(np.median): mean of the two middle values, truncated
        m = len(vals) // 2
        v = vals[m] if len(vals) % 2 else (vals[m - 1] + vals[m]) // 2
    else:
        v = sum(vals) % 10
    text = "( " * (len(kids) + 1) + OPERATORS[op] + " " + " ) ".join(t for t, _ in parts) + " ) ] )"
    return text, v


def _generate_chunk(args) -> list[tuple[str, int]]:
    s, chunk, n_tries = args
    rng = random.Random(f"{s.gen_seed}-{chunk}")
    out = []
    for _ in range(n_tries):
        try:
            node, length = _tree(rng, 1, s.gen_max_depth, s.gen_max_args, s.gen_max_length)
        except _TooLong:
            continue
        if s.gen_min_length < length < s.gen_max_length:
            out.append(_render(node))
    return out


def generate(s: ListOpsConfig, progress: bool = True) -> dict[str, list[tuple[str, int]]]:
    """Distinct samples for train/val/test, seeded and independent of the worker count.

    Work is cut into chunks of `tries` trees with their own seeds; chunk outputs are merged in chunk
    order, so the result depends only on the seed. Each round asks for about as many chunks as the
    remaining samples need (at the acceptance rate seen so far), so little work is thrown away.
    """
    need = s.gen_train + s.gen_val + s.gen_test
    workers = s.gen_workers or os.cpu_count() or 1
    seen: dict[str, int] = {}
    tries, chunk, made, done_tries = 500, 0, 0, 0
    from tqdm import tqdm

    bar = tqdm(total=need, desc="generating ListOps", unit="ex", disable=None if progress else True, leave=False)
    with ProcessPoolExecutor(workers) if workers > 1 else _Serial() as pool:
        while len(seen) < need:
            rate = (made + 40) / (done_tries + 500)  # accepted per tree (prior: 8%, the default settings' rate)
            n_jobs = max(workers, math.ceil((need - len(seen)) * 1.05 / (rate * tries)))
            n_jobs = -(-n_jobs // workers) * workers
            jobs = [(s, chunk + k, tries) for k in range(n_jobs)]
            chunk += n_jobs
            for samples in pool.map(_generate_chunk, jobs):
                made += len(samples)
                done_tries += tries
                for text, value in samples:
                    if len(seen) < need and text not in seen:
                        seen[text] = value
                        bar.update(1)
    bar.close()
    items = list(seen.items())
    a, b = s.gen_train, s.gen_train + s.gen_val
    return {"train": items[:a], "val": items[a:b], "test": items[b:need]}


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, jobs):
        return map(fn, jobs)


def write_tsv(path: Path, rows) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["Source", "Target"])
        w.writerows(rows)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- the task


@TASKS.register("listops")
class ListOps(Task):
    Config = ListOpsConfig
    kind = "classify"
    seq_len = 2000
    vocab_size = len(SYMBOLS) + 2  # pad + 15 symbols + OOV = 17
    n_classes = 10
    pad_id = 0
    chance = 0.10
    description = "nested MIN/MAX/MED/SM expressions, value 0-9 (LRA ListOps)"

    def official_dir(self) -> Path | None:
        root = self.data_dir()
        if root is None:
            return None
        for cand in (root / "listops-1000", root / "lra_release" / "listops-1000", root / "listops", root):
            if (cand / SPLIT_FILES["train"]).is_file():
                return cand
        raise UserError(
            f"{root}: no ListOps files found; expected {root}/listops-1000/basic_{{train,val,test}}.tsv "
            "(the lra_release layout)"
        )

    def generated_dir(self) -> Path:
        """Generate once into the cache, in the official TSV layout."""
        c = self.cfg
        gen = {k: v for k, v in vars(c).items() if k.startswith("gen_") and k != "gen_workers"}
        d = self.cache_dir(generator=gen, stage="tsv")
        if not (d / SPLIT_FILES["test"]).is_file():
            d.mkdir(parents=True, exist_ok=True)
            for split, rows in generate(c).items():
                write_tsv(d / SPLIT_FILES[split], rows)
        return d

    def load(self) -> dict:
        src_dir = self.official_dir()
        self.source = "official" if src_dir is not None else "generated"
        if src_dir is None:
            src_dir = self.generated_dir()
        return {split: self._tokenised(src_dir / fname) for split, fname in SPLIT_FILES.items()}

    def _tokenised(self, tsv: Path) -> ArraySplit:
        """Token ids cached next to a fingerprint of the file (path, size, mtime) and the settings."""
        st = tsv.stat()
        d = self.cache_dir(file=str(tsv.resolve()), size=st.st_size, mtime=st.st_mtime_ns, stage="ids")
        if not (d / "x.npy").is_file():
            split = read_tsv(tsv, self.cfg.max_len)
            save_arrays(d, x=split.x, y=split.y)
        x, y = load_arrays(d, "x", "y")
        return ArraySplit(x, y)
