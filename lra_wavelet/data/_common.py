"""Shared pieces of the tasks: byte ids, labels, stand-in notices.

A module whose name starts with `_` registers nothing and is skipped by `data/__init__.py`.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from ..errors import UserError

log = logging.getLogger("lra_wavelet.data")

BYTE_VOCAB = 257  # the benchmark's ByteTextEncoder: id = byte + 1, 0 = padding


# ----------------------------------------------------------------------------- byte ids


def progress_bar(iterable=None, show: bool = True, **kw):
    """A tqdm bar for data preparation that draws only on a terminal (never into a redirected log) and only
    when `show`; it leaves no line behind."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if show else True, leave=False, **kw)


def byte_ids(texts: Iterable[bytes], n: int, max_len: int, progress: Optional[str] = None) -> np.ndarray:
    """(n, max_len) uint16 ids: UTF-8 byte + 1, truncated to max_len, padded with 0.

    `texts` yields bytes (str is encoded as UTF-8). uint16 because 256 + 1 does not fit a byte.
    """
    x = np.zeros((n, max_len), dtype=np.uint16)
    it = texts
    if progress:
        it = progress_bar(texts, total=n, desc=progress, unit="doc")
    for i, t in enumerate(it):
        b = t.encode("utf-8") if isinstance(t, str) else t
        row = np.frombuffer(b[:max_len], dtype=np.uint8)
        x[i, : len(row)] = row.astype(np.uint16) + 1
    return x


def ids_to_bytes(ids: np.ndarray) -> bytes:
    """Inverse of byte_ids for one row (padding dropped): for tests and inspection."""
    ids = np.asarray(ids)
    return (ids[ids > 0] - 1).astype(np.uint8).tobytes()


def mixed_order(n: int) -> np.ndarray:
    """A fixed permutation, so that the first k rows (split caps n_val / n_test) hold both labels
    even when the source lists all negatives first (aclImdb, the HF IMDb parquet)."""
    return np.random.default_rng(20210101).permutation(n)


# ----------------------------------------------------------------------------- offline stand-ins


def substitute_notice(task: str, what: str) -> None:
    """The one line that says a run uses a stand-in, not the benchmark's data."""
    log.warning(
        "task '%s': no data dir given; using the offline substitute (%s). Numbers from it are NOT "
        "comparable to published LRA results (data_source=substitute).", task, what
    )


def package_dir(name: str) -> Optional[Path]:
    """Directory of an installed Python package, found without importing it (some pull heavy deps)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def int_labels(values, where: str, n_classes: int) -> np.ndarray:
    """Integer labels in 0..n_classes-1 (1.0 is read as 1), or a UserError naming `where` and the row.

    Only ASCII digits count: Python's float() would read '٣' (Arabic-Indic three) as 3.
    """
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        try:
            f = float(v) if not isinstance(v, str) or v.isascii() else float("nan")
        except (TypeError, ValueError):
            f = float("nan")
        if not f.is_integer() or not 0 <= f < n_classes:
            raise UserError(f"{where}: row {i}: label {v!r} is not an integer in 0-{n_classes - 1}")
        out[i] = int(f)
    return out


def count_lines(path: Path) -> int:
    """Number of newline-terminated lines (+1 for a last unterminated one), reading in binary chunks."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while True:
            buf = f.read(1 << 24)
            if not buf:
                break
            n += buf.count(b"\n")
            last = buf[-1:]
    return n + (last != b"\n")

