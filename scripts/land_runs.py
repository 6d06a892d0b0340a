#!/usr/bin/env python3
"""Copy a device call's run folders (<task>/<model>/<run_id>/) into the repository's, never over a state that is
further along.

    python3 scripts/land_runs.py SRC_RUNS DEST_RUNS

A call's tarball holds the machine's whole run tree: the folders it ran and the committed ones it was seeded
with. When a machine started cold before the previous call's rows were landed, its copy of a folder is the
older, committed state (e.g. `partial` at step 710) while the repository already holds that folder finished.
So a folder is copied unless the one here is further along: ended (every row ok, or every row diverged: the
trainer's rule) before unfinished, then the higher last step in its rows (result.csv, else metrics.jsonl). On a
tie the call's copy wins (it is the later state of the same run). Each folder kept is said in one line.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package beside scripts/, installed or not
from lra_wavelet.results import ended, folder_rows  # noqa: E402


def progress(run_dir: Path) -> tuple[int, int]:
    """(1 if the run ended else 0, its last step in rows); (0, -1) for a folder with neither rows nor curve."""
    rows, step = folder_rows(run_dir), -1
    for r in rows:
        try:
            step = max(step, int(float(r.get("step") or -1)))
        except ValueError:
            pass
    if step < 0 and (run_dir / "metrics.jsonl").is_file():
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            try:
                step = max(step, int(json.loads(line).get("step", -1)))
            except (ValueError, AttributeError):
                continue  # a torn last line of a killed run
    return (1 if ended(r.get("status") for r in rows) else 0), step


def merge(src: Path, dest: Path) -> list[str]:
    """Copy src's run folders into dest (newer or equal states only); returns the lines saying what was kept."""
    kept = []
    for run in sorted(p for p in src.glob("*/*/*") if p.is_dir()):
        rel = run.relative_to(src)
        here = dest / rel
        if here.is_dir() and progress(here) > progress(run):
            (e_here, s_here), (e_call, s_call) = progress(here), progress(run)
            kept.append(f"kept {rel}: here {'ended' if e_here else 'unfinished'} at step {s_here}, "
                        f"the call's copy {'ended' if e_call else 'unfinished'} at step {s_call} (older)")
            continue
        here.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run, here, dirs_exist_ok=True)
    for f in sorted(p for p in src.rglob("*") if p.is_file() and len(p.relative_to(src).parts) < 4):
        (dest / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)  # files above the run folders
        shutil.copy2(f, dest / f.relative_to(src))
    return kept


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or not Path(argv[0]).is_dir():
        print("land_runs: usage: land_runs.py SRC_RUNS DEST_RUNS (SRC_RUNS: a folder of <task>/<model>/<run_id>/)",
              file=sys.stderr)
        return 2
    for line in merge(Path(argv[0]), Path(argv[1])):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
