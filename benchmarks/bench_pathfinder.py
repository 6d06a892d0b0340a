"""Pathfinder generation next to the benchmark's own generator: pixel statistics and distractor
snakes drawn (32x32 against the shared reference set; 64 and 128 too when the reference code is
given), speed per image at equal work, label balance, the validator's verdicts, and a side-by-side
figure. Writes results/benchmarks/pathfinder.md.

    python benchmarks/bench_pathfinder.py [--reference-code DIR] [--figure PNG] [--out MD]

--reference-code DIR: a checkout of drewlinsley/pathfinder at ab9c130 (the 2019 code LRA used; it
needs OpenCV, e.g. `pip install opencv-python-headless`, and matplotlib). It is run, unchanged, in a
subprocess (`--reference-worker`) with the few numpy/scipy names it calls that newer releases removed
put back as they behaved, with the settings of `snakes.lra_params(size)`. It gives the reference's
speed on this machine and its distractor count (counted by wrapping its snake function); without it
those cells are left empty. The project itself never imports OpenCV.

Speed at equal work: both generators make the same images (same settings, PNG + metadata files)
in one process; we compare CPU seconds per image (`time.process_time`), which a busy shared machine
disturbs far less than wall time; wall-clock rates with 1 and 2 workers are listed as well.
"""

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lra_wavelet.data import snakes  # noqa: E402
from lra_wavelet.results import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared/reference/lra_release/pathfinder32/curv_contour_length_14"
REFERENCE_SEED = 777  # the shared reference set's seed; ours uses the same number (another stream)


# ----------------------------------------------------------------------------- the reference, run


def _restore_removed_names() -> None:
    """What the 2019 code calls that numpy 2 and scipy >= 1.3 removed, as it behaved then:
    np.float, np.round_, scipy.misc.imresize (floats min-max scaled to 8 bits, then Pillow's resize)
    and scipy.misc.imsave (min-max scaled to 8 bits)."""
    import scipy.misc

    def to_image(a):
        a = np.asarray(a)
        if a.dtype != np.uint8:
            lo, hi = float(a.min()), float(a.max())
            a = ((a - lo) * (255.0 / (hi - lo if hi > lo else 1.0)) + 0.5).clip(0, 255).astype(np.uint8)
        return Image.fromarray(a)

    np.float, np.round_ = float, np.round
    scipy.misc.imresize = lambda a, size, interp="lanczos": np.asarray(to_image(a).resize((size[1], size[0]),
                                                                                        Image.LANCZOS))
    scipy.misc.imsave = lambda path, a: to_image(a).save(path)


def reference_worker(code: str, out: str, size: int, n: int, seed: int) -> None:
    """Run the reference's image loop for `n` images of lra_params(size) into `out`; print JSON
    (seconds, CPU seconds, distractor snakes drawn per image)."""
    sys.path.insert(0, code)
    _restore_removed_names()
    import snakes as ref_snakes  # the reference's helper module (ours is lra_wavelet.data.snakes)
    import snakes2

    p = snakes.lra_params(size)
    args = type("Args", (), {})()
    vars(args).update(
        contour_path=out, batch_id=0, n_images=n, window_size=[size, size], padding=p.padding,
        antialias_scale=p.antialias, LABEL=1, seed_distance=p.seed_distance, marker_radius=p.marker_radius,
        contour_length=p.contour_length, distractor_length=p.distractor_length,
        num_distractor_snakes=p.n_distractors, snake_contrast_list=[p.snake_contrast],
        use_single_paddles=p.single_paddles, max_target_contour_retrial=4,
        max_distractor_contour_retrial=p.max_distractor_retrial, max_paddle_retrial=p.max_paddle_retrial,
        continuity=p.continuity, paddle_length=p.paddle_length, paddle_thickness=p.thickness,
        paddle_margin_list=list(p.margins), paddle_contrast_list=[p.paddle_contrast], pause_display=False,
        save_images=True, save_metadata=True, segmentation_task=False, segmentation_task_double_circle=False)
    drawn, counting = [0], [False]
    many, one = ref_snakes.make_many_snakes, ref_snakes.make_snake

    def count_many(image, mask, num_snakes, max_trial, num_segments, *rest, **kw):
        counting[0] = (num_snakes, num_segments) == (p.n_distractors, p.distractor_length)
        try:
            return many(image, mask, num_snakes, max_trial, num_segments, *rest, **kw)
        finally:
            counting[0] = False

    def count_one(*a, **kw):
        r = one(*a, **kw)
        drawn[0] += counting[0] and r[2] is True
        return r

    ref_snakes.make_many_snakes, ref_snakes.make_snake = count_many, count_one
    np.random.seed(seed)
    random.seed(seed)
    t, c = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per image
        snakes2.from_wrapper(args)
    print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c,
                      "distractors": drawn[0] / n}))


def run_reference(code: Path, size: int, n: int, seed: int) -> tuple[dict, np.ndarray]:
    """(timings and distractor count, images) of the reference generator, in a fresh process."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-W", "ignore", __file__, "--reference-worker", str(code), d,
                              str(size), str(n), str(seed)], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"the reference generator failed:\n{out.stderr[-3000:]}")
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        return rec, np.stack([np.asarray(Image.open(Path(d) / f"imgs/0/sample_{k}.png")) for k in range(n)])


# ----------------------------------------------------------------------------- ours, timed


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def timed_write(size: int, n: int, workers: int) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of this process, hash of the files) of write_dataset."""
    p = snakes.lra_params(size)
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), time.process_time()
        snakes.write_dataset(Path(d), p, n, seed=0, workers=workers, progress=False)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        return dt, dc, tree_hash(Path(d))


# ----------------------------------------------------------------------------- tables, figure


def stats_cells(x: np.ndarray) -> str:
    x = x.astype(np.float64)
    at255 = (x == 255).sum((1, 2))
    return (f"{len(x)} | {x.mean():.1f} | {x.mean((1, 2)).std():.1f} | {(x > 0).mean():.3f} | "
            f"{(x > 128).mean():.3f} | {at255.mean():.2f} | {np.median(at255):.0f}")


def side_by_side(path: Path, ref: np.ndarray, ref_labels: np.ndarray, ours: list, per_row: int = 6) -> None:
    """Rows: reference label 0, reference label 1, ours label 0, ours label 1 (first images of each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"reference, label {lab}", ref[ref_labels == lab][:per_row]) for lab in (0, 1)]
    rows += [(f"ours, label {lab}", [s.image for s in ours if s.label == lab][:per_row]) for lab in (0, 1)]
    fig, axes = plt.subplots(len(rows), per_row, figsize=(1.6 * per_row, 1.8 * len(rows)))
    for r, (title, images) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r, c]
            ax.imshow(images[c], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
    fig.suptitle("Pathfinder-32 (hard): the benchmark's generator (shared reference, seed 777) vs ours "
                 "(label 1 = markers joined)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference-code", type=Path, help="a checkout of drewlinsley/pathfinder at ab9c130")
    ap.add_argument("--n-stats", type=int, default=1000, help="our 32x32 images for the statistics")
    ap.add_argument("--n-sizes", type=int, default=200, help="our images per size at 64 and 128")
    ap.add_argument("--ref-time", type=int, default=200, help="reference 32x32 images timed (and counted)")
    ap.add_argument("--ref-sizes", default="64:30,128:10", help="reference images run at other sizes")
    ap.add_argument("--n32", type=int, default=2000, help="our 32x32 images timed")
    ap.add_argument("--n128", type=int, default=100)
    ap.add_argument("--balance", type=int, default=5000)
    ap.add_argument("--check32", type=int, default=1000)
    ap.add_argument("--check128", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per cell; the fastest is reported")
    ap.add_argument("--figure", default=str(REPO / "results/figures/pathfinder_reference_vs_ours.png"))
    ap.add_argument("--out", default=str(REPO / "results/benchmarks/pathfinder.md"))
    a = ap.parse_args()
    cmd = "python benchmarks/bench_pathfinder.py " + " ".join(sys.argv[1:])
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    # --- statistics at 32x32 against the shared reference set
    if not REFERENCE.is_dir():
        sys.exit(f"{REFERENCE}: the shared reference set is not here")
    names = [line.split() for line in (REFERENCE / "metadata/0.npy").read_text().splitlines()]
    ref = np.stack([np.asarray(Image.open(REFERENCE / n[0] / n[1])) for n in names])
    ref_labels = np.array([int(n[3]) for n in names])
    log("our statistics ...")
    p32 = snakes.lra_params(32)
    ours = snakes.render_many(p32, REFERENCE_SEED, range(a.n_stats), workers=2)
    ours_img = np.stack([s.image for s in ours])
    ours_drawn = np.mean([s.distractors for s in ours])

    refrun: dict = {}
    if a.reference_code:
        log(f"the reference generator, {a.ref_time} images at 32x32 ...")
        refrun[32] = run_reference(a.reference_code, 32, a.ref_time, 1)
        for item in a.ref_sizes.split(","):
            size, n = map(int, item.split(":"))
            log(f"the reference generator, {n} images at {size}x{size} ...")
            refrun[size] = run_reference(a.reference_code, size, n, 1)

    # --- other sizes: usable seed orientations and distractors drawn
    size_rows = []
    for size in (32, 64, 128):
        p = snakes.lra_params(size)
        usable = " / ".join(f"{int(snakes._kit(p, m).usable_tags.sum())}" for m in p.margins)
        gen = ours if size == 32 else snakes.render_many(p, REFERENCE_SEED, range(a.n_sizes), workers=2)
        img = np.stack([s.image for s in gen]).astype(float)
        mine = f"{np.mean([s.distractors for s in gen]):.2f} ({len(gen)})"
        theirs, rstats = "-", "-"
        if size in refrun:
            rec, rimg = refrun[size]
            theirs = f"{rec['distractors']:.2f} ({len(rimg)})"
            rstats = f"{rimg.mean():.1f} / {(rimg > 0).mean():.3f}"
        size_rows.append(f"| {size}x{size} | {', '.join(map(str, p.margins))} | {usable} of 360 | {p.n_distractors} "
                         f"| {mine} | {theirs} | {img.mean():.1f} / {(img > 0).mean():.3f} | {rstats} |")

    # --- speed
    rows, rates, hashes, cpu = [], {}, {}, {}
    for size, n in ((32, a.n32), (128, a.n128)):
        for m in snakes.lra_params(size).margins:  # build this process's sprite tables first (workers fork)
            snakes._kit(snakes.lra_params(size), m)
        for workers in (1, 2):
            log(f"timing {size}x{size}, {workers} worker(s) ...")
            dt, dc, h = min(timed_write(size, n, workers) for _ in range(a.repeat))  # the fastest of the runs
            rates[size, workers], hashes[size, workers] = n / dt, h
            if workers == 1:
                cpu[size] = dc / n
            rows.append(f"| {size}x{size} | {workers} | {n} | {dt:.1f} | {n / dt:.1f} |")
    same = all(hashes[s, 1] == hashes[s, 2] for s in (32, 128))
    speed_rows = []
    for size in (32, 128):
        ref_cpu = "-"
        ratio = "-"
        if size in refrun:
            rec, rimg = refrun[size]
            per = 1000 / len(rimg)
            ref_cpu = f"{rec['cpu'] * per:.0f} ({len(rimg)} images, wall {rec['seconds'] * per:.0f})"
            ratio = f"{rec['cpu'] / len(rimg) / cpu[size]:.0f}x"
        speed_rows.append(f"| {size}x{size} | {cpu[size] * 1000:.1f} | {ref_cpu} | {ratio} |")

    # --- labels, validator
    log("label balance, validator ...")
    labels = np.array([s.label for s in snakes.render_many(p32, 0, range(a.balance), workers=2)])
    se = 100 * np.sqrt(0.25 / len(labels))
    verdicts = {}
    for size, n in ((32, a.check32), (128, a.check128)):
        p = snakes.lra_params(size)
        c = Counter()
        for i in range(0, n, 16):
            for s in snakes.render_group(p, 3, range(i, min(i + 16, n)), keep_layers=True):
                pr = snakes.validate(s)
                c["ok" if not pr else ("touching" if all(q.startswith("touching:") for q in pr) else "other")] += 1
        verdicts[size] = (n, c)

    figure = "-"
    if a.figure:
        side_by_side(Path(a.figure), ref, ref_labels, ours)
        figure = os.path.relpath(Path(a.figure).resolve(), REPO)

    try:
        import cv2

        cv_version = f", OpenCV {cv2.__version__} (reference run only)"
    except ImportError:
        cv_version = ""
    import scipy

    ref_drawn = "-"
    if 32 in refrun:
        ref_drawn = f"{refrun[32][0]['distractors']:.2f} (its code run here, {len(refrun[32][1])} images)"
    out = [
        "# Pathfinder generation",
        "",
        f"- machine: `nproc` = {os.cpu_count()}, {cpu_model()}, shared with other jobs; CPU only",
        f"- versions: Python {platform.python_version()}, numpy {np.__version__}, Pillow {Image.__version__}, "
        f"scipy {scipy.__version__}{cv_version}",
        f"- date: {datetime.date.today()}",
        f"- command: `{cmd}`",
        "- reference: `../shared/reference/lra_release/pathfinder32/curv_contour_length_14` (1000 images of the "
        "benchmark's generator, drewlinsley/pathfinder `snakes2.py` at ab9c130, LRA Pathfinder-32 settings, "
        "seed 777)" + ("; the reference code itself was also run here (`--reference-code`)" if refrun else ""),
        "",
        "## Pixel statistics, 32x32 hard (both min-max scaled to 0..255 per image)",
        "",
        "| images | n | mean pixel | sd of per-image mean | non-zero | > 128 | pixels = 255 per image (mean) "
        "| (median) "
        "| distractor snakes drawn (of 5) | label 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| benchmark's generator (shared reference) | {stats_cells(ref)} | {ref_drawn} | "
        f"{ref_labels.mean() * 100:.1f}% |",
        f"| ours, seed {REFERENCE_SEED} | {stats_cells(ours_img)} | {ours_drawn:.2f} | "
        f"{np.mean([s.label for s in ours]) * 100:.1f}% |",
        "",
        f"Label balance over {len(labels)} more of our images (seed 0): {labels.mean() * 100:.1f}% label 1 "
        f"(standard error {se:.1f} points).",
        "",
        f"Figure: `{figure}` (rows: reference label 0 and 1, ours label 0 and 1). Ours at 32x32 and 128x128: "
        "`results/figures/pathfinder_samples.png`, by `python -m lra_wavelet.data.snakes --figure "
        "results/figures/pathfinder_samples.png`.",
        "",
        "## Every size: the seed test's border effect",
        "",
        "The reference's seed test dilates its float occupancy mask by the paddle's footprint with OpenCV, which pads "
        "a float image with the most negative float; if any pixel's footprint lies wholly outside the image the "
        "dilated mask is negative there and the test finds no place at all. Which orientations survive depends "
        "only on the footprint and the image size (`snakes._usable`); the effect weakens as the paddles "
        "(and their dilation margin) grow relative to the anchor offset.",
        "",
        "| size | margins | usable seed orientations (per margin) | distractor snakes | drawn per image, ours (images) "
        "| drawn, reference (images) | mean pixel / non-zero, ours | reference |",
        "|---|---|---|---|---|---|---|---|",
        *size_rows,
        "",
        "## Speed at equal work",
        "",
        "CPU seconds per image in one process, both generators writing the same images (LRA settings, hard, PNG "
        "and metadata files):",
        "",
        "| size | ours, ms CPU / image | reference, ms CPU / image (wall) | ours faster by |",
        "|---|---|---|---|",
        *speed_rows,
        "",
        "Ours, wall clock (`snakes.write_dataset`, seed 0, the fastest of "
        f"{a.repeat} runs; the second worker's gain depends on the machine's load):",
        "",
        "| size | workers | images | seconds | images/s |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Same bytes (every PNG and metadata file) with 1 and 2 workers: {'yes' if same else 'NO'}.",
        "",
        "## Validator",
        "",
        "`snakes.validate`, on the generator's per-snake layers, images of seed 3:",
        "",
        "| size | images | pass | touching (label 0, the two target snakes touch at the second marker) | other |",
        "|---|---|---|---|---|",
    ]
    for size, (n, c) in verdicts.items():
        out.append(f"| {size}x{size} | {n} | {c['ok']} | {c['touching']} | {c['other']} |")
    out += [
        "",
        "## Reading",
        "",
        "- What makes the reference's images sparse at 32x32 is its seed test, not its drawing: 330 of the 360 seed "
        "orientations can be placed nowhere (their footprint has no offset with dy <= 0 and dx <= 0 from the "
        "kernel's anchor, or the like for another corner), so the first target snake's first paddle always points "
        "up-left (-150 to -121 degrees) and most distractor snakes fail all five tries. Ours applies the same rule, "
        "derived from each footprint and the image size (checked against OpenCV's float dilation for all 360 "
        "orientations at every size), and "
        "draws single-paddle distractors only when asked (`single_paddles=True`; the benchmark's wrapper turns "
        "them off). With both, the statistics above agree within sampling error; the tests check them on 240 "
        "images.",
        "- At 64x64 the rule leaves 95 orientations, at 128x128 nearly all: the distractor count rises towards "
        "the full number with the size; no setting is tuned per size.",
        "- Labels are fair coin flips. The validator passes every image except rare label-0 images in which the "
        "second marker's pixel is also drawn by the first snake: the reference procedure's overlap test "
        "(mask sum < 1.8, a snake's previous paddle not yet in the mask) lets the end of one target snake touch "
        "the other. We keep them, as the benchmark's procedure makes them.",
        "- Speed: the reference spends most of its time resampling the two target snakes (each attempt dilates "
        "the whole mask), ours grows those attempts side by side and stamps pre-rendered paddles.",
        "",
    ]
    text = "\n".join(out)
    print(text)
    Path(a.out).write_text(text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--reference-worker"]:
        code, out, size, n, seed = sys.argv[2:7]
        reference_worker(code, out, int(size), int(n), int(seed))
    else:
        main()
