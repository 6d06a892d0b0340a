"""How fast the Text, Retrieval and Image tasks load: one-time build, cached reload, batch fetching.

    python benchmarks/bench_loading.py                         # offline stand-ins, fresh temp cache
    python benchmarks/bench_loading.py --data-dir $LRA_DATA    # the official data
    python benchmarks/bench_loading.py --cache ~/.cache/lra_wavelet   # reuse an existing cache
    python benchmarks/bench_loading.py --fake-official /tmp/fake --scale 0.1   # synthetic files in the
        official layouts (random text and pixels, real sizes x scale): times the official readers

For each task: the build time (parse the source and write the cache; 0 when the cache already had
it), the reload time from the memory-mapped cache, split sizes and label counts, and samples/s of
ArraySplit.train_batch(step, 32, seed) over random epochs (what the training loop calls each step).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench(name: str, data_dir, batch: int, seconds: float) -> dict:
    from lra_wavelet.registry import TASKS

    cls = TASKS.get(name)
    t0 = time.perf_counter()
    task = cls(cls.Config(name=name, data_dir=data_dir))
    task.splits()
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = cls(cls.Config(name=name, data_dir=data_dir))
    splits = again.splits()
    reload = time.perf_counter() - t0
    train = splits["train"]
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = train.train_batch(steps, batch, seed=0)  # consecutive steps, as in training (random rows)
        steps += 1
    rate = steps * batch / (time.perf_counter() - t0)
    return {"task": name, "source": again.source, "shape": tuple(b["x"].shape[1:]), "build_s": build,
            "reload_s": reload, "samples_per_s": rate,
            "sizes": {k: len(v) for k, v in splits.items()},
            "labels": {k: np.bincount(np.asarray(v.y)).tolist() for k, v in splits.items()}}


def write_fake_official(root: Path, scale: float) -> None:
    """Random data in the official layouts: aclImdb tree, AAN TSVs, CIFAR-10 pickles (sizes x scale)."""
    import pickle

    rng = np.random.default_rng(0)
    words = [bytes(rng.integers(97, 123, size=k, dtype=np.uint8)) for k in rng.integers(2, 9, size=5000)]
    corpus = b" ".join(words[i] for i in rng.integers(0, len(words), size=2_000_000))  # ~11 MB of "words"

    def text(n_bytes: int) -> bytes:
        start = int(rng.integers(0, len(corpus) - n_bytes - 1))
        return corpus[start:start + n_bytes]

    for split in ("train", "test"):  # IMDb: 12,500 reviews per label and split, ~1.3 kB each
        for lab in ("neg", "pos"):
            d = root / "aclImdb" / split / lab
            d.mkdir(parents=True, exist_ok=True)
            for i in range(int(12500 * scale)):
                (d / f"{i}_1.txt").write_bytes(text(min(int(rng.gamma(2.0, 650)), 10**6)))
    d = root / "tsv_data"  # AAN: 147,086 / 18,090 / 17,437 pairs, texts of a few to tens of kB
    d.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 147086), ("eval", 18090), ("test", 17437)):
        with open(d / f"new_aan_pairs.{split}.tsv", "wb") as f:
            for i in range(int(n * scale)):
                t1, t2 = text(min(int(rng.gamma(2.0, 5000)), 10**6)), text(min(int(rng.gamma(2.0, 5000)), 10**6))
                f.write(b"%d\tP%d\tQ%d\t%s\t%s\n" % (i % 2, i, i, t1, t2))
    d = root / "cifar-10-batches-py"  # CIFAR-10: 5 x 10,000 + 10,000 images
    d.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = int(10000 * scale)
        batch = {b"labels": rng.integers(0, 10, n).tolist(), b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="text,text-1000,retrieval,image")
    ap.add_argument("--data-dir", default=None, help="official data root (default: offline stand-ins)")
    ap.add_argument("--cache", default=None, help="cache root (default: a fresh temporary directory)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0, help="time spent fetching batches per task")
    ap.add_argument("--fake-official", default=None, metavar="DIR",
                    help="write random files in the official layouts to DIR and read them (implies --data-dir DIR)")
    ap.add_argument("--scale", type=float, default=0.1, help="with --fake-official: fraction of the real sizes")
    args = ap.parse_args()
    if args.fake_official:
        t0 = time.perf_counter()
        write_fake_official(Path(args.fake_official), args.scale)
        print(f"wrote fake official files (scale {args.scale}) to {args.fake_official} in {time.perf_counter() - t0:.1f} s")
        args.data_dir = args.fake_official
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    tmp = None
    if args.cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="lra_wavelet_bench_")
        args.cache = tmp.name
    os.environ["LRA_WAVELET_CACHE"] = args.cache
    import lra_wavelet.data  # noqa: F401  (registers the tasks)

    print(f"cache {args.cache}, batch {args.batch}, cpus {os.cpu_count()}")
    print(f"{'task':<10} {'source':<10} {'example':<12} {'build s':>8} {'reload s':>9} {'samples/s':>10}  sizes (labels)")
    for name in args.tasks.split(","):
        r = bench(name, args.data_dir, args.batch, args.seconds)
        sizes = ", ".join(f"{k} {n} {r['labels'][k] if len(r['labels'][k]) <= 2 else ''}".strip()
                          for k, n in r["sizes"].items())
        print(f"{r['task']:<10} {r['source']:<10} {'x'.join(map(str, r['shape'])):<12} {r['build_s']:>8.2f} "
              f"{r['reload_s']:>9.4f} {r['samples_per_s']:>10.0f}  {sizes}", flush=True)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
