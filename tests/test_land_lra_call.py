"""scripts/land_lra_call.sh: a device call's tarballs (one per sweep of the call) land as run folders in call
order, logs per sweep, the last checkpoint set as .ckpt_carry, the report regenerated; bad input is one line,
exit 2, nothing copied."""

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd

from lra_wavelet import config as C
from lra_wavelet import train as T

from conftest import REPO, TINY_LISTOPS

SCRIPT = REPO / "scripts" / "land_lra_call.sh"


def land(repo: Path, *args):
    env = dict(os.environ, REPO=str(repo), PYTHONPATH=str(REPO),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def tarball(where: Path, runs: Path, log: str) -> None:
    """lra.tar.gz as gpu_lra.sh leaves it: lra/runs (the machine's whole run tree), lra/logs."""
    stage = where / "stage"
    shutil.copytree(runs, stage / "lra" / "runs", ignore=shutil.ignore_patterns("*.pt", "lock"))
    (stage / "lra" / "logs").mkdir(parents=True)
    (stage / "lra" / "logs" / "command.txt").write_text(log)
    with tarfile.open(where / "lra.tar.gz", "w:gz") as tar:
        tar.add(stage / "lra", arcname="lra")
    shutil.rmtree(stage)


def test_a_two_sweep_call_lands_in_order_with_its_logs_checkpoints_and_report(tmp_path):
    machine = tmp_path / "machine"
    first = T.train(C.resolve("listops", "gpt", sets=(*TINY_LISTOPS, f"out={machine}", "device=cpu")),
                    progress=False)
    call = tmp_path / "call"
    (call / "a").mkdir(parents=True)
    tarball(call / "a", machine, "sweep a")
    T.train(C.resolve("listops", "wavelet", sets=(*TINY_LISTOPS, f"out={machine}", "device=cpu")), progress=False)
    (call / "b").mkdir(parents=True)
    tarball(call / "b", machine, "sweep b")
    stopped = machine / "text" / "gpt" / "text-gpt-s0-0123456789"  # an unfinished cell's checkpoint, packed
    stopped.mkdir(parents=True)
    (stopped / "checkpoint.pt").write_bytes(b"weights")
    pack = [sys.executable, str(REPO / "scripts" / "carry_checkpoints.py"), "pack", str(machine), str(call / "b" / "ckpt")]
    subprocess.run(pack, check=True, capture_output=True)
    repo = tmp_path / "repo"
    (repo / "results" / "lra").mkdir(parents=True)
    out = land(repo, call, "2026-12-03-call1")
    assert out.returncode == 0, out.stderr
    runs = sorted(p.parent.name for p in (repo / "results/lra/runs").glob("*/*/*/result.csv"))
    assert runs == sorted([first.run_dir.name, next((machine / "listops" / "wavelet").iterdir()).name])
    logs = repo / "results/lra/logs"
    assert (logs / "2026-12-03-call1a/command.txt").read_text() == "sweep a"
    assert (logs / "2026-12-03-call1b/command.txt").read_text() == "sweep b"
    assert (repo / ".ckpt_carry" / "ckpt.manifest.json").is_file() and "1 run(s)" in out.stdout
    table = pd.read_csv(repo / "results/lra/report/lra_table.csv")
    assert {"gpt", "wavelet"} <= set(table.Model)

    again = land(repo, call, "2026-12-03-call1")  # the same log name twice: refused before anything is copied
    assert again.returncode == 2 and "exists already" in again.stderr and len(again.stderr.splitlines()) == 1
    next(iter((call / "b" / "ckpt").glob("ckpt.tar.part*"))).unlink()  # a part that did not come back
    torn = land(repo, call, "2026-12-03-call2")
    assert torn.returncode == 2 and "a part is missing" in torn.stderr and len(torn.stderr.splitlines()) == 1
    assert not (logs / "2026-12-03-call2a").exists()  # nothing landed


def test_a_folder_without_a_tarball_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    out = land(tmp_path / "repo", tmp_path / "empty", "x")
    assert out.returncode == 2 and "no lra.tar.gz" in out.stderr and len(out.stderr.splitlines()) == 1
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "lra.tar.gz").write_bytes(b"not a tarball")
    out = land(tmp_path / "repo", tmp_path / "bad", "x")
    assert out.returncode == 2 and "not a readable tar.gz" in out.stderr and not (tmp_path / "repo").exists()



def rows(run: Path, status: str, step: int) -> None:
    """A run folder with the tidy rows the trainer writes (the fields land_runs.py reads)."""
    run.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"run_id": run.name, "split": ["val", "test"], "metric": "accuracy", "value": 0.3,
                  "step": step, "status": status}).to_csv(run / "result.csv", index=False)


def test_a_cold_machines_older_copy_of_a_folder_never_replaces_the_one_here_that_is_further_along(tmp_path):
    here, call = tmp_path / "repo_runs", tmp_path / "call_runs"
    done, both_partial, new = "listops/gpt/listops-gpt-s1-aaaa", "text/gpt/text-gpt-s1-bbbb", "listops/wavelet/w-s2"
    rows(here / done, "ok", 5000)  # landed from the last call
    rows(call / done, "partial", 710)  # the cold machine's seeded, committed-before-landing state
    rows(here / both_partial, "partial", 300)
    rows(call / both_partial, "partial", 900)  # further along in the call: it wins
    rows(call / new, "ok", 5000)
    (call / done / "metrics.jsonl").write_text('{"step": 710}\n')
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "land_runs.py"), str(call), str(here)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert pd.read_csv(here / done / "result.csv").status.tolist() == ["ok", "ok"]
    assert not (here / done / "metrics.jsonl").exists()  # nothing of the older copy mixed in
    assert out.stdout.strip() == f"kept {done}: here ended at step 5000, the call's copy unfinished at step 710 (older)"
    assert pd.read_csv(here / both_partial / "result.csv").step.tolist() == [900, 900]
    assert (here / new / "result.csv").is_file()
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "land_runs.py"), str(tmp_path / "nope"), str(here)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
