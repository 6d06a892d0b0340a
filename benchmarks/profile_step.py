"""Where one training step's time goes: torch.profiler over the trainer's own step, the top operators and
kernels by device time, for a task's reference configuration (or --set overrides).

    python3 benchmarks/profile_step.py --task pathfinder --model transformer [--steps 10] [--set ...]
    python3 benchmarks/profile_step.py --quick --task listops --model transformer   # CPU, tiny: checks it runs

The run is built with `train.build` on synthetic full-length batches of the task's shape (as
bench_throughput.py does), warmed up for --warmup steps (compilation, autotuning), then --steps steps are
profiled. The table lists operators by self device time (CUDA; CPU time on a CPU), their share of the
profiled total, calls and time per call; `--trace FILE` also writes a Chrome trace. Which attention kernel
SDPA chose shows as its operator (`aten::_scaled_dot_product_flash_attention`, `..._efficient_attention`,
or the matmul / softmax operators of the math path). Operators and the kernels they launch are rows of their
own, and both show their share of the kernels' total. `train.compile` is auto (on for classification on CUDA):
`--set train.compile=false` profiles the eager step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_throughput import QUICK, SyntheticSplit  # noqa: E402

from lra_wavelet import config as config_mod  # noqa: E402
from lra_wavelet import train as T  # noqa: E402
from lra_wavelet.registry import TASKS, load_all  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--steps", type=int, default=10, help="profiled steps")
    ap.add_argument("--warmup", type=int, default=10, help="steps run before profiling")
    ap.add_argument("--top", type=int, default=25, help="rows of the table")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. train.compile=true")
    ap.add_argument("--trace", help="also write a Chrome trace (chrome://tracing, Perfetto) to this file")
    ap.add_argument("--quick", action="store_true", help="CPU, a tiny model at length 64")
    args = ap.parse_args()
    load_all()
    device = torch.device("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    sets = tuple(args.set) + (QUICK if args.quick else ()) + ("train.memory_check=false", f"device={device.type}")
    cfg = config_mod.resolve(args.task, args.model, sets=sets)
    task = TASKS.get(args.task)(cfg.task)
    if args.quick:
        task.seq_len = 64
    splits = {k: SyntheticSplit(task, cfg.train.batch_size) for k in ("train", "val", "test")}
    p = T.build(cfg, device, task=task, splits=splits)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = T.batches(p, 0)
    for _ in range(args.warmup):
        T.train_step(p, next(data))
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):  # the same steps unprofiled: wall time, to set against the device's busy time
        T.train_step(p, next(data))
    sync()
    wall = (time.perf_counter() - t0) / args.steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            T.train_step(p, next(data))
        sync()
    averages = prof.key_averages()
    key = "self_cpu_time_total"
    if device.type == "cuda":  # renamed in torch 2.4 (the old name kept as a deprecated alias for a while)
        key = next(k for k in ("self_device_time_total", "self_cuda_time_total") if hasattr(averages[0], k))
    events = [e for e in averages if getattr(e, key, 0) > 0]
    # on CUDA an operator's self device time is that of the kernels it launched, which are rows of their own:
    # the device's busy time is the kernels' sum (rows of device type CUDA), shares are of that
    on_device = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA")]
    total = sum(getattr(e, key) for e in (on_device or events)) or 1.0
    events.sort(key=lambda e: -getattr(e, key))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# {args.task} x {args.model}: {args.steps} steps profiled after {args.warmup}; {name}, torch "
          f"{torch.__version__}; batch {cfg.train.batch_size} x length {task.seq_len}; compiled: "
          f"{p.cfg.train.compile} ({p.cfg.train.compile_mode}); overrides: {' '.join(args.set) or 'none'}")
    busy = total / args.steps / 1e3
    print(f"device time per step: {busy:.2f} ms (sum of {'kernel' if on_device else 'self'} times); wall time per step unprofiled: "
          f"{wall * 1e3:.2f} ms, so the device is busy {busy / (wall * 1e3):.0%} of the step\n")
    print("| operator / kernel | share | self time per step (ms) | calls per step |")
    print("|---|---|---|---|")
    for e in events[:args.top]:
        t = getattr(e, key)
        print(f"| `{e.key[:90]}` | {t / total:.1%} | {t / args.steps / 1e3:.3f} | {e.count / args.steps:g} |")
    if args.trace:
        prof.export_chrome_trace(args.trace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
