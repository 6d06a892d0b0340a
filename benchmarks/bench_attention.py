"""Attention alone: forward + backward time of `F.scaled_dot_product_attention` at each LRA task's reference shape,
under each SDPA backend (flash, memory-efficient, cuDNN, math), and the one SDPA picks by itself.

    python3 benchmarks/bench_attention.py [--repeat 3] [--iters 20] [--md results/benchmarks/attention.md]
    python3 benchmarks/bench_attention.py --quick     # CPU, tiny shapes: checks the script runs

Why: profile_step.py shows attention is most of a step on Pathfinder-32 (4 heads of width 4: qkv_dim 16) and
ListOps; the kernels' efficiency at such small head widths decides what a step can cost. Shapes are the
encoder's (B, heads, L + 1 for CLS, qkv_dim / heads), bf16, with the padding mask the task's batches carry (a
(B, 1, 1, L) boolean key mask; none for the image tasks unless black pixels are padding, `-masked`). A backend that refuses
a shape shows why. Times are medians over --repeat rounds of --iters calls each, min-max spread beside them.

The last column, `varlen`, is train.attn_varlen's attention at a masked shape (models/backbone.py
varlen_attention: the valid positions only, flash's variable-length kernel on CUDA; its gather and scatter timed
with it), from the input projection's (B, L, 3 x width) layout. Its time depends on how much is valid, so the
mask is: a third of each row padding at its end, or on Pathfinder 66% of the positions padding at random (the
benchmark's images have 34.0% non-zero pixels, results/benchmarks/pathfinder.md), on Image 62% (the offline
stand-in's share of black pixels, Fashion-MNIST padded to 32 x 32: 61.9% over its 54,000 training images,
29-95% per image; grayscale CIFAR-10 has far fewer). The masked kernels do the same work for any mask.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, for the varlen column

# task: (batch, heads, length incl. CLS, head width, key mask?, width padded to, attention dropout) at the
# reference configs (tasks/<task>.yaml); a padded width is what train.attn_pad_heads does: zero columns, the
# same attention. Dropout as in training (it decides which kernels may run); --no-dropout times without it.
SHAPES = {
    "listops": (32, 8, 2001, 64, True, 0, 0.1),
    "text": (32, 4, 4001, 64, True, 0, 0.1),
    "retrieval": (64, 4, 4001, 32, True, 0, 0.1),  # 32 pairs -> 64 documents
    "image": (256, 8, 1025, 8, False, 0, 0.2),
    "pathfinder": (512, 4, 1025, 4, False, 0, 0.1),
    "pathfinder-pad8": (512, 4, 1025, 4, False, 8, 0.1),
    "pathfinder-pad16": (512, 4, 1025, 4, False, 16, 0.1),
    # with task.pixel0_is_pad (the reference encoders' `inputs > 0`: black pixels are padding) the image tasks'
    # batches carry a key mask too, and mean pooling means no CLS: L 1024
    "pathfinder-masked": (512, 4, 1024, 4, True, 0, 0.1),
    "pathfinder-masked-pad8": (512, 4, 1024, 4, True, 8, 0.1),
    "image-masked": (256, 8, 1024, 8, True, 0, 0.2),
}
QUICK = {"tiny": (2, 2, 65, 4, True, 0, 0.1), "tiny-pad8": (2, 2, 65, 4, True, 8, 0.1)}


def backends():
    from torch.nn.attention import SDPBackend

    out = {"auto": None}
    for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
        if hasattr(SDPBackend, name):
            out[name.split("_")[0].lower()] = getattr(SDPBackend, name)
    return out


def key_mask(task: str, B: int, L: int, device) -> torch.Tensor:
    """(B, L) True where valid: Pathfinder's 34% of positions at random (its first one kept), Image's 38%, else
    two thirds of each row from its start."""
    if task.startswith(("pathfinder", "image")):
        density = 0.34 if task.startswith("pathfinder") else 0.38
        mask = torch.rand(B, L, generator=torch.Generator().manual_seed(0)) < density
        mask[:, 0] = True
        return mask.to(device)
    return (torch.arange(L, device=device)[None, :] < (2 * L) // 3).expand(B, L)


def time_one(task, shape, backend, device, iters: int, repeat: int,
             dropout: bool = True) -> tuple[float, float, float]:
    from torch.nn.attention import sdpa_kernel

    B, H, L, hd, masked, padded, p = shape
    p = p if dropout else 0.0
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    q, k, v = (torch.randn(B, H, L, hd, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = key_mask(task, B, L, device)[:, None, None, :] if masked else None
    g = torch.randn(B, H, L, hd, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if backend == "varlen":
        from lra_wavelet.models.backbone import varlen_attention

        qkv = torch.randn(B, L, 3 * H * hd, device=device, dtype=dtype, requires_grad=True)
        g = g.transpose(1, 2)

    def step():
        if backend == "varlen":
            varlen_attention(qkv, mask[:, 0, 0], H, p, width=padded).backward(g)
            return
        ctx = sdpa_kernel(backend) if backend is not None else torch.enable_grad()
        with ctx:
            if padded > hd:  # as the model pads (Attention.forward), the padding and the slice timed with it
                pad = (0, padded - hd)
                y = F.scaled_dot_product_attention(F.pad(q, pad), F.pad(k, pad), F.pad(v, pad), attn_mask=mask,
                                                   dropout_p=p, scale=hd ** -0.5)[..., :hd]
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y.backward(g)

    step()  # warm-up (and the refusal, if the backend cannot take the shape)
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        times.append((time.perf_counter() - t0) / iters * 1e3)
    return statistics.median(times), min(times), max(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tasks", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--md", help="also write the table to this file")
    ap.add_argument("--no-dropout", action="store_true", help="time without attention dropout")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not a.quick else "cpu")
    shapes = QUICK if a.quick else {t: SHAPES[t] for t in a.tasks}
    names = {**backends(), "varlen": "varlen"}
    dev = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    lines = [f"# SDPA forward + backward per call, ms (median [min-max] of {a.repeat} x {a.iters}); {dev}, torch "
             f"{torch.__version__}, {time.strftime('%Y-%m-%d')}; `{' '.join(sys.argv)}`", "",
             "| task | B x heads x L x width (padded to) | mask | dropout | " + " | ".join(names) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    for task, shape in shapes.items():
        cells = []
        for name, backend in names.items():
            if name == "varlen" and not shape[4]:
                cells.append("-")  # no mask: nothing to skip
                continue
            try:
                med, lo, hi = time_one(task, shape, backend, device, a.iters, a.repeat, not a.no_dropout)
                cells.append(f"{med:.2f} [{lo:.2f}-{hi:.2f}]")
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                cells.append("refused: " + str(e).splitlines()[0][:60].replace("|", "/"))
            if device.type == "cuda":
                torch.cuda.empty_cache()
        B, H, L, hd, masked, padded, p = shape
        width = f"{hd} ({padded})" if padded > hd else f"{hd}"
        lines.append(f"| {task} | {B} x {H} x {L} x {width} | {'keys' if masked else 'none'} | "
                     f"{0.0 if a.no_dropout else p} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
        if a.md:  # after every row: a run stopped by a time limit keeps what it measured
            open(a.md, "w").write("\n".join(lines) + "\n")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.md:
        open(a.md, "w").write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
