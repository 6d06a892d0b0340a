"""Training throughput of the trainer's own loop: every LRA task at its reference configuration x every LRA model,
with each speed-up on and off, and the GPU time the whole LRA table would take at the reference budgets.

    python3 benchmarks/bench_throughput.py [--variants base,lazy,prefetch,fast] [--tasks ...] [--models ...]
                                           [--steps 10] [--repeat 1] [--md results/benchmarks/throughput.md]
    python3 benchmarks/bench_throughput.py --quick          # CPU, tiny sizes, seconds: checks the script runs

Each cell builds the run with `train.build` (the reference config from tasks/<task>.yaml, or `--set` overrides)
and runs `train.run_loop` itself for 3 x --steps steps with a log point every --steps steps; tokens/s is the
trainer's own figure (metrics.jsonl) over the last window, so the first window holds the warm-up (compilation,
CUDA graph capture), whose time the table shows per cell. Tokens are nominal: batch x sequence length (x 2
documents for retrieval). --repeat N measures every cell N times, the variants of one task and model taking turns
(so a drift of the machine falls on all of them); the table shows the median and the min-max spread. Cells run
in order until --budget-s (540 s) has passed; the rest are marked "not run".

Compilation: every cell runs its loop as train() does, inside `train.compiling` (a fresh torch._dynamo state,
room for 32 graphs). All cells run in one
process and every model's forward is the same code object (SequenceModel.forward), so without the reset dynamo
counts each new model as a recompilation of that function and, past its recompile limit (8), runs the rest
eagerly without an error. A compiled cell also counts the graphs dynamo compiled during it; one that compiled
none is marked "not compiled" instead of showing eager numbers under a compiled heading. A compiler that cannot
run here (no C++ compiler for the CPU backend, say) fails that cell alone, with the reason in the cell. Repeats
after the first find inductor's on-disk cache (which the reset keeps), so their warm-up is mostly tracing.

Data: synthetic full-length batches of the task's shape (random token ids; no padding, so trimming and
length buckets change nothing here: the cost of the longest batch), or --data task for the task's own data.

Variants (train.* switches; README "Speed"):
    base      every switch off: eager, per-step loss read, data prepared on the critical path
    lazy      train.lazy_metrics=true (no host-device sync per step)
    prefetch  train.prefetch=2 (the next batches prepared in a background thread, pinned copies)
    fast      lazy + prefetch + train.length_buckets=4
    compiled  fast + train.compile=true
    graphs    fast + train.compile=true, train.compile_mode=reduce-overhead (CUDA graphs)
    pad8      compiled + train.attn_pad_heads=8 (attention heads narrower than 8 zero-padded: Pathfinder's 4)
    nopad     compiled + train.attn_pad_heads=0 (never padded; the default, auto, pads masked heads on CUDA)
    groups4   compiled + train.length_groups=4: each batch as 4 micro-batches of rows sorted by length, each
              trimmed to one of 8 static lengths (pad-invariant models; the others run whole batches). Needs
              --data task: synthetic rows are all full-length, so there it only costs. Tokens/s and MFU stay
              nominal (batch x length, the FLOPs of full-length rows): the work skipped counts as done
    groups2   the same with train.length_groups=2 (larger micro-batches, less work skipped)
    varlen    compiled + train.attn_varlen=true (encoder attention over valid positions only, flash's
              variable-length kernel; with --data task: synthetic rows have no padding to skip)
    seeds3    3 seeds as one vmapped model (`sweep --stack-seeds`: stacked.loop's step and batches):
              the tokens/s of the three together, its GPU minutes per seed of the table; the Haar op runs as
              prefix sums under vmap, not as the fused Triton kernel (WaveletOp.use_fused says why)
    seeds3c   seeds3 with the vmapped step compiled (`sweep --stack-seeds --set train.compile=true`; auto runs a stack eagerly)

MFU = 3 x forward FLOPs (flops.py: measured matmul / FFT FLOPs of one example) x examples/s / the device's
peak dense bf16 FLOP/s (--peak-tflops, or the datasheet figure of a known device). GPU minutes of the table:
reference max_steps / steps per second x --seeds, per cell, for the base variant and for the fastest.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lra_wavelet import config as config_mod  # noqa: E402
from lra_wavelet import flops  # noqa: E402
from lra_wavelet import train as T  # noqa: E402
from lra_wavelet.errors import UserError  # noqa: E402
from lra_wavelet.registry import TASKS, load_all  # noqa: E402

LRA_TASKS = ["listops", "text", "retrieval", "image", "pathfinder"]
LRA_MODELS = ["transformer", "fnet", "wavspa", "gpt", "wavelet", "wavelet-learnable"]
EAGER = ("train.compile=false", "train.lazy_metrics=false", "train.prefetch=0",  # every switch off, spelled out
         "train.attn_pad_heads=0")
COMPILED = ("train.lazy_metrics=true", "train.prefetch=2", "train.length_buckets=4", "train.compile=true")
VARIANTS = {
    "base": EAGER,
    "lazy": (*EAGER, "train.lazy_metrics=true"),
    "prefetch": (*EAGER, "train.prefetch=2"),
    "fast": (*EAGER, "train.lazy_metrics=true", "train.prefetch=2", "train.length_buckets=4"),
    "compiled": COMPILED,
    "graphs": (*COMPILED, "train.compile_mode=reduce-overhead"),
    "pad8": (*COMPILED, "train.attn_pad_heads=8"),
    "nopad": (*COMPILED, "train.attn_pad_heads=0"),
    "groups4": (*(s for s in COMPILED if not s.startswith("train.length_buckets")), "train.length_groups=4"),
    "groups2": (*(s for s in COMPILED if not s.startswith("train.length_buckets")), "train.length_groups=2"),
    "varlen": (*COMPILED, "train.attn_varlen=true"),
}
# 3 seeds as one vmapped model (sweep --stack-seeds), tokens/s of all three; eager as stacked.loop, with fast's
# switches (until 2026-12-03 with base's: the 2026-12-02 seeds3 figures of throughput.md were measured so)
VARIANTS["seeds3"] = VARIANTS["fast"]
VARIANTS["seeds3c"] = COMPILED  # the same, the vmapped step compiled (sweep --stack-seeds --set train.compile=true)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}  # dense bf16 datasheet figures
QUICK = ("model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.d_ff=32", "train.batch_size=4")


class SyntheticSplit:
    """Full-length random batches of a task's shape; a pure function of (seed, step) like the real splits."""

    def __init__(self, task, n: int):
        self.task, self.n = task, n
        self.shape = (2, task.seq_len) if task.kind == "retrieve" else (task.seq_len,)

    def __len__(self) -> int:
        return self.n

    def _batch(self, rng, size: int) -> dict:
        low = 1 if self.task.pad_id == 0 else 0  # never the padding id: every position is used
        x = rng.integers(low, self.task.vocab_size, size=(size, *self.shape))
        y = x[:, 1:] if self.task.kind == "lm" else rng.integers(0, max(self.task.n_classes, 1), size=size)
        return {"x": x, "y": y}

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        return self._batch(np.random.default_rng([seed, step]), batch_size)

    def eval_batches(self, batch_size: int, max_batches: int = 0):
        yield self._batch(np.random.default_rng(0), min(batch_size, self.n))


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v * 1e12 for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def stacked_tokens_per_s(p, seeds: int, n: int) -> tuple[float, float]:
    """Tokens/s of all `seeds` seeds trained as one vmapped model over the third window of n steps, and the time of
    the first window (the warm-up)."""
    parts = [p] + [T.build(dataclasses.replace(p.cfg, seed=p.cfg.seed + i), p.device, task=p.task, splits=p.splits)
                   for i in range(1, seeds)]
    st = T.stack_seeds(parts, compile=bool(p.cfg.train.compile), mode=p.cfg.train.compile_mode)
    sync = torch.cuda.synchronize if p.device.type == "cuda" else (lambda: None)
    data = T.batches(p, 0, make=lambda s: T.stacked_host_batch(st, s))  # as stacked.loop takes them
    ends = [time.perf_counter()]
    for window in range(3):
        for _ in range(n):
            T.stacked_step(st, next(data))
        sync()
        ends.append(time.perf_counter())
    data.close()
    return seeds * n * p.tokens_per_step / (ends[3] - ends[2]), ends[1] - ends[0]


def build_run(task_name: str, model: str, variant: str, args, device: torch.device, extra: tuple = ()):
    """The run a benchmark times (train.build's Parts): the task's reference configuration with --set, the
    variant's switches, --quick's tiny sizes and `extra`; synthetic batches unless args.data is 'task'."""
    sets = (tuple(args.set) + VARIANTS[variant] + (QUICK if args.quick else ())
            + ("train.memory_check=false", f"device={device.type}") + tuple(extra))
    cfg = config_mod.resolve(task_name, model, sets=sets)
    task = TASKS.get(task_name)(cfg.task)
    if args.quick:
        task.seq_len = 64
    splits = None
    if args.data == "synthetic":
        splits = {k: SyntheticSplit(task, cfg.train.batch_size) for k in ("train", "val", "test")}
    return T.build(cfg, device, task=task, splits=splits)


def measure(task_name: str, model: str, variant: str, args, device: torch.device) -> dict:
    """One cell: the trainer's loop for 3 windows of args.steps steps; tokens/s of the last window."""
    n = args.steps
    p = build_run(task_name, model, variant, args, device, (
        f"train.max_steps={3 * n}", f"train.log_every={n}", f"train.eval_every={3 * n}", "train.checkpoint_every=0",
        "train.eval_batches=1"))
    cfg, task = p.cfg, p.task
    reference = config_mod.resolve(task_name, model, sets=tuple(args.set))  # the budget being estimated
    compiled = p.cfg.train.compile
    graphs = T.compiled_graphs() if compiled else 0
    # MFU counts the model's own FLOPs: zero columns of padded heads (train.attn_pad_heads) are not the model's,
    # and under train.attn_varlen the padding's skipped attention counts as done (nominal, as length groups';
    # the FLOP counter cannot trace the variable-length kernel either)
    attention = [(m, m.pad_heads_to, m.varlen) for m in p.model.modules() if hasattr(m, "pad_heads_to")]
    for m, _, _ in attention:
        m.pad_heads_to, m.varlen = 0, False
    fpe = flops.count(p.model, task)["flops_per_example"]
    for m, width, varlen in attention:  # (width None: auto)
        m.pad_heads_to, m.varlen = width, varlen
    if variant.startswith("seeds"):
        with T.compiling(p, auto=False, log=lambda s: None):
            tps, warmup = stacked_tokens_per_s(p, int(variant[5:].rstrip("c")), n)
    else:
        with tempfile.TemporaryDirectory() as d, T.compiling(p, auto=False, log=lambda s: None):
            T.run_loop(p, Path(d), 0, None, 0.0, progress=False, log=lambda s: None)  # as train() runs it
            recs = [json.loads(ln) for ln in (Path(d) / "metrics.jsonl").read_text().splitlines()]
        windows = [r["tokens_per_s"] for r in recs if r["split"] == "train"]
        tps, warmup = windows[-1], n * p.tokens_per_step / windows[0]
    tokens_per_example = p.tokens_per_step / cfg.train.batch_size
    steps_per_s = tps / p.tokens_per_step  # seeds3: seed-steps per second (a stacked step advances every seed)
    return {"tokens_per_s": tps, "flops_per_s": 3 * fpe * tps / tokens_per_example, "steps_per_s": steps_per_s,
            "warmup_s": warmup, "compiled": compiled, "graphs": T.compiled_graphs() - graphs if compiled else 0,
            "ref_steps": reference.train.max_steps, "batch": cfg.train.batch_size, "seq": task.seq_len}


def not_compiled(rs: list[dict]) -> bool:
    """A compiled variant whose measurements ran eagerly: dynamo compiled no graph in one of them."""
    return any(r["compiled"] and not r["graphs"] for r in rs)


def cell(rs: list[dict], failure: str | None, peak: float | None, repeat: int) -> str:
    """'tokens/s | MFU | warm-up' of one cell: the median over its measurements with their min-max spread; the
    warm-up is the first window's time (compilation, CUDA graph capture), and for compiled variants the graphs
    dynamo compiled (training, and the evaluation at the end)."""
    if failure:
        return f"{failure} | - | -"
    if not rs:
        return "not run (--budget-s) | - | -"
    warmup = spread(rs, "warmup_s", 1, " s")
    if rs[0]["compiled"]:
        warmup += f", {statistics.median(r['graphs'] for r in rs):g} graphs"
    if not_compiled(rs):
        return f"not compiled (dynamo compiled no graph; its eager numbers are left out) | - | {warmup}"
    short = f" [{len(rs)} of {repeat}]" if len(rs) < repeat else ""  # --budget-s cut the repeats short
    mfu = f"{statistics.median(r['flops_per_s'] for r in rs) / peak:.1%}" if peak else "-"
    return f"{spread(rs, 'tokens_per_s', 1e6, 'M')}{short} | {mfu} | {warmup}"


def spread(rs: list[dict], key: str, scale: float, unit: str) -> str:
    """'median<unit> (min-max)' of rs[key] / scale; the median alone for one measurement."""
    v = [r[key] / scale for r in rs]
    return f"{statistics.median(v):.3g}{unit}" + (f" ({min(v):.3g}-{max(v):.3g})" if len(v) > 1 else "")


def minutes_table(table: dict, tasks: list, models: list, variants: list, seeds: int) -> list[str]:
    """The GPU minutes of the LRA table per task and variant: reference max_steps / measured steps per second x
    seeds, summed over the models; '(incomplete)' where a model's cell is missing, no number where none was
    measured (a variant that failed in every cell: no number, not 0)."""
    out = ["| task | " + " | ".join(f"{v} min" for v in variants) + " |", "|---|" + "---|" * len(variants)]
    totals = dict.fromkeys(variants, 0.0)
    complete = dict.fromkeys(variants, True)
    measured = dict.fromkeys(variants, False)
    for task_name in tasks:
        cells = []
        for v in variants:
            rs = [table.get((task_name, m, v)) for m in models]
            minutes = sum(r["ref_steps"] / r["steps_per_s"] / 60 * seeds for r in rs if r)
            complete[v] &= all(rs)
            measured[v] |= any(rs)
            totals[v] += minutes
            cells.append("- (none measured)" if not any(rs) else f"{minutes:.0f}" + ("" if all(rs) else " (incomplete)"))
        out.append(f"| {task_name} | " + " | ".join(cells) + " |")
    out.append("| **all** | " + " | ".join("- (none measured)" if not measured[v] else
                                          f"**{totals[v]:.0f}**" + ("" if complete[v] else " (incomplete)")
                                          for v in variants) + " |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=LRA_TASKS)
    ap.add_argument("--models", nargs="+", default=LRA_MODELS)
    ap.add_argument("--variants", default="base,lazy,prefetch,fast", help="any of " + ",".join(VARIANTS))
    ap.add_argument("--steps", type=int, default=10, help="steps per timing window (3 windows per cell)")
    ap.add_argument("--repeat", type=int, default=1, help="measurements per cell (the table: median, min-max)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per cell of the LRA table (GPU-time estimate)")
    ap.add_argument("--data", choices=("synthetic", "task"), default="synthetic")
    ap.add_argument("--set", action="append", default=[], help="config override for every cell, e.g. train.amp=off")
    ap.add_argument("--peak-tflops", type=float, help="the device's peak dense bf16 TFLOP/s (for MFU)")
    ap.add_argument("--md", help="also write the tables as Markdown (with device, versions, date, command)")
    ap.add_argument("--quick", action="store_true", help="CPU, tiny models and length 64, 2-step windows")
    ap.add_argument("--budget-s", type=float, default=540, help="start no new cell after this many seconds "
                    "(keeps one call under a 10-minute limit; cells not run are marked)")
    args = ap.parse_args()
    if args.quick:
        args.steps = min(args.steps, 2)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"unknown variant '{unknown[0]}': expected any of {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.repeat < 1:
        print(f"--repeat {args.repeat}: expected a positive number of measurements per cell", file=sys.stderr)
        return 2
    if args.quick and args.data == "task":
        print("--quick with --data task: --quick times synthetic rows of length 64, a task's own rows keep their "
              "length; drop --quick and shrink the model with --set model.* instead", file=sys.stderr)
        return 2
    load_all()
    device = torch.device("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    peak = peak_flops(device, args.peak_tflops)
    dev_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"CPU ({torch.get_num_threads()} threads)")
    header = ["# Training throughput: the trainer's loop, LRA reference configurations", "",
              f"- device: {dev_name}; torch {torch.__version__}, CUDA {torch.version.cuda}",
              f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
              f"- command: `python3 {' '.join(sys.argv)}`",
              f"- data: {args.data}; {args.steps} steps per window, the last of 3 windows timed (warm-up: the first "
              f"window's time); {args.repeat} measurement(s) per cell"
              + (", median (min-max)" if args.repeat > 1 else ""),
              f"- MFU against {peak / 1e12:.0f} TFLOP/s" if peak else "- MFU: no peak known for this device", ""]
    lines = list(header)

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    for h in header:
        print(h)
    say("| task | model | batch x length | " + " | ".join(f"{v} tokens/s | {v} MFU | {v} warm-up" for v in variants)
        + " |")
    say("|---|---|---|" + "---|---|---|" * len(variants))
    table: dict = {}
    start = time.perf_counter()
    for task_name in args.tasks:
        for model in args.models:
            runs: dict = {v: [] for v in variants}
            failed: dict = {}
            for rep in range(args.repeat):  # the variants take turns, so that a drift falls on all of them
                for v in variants:
                    if v in failed or time.perf_counter() - start > args.budget_s:
                        continue
                    t0 = time.perf_counter()
                    try:
                        runs[v].append(measure(task_name, model, v, args, device))
                    except UserError as e:  # the model cannot run on this task (build_model says why)
                        failed[v] = f"- ({e})"[:80]
                    except Exception as e:  # e.g. a compile failure: reported in the cell, the table goes on
                        failed[v] = f"failed: {type(e).__name__}: {' '.join(str(e).split())[:100]}"  # one line
                    print(f"  {task_name} {model} {v} #{rep + 1}: {time.perf_counter() - t0:.1f} s"
                          + (f" ({failed[v]})" if v in failed else ""), file=sys.stderr, flush=True)
            cells = [cell(runs[v], failed.get(v), peak, args.repeat) for v in variants]
            for v in variants:
                if runs[v] and v not in failed and not not_compiled(runs[v]):
                    table[(task_name, model, v)] = {"ref_steps": runs[v][0]["ref_steps"],
                                                    "steps_per_s": statistics.median(r["steps_per_s"] for r in runs[v])}
            shape = next((f"{rs[0]['batch']} x {rs[0]['seq']}" for rs in runs.values() if rs), "-")
            say(f"| {task_name} | {model} | {shape} | " + " | ".join(cells) + " |")
    say()
    say(f"GPU minutes of the LRA table at the reference budgets ({args.seeds} seeds per cell; reference max_steps / "
        "measured steps per second, the median of the repeats):")
    say()
    for line in minutes_table(table, args.tasks, args.models, variants, args.seeds):
        say(line)
    say()
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
