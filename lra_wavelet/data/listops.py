"""ListOps (LRA): nested MIN/MAX/MED/SM expressions over digits, 10-way classification of the value.

Sources, in order: the official `listops-1000/basic_{train,val,test}.tsv` (header `Source\tTarget`, fully
parenthesised sources) or a Hugging Face copy with columns `Source`, `Target` under the data dir; a Hub
id (`task.hf`); else an independent implementation of the benchmark's generator writes the same TSV
format into the cache and the same reader reads it back.

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

from ..errors import UserError
from ..registry import TASKS
from ._hub import hf_source, read_tables, table_layout
from .base import ArraySplit, HubConfig, Source, Task, build_once, cache_root, first_dir

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
SYMBOLS = tuple(str(d) for d in range(10)) + OPERATORS + ("X",)
VOCAB = {s: i + 1 for i, s in enumerate(SYMBOLS)}  # 0 is padding
OOV_ID = len(SYMBOLS) + 1  # 16
SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
TREE = "listops-1000/basic_{train,val,test}.tsv"


@dataclass
class ListOpsConfig(HubConfig):
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
    """Read one official ListOps TSV into padded ids; errors name the file and line.

    The file must be UTF-8 text with the header `Source<TAB>Target` and exactly two columns on every row.
    """
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected listops-1000/basic_{{train,val,test}}.tsv)")
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        try:
            header = next(reader, None)
            if header is None:
                raise UserError(f"{path}: empty file (expected a header 'Source<TAB>Target')")
            cols = [h.strip() for h in header]
            if sorted(cols) != ["Source", "Target"]:
                raise UserError(f"{path}:1: header {header!r}; expected the two columns 'Source<TAB>Target'")
            si, ti = cols.index("Source"), cols.index("Target")

            def rows():
                for row in reader:
                    if row:
                        if len(row) != 2:
                            raise UserError(f"{path}:{reader.line_num}: expected 2 tab-separated columns "
                                            f"(Source, Target), got {len(row)}")
                        yield f"{path}:{reader.line_num}", row[si], row[ti]

            x, y = encode_rows(rows(), max_len)
        except UnicodeDecodeError:
            line, byte = _first_non_utf8(path)
            raise UserError(f"{path}:{line}: not UTF-8 text (byte {byte:#04x}); expected the ListOps TSV "
                            "'Source<TAB>Target'") from None
    if not len(y):
        raise UserError(f"{path}: no examples after the header")
    return ArraySplit(x, y)


def _first_non_utf8(path: Path) -> tuple[int, int]:
    """(line number, byte) of the first byte that is not UTF-8 (decoding reads ahead, so look again)."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return lineno, line[e.start]
    return 0, 0


def encode_rows(rows, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(where, source, target) rows -> x (N, max_len) uint8 ids, y (N,): the checks every format shares."""
    xs, ys = [], []
    for where, source, target in rows:
        if "\0" in source:
            raise UserError(f"{where}: NUL byte in the Source; expected ListOps tokens")
        label = str(target).strip()
        if not (label.isascii() and label.isdigit()):  # int() would read '٣' (Arabic-Indic 3) as 3
            raise UserError(f"{where}: Target {label!r} is not an integer label 0-9")
        if not 0 <= int(label) <= 9:
            raise UserError(f"{where}: Target {int(label)} is outside 0-9")
        xs.append(encode(source, max_len))
        ys.append(int(label))
    x = np.zeros((len(xs), max_len), dtype=np.uint8)
    for i, ids in enumerate(xs):
        x[i, : len(ids)] = ids
    return x, np.asarray(ys, dtype=np.int64)


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
    from ._common import progress_bar

    bar = progress_bar(total=need, desc="generating ListOps", unit="ex", show=progress)
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
    """Rows in the official format (header `Source<TAB>Target`); callers write into a private folder."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["Source", "Target"])
        w.writerows(rows)


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
    hub_columns = ("Source", "Target")
    hub_splits = ("train", "val", "test")

    def sources(self) -> list[Source]:
        def generated(_):
            d = self.generated_dir()
            return self.read(("tsv", [d / f for f in SPLIT_FILES.values()]))

        def inputs(found):
            layout, files = found
            return files if layout == "tsv" else [f for fs in files.values() for f in fs]

        return [Source("official", self.official, self.read, inputs=inputs, missing=f"--data-dir with {TREE}"),
                hf_source(self),
                Source("generated", lambda: True, generated)]

    def official(self):
        """('tsv', [train, val, test files]) or ('table', {split: files}); None without a data dir."""
        root = self.data_dir()
        if root is None:
            return None
        where = ("listops-1000", "lra_release/listops-1000", "listops", "")
        d = first_dir(root, where, lambda d: (d / SPLIT_FILES["train"]).is_file())
        if d is not None:
            for f in SPLIT_FILES.values():
                if not (d / f).is_file():
                    raise UserError(f"{d / f}: file not found; the ListOps folder needs all three of "
                                    f"basic_{{train,val,test}}.tsv")
            return "tsv", [d / f for f in SPLIT_FILES.values()]
        tables = table_layout(self, root, where)
        if tables is not None:
            return "table", tables
        raise UserError(f"{root}: no ListOps files found; expected {root}/{TREE} (the lra_release layout) "
                        "or a Hugging Face copy with columns Source, Target (DatasetDict.save_to_disk)")

    def read(self, found) -> dict:
        layout, files = found
        if layout == "table":
            return read_tables(self, files)
        return {split: (s.x, s.y) for split, s in zip(SPLIT_FILES, (read_tsv(f, self.cfg.max_len) for f in files))}

    def from_tables(self, tables: dict, where: str) -> dict:
        out = {}
        for split, t in tables.items():
            rows = zip(t.column("Source").to_pylist(), t.column("Target").to_pylist())
            x, y = encode_rows(((f"{where} [{split}] row {i}", s, v) for i, (s, v) in enumerate(rows)),
                               self.cfg.max_len)
            out[split] = (x, y)
        return out

    def generated_dir(self) -> Path:
        """Generate once into the cache, in the official TSV layout (keyed by the generator settings)."""
        c = self.cfg
        gen = {k: v for k, v in vars(c).items() if k.startswith("gen_") and k != "gen_workers"}
        d = cache_root() / self.name / f"tsv-{self.fingerprint(generator=gen)}"

        def make(tmp: Path) -> None:
            for split, rows in generate(c).items():
                write_tsv(tmp / SPLIT_FILES[split], rows)

        return build_once(d, make)
