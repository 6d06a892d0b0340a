"""The work train.length_groups leaves, from a task's own training batches (CPU, no model run): for G micro-batches of
rows sorted by length, each trimmed as the trainer trims it (train.group_by_length, train.length_buckets), the
per-token work (rows x length, summed) and the attention's (rows x length^2) as a fraction of whole batches at
the same setting. Whole compiled batches keep their full length (one static shape); the 'eager' rows trim to
multiples of 128; 'compiled + attn_varlen' is the whole batch with attention over each row's valid positions
alone (their number squared, padding anywhere: Pathfinder's black pixels too). A step's time falls by less than
the work does: micro-batches are smaller kernels.

    python benchmarks/length_groups_work.py --task listops [--set task.data_dir=DIR] [--batches 200] [--md OUT]
"""

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lra_wavelet import config as config_mod  # noqa: E402
from lra_wavelet import train as T  # noqa: E402
from lra_wavelet.registry import TASKS, load_all  # noqa: E402


def work(batch: dict, pad_id: int, groups: int, buckets: int) -> tuple[float, float]:
    """(rows x length, rows x length^2) summed over the micro-batches the trainer would run."""
    pieces = [mb for _, mb in T.group_by_length(batch, pad_id, groups, buckets)]  # 1 group: the batch, trimmed
    lin = sum(mb["x"].shape[0] * mb["x"].shape[-1] for mb in pieces)
    return float(lin), float(sum(mb["x"].shape[0] * mb["x"].shape[-1] ** 2 for mb in pieces))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="listops")
    ap.add_argument("--model", default="transformer")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. task.data_dir=DIR")
    ap.add_argument("--batches", type=int, default=200, help="training batches sampled (steps 0, 1, ...)")
    ap.add_argument("--groups", default="1,2,4,8")
    ap.add_argument("--md", help="also write the table as Markdown")
    args = ap.parse_args()
    load_all()
    cfg = config_mod.resolve(args.task, args.model, sets=tuple(args.set))
    task = TASKS.get(args.task)(cfg.task)
    split = task.splits()["train"]
    t = cfg.train
    settings = {"compiled": dataclasses.replace(t, compile=True), "eager": dataclasses.replace(t, compile=False)}
    groups = [int(g) for g in args.groups.split(",")]
    batches = [split.train_batch(s, t.batch_size, cfg.seed) for s in range(args.batches)]
    lengths = np.concatenate([T.row_lengths(b["x"], task.pad_id) for b in batches])
    lines = [f"# Work left by train.length_groups: {args.task}, batch {t.batch_size} x {task.seq_len}", "",
             f"- data: {task.source}, {len(split)} training examples; {args.batches} training batches "
             f"(steps 0-{args.batches - 1}, seed {cfg.seed}); row length mean {lengths.mean():.0f}, median "
             f"{np.median(lengths):.0f}, max {lengths.max()}",
             f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- command: `python3 {' '.join(sys.argv)}`", "",
             "| setting | groups | lengths a micro-batch takes | per-token work | attention work |",
             "|---|---|---|---|---|"]
    for name, tc in settings.items():
        base = None
        for g in groups:
            tg = dataclasses.replace(tc, length_groups=g)
            b = T.length_buckets(tg)
            lin, att = map(sum, zip(*(work(x, task.pad_id, g, b) for x in batches)))
            base = base or (lin, att)
            what = (f"{b} static" if b else "multiples of 128")
            lines.append(f"| {name} | {g} | {what} | {lin / base[0]:.1%} | {att / base[1]:.1%} |")
        if name == "compiled":  # train.attn_varlen: the whole batch, attention over each row's valid positions
            att = sum(float(((x["x"] != task.pad_id).sum(-1).astype(np.float64) ** 2).sum()) for x in batches)
            whole = sum(float(x["x"][..., 0].size) * x["x"].shape[-1] ** 2 for x in batches)  # (each document)
            lines.append(f"| compiled + attn_varlen | 1 | 1 static (attention: each row's valid positions) | "
                         f"100.0% | {att / whole:.1%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
