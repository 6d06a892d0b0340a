"""scripts/carry_checkpoints.py: an unfinished cell's checkpoint, packed in parts on one machine and put back into
its run folder on another, resumes the run to the numbers of an uninterrupted one; what must not be replaced
is not."""

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lra_wavelet import config as C
from lra_wavelet import train as T

from conftest import TINY_LISTOPS, cli

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "carry_checkpoints.py"
spec = importlib.util.spec_from_file_location("carry_checkpoints", SCRIPT)
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)


def folder(runs: Path, name: str, status=None, ckpt_bytes=0) -> Path:
    d = runs / "text" / "gpt" / name
    d.mkdir(parents=True)
    if status:
        (d / "result.csv").write_text(f"run_id,status\n{name},{status}\n")
    if ckpt_bytes:
        (d / "checkpoint.pt").write_bytes(bytes(range(256)) * (ckpt_bytes // 256))
    return d


def test_a_killed_run_resumes_on_another_machine_from_its_carried_checkpoint(tmp_path):
    def cfg(out):
        return C.resolve("listops", "wavelet", sets=(*TINY_LISTOPS, f"out={out}", "device=cpu"))

    ref = T.train(cfg(tmp_path / "ref"), progress=False)
    args = ["run", "--task", "listops", "--model", "wavelet", "--out", str(tmp_path / "here"), "--device", "cpu",
            "--no-progress"] + [a for s in TINY_LISTOPS for a in ("--set", s)]
    assert cli(*args, env={T.CRASH_ENV: "6"}, check=False).returncode == 137  # checkpoint at step 4, no rows
    assert cc.pack(tmp_path / "here", tmp_path / "out", budget=40 * 2**20) == ["ckpt.tar.part00"]
    manifest = json.loads((tmp_path / "out" / cc.MANIFEST).read_text())
    rel = ref.run_dir.relative_to(tmp_path / "ref")
    assert [m["path"] for m in manifest["members"]] == [str(rel / "checkpoint.pt")]

    there = tmp_path / "there"  # the next machine: the run folder as committed (rows and curve, no checkpoint)
    shutil.copytree(tmp_path / "here", there, ignore=shutil.ignore_patterns("*.pt", "lock"))
    assert cc.unpack(tmp_path / "out", there) == [str(rel / "checkpoint.pt")]
    T.train(cfg(there), resume=True, progress=False)
    pd.testing.assert_series_equal(pd.read_csv(ref.run_dir / "result.csv").value,
                                   pd.read_csv(there / rel / "result.csv").value)


def test_pack_takes_unfinished_runs_within_the_budget_in_parts_and_unpack_replaces_nothing(tmp_path, capsys):
    runs, out, dest = tmp_path / "runs", tmp_path / "out", tmp_path / "dest"
    folder(runs, "partial-a", "partial", 20 * 2**20)
    folder(runs, "no-rows-b", None, 6 * 2**20)
    folder(runs, "done-c", "ok", 2**20)  # finished: its checkpoint is not needed
    failed = folder(runs, "failed-e", "failed", 2**20)  # failed after a resume: the trainer resumes it again
    folder(runs, "too-big-d", "partial", 30 * 2**20)
    parts = cc.pack(runs, out, budget=28 * 2**20)
    said = capsys.readouterr().out
    assert "left out" in said and "too-big-d" in said and "done-c" not in said
    assert len(parts) == 2 and all((out / p).stat().st_size <= cc.PART_BYTES for p in parts)
    members = {Path(m["path"]).parent.name for m in json.loads((out / cc.MANIFEST).read_text())["members"]}
    assert members == {"partial-a", "no-rows-b", "failed-e"}
    assert cc.status(failed) == "unfinished" and cc.status(runs / "text/gpt/done-c") == "ok"

    folder(dest, "partial-a", "partial")  # unfinished here: takes the checkpoint
    own = folder(dest, "no-rows-b", None, 512)  # a warm machine's own (newer) checkpoint: kept
    assert cc.unpack(out, dest) == ["text/gpt/partial-a/checkpoint.pt"]
    assert (dest / "text/gpt/partial-a/checkpoint.pt").read_bytes() == (runs / "text/gpt/partial-a/checkpoint.pt").read_bytes()
    assert (own / "checkpoint.pt").stat().st_size == 512
    assert "holds a checkpoint of its own" in capsys.readouterr().out

    finished = tmp_path / "finished"
    folder(finished, "partial-a", "ok")  # finished meanwhile (another session): nothing placed
    assert cc.unpack(out, finished) == [] and not (finished / "text/gpt/partial-a/checkpoint.pt").exists()

    empty = tmp_path / "empty-call"  # nothing unfinished: an empty set, which replaces the last one kept
    assert cc.pack(finished, empty, budget=2**30) == [] and cc.unpack(empty, dest) == []
    assert json.loads((empty / cc.MANIFEST).read_text())["members"] == []


def test_parts_that_do_not_add_up_are_refused_in_one_line(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    folder(runs, "partial-a", "partial", 2**20)
    [part] = cc.pack(runs, out, budget=2**30)
    (out / part).write_bytes((out / part).read_bytes()[:-1] + b"x")
    with pytest.raises(SystemExit) as e:
        cc.unpack(out, tmp_path / "dest")
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "sha256 differs" in err and "\n" not in err
