"""The submitit launcher: a job array on submitit's local executor (real processes), one cell preempted and
requeued by submitit, resuming from its checkpoint; the CLI path on submitit's in-process debug executor."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from lra_wavelet import config, sweep
from lra_wavelet.cli import main

from conftest import TINY_LISTOPS

submitit = pytest.importorskip("submitit")
TINY = [a for s in TINY_LISTOPS for a in ("--set", s)]


def _cell(model, out, *sets):
    cfg = config.resolve("listops", model, sets=(*TINY_LISTOPS, *sets), overrides={"out": str(out), "device": "cpu"})
    return sweep.Cell("listops", model, 0, cfg.to_dict()), sweep.rebuild(cfg.to_dict())


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_preempted_array_task_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    from lra_wavelet.train import run_paths

    long, long_cfg = _cell("gpt", tmp_path, "train.max_steps=20", "train.eval_every=10", "train.log_every=4")
    ex = sweep.submitit_executor(tmp_path / "submitit", "local", {"timeout_min": 5}, 1, "cpu")
    jobs = ex.map_array(sweep.CellJob(), [long.cfg])  # an array of one task: each task costs a process
    ckpt = run_paths(long_cfg)[1] / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.is_file() and time.time() < deadline:
        time.sleep(0.05)
    for pid in _children(jobs[0]._process.pid):  # what SLURM does before a preemption or the time limit
        os.kill(pid, signal.SIGUSR2)
    results = [j.result() for j in jobs]
    assert [r["status"] for r in results] == ["ok"]
    log = jobs[0].stdout() + jobs[0].stderr()
    assert "Requeued job" in log and "resuming" in log  # submitit requeued it; train(resume=True) continued
    steps = [(r["split"], r["step"]) for r in map(json.loads, (ckpt.parent / "metrics.jsonl").read_text().splitlines())]
    assert len(steps) == len(set(steps)) and steps[-1] == ("val", 20)


def test_sweep_launcher_submitit_through_the_cli(tmp_path, capsys):
    args = ["sweep", "--tasks", "listops", "--models", "gpt", "--seeds", "0", "1", "--device", "cpu", *TINY,
            "--set", "train.max_steps=2", "--out", str(tmp_path), "--launcher", "submitit", "--cluster", "debug"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "submitted 2 cells as debug job(s)" in err and "[2/2]" in err and "2 cells: 2 ok" in out
    assert main([*args, "--submitit", "timeout_min=ten"]) == 2
    assert "--submitit" in capsys.readouterr().err
