"""Several training processes on one GPU at once, with and without CUDA MPS: does packing runs pay?

    python3 benchmarks/bench_packed.py --task pathfinder --model wavelet --procs 1,2,4 [--mps] [--variant compiled]
                                       [--seconds 20] [--repeat 2] [--md results/benchmarks/packed.md]
    python3 benchmarks/bench_packed.py --quick --variant fast --procs 1,2   # CPU, tiny sizes: checks it runs

Each measurement starts K processes of the same run (the task's reference configuration, bench_throughput's
--variant switches, synthetic full-length batches, one seed each: 0, 1, ...). Each builds its run with
`train.build`, takes --warmup steps of the trainer's own step (`train.train_step`, compiled inside
`train.compiling` as a run is), then waits until every process is ready; all start together and train for
--seconds of wall time, synchronising the device every --sync-every steps, and report their tokens/s. The
aggregate is the sum over the K processes (their timed windows overlap by construction; the table shows by how
much), against one process alone. --repeat N measures each K N times, the Ks taking turns; cells show the
median and the min-max spread.

Without MPS the GPU time-slices between processes (one context at a time), so K processes can only gain what one
leaves to the host (launches, data). With --mps the script starts an MPS control daemon of its own (pipe and log
directories in a fresh temporary folder, so nothing else on the machine is touched), runs the same
measurements under it, and always quits it at the end; MPS lets kernels of different processes run at the same
time. If the daemon cannot start (no binary, refused), the table says why and shows the plain rows only. The
daemon's log says whether clients were served; its last lines go into --md.
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

MPS_CONTROL = "nvidia-cuda-mps-control"


# ----------------------------------------------------------------------------- one process (--child)

def child(a) -> int:
    import torch

    import bench_throughput as bt
    from lra_wavelet import train as T
    from lra_wavelet.registry import load_all

    out = Path(a.result)
    try:
        load_all()
        device = torch.device("cpu" if a.quick or not torch.cuda.is_available() else "cuda")
        if device.type == "cpu":  # K processes share the cores instead of each taking all of them
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // a.of))
        p = bt.build_run(a.task, a.model, a.variant, argparse.Namespace(set=a.set, quick=a.quick, data="synthetic"),
                         device, (f"seed={a.seed}",))
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        with T.compiling(p, auto=False, log=lambda s: None):
            data = T.batches(p, 0)
            for _ in range(a.warmup):
                T.train_step(p, next(data))
            sync()
            Path(a.ready).touch()
            deadline = time.time() + a.wait_s
            while not Path(a.go).exists():
                if time.time() > deadline:
                    raise TimeoutError(f"no start signal within {a.wait_s:.0f} s")
                time.sleep(0.005)
            steps, t0 = 0, time.time()
            while True:
                for _ in range(a.sync_every):
                    T.train_step(p, next(data))
                steps += a.sync_every
                sync()
                t1 = time.time()
                if t1 - t0 >= a.seconds:
                    break
            data.close()
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        res = {"tokens_per_s": steps * p.tokens_per_step / (t1 - t0), "steps": steps, "t0": t0, "t1": t1,
               "device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
               "batch": p.cfg.train.batch_size, "seq": p.task.seq_len}
    except Exception as e:  # the parent reports it in the cell; a child never hangs the others
        Path(a.ready).touch()
        res = {"error": f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"}
    out.write_text(json.dumps(res))
    return 0


# ----------------------------------------------------------------------------- the parent

def start_mps(env: dict) -> str | None:
    """Start an MPS control daemon with env's pipe / log directories; None when it runs, else why not."""
    try:
        r = subprocess.run([MPS_CONTROL, "-d"], env=env, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return f"{MPS_CONTROL} not found"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{MPS_CONTROL} -d: {type(e).__name__}: {e}"
    if r.returncode:
        return f"{MPS_CONTROL} -d exited {r.returncode}: {' '.join((r.stderr or r.stdout).split())[:160]}"
    return None


def mps_client_starts(env: dict, timeout: float = 90.0) -> str | None:
    """None when a CUDA context opens under the daemon (one small allocation), else why not (a client that hangs
    would hang every measurement)."""
    code = "import torch; torch.zeros(1, device='cuda'); torch.cuda.synchronize()"
    try:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"a CUDA client under the daemon did not start within {timeout:.0f} s"
    if r.returncode:
        return f"a CUDA client under the daemon failed: {' '.join(r.stderr.split()[-12:])}"[:200]
    return None


def stop_mps(env: dict) -> None:
    try:
        subprocess.run([MPS_CONTROL], input="quit\n", env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass


def mps_log_summary(log_dir: Path) -> tuple[str, list[str]]:
    """(one line: servers started and clients seen in the daemon's logs, the last lines of control.log)."""
    text = "\n".join(f.read_text(errors="replace") for f in sorted(log_dir.glob("*.log")))
    low = text.lower()
    control = log_dir / "control.log"
    tail = control.read_text(errors="replace").splitlines()[-6:] if control.is_file() else []
    return (f"daemon log: {low.count('new server')} server start(s), {low.count('new client')} client "
            f"connection(s)"), tail


def one_measurement(a, k: int, env: dict, work: Path) -> list[dict]:
    """K children started together; their result dicts."""
    work.mkdir(parents=True, exist_ok=True)
    go = work / "go"
    procs, files = [], []
    for i in range(k):
        ready, result = work / f"ready.{i}", work / f"result.{i}.json"
        files.append((ready, result))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--task", a.task, "--model", a.model,
               "--variant", a.variant, "--seed", str(i), "--warmup", str(a.warmup), "--seconds", str(a.seconds),
               "--sync-every", str(a.sync_every), "--of", str(k), "--ready", str(ready), "--go", str(go), "--result", str(result),
               "--wait-s", str(a.wait_s), *[x for s in a.set for x in ("--set", s)]] + (["--quick"] if a.quick else [])
        with open(work / f"stderr.{i}.txt", "w") as err:  # a file, not a pipe: a chatty compiler never blocks a child
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err))
    deadline = time.time() + a.wait_s
    while not all(r.exists() for r, _ in files) and time.time() < deadline:
        if any(pr.poll() not in (None, 0) for pr in procs):
            break
        time.sleep(0.05)
    go.touch()
    out, end = [], time.time() + a.seconds * 3 + 120  # a process that hangs (a CUDA context that never comes) is killed
    for i, (pr, (_, result)) in enumerate(zip(procs, files)):
        why = "exited"
        try:
            pr.wait(timeout=max(1.0, end - time.time()))
        except subprocess.TimeoutExpired:
            pr.kill()
            pr.wait()
            why = f"killed: no result {a.seconds * 3 + 120:.0f} s after the start signal;"
        if result.is_file():
            out.append(json.loads(result.read_text()))
        else:
            err = (work / f"stderr.{i}.txt").read_text(errors="replace")
            out.append({"error": f"{why} {pr.returncode}: {' '.join(err.split()[-12:])}"[:160]})
    return out


def spread(xs: list[float]) -> str:
    f = lambda v: f"{v / 1e6:.3g}M"  # noqa: E731
    return f"{f(statistics.median(xs))} ({f(min(xs))}-{f(max(xs))})" if len(xs) > 1 else f(xs[0])


def table(meas: dict, ks: list[int], modes: list[str]) -> list[str]:
    """Markdown rows: mode, K, aggregate, per process, x one plain process, timed-window overlap."""
    rows = ["| mode | processes | aggregate tokens/s | per process | x one process alone | windows overlap |",
            "|---|---|---|---|---|---|"]
    base = [sum(r["tokens_per_s"] for r in m) for m in meas.get(("plain", 1), []) if all("error" not in r for r in m)]
    ref = statistics.median(base) if base else None
    for mode in modes:
        for k in ks:
            ms = meas.get((mode, k), [])
            errs = [r["error"] for m in ms for r in m if "error" in r]
            if not ms:
                rows.append(f"| {mode} | {k} | not run | - | - | - |")
                continue
            if errs:
                rows.append(f"| {mode} | {k} | failed: {errs[0]} | - | - | - |")
                continue
            agg = [sum(r["tokens_per_s"] for r in m) for m in ms]
            per = [r["tokens_per_s"] for m in ms for r in m]
            overlap = [max(0.0, min(r["t1"] for r in m) - max(r["t0"] for r in m)) / min(r["t1"] - r["t0"] for r in m)
                       for m in ms]  # the time all K trained at once, over the shortest window
            ratio = f"x{statistics.median(agg) / ref:.2f}" if ref else "-"
            rows.append(f"| {mode} | {k} | {spread(agg)} | {spread(per)} | {ratio} | {min(overlap):.0%} (least) |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="pathfinder")
    ap.add_argument("--model", default="wavelet")
    ap.add_argument("--variant", default="compiled", help="bench_throughput.py's variants (its train.* switches)")
    ap.add_argument("--procs", default="1,2,4", help="process counts to measure, e.g. 1,2,4")
    ap.add_argument("--mps", action="store_true", help="also measure under an MPS daemon this script starts")
    ap.add_argument("--seconds", type=float, default=20.0, help="timed wall time of each process")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first (compilation)")
    ap.add_argument("--sync-every", type=int, default=10, help="steps between device synchronisations")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--wait-s", type=float, default=600.0, help="longest wait for every process to be ready")
    ap.add_argument("--set", action="append", default=[], help="config override for every process")
    ap.add_argument("--md", help="also write the table as Markdown (with device, versions, date, command)")
    ap.add_argument("--quick", action="store_true", help="CPU, tiny model, length 64")
    # one process (started by the parent)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--of", type=int, default=1, help=argparse.SUPPRESS)  # processes measured together
    for name in ("--ready", "--go", "--result"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a)

    import bench_throughput as bt
    if a.variant not in bt.VARIANTS or a.variant.startswith("seeds"):
        print(f"--variant {a.variant}: expected one of {', '.join(v for v in bt.VARIANTS if not v.startswith('seeds'))}",
              file=sys.stderr)
        return 2
    try:
        ks = sorted({int(k) for k in a.procs.split(",") if k})
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        print(f"--procs {a.procs}: expected positive process counts, e.g. 1,2,4", file=sys.stderr)
        return 2
    if 1 not in ks:
        ks = [1, *ks]  # the reference every ratio is against
    from lra_wavelet import config as config_mod
    from lra_wavelet.errors import UserError
    from lra_wavelet.registry import load_all
    try:  # a bad --set is said here once, not by every process
        load_all()
        config_mod.resolve(a.task, a.model, sets=tuple(a.set) + bt.VARIANTS[a.variant])
    except UserError as e:
        print(e, file=sys.stderr)
        return 2
    modes, notes = ["plain"], []
    meas: dict = {}
    with tempfile.TemporaryDirectory(prefix="lra-packed-") as tmp:
        tmp = Path(tmp)

        def measure_all(mode: str, env: dict) -> None:
            for rep in range(a.repeat):
                for k in ks:
                    t0 = time.time()
                    got = one_measurement(a, k, env, tmp / f"{mode}-{k}-{rep}")
                    meas.setdefault((mode, k), []).append(got)
                    errs = [r["error"] for r in got if "error" in r]
                    print(f"  {mode} x{k} #{rep + 1}: {time.time() - t0:.1f} s"
                          + (f" (failed: {errs[0]})" if errs else ""), file=sys.stderr, flush=True)
                    if errs:  # a failure would repeat: the mode's other rows stay "not run"
                        return

        measure_all("plain", dict(os.environ))
        if a.mps and a.quick:
            notes.append("MPS: not measured (--quick runs on the CPU)")
        elif a.mps:
            env = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": str(tmp / "mps-pipe"),
                   "CUDA_MPS_LOG_DIRECTORY": str(tmp / "mps-log")}
            for d in ("mps-pipe", "mps-log"):
                (tmp / d).mkdir()
            why = start_mps(env)
            if why is None:
                why = mps_client_starts(env)
                if why:
                    stop_mps(env)
            if why:
                notes.append(f"MPS: could not start ({why}); plain rows only")
            else:
                modes.append("mps")
                try:
                    measure_all("mps", env)
                finally:
                    stop_mps(env)
                line, tail = mps_log_summary(tmp / "mps-log")
                notes.append(f"MPS: {line}; " + ("control.log ends:" if tail else "no control.log"))
                notes.extend(f"    {ln}" for ln in tail)
    first = next((r for ms in meas.values() for m in ms for r in m if "error" not in r), {})
    header = ["# Packed training processes on one device" + (" (with and without CUDA MPS)" if a.mps else ""), "",
              f"- device: {first.get('device', '?')}; torch {first.get('torch', '?')}, CUDA {first.get('cuda')}",
              f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
              f"- command: `python3 {' '.join(sys.argv if argv is None else ['benchmarks/bench_packed.py', *argv])}`",
              f"- run: {a.task} x {a.model}, variant {a.variant}, batch x length {first.get('batch', '?')} x "
              f"{first.get('seq', '?')}, synthetic batches; each process {a.warmup} untimed steps, then "
              f"{a.seconds:g} s timed; {a.repeat} measurement(s) per row" + (", median (min-max)" if a.repeat > 1 else ""),
              ""]
    lines = header + table(meas, ks, modes) + [""] + [n if n.startswith("    ") else f"- {n}" for n in notes]
    print("\n".join(lines))
    if a.md:
        Path(a.md).parent.mkdir(parents=True, exist_ok=True)
        Path(a.md).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
