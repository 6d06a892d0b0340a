"""Pathfinder generation: images/s by resolution and worker count, label balance, pixel statistics
of generated images next to the benchmark generator's reference images.

    python benchmarks/bench_pathfinder.py [--n32 400] [--n128 40] [--balance 2000]

The benchmark's own generator (drewlinsley/pathfinder snakes2.py) makes about 1.7 images/s on one core
at 32x32.
"""

import argparse
import datetime
import os
import time
from pathlib import Path

import numpy as np

from lra_wavelet.data import snakes

REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/lra_release/pathfinder32/curv_contour_length_14"


def stats(images: np.ndarray) -> str:
    return (f"{images.mean():.1f} | {(images > 0).mean() * 100:.1f}% | {(images > 128).mean() * 100:.1f}% | "
            f"{(images == 255).mean() * 100:.2f}%")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n32", type=int, default=400)
    ap.add_argument("--n128", type=int, default=40)
    ap.add_argument("--balance", type=int, default=2000)
    ap.add_argument("--out", default="results/benchmarks/pathfinder.md")
    a = ap.parse_args()
    out = [f"# Pathfinder generation\n\n- machine: {os.cpu_count()} cores; date {datetime.date.today()}\n"
           f"- command: `python benchmarks/bench_pathfinder.py --n32 {a.n32} --n128 {a.n128} --balance {a.balance}`\n"
           "- rendering only (no PNG writing), the benchmark's settings, hard (contour length 14)\n",
           "| resolution | workers | images | seconds | images/s | vs reference (1.7/s at 32, one core) |",
           "|---|---|---|---|---|---|"]
    for size, n in ((32, a.n32), (128, a.n128)):
        p = snakes.lra_params(size)
        snakes.render_many(p, 1, range(2))  # warm the per-process sprite cache
        for workers in sorted({1, 2, os.cpu_count() or 1}):
            t0 = time.perf_counter()
            snakes.render_many(p, 0, range(n), workers=workers)
            dt = time.perf_counter() - t0
            ratio = f"{n / dt / 1.7:.0f}x" if size == 32 else "-"
            out.append(f"| {size} | {workers} | {n} | {dt:.1f} | {n / dt:.1f} | {ratio} |")
    big = snakes.render_many(snakes.lra_params(32), 0, range(a.balance), workers=os.cpu_count() or 1)
    labels = np.array([s.label for s in big])
    out += ["", f"Label balance over {a.balance} generated 32x32 images: {labels.mean() * 100:.1f}% label 1.", ""]
    out += ["| images | mean pixel | non-zero | > 128 | = 255 |", "|---|---|---|---|---|"]
    if REFERENCE.is_dir():
        from PIL import Image

        ref = np.stack([np.asarray(Image.open(f)) for f in sorted((REFERENCE / "imgs/0").glob("*.png"))])
        out.append(f"| reference generator ({len(ref)}) | {stats(ref)} |")
    out.append(f"| ours ({a.balance}) | {stats(np.stack([s.image for s in big]))} |")
    text = "\n".join(out) + "\n"
    print(text)
    Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
