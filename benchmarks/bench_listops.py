"""ListOps generation speed: accepted samples per second by worker count (the benchmark's settings).

    python benchmarks/bench_listops.py [--n 6000] [--out results/benchmarks/listops.md]

The benchmark's own generator (lra_benchmarks/data/listops.py) makes about 380 samples/s on one core.
"""

import argparse
import datetime
import os
import time
from pathlib import Path

from lra_wavelet.data.listops import ListOpsConfig, generate
from lra_wavelet.results import cpu_model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=6000, help="accepted samples per measurement")
    p.add_argument("--out", default="results/benchmarks/listops.md")
    a = p.parse_args()
    rows = []
    for workers in sorted({1, 2, os.cpu_count() or 1}):
        cfg = ListOpsConfig(gen_train=a.n, gen_val=0, gen_test=0, gen_workers=workers, gen_seed=123)
        t0 = time.perf_counter()
        generate(cfg, progress=False)
        dt = time.perf_counter() - t0
        rows.append((workers, a.n, dt, a.n / dt))
    table = ["| workers | samples | seconds | samples/s | vs reference (380/s, one core) |", "|---|---|---|---|---|"]
    table += [f"| {w} | {n} | {dt:.2f} | {r:.0f} | {r / 380:.1f}x |" for w, n, dt, r in rows]
    text = "\n".join(table)
    print(text)
    head = (f"# ListOps generation speed\n\n- machine: {os.cpu_count()} cores, {cpu_model()}\n"
            f"- date: {datetime.date.today()}\n- command: `python benchmarks/bench_listops.py --n {a.n}`\n"
            "- settings: the benchmark's (depth <= 10, 2-10 arguments, 500 < length < 2000), deduplicated\n\n")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(head + text + "\n")


if __name__ == "__main__":
    main()
