"""The WaveletGPT operation: per-coordinate moving averages at dyadic scales, in O(T) via prefix sums.

For coordinate j with level l(j) the output at position t is the mean of the last w = 2**l(j) inputs,
which is the Haar approximation coefficient at level l divided by 2**(l/2), computed at every shift
(undecimated) and causally. Registers nothing; used by models/gpt.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def n_levels(context: int) -> int:
    """Number of dyadic levels so that the largest window covers the context: ceil(log2 L)."""
    return max(1, math.ceil(math.log2(max(context, 2))))


def level_map(n_mod: int, context: int, kind: str = "linear", single_level: int | None = None) -> torch.Tensor:
    """Level l(j) of each of the n_mod modified coordinates.

    linear: l(j) = 1 + floor(j * log2(L) / n_mod), capped at log2(L): windows 2 ... L, growing with j.
    single: every coordinate at one level (default the largest: one window spanning the context).
    """
    top = n_levels(context)
    if kind == "single":
        return torch.full((n_mod,), top if single_level is None else single_level, dtype=torch.long)
    j = torch.arange(n_mod)
    return (1 + torch.div(j * top, n_mod, rounding_mode="floor")).clamp(max=top)


def box_mean(x: torch.Tensor, windows: torch.Tensor, causal: bool = True, sos: str = "available") -> torch.Tensor:
    """Moving mean of x (B, T, N) over windows (N,) along T, one window per coordinate.

    causal:     y[t] = mean(x[t-w+1 .. t]);  non-causal (centred): y[t] = mean(x[t-w//2 .. t-w//2+w-1])
    sos:        'available' divides by the number of positions inside the sequence,
                'zero' treats positions outside it as zeros (divides by w).
    Prefix sums make it O(T) per coordinate whatever the window. Accumulates in float32.
    """
    B, T, N = x.shape
    cs = F.pad(x.float().cumsum(1), (0, 0, 1, 0))  # (B, T+1, N), cs[:, t] = sum of x[:, :t]
    t = torch.arange(T, device=x.device)[:, None]  # (T, 1)
    w = windows.to(x.device)[None, :]  # (1, N)
    if causal:
        hi = t + 1
        lo = hi - w
    else:
        lo = t - torch.div(w, 2, rounding_mode="floor")
        hi = lo + w
    lo_c, hi_c = lo.clamp(0, T), hi.clamp(0, T)  # (T, N)
    total = cs.gather(1, hi_c.expand(T, N).unsqueeze(0).expand(B, T, N)) - cs.gather(
        1, lo_c.expand(T, N).unsqueeze(0).expand(B, T, N))
    count = (hi_c - lo_c) if sos == "available" else w.expand(T, N)
    return (total / count.to(total.dtype)).to(x.dtype)
