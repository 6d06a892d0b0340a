"""Benchmark of the WaveletGPT operation and of a full training step, GPT vs WaveletGPT (CUDA).

    python3 benchmarks/bench_wavelet.py [--md results/benchmarks/wavelet_op.md] [--no-compile] [--sweep]

1. correctness: the fused kernel against the prefix-sum reference in float64 (forward and backward,
   causal and centred windows, both start-of-sequence rules), and float32 / bf16 errors;
2. the op alone (float32, the residual stream's dtype) at the paper's batch (64 x 512 x 128) and at
   512 x 512 x 128 = 33.5M elements: the copy-bandwidth floor (a device copy of the same tensor:
   read x once, write y once, exactly the bytes the op must move), eager prefix sums, compiled prefix
   sums, the fused kernel; forward and forward+backward; L2 flushed before every timed call;
3. a full training step at the paper's size (10 layers, d_model 128, FFN 512, 8 heads, context 512,
   vocabulary 256, batch 64): the trainer's own step (`train.train_step`: bf16 autocast, AdamW, gradient
   clipping, schedule) for GPT and WaveletGPT (prefix sums and fused), eager and torch.compile'd, timed in
   interleaved rounds in one process so that the ratios compare like with like.
Prints a table and writes it as Markdown with the device, versions, date and command.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lra_wavelet.models  # noqa: E402,F401
from lra_wavelet.models import triton_ops  # noqa: E402
from lra_wavelet.models.gpt import WaveletConfig, WaveletOp  # noqa: E402
from lra_wavelet.config import RunConfig, TaskConfig, TrainConfig  # noqa: E402
from lra_wavelet.registry import MODELS  # noqa: E402
from lra_wavelet.train import build, train_step  # noqa: E402

PAPER = dict(n_layers=10, d_model=128, n_heads=8, d_ff=512)
LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


# ----------------------------------------------------------------------------- timing


_flush = None


def bench(fn, reps: int = 40, warmup: int = 5, grads=()) -> float:
    """Median milliseconds of fn() with device events; L2 flushed before each call."""
    global _flush
    if _flush is None:
        _flush = torch.empty(256 * 2**20, dtype=torch.int8, device="cuda")
    for _ in range(warmup):
        for g in grads:
            g.grad = None
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        for g in grads:
            g.grad = None
        _flush.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


# ----------------------------------------------------------------------------- 1. correctness


def check_correctness() -> bool:
    say("## Correctness of the fused kernel (relative L2 error vs prefix sums in float64)")
    say()
    say("| case | dtype | forward | backward | compiled-graph op forward | backward |")
    say("|---|---|---|---|---|---|")
    ok = True
    cases = [("causal, available, second half", dict(causal_op=True, sos="available")),
             ("causal, zero, interleaved", dict(causal_op=True, sos="zero", coords="interleaved")),
             ("centred, available, first half", dict(causal_op=False, sos="available", coords="first_half")),
             ("causal, single level", dict(causal_op=True, level_map="single"))]
    for (name, kw), (B, T, E) in zip(cases, [(8, 512, 128), (3, 333, 96), (4, 512, 128), (2, 1000, 64)]):
        ref = WaveletOp(WaveletConfig(d_model=E, impl="prefix", **kw), context=T).cuda()
        fused = WaveletOp(WaveletConfig(d_model=E, impl="triton", **kw), context=T).cuda()
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
            x = torch.randn(B, T, E, device="cuda", dtype=torch.float64)
            g = torch.randn(B, T, E, device="cuda", dtype=torch.float64)
            xr = x.clone().requires_grad_()
            yr = ref(xr)
            (yr * g).sum().backward()
            xf = x.to(dtype).clone().requires_grad_()
            yf = fused(xf)
            (yf * g.to(dtype)).sum().backward()
            xo = x.to(dtype).clone().requires_grad_()  # the custom op that torch.compile runs (in place when causal)
            yo = triton_ops.box_mean_fused(xo, fused.win_full, fused.off_full, fused.max_off, fused.sos == "zero",
                                           fused.lo, fused.hi)
            (yo * g.to(dtype)).sum().backward()
            errs = rel(yf, yr), rel(xf.grad, xr.grad), rel(yo, yr), rel(xo.grad, xr.grad)
            good = max(errs) < tol and bool(torch.isfinite(yf).all() and torch.isfinite(yo).all())
            ok &= good
            say(f"| {name} ({B}x{T}x{E}) | {str(dtype)[6:]} | " + " | ".join(f"{e:.1e}" for e in errs)
                + f"{'' if good else ' FAIL'} |")
    say()
    return ok


# ----------------------------------------------------------------------------- 2. the op alone


def op_table(sizes, do_compile: bool) -> None:
    say("## The operation alone (float32; median ms, L2 flushed)")
    say()
    say("| B x T x E | elements | copy floor | eager prefix | compiled prefix | fused | fused / floor |"
        " eager prefix fwd+bwd | compiled prefix fwd+bwd | fused fwd+bwd | fused fwd+bwd / (2 x floor) |"
        " fused fwd+bwd, CUDA graph | its / (2 x floor) |")
    say("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    inplace = {}
    for B, T, E in sizes:
        n = B * T * E
        x = torch.randn(B, T, E, device="cuda")
        y = torch.empty_like(x)
        g = torch.randn_like(x)
        floor = bench(lambda: y.copy_(x))
        prefix = WaveletOp(WaveletConfig(d_model=E, impl="prefix"), context=T).cuda()
        fused = WaveletOp(WaveletConfig(d_model=E, impl="triton"), context=T).cuda()
        ops = {"eager": prefix, "fused": fused}
        if do_compile:
            try:
                ops["compiled"] = torch.compile(prefix)
                ops["compiled"](x)
            except Exception as e:  # report after the table, keep going
                print(f"compile of the prefix-sum op failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
                ops.pop("compiled")
        fwd, fb = {}, {}
        with torch.no_grad():
            for k, op in ops.items():
                fwd[k] = bench(lambda: op(x))
        xg = x.clone().requires_grad_()
        for k, op in ops.items():
            fb[k] = bench(lambda: op(xg).backward(g), grads=[xg])
        # the same forward and backward replayed from CUDA graphs: no host time (autograd, launches) between the
        # timing events, which the plain figure includes whenever the GPU waits for the host (a re-run on
        # another host differed: 0.474 vs 0.253 ms at 33.6M elements)
        try:
            graphed = torch.cuda.make_graphed_callables(fused, (xg,))
            fb["graph"] = bench(lambda: graphed(xg).backward(g), grads=[xg])
        except Exception as e:  # report it beside the table, keep going
            print(f"CUDA graph of the fused op failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
        c = lambda d, k: f"{d[k]:.4f}" if k in d else "-"  # noqa: E731
        gbs = 2 * n * 4 / floor / 1e6
        say(f"| {B}x{T}x{E} | {n / 1e6:.1f}M | {floor:.4f} ({gbs:.0f} GB/s) | {c(fwd, 'eager')} | "
            f"{c(fwd, 'compiled')} | {fwd['fused']:.4f} | {fwd['fused'] / floor:.2f} | {c(fb, 'eager')} | "
            f"{c(fb, 'compiled')} | {fb['fused']:.4f} | {fb['fused'] / (2 * floor):.2f} | {c(fb, 'graph')} | "
            + (f"{fb['graph'] / (2 * floor):.2f} |" if "graph" in fb else "- |"))
        # what the compiled graph runs for causal windows: the copy folded into the kernel that made x, then the
        # kernel in place on the touched columns; 'increment' = compiled op(a + b) minus compiled a + b
        args = (fused.win_full, fused.lo, fused.hi, False)
        inplace[(B, T, E)] = [bench(lambda: triton_ops._launch_inplace(y, *args, backward=False)),
                              bench(lambda: triton_ops._launch_inplace(y, *args, backward=True))]
        if do_compile:
            add, add_op = torch.compile(lambda a, b: a + b), torch.compile(lambda a, b: fused(a + b))
            with torch.no_grad():
                inplace[(B, T, E)] += [bench(lambda: add(x, g)), bench(lambda: add_op(x, g))]
        inplace[(B, T, E)].insert(0, floor)
    say()
    say("Causal windows inside torch.compile: the kernel in place on the touched columns (mod_frac 0.5: half the "
        "bytes; the copy of the rest is folded into the kernel that produced x). Median ms, L2 flushed.")
    say()
    say("| B x T x E | copy floor | in place fwd | bwd | (fwd+bwd) / (2 x floor) | compiled a + b | compiled op(a + b) |"
        " increment / floor |")
    say("|---|---|---|---|---|---|---|---|")
    for (B, T, E), v in inplace.items():
        floor, f, b = v[:3]
        comp = f"{v[3]:.4f} | {v[4]:.4f} | {(v[4] - v[3]) / floor:.2f}" if len(v) > 3 else "- | - | -"
        say(f"| {B}x{T}x{E} | {floor:.4f} | {f:.4f} | {b:.4f} | {(f + b) / (2 * floor):.2f} | {comp} |")
    say()


def sweep(sizes) -> None:
    """Tile shapes of the fused kernel: forward and backward kernels timed alone; keeps the best for the rest."""
    say("## Fused kernel tile sweep (float32; median ms of the forward and the backward kernel, L2 flushed)")
    say()
    say("| T axis | BLOCK_T | BLOCK_E | warps | stages | " + " | ".join(f"{B}x{T}x{E} fwd | bwd" for B, T, E in sizes)
        + " | (fwd+bwd) / (2 x floor), summed over sizes |")
    say("|---|---|---|---|---|" + "---|---|" * len(sizes) + "---|")
    # (T_AXIS, BLOCK_T, BLOCK_E, warps, stages). T_AXIS 0 scans along the tile's first axis, 1 along its last
    # (measured 2026-11-28: axis 0 at 3.9-4.5x the floor, axis 1 at 1.9-2.3x). Short tiles walk T in many
    # dependent steps; narrow ones (BLOCK_E) give more programs; stages > 1 let Triton prefetch the next tile.
    # (stages 3 and BLOCK_T 32 / 256 / 512 lost everywhere in the sweep of 2026-11-28 and are not repeated.)
    configs = [(0, 32, 32, 4, 1), (1, 64, 32, 4, 1), (1, 128, 32, 4, 1), (1, 64, 16, 2, 1), (1, 64, 32, 2, 1),
               (1, 64, 64, 4, 1), (1, 32, 64, 4, 1)]
    data = []
    for B, T, E in sizes:
        x = torch.randn(B, T, E, device="cuda")
        y = torch.empty_like(x)
        op = WaveletOp(WaveletConfig(d_model=E, impl="triton"), context=T).cuda()
        floor = bench(lambda: y.copy_(x), reps=20)
        data.append((x, op, floor))
    best, best_t = None, float("inf")
    for cfg in configs:
        triton_ops.T_AXIS, triton_ops.BLOCK_T, triton_ops.BLOCK_E, triton_ops.NUM_WARPS, triton_ops.NUM_STAGES = cfg
        row, total = [], 0.0
        try:
            for x, op, floor in data:
                args = (op.win_full, op.off_full, op.max_off, False)
                f = bench(lambda: triton_ops._launch(x, *args, backward=False), reps=20)
                b = bench(lambda: triton_ops._launch(x, *args, backward=True), reps=20)
                row += [f"{f:.4f}", f"{b:.4f}"]
                total += (f + b) / (2 * floor)
        except Exception as e:  # a tile too large for this device's registers / shared memory
            say(f"| {' | '.join(map(str, cfg))} | failed: {type(e).__name__}: {str(e)[:120]} |")
            continue
        say(f"| {' | '.join(map(str, cfg))} | " + " | ".join(row) + f" | {total:.2f} |")
        if total < best_t:
            best, best_t = cfg, total
    triton_ops.T_AXIS, triton_ops.BLOCK_T, triton_ops.BLOCK_E, triton_ops.NUM_WARPS, triton_ops.NUM_STAGES = best
    say()
    say(f"kept {best} (smallest summed ratio)")
    say()


# ----------------------------------------------------------------------------- 3. training step


def sweep_inplace(B: int = 64, T: int = 512, E: int = 128) -> None:
    """Launch shapes of the in-place kernel (causal windows under torch.compile) at the paper's batch; keeps the best."""
    say(f"## In-place kernel sweep ({B}x{T}x{E} float32, touched columns only; median ms, L2 flushed)")
    say()
    say("| BLOCK_T | BLOCK_E | warps | BLOCK_PRE | prefetch | fwd | bwd | (fwd+bwd) / (2 x copy floor) |")
    say("|---|---|---|---|---|---|---|---|")
    x = torch.randn(B, T, E, device="cuda")
    y = torch.empty_like(x)
    floor = bench(lambda: y.copy_(x))  # the same floor as the op table's (no allocation in the timed call)
    op = WaveletOp(WaveletConfig(d_model=E), context=T).cuda()
    args = (op.win_full, op.lo, op.hi, False)
    best, kept = None, triton_ops.INPLACE
    for cfg in [(bt, be, nw, 256, pf) for bt in (32, 64, 128) for be in (16, 32) for nw in (2, 4)
                for pf in (False, True)]:
        triton_ops.INPLACE = cfg
        f = bench(lambda: triton_ops._launch_inplace(x, *args, backward=False))
        b = bench(lambda: triton_ops._launch_inplace(x, *args, backward=True))
        r = (f + b) / (2 * floor)
        say(f"| {' | '.join(map(str, cfg))} | {f:.4f} | {b:.4f} | {r:.2f} |")
        if best is None or r < best[0]:
            best = (r, cfg)
    triton_ops.INPLACE = best[1] if best else kept
    say()
    say(f"kept {triton_ops.INPLACE} (copy floor {floor:.4f} ms)")
    say()


MODES = {"eager": None, "compiled": "default", "graphs": "reduce-overhead"}  # label -> torch.compile mode


def cuda_ms(fn, steps: int) -> float:
    """Milliseconds per call of fn over `steps` calls, by CUDA events."""
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(steps):
        fn()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / steps


def timed_rounds(runs: dict, rounds: int, steps: int, deadline: float | None = None, timer=cuda_ms) -> int:
    """Interleaved rounds (every configuration once per round, so machine drift hits all alike), appending
    each configuration's ms per step to its list (runs: key -> (step, times, ...)); no round starts after
    `deadline` (time.time()). Returns the rounds done."""
    done = 0
    for _ in range(rounds):
        if deadline is not None and time.time() > deadline:
            break
        for step, times, *_ in runs.values():
            times.append(timer(step, steps))
        done += 1
    return done


def train_steps(modes: list[str], batch: int, rounds: int, steps: int, extra: bool,
                deadline: float | None = None) -> None:
    say(f"## Training step at paper size (batch {batch}, bf16 autocast, fused AdamW, grad clip; ms per step)")
    say()
    task = types.SimpleNamespace(kind="lm", seq_len=512, vocab_size=256, n_classes=0, pad_id=None)
    # (label, registered model, config overrides)
    specs = [("gpt", "gpt", {}, modes), ("wavelet, impl prefix", "wavelet", {"impl": "prefix"}, modes),
             ("wavelet, impl triton", "wavelet", {"impl": "triton"}, modes)]
    if extra:  # not in CUDA-graph mode (their compile is the slowest; keeps one run under the device's 10 minutes)
        specs += [("wavelet-learnable", "wavelet-learnable", {}, ("eager", "compiled")),
                  ("wavelet-ema", "wavelet-ema", {}, ("eager", "compiled"))]
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(0, 256, (batch, 512), device="cuda", generator=gen)
    y = torch.randint(0, 256, (batch, 512), device="cuda", generator=gen)
    runs, failures = {}, []
    for label, name, kw, spec_modes in specs:
        for mode in spec_modes:
            if mode not in modes:
                continue
            if deadline is not None and time.time() > deadline:
                failures.append(f"{label} {mode}: not run (--budget-s reached before its warm-up)")
                continue
            cls = MODELS.get(name)
            train_cfg = TrainConfig(compile=MODES[mode] is not None, compile_mode=MODES[mode] or "default")
            cfg = RunConfig(TaskConfig(name="synthetic-lm"), cls.Config(name=name, **PAPER, **kw), train_cfg,
                            device="cuda")
            parts = build(cfg, torch.device("cuda"), task=task, splits={})  # the trainer's model, AdamW, autocast

            def step(parts=parts):
                return train_step(parts, {"x": x, "y": y})[0]  # the trainer's own step

            t0 = time.time()
            try:
                losses = [float(step()) for _ in range(3)]
            except Exception as e:
                failures.append(f"{label} {mode}: failed: {type(e).__name__}: {str(e)[:300]}")
                continue
            runs[(label, mode)] = (step, [], time.time() - t0, losses)
            print(f"  {label} {mode}: warm-up {time.time() - t0:.1f} s, losses {losses}", flush=True)
    done = timed_rounds(runs, rounds, steps, deadline)

    def cell(label, mode):
        k, g = (label, mode), ("gpt", mode)
        if k not in runs or g not in runs or not runs[k][1]:
            return "- | -"
        t, tg = runs[k][1], runs[g][1]
        ratios = sorted(a / b for a, b in zip(t, tg))  # paired: the same round, so machine drift cancels
        q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
        return f"{statistics.median(t):.2f} | {statistics.median(ratios):.3f} [{q1:.3f}-{q3:.3f}]"

    say("| model | " + " | ".join(f"{m} ms | {m} / gpt" for m in modes) + " | warm-up s | first loss |")
    say("|---|" + "---|---|" * len(modes) + "---|---|")
    for label, *_ in specs:
        wu = " / ".join(f"{runs[(label, m)][2]:.0f}" for m in modes if (label, m) in runs)
        first = " / ".join(f"{runs[(label, m)][3][0]:.4f}" for m in modes if (label, m) in runs)
        say(f"| {label} | " + " | ".join(cell(label, m) for m in modes) + f" | {wu} | {first} |")
    for f in failures:
        say(f)
    say()
    say(f"Modes: eager; compiled = torch.compile default mode; graphs = torch.compile mode='reduce-overhead' "
        f"(CUDA graphs). impl auto (the default) runs the triton row's code in eager mode and "
        f"{'the triton' if triton_ops.COMPILED_KERNEL else 'the prefix'} row's under torch.compile. "
        f"{done} interleaved rounds" + (f" (of {rounds}: --budget-s)" if done < rounds else "") +
        f" of {steps} steps per configuration; ms = median of the round means; "
        "'/ gpt' = median [quartiles] over rounds of the ratio to GPT's time in the same round. Range of the "
        "round means: " + ", ".join(f"{k[0]} {k[1]} {min(v[1]):.2f}-{max(v[1]):.2f}" for k, v in runs.items() if v[1]))
    say()


def write_md(path: str, header: list[str]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(header + LINES) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--md", default="results/benchmarks/wavelet_op.md")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="time several tile shapes and keep the best")
    ap.add_argument("--sweep-inplace", action="store_true", help="time launch shapes of the in-place kernel")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--modes", default="eager,compiled,graphs", help="step timings: any of " + ",".join(MODES))
    ap.add_argument("--skip-op", action="store_true", help="only the training steps")
    ap.add_argument("--extra", action="store_true", help="also time wavelet-learnable and wavelet-ema")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no step warm-up or timed round after this many seconds from the start (the table "
                         "then says how many rounds ran); each compile warm-up takes 25-40 s on an H200")
    args = ap.parse_args()
    deadline = None if args.budget_s is None else time.time() + args.budget_s
    if not torch.cuda.is_available() or not triton_ops.HAS_TRITON:
        print("this benchmark needs CUDA and triton", file=sys.stderr)
        return 1
    import triton

    header = ["# WaveletGPT operation: fused kernel vs prefix sums, and training-step cost", "",
              f"- device: {torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).multi_processor_count} SMs)",
              f"- torch {torch.__version__}, triton {triton.__version__}, CUDA {torch.version.cuda}",
              f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
              f"- command: `python3 {' '.join(sys.argv)}`", ""]
    for line in header:
        print(line)
    torch.backends.cuda.matmul.allow_tf32 = True
    ok = check_correctness()
    write_md(args.md, header)
    if not ok:
        say("**correctness check failed: no timings**")
        write_md(args.md, header)
        return 1
    sizes = [(64, 512, 128), (512, 512, 128)]
    if args.sweep and not args.skip_op:
        sweep(sizes)
        write_md(args.md, header)
    if args.sweep_inplace:
        sweep_inplace()
        write_md(args.md, header)
    say(f"fused kernel launch at T=512: {triton_ops.tiles(512)}; in place: {triton_ops.INPLACE}")
    say()
    if not args.skip_op:
        op_table(sizes, not args.no_compile)
        write_md(args.md, header)
    modes = [m for m in args.modes.split(",") if m and (m == "eager" or not args.no_compile)]
    train_steps(modes, args.batch, args.rounds, args.steps, args.extra, deadline)
    write_md(args.md, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
