"""DistributedDataParallel against one process: the trainer's own tokens/s (global batch, rank 0's metrics.jsonl)
with 1 and N processes at the same global batch, the scaling efficiency, and the validation curve of each, which
should agree (the same global batches by construction: each rank takes its slice of the batch one process takes).

    python3 benchmarks/bench_ddp.py --task listops --model wavelet --nproc 1 2 --steps 300 --repeat 2 \\
        [--set task.gen_train=8192 ...] [--md results/benchmarks/ddp.md]
    python3 benchmarks/bench_ddp.py --quick        # CPU (gloo), tiny sizes: checks the script runs

Each measurement is a fresh `torchrun --nproc_per_node=N -m lra_wavelet run` (so start-up is excluded: tokens/s is
the median of the trainer's own train points after the first third of the run, every point a window of
train.log_every steps); --repeat runs the process counts in turn, so a drift of the machine falls on all of them;
the table shows the median and the min-max spread. Efficiency = tokens/s with N / (N x tokens/s with 1). Val =
the last validation point of the first repeat (accuracy for classification, loss for language modelling).
A launch that fails prints its last lines in the cell. NVLink multicast is left off (NCCL_NVLS_ENABLE=0), as the
device machines require.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK_SETS = ["task.gen_train=256", "task.gen_val=32", "task.gen_test=32", "task.gen_min_length=10",
              "task.gen_max_length=60", "task.max_len=64", "task.gen_workers=1", "model.n_layers=1",
              "model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.head_dim=16", "train.batch_size=8"]


def launch(a, nproc: int, out: Path, port: int) -> dict:
    """One torchrun of `lra_wavelet run`; its train tokens/s points and last validation point."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={port}",
           "-m", "lra_wavelet", "run", "--task", a.task, "--model", a.model, "--out", str(out), "--no-progress",
           "--set", f"train.max_steps={a.steps}", "--set", f"train.log_every={a.log_every}",
           "--set", f"train.eval_every={a.steps}", "--set", "train.checkpoint_every=0"]
    cmd += [x for s in a.set for x in ("--set", s)] + (["--device", "cpu"] if a.quick else [])
    env = dict(os.environ, PYTHONPATH=str(REPO), NCCL_NVLS_ENABLE="0", OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", "1" if a.quick else "4"))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
    curves = sorted(out.rglob("metrics.jsonl"))
    if done.returncode != 0 or not curves:
        return {"error": " / ".join((done.stderr or done.stdout).strip().splitlines()[-2:])[-300:]}
    points = [json.loads(ln) for ln in curves[0].read_text().splitlines()]
    train = [r for r in points if r["split"] == "train" and r["step"] > a.steps // 3]
    val = [r for r in points if r["split"] == "val"]
    metric = "accuracy" if val and "accuracy" in val[-1] else "loss"
    return {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in train) if train else float("nan"),
            "val": (metric, val[-1][metric]) if val else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="listops")
    ap.add_argument("--model", default="wavelet")
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per launch")
    ap.add_argument("--md", type=Path, help="also write the table to this Markdown file")
    ap.add_argument("--quick", action="store_true", help="CPU (gloo), tiny sizes, a few steps")
    a = ap.parse_args(argv)
    if a.quick:
        a.set, a.steps, a.log_every, a.repeat = QUICK_SETS + a.set, 24, 4, 1
    import torch

    runs: dict[int, list[dict]] = {n: [] for n in a.nproc}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeat):
            for i, n in enumerate(a.nproc):
                runs[n].append(launch(a, n, Path(tmp) / f"r{r}-n{n}", 29600 + 10 * r + i))
    ok = {n: [m["tokens_per_s"] for m in ms if "error" not in m] for n, ms in runs.items()}
    one = statistics.median(ok[1]) if ok.get(1) else None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not a.quick else "CPU (gloo)"
    head = (f"# DDP vs one process: {a.task} x {a.model}, {a.steps} steps, same global batch; {device}, torch "
            f"{torch.__version__}, {datetime.date.today()}; `{' '.join(['python3', 'benchmarks/bench_ddp.py'] + (argv or sys.argv[1:]))}`")
    lines = [head, "", "| processes | train tokens/s (median [min-max] of repeats) | efficiency | val (first repeat) |",
             "|---|---|---|---|"]
    for n, ms in runs.items():
        errors = [m["error"] for m in ms if "error" in m]
        if not ok[n]:
            lines.append(f"| {n} | failed: {errors[0]} | — | — |")
            continue
        med = statistics.median(ok[n])
        spread = f"{med / 1e6:.3g}M [{min(ok[n]) / 1e6:.3g}-{max(ok[n]) / 1e6:.3g}]"
        eff = f"{med / (n * one):.2f}" if one else "—"
        val = next((m["val"] for m in ms if m.get("val")), None)
        lines.append(f"| {n} | {spread}{f' ({len(errors)} failed)' if errors else ''} | {eff} | "
                     f"{f'{val[0]} {val[1]:.4f}' if val else '—'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.md:
        a.md.parent.mkdir(parents=True, exist_ok=True)
        a.md.write_text(text)
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
