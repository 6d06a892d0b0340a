"""Checkpoints of unfinished cells across device sessions.

A device machine keeps its run folders (`.lra_runs/`) only while it is warm; a cell stopped by the call's time
limit in the last call of a session used to start again from step 0 in the next session, since no checkpoint
came back (`scripts/gpu_lra.sh` returns rows and curves only). This packs the checkpoints of the unfinished
cells into parts small enough to come back from the machine (at most 15 MiB a file there) and puts them back
into the run folders on the next machine, so the cell resumes where it stopped:

    python3 scripts/carry_checkpoints.py pack RUNS OUT [--budget-mib 44]   # on the machine, after the sweep
    python3 scripts/carry_checkpoints.py unpack DIR RUNS                  # on the next machine, before it

`pack` takes the `checkpoint.pt` of every run folder the trainer would resume (rows partial, failed or mixed, or
none yet), newest
first, while their sum stays within --budget-mib (the next call carries them with the working tree, ~7 MiB,
and any stand-in, 64 MiB in all: with Text's stand-in, 9 MiB, 44 leaves room. A checkpoint holds the weights and
Adam's two moments in float32, 12 bytes a parameter; measured (weights + optimiser state of the reference
models, 2026-12-02): Text 40.0 MiB, Retrieval 12.5, Pathfinder 0.4, Image ~3 from its parameter count;
ListOps', 102.5 MiB, never fits and is left out, with a line saying so), as one tar split into `ckpt.tar.partNN`
files of at most 15 MiB (at most 3 parts, so with the rows' tarball and the manifest within the 8 files a call
returns), and
writes `ckpt.manifest.json` (each member's path and size, the tar's sha256). `unpack` checks the sha256, then
places each checkpoint into its run folder only where that folder exists, holds no checkpoint of its own (a
warm machine's is newer) and is one the trainer would resume (not every row `ok`, nor every row `diverged`:
train._finished); anything else is skipped with a line. `verify DIR` checks the parts alone (before landing
them). With nothing to carry, `pack` writes an empty manifest, so the set kept here is replaced, never stale.
Any failure: one line on stderr, exit 2; nothing already in RUNS is overwritten.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package beside scripts/, installed or not
from lra_wavelet.results import folder_status as status  # noqa: E402 (the trainer's rule of a run that ended)

PART_BYTES = 15 * 2**20
MANIFEST = "ckpt.manifest.json"


def fail(msg: str) -> None:
    print(f"carry_checkpoints: {msg}", file=sys.stderr)
    raise SystemExit(2)


def unfinished(runs: Path) -> list[Path]:
    """Checkpoints of run folders (<task>/<model>/<run_id>/) the trainer would resume, newest first."""
    found = [c for c in runs.glob("*/*/*/checkpoint.pt") if status(c.parent) not in ("ok", "diverged")]
    return sorted(found, key=lambda c: c.stat().st_mtime, reverse=True)


def pack(runs: Path, out: Path, budget: int) -> list[str]:
    if not runs.is_dir():
        fail(f"{runs}: no such folder (expected the sweep's run folders)")
    chosen, left, total = [], [], 0
    for c in unfinished(runs):
        size = c.stat().st_size
        if total + size <= budget:
            chosen.append(c)
            total += size
        else:
            left.append(c)
    for c in left:
        print(f"left out (over the {budget / 2**20:.0f} MiB budget): {c.relative_to(runs)} "
              f"({c.stat().st_size / 2**20:.1f} MiB): that cell starts again from step 0")
    out.mkdir(parents=True, exist_ok=True)
    if not chosen:  # an empty set still says so: the last call's set here is then replaced, not kept
        (out / MANIFEST).write_text(json.dumps({"sha256": hashlib.sha256(b"").hexdigest(), "parts": [],
                                                "members": []}, indent=1) + "\n")
        print("no checkpoint to carry")
        return []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for c in chosen:
            tar.add(c, arcname=str(c.relative_to(runs)))
    data = buf.getvalue()
    parts = []
    for i in range(0, len(data), PART_BYTES):
        name = f"ckpt.tar.part{i // PART_BYTES:02d}"
        (out / name).write_bytes(data[i:i + PART_BYTES])
        parts.append(name)
    manifest = {"sha256": hashlib.sha256(data).hexdigest(), "parts": parts,
                "members": [{"path": str(c.relative_to(runs)), "bytes": c.stat().st_size} for c in chosen]}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for m in manifest["members"]:
        print(f"carried: {m['path']} ({m['bytes'] / 2**20:.1f} MiB)")
    return parts


def verify(src: Path) -> bytes:
    """The packed tar of `src`'s parts, checked against its manifest (fails in one line where a part is missing
    or differs)."""
    man = src / MANIFEST
    try:
        manifest = json.loads(man.read_text())
        data = b"".join((src / p).read_bytes() for p in manifest["parts"])
        expected = manifest["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{man}: unreadable or a part is missing ({e})")
    if hashlib.sha256(data).hexdigest() != expected:
        fail(f"{src}: the parts do not add up to the packed checkpoints (sha256 differs): copy every "
             f"ckpt.tar.partNN of one call")
    return data


def unpack(src: Path, runs: Path) -> list[str]:
    if not (src / MANIFEST).is_file():
        print(f"no {MANIFEST} in {src}: nothing to unpack")
        return []
    data = verify(src)
    if not data:
        print("the carried set is empty: nothing to unpack")
        return []
    placed = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            rel = Path(member.name)
            if member.isfile() and rel.name == "checkpoint.pt" and len(rel.parts) == 4 and ".." not in rel.parts:
                d = runs / rel.parent
                why = ("its run folder is not here" if not d.is_dir() else
                       "the folder holds a checkpoint of its own" if (d / rel.name).exists() else
                       f"the run is {status(d)} here" if status(d) in ("ok", "diverged") else "")
                if why:
                    print(f"skipped {rel}: {why}")
                    continue
                tmp = d / "checkpoint.pt.tmp"
                tmp.write_bytes(tar.extractfile(member).read())
                tmp.replace(d / rel.name)
                placed.append(str(rel))
                print(f"placed {rel}")
            else:
                print(f"skipped {member.name}: not <task>/<model>/<run_id>/checkpoint.pt")
    return placed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("runs", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--budget-mib", type=float, default=44.0)
    u = sub.add_parser("unpack")
    u.add_argument("src", type=Path)
    u.add_argument("runs", type=Path)
    v = sub.add_parser("verify")
    v.add_argument("src", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        pack(a.runs, a.out, int(a.budget_mib * 2**20))
    elif a.cmd == "verify":
        verify(a.src)
        print(f"{a.src}: every part present")
    else:
        unpack(a.src, a.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
