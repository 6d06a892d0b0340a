"""Run directories and tidy result rows.

One row per (run, split, metric), columns SCHEMA. Rows are written atomically (temp file + rename),
so a killed run never leaves a half-written or duplicated row. Tables are pivots made late (report.py).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from . import __version__

SCHEMA_VERSION = 1
SCHEMA = [
    "run_id", "task", "task_version", "data_source", "model", "n_params", "seed", "split", "metric", "value",
    "step", "tokens_seen", "wall_time_s", "status", "config_hash", "git_sha", "device", "schema_version",
]
STATUSES = ("ok", "diverged", "failed", "partial")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: readers see the old file or
    the new one, never a part. The file gets the usual permissions (0644 under umask 022), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_rows(path: Path, rows: list[dict]) -> None:
    import pandas as pd  # here, not at the top: `list`, `validate` and the workers' start-up do without it

    df = pd.DataFrame(rows, columns=SCHEMA)
    atomic_write_text(path, df.to_csv(index=False))


def git_sha() -> str:
    """The code's commit (12 hex digits, '-dirty' with uncommitted changes to tracked files). $LRA_WAVELET_GIT_SHA
    overrides it where the checkout's git metadata is not the code's: a copy of a working tree sent to another
    machine keeps the .git it was first made with (scripts/gpu_lra.sh passes it on)."""
    given = os.environ.get("LRA_WAVELET_GIT_SHA", "").strip()
    if given:
        return given
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        sha = out.stdout.strip()
        if sha:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5).stdout
            return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def cpu_model() -> str:
    """The CPU's model name (for benchmark records and env.json)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(device) -> dict:
    import torch

    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = torch.cuda.get_device_name(torch.device(dev))
    return {
        "git_sha": git_sha(), "package_version": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "device": dev,
        "cuda": torch.version.cuda, "cpu_count": os.cpu_count(), "cpu": cpu_model(),
    }


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


# ----------------------------------------------------------------------------- reading


def ended(statuses) -> str | None:
    """'ok' or 'diverged' when every row of a run says so: a run that ended, which a sweep skips and nothing
    resumes; None for anything else (no rows, partial, failed, a mix), which the trainer resumes from its
    checkpoint or starts again."""
    found = set(statuses)
    return found.pop() if found in ({"ok"}, {"diverged"}) else None


def folder_rows(run_dir: Path) -> list[dict]:
    """The rows of a run folder's result.csv as dicts of strings (csv module: no pandas), [] without the file."""
    import csv

    rows = Path(run_dir) / "result.csv"
    if not rows.is_file():
        return []
    with rows.open(newline="") as f:
        return list(csv.DictReader(f))


def folder_status(run_dir: Path) -> str | None:
    """`ended` of a run folder's rows ('ok' / 'diverged'), 'unfinished' where they say anything else (partial,
    failed, a mix: the trainer resumes those from their checkpoint), None without rows."""
    found = [r.get("status") for r in folder_rows(run_dir)]
    return ended(found) or ("unfinished" if found else None)


def find_result_files(paths) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_file() and p.suffix == ".csv":
            files.append(p)
        elif p.is_dir():
            files += sorted(p.rglob("result.csv")) + sorted(q for q in p.glob("*.csv"))
    return list(dict.fromkeys(files))


def load(paths) -> pd.DataFrame:
    """All tidy rows under `paths` (run dirs' result.csv files and committed results/*.csv), deduplicated."""
    import pandas as pd

    frames = []
    for f in find_result_files(paths):
        try:
            df = pd.read_csv(f)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if set(SCHEMA) <= set(df.columns):
            frames.append(df[SCHEMA])
    if not frames:
        return pd.DataFrame(columns=SCHEMA)
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates(subset=["run_id", "split", "metric"], keep="last").reset_index(drop=True)
