"""torchrun with two CPU processes (gloo): a non-finite loss on one rank stops both as `diverged`, with one set
of rows; SIGTERM stops both cleanly (checkpoint, `partial` rows, exit 130) and `--resume` then ends with the
numbers of an uninterrupted single-process run (same global batches by construction)."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from lra_wavelet import config as C
from lra_wavelet import train as T

from conftest import REPO, TINY_LISTOPS

# a gpt whose loss turns NaN on rank 1 alone, from its 6th training forward on (the memory check's count too)
NAN_ON_RANK1 = '''
import os
import torch
from lra_wavelet.models.gpt import GPT
from lra_wavelet.registry import MODELS


@MODELS.register("gpt-nan-rank1")
class NanOnRank1(GPT):
    calls = 0

    def forward(self, batch):
        out = super().forward(batch)
        if self.training and os.environ.get("RANK") == "1":
            NanOnRank1.calls += 1
            if NanOnRank1.calls >= 6:
                out = out * float("nan")
        return out
'''


def torchrun(out, *extra, port, model="wavelet", include=None, **popen):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "lra_wavelet", "run", "--task", "listops", "--model", model, "--device", "cpu", "--out", str(out),
           "--no-progress", *[a for s in TINY_LISTOPS for a in ("--set", s)], *extra]
    if include:
        cmd[cmd.index("run") + 1:cmd.index("run") + 1] = ["--include", str(include)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, **popen)


def test_a_nan_on_one_rank_stops_both_ranks_as_diverged(tmp_path):
    (tmp_path / "nan.py").write_text(NAN_ON_RANK1)
    proc = torchrun(tmp_path / "runs", "--set", "train.lazy_metrics=true", port=29541, model="gpt-nan-rank1",
                    include=tmp_path / "nan.py")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode != 0, err[-2000:]
    (rows,) = (tmp_path / "runs").rglob("result.csv")  # one set of rows: rank 0's
    df = pd.read_csv(rows)
    assert set(df.status) == {"diverged"}, df
    at = df[df.split == "train"].step.tolist()
    assert at and 0 <= at[0] < 12  # stopped at the first non-finite step both ranks agreed on, before the end


def test_sigterm_stops_both_ranks_cleanly_and_resume_matches_one_process(tmp_path):
    # lazy metrics and prefetching on: the ranks agree on NaN / stop at log steps only, still the same numbers
    extra = ("--set", "train.max_steps=160", "--set", "train.checkpoint_every=20", "--set", "train.eval_every=40",
             "--set", "train.lazy_metrics=true", "--set", "train.prefetch=1")
    sets = tuple(TINY_LISTOPS) + tuple(extra[1::2])
    single = T.train(C.resolve("listops", "wavelet", sets=sets + (f"out={tmp_path / 'one'}", "device=cpu")),
                     progress=False)
    run_dir = tmp_path / "two" / single.run_dir.relative_to(tmp_path / "one")
    proc = torchrun(tmp_path / "two", *extra, port=29543)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # stop it once it is past its first checkpoint
        curve = run_dir / "metrics.jsonl"
        steps = [json.loads(ln)["step"] for ln in curve.read_text().splitlines()] if curve.is_file() else []
        if steps and max(steps) >= 30:
            break
        time.sleep(0.2)
    if proc.poll() is not None:
        pytest.skip("the run ended before it could be stopped (a very fast machine)")
    os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler does: every process of the job
    _, err = proc.communicate(timeout=120)
    assert (run_dir / "checkpoint.pt").is_file(), err[-2000:]
    assert set(pd.read_csv(run_dir / "result.csv").status) == {"partial"}

    resumed = torchrun(tmp_path / "two", *extra, "--resume", port=29545)
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-2000:]
    a, b = pd.read_csv(single.run_dir / "result.csv"), pd.read_csv(run_dir / "result.csv")
    assert set(b.status) == {"ok"}
    test = lambda d, m: d[(d.split == "test") & (d.metric == m)].value.item()  # noqa: E731
    assert test(a, "accuracy") == test(b, "accuracy") and test(a, "loss") == pytest.approx(test(b, "loss"), rel=1e-4)


def test_two_ranks_with_length_groups_give_the_numbers_of_one_process_with_whole_batches(tmp_path):
    # each rank sorts its own half of the global batch into train.length_groups micro-batches; DDP's mean of the
    # ranks' gradients is still the global batch's
    extra = ("--set", "train.length_buckets=4")
    single = T.train(C.resolve("listops", "transformer", sets=tuple(TINY_LISTOPS) + extra[1::2] + (
        f"out={tmp_path / 'one'}", "device=cpu")), progress=False)
    proc = torchrun(tmp_path / "two", *extra, "--set", "train.length_groups=2", port=29547, model="transformer")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    run_dir = tmp_path / "two" / single.run_dir.relative_to(tmp_path / "one")
    assert json.loads((run_dir / "env.json").read_text())["length_groups"] == 2
    a, b = (pd.read_csv(d / "result.csv").set_index(["split", "metric"]).value for d in (single.run_dir, run_dir))
    pd.testing.assert_series_equal(a, b, rtol=1e-4)
