"""Hugging Face datasets: Hub-schema copies on disk, Hub ids through the Hugging Face cache, export.

Three uses, each where `datasets` serves:
    on disk    a copy with the Hub's schema under the data dir - written by `DatasetDict.save_to_disk`,
               the Hub's parquet layout, or the datasets cache - is the official source, read with pyarrow
               (no `datasets` import: a second faster, and nothing is written to the Hugging Face cache)
    task.hf    a Hub id, e.g. stanfordnlp/imdb: `datasets.load_dataset` through the Hugging Face cache;
               offline unless `task.allow_download=true` (HF_DATASETS_OFFLINE=1 applies either way), at
               `task.hf_revision` (a branch, tag or commit; None: main); `which_source` checks the cache
    export     `prepare --export-hf DIR` writes any task's ready splits as a DatasetDict

A task with a Hub schema names its columns (`hub_columns`), the splits it reads (`hub_splits`) and turns
the tables into arrays (`from_tables`), so every Hub route shares the task's own checks.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserError
from .base import Source

# Hub split names of our splits, first the usual one
SPLIT_NAMES = {"train": ("train",), "val": ("validation", "val", "valid", "eval"), "test": ("test",)}

# Where a `datasets` copy keeps a split's files, relative to its folder: the Hub layout
# (plain_text/train-00000-of-00001.parquet), `save_to_disk` (train/data-00000-of-00001.arrow) and the
# datasets cache (plain_text/0.0.0/<hash>/imdb-train.arrow). Exact split names only, so that IMDb's
# `unsupervised` split never matches `train`.
_TABLE_PATTERNS = ("{s}-*.parquet", "{s}.parquet", "{s}/*.parquet", "{s}/*.arrow", "*-{s}.arrow",
                   "*-{s}-*.arrow", "{s}-*.arrow")
_TABLE_PREFIXES = ("", "plain_text/", "data/", "plain_text/*/*/", "default/*/*/")


def table_files(root: Path, split: str) -> list[Path]:
    """Parquet / Arrow files of Hub split `split` in a `datasets`-style copy under `root` (may be empty)."""
    found: list[Path] = []
    for pre in _TABLE_PREFIXES:
        for pat in _TABLE_PATTERNS:
            found += [p for p in root.glob(pre + pat.format(s=split)) if p.is_file()]
    return sorted(set(found))


def find_tables(root: Path, splits: tuple) -> Optional[dict[str, list[Path]]]:
    """{split: files} of a Hub-schema copy in `root`; None when there is none; a copy lacking one of
    `splits` is a UserError naming it."""
    found = {}
    for s in splits:
        for name in SPLIT_NAMES[s]:
            files = table_files(root, name)
            if files:
                found[s] = files
                break
    if not found:
        return None
    for s in splits:
        if s not in found:
            raise UserError(f"{root}: a Hugging Face copy without a {SPLIT_NAMES[s][0]} split (found "
                            f"{', '.join(found)}; expected e.g. {root}/{SPLIT_NAMES[s][0]}/data-00000-of-00001.arrow "
                            f"from save_to_disk or {root}/plain_text/{SPLIT_NAMES[s][0]}-*.parquet)")
    return found


def read_table(files: list[Path], columns: tuple):
    """Concatenate `columns` of parquet / Arrow files into one pyarrow Table (pyarrow imported lazily).

    A column given as a tuple of names takes the first one present and is renamed to the first name.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{files[0]}: reading parquet/Arrow copies needs pyarrow: pip install pyarrow") from None
    tables = []
    for f in files:
        try:
            if f.suffix == ".parquet":
                t = pq.read_table(f)
            else:  # `datasets` writes Arrow IPC streams; plain Arrow files are accepted too
                with pa.memory_map(str(f)) as src:
                    try:
                        t = pa.ipc.open_stream(src).read_all()
                    except pa.ArrowInvalid:
                        src.seek(0)
                        t = pa.ipc.open_file(src).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            raise UserError(f"{f}: not a readable parquet/Arrow file ({e})") from None
        tables.append(select(t, columns, str(f)))
    return pa.concat_tables(tables)


def select(table, columns: tuple, where: str):
    """`columns` of a pyarrow Table, alternatives resolved and renamed (see read_table), or a UserError."""
    picked, names = [], []
    for col in columns:
        alts = (col,) if isinstance(col, str) else tuple(col)
        have = [a for a in alts if a in table.column_names]
        if not have:
            raise UserError(f"{where}: missing column '{alts[0]}'; expected columns "
                            f"{', '.join(c if isinstance(c, str) else '|'.join(c) for c in columns)}, "
                            f"found {', '.join(table.column_names)}")
        picked.append(have[0])
        names.append(alts[0])
    return table.select(picked).rename_columns(names)


# ----------------------------------------------------------------------------- the Hub (task.hf)


@contextlib.contextmanager
def _offline(on: bool):
    """Hugging Face offline mode for the duration (both libraries read it at import; set it on them too)."""
    import datasets
    import huggingface_hub.constants as hub

    saved = datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE
    if on:
        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = saved[0]
        hub.HF_HUB_OFFLINE = saved[1]


@contextlib.contextmanager
def _hub_errors(dataset_id: str, allow: bool):
    """`datasets`' errors on a Hub id as the one-line UserError of a load (offline and not cached, no such
    dataset, a dataset that needs a configuration name...)."""
    import datasets

    try:
        yield
    except (ConnectionError, FileNotFoundError) as e:  # offline without a cached copy, or no such dataset
        how = ("check the id and the network" if allow else
               "pass --set task.allow_download=true once (needs the network), or point --data-dir at a "
               "copy written by DatasetDict.save_to_disk")
        raise UserError(f"task.hf={dataset_id}: not in the Hugging Face cache "
                        f"({datasets.config.HF_DATASETS_CACHE}) and not downloadable here "
                        f"({type(e).__name__}); {how}") from None
    except ValueError as e:  # e.g. a dataset that needs a configuration name or remote code
        raise UserError(f"task.hf={dataset_id}: {str(e).splitlines()[0]}") from None


def check_hub(task, dataset_id: str) -> None:
    """When downloads are not allowed, the UserError a load would raise if the Hugging Face cache lacks
    `dataset_id` (at `task.hf_revision`): `datasets` resolves the builder offline, reading no data. A local
    folder, or a task allowed to download, passes unchecked."""
    if task.cfg.allow_download or Path(dataset_id).expanduser().is_dir():
        return
    import datasets

    with _offline(True), _hub_errors(dataset_id, allow=False):
        datasets.load_dataset_builder(dataset_id, revision=task.cfg.hf_revision)


def load_hub(task, dataset_id: str) -> dict:
    """{split: pyarrow Table} of `task.hub_splits` from Hub id `dataset_id` at `task.hf_revision` (None: the
    Hub's main), via the Hugging Face cache."""
    allow = task.cfg.allow_download
    import datasets

    with _offline(not allow), _hub_errors(dataset_id, allow):
        dd = datasets.load_dataset(dataset_id, revision=task.cfg.hf_revision)
    out = {}
    for s in task.hub_splits:
        name = next((n for n in SPLIT_NAMES[s] if n in dd), None)
        if name is None:
            raise UserError(f"task.hf={dataset_id}: no {SPLIT_NAMES[s][0]} split (has {', '.join(dd)})")
        out[s] = select(dd[name].data.table, task.hub_columns, f"task.hf={dataset_id} [{name}]")
    return out


def _locate_hub(task):
    """The Hub id when `task.hf` is set and a load could read it (see check_hub), else None."""
    hid = task.cfg.hf
    if hid:
        check_hub(task, hid)
    return hid or None


def hf_source(task) -> Source:
    """The `task.hf` source of a task with a Hub schema; a revision other than main is part of the cache key."""
    rev = task.cfg.hf_revision
    return Source("hf", locate=lambda: _locate_hub(task), key=lambda found: found if rev is None else (found, rev),
                  build=lambda found: task.from_tables(load_hub(task, found), f"task.hf={found}"),
                  missing="a Hugging Face dataset id (--set task.hf=ID)")


def table_layout(task, root: Path, candidates: tuple) -> Optional[dict]:
    """{split: files} of a Hub-schema copy in the first of root/<candidates> that holds one, else None."""
    for c in candidates:
        d = root / c if c else root
        if d.is_dir():
            found = find_tables(d, task.hub_splits)
            if found:
                return found
    return None


def read_tables(task, files: dict) -> dict:
    """The built arrays of a Hub-schema copy on disk, through the task's own `from_tables`."""
    tables = {s: read_table(fs, task.hub_columns) for s, fs in files.items()}
    return task.from_tables(tables, str(next(iter(files.values()))[0].parent))


# ----------------------------------------------------------------------------- export


def export_dataset_dict(task, out: Path) -> Path:
    """A task's ready splits (after caps) as a DatasetDict: `input_ids` (+ `label`), or `input_ids1` and
    `input_ids2` for two-document tasks, or chunks of seq_len tokens for LM streams; splits train /
    validation / test; the task, version, data_source and settings in the dataset description."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--export-hf {out}: exists and is not an empty folder")
    from dataclasses import asdict

    import datasets
    import pyarrow as pa

    from .base import StreamSplit

    def ids(a: np.ndarray):  # (N, L) -> N fixed-size lists, without a copy per row
        a = np.ascontiguousarray(a)
        return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[-1])

    meta = json.dumps({"task": task.name, "version": task.version, "data_source": task.source,
                       "settings": asdict(task.cfg)}, default=str)
    dd = {}
    for k, s in task.splits().items():
        if isinstance(s, StreamSplit):
            tok = np.asarray(s.tokens)
            offsets = np.append(np.arange(0, len(tok), task.seq_len), len(tok)).astype(np.int64)
            cols = {"input_ids": pa.LargeListArray.from_arrays(offsets, pa.array(tok))}
        else:
            x, y = np.asarray(s.x), np.asarray(s.y)
            cols = {"input_ids1": ids(x[:, 0]), "input_ids2": ids(x[:, 1])} if x.ndim == 3 else {"input_ids": ids(x)}
            cols["label"] = pa.array(y.astype(np.int64))
        info = datasets.DatasetInfo(description=meta)
        dd[SPLIT_NAMES[k][0]] = datasets.Dataset(pa.table(cols), info=info)
    datasets.DatasetDict(dd).save_to_disk(str(out))
    return out
