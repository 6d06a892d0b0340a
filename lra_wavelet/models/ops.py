"""The WaveletGPT operation: per-coordinate moving averages at dyadic scales, in O(T) via prefix sums.

For coordinate j with level l(j) the output at position t is the mean of the last w = 2**l(j) inputs,
which is the Haar approximation coefficient at level l divided by 2**(l/2), computed at every shift
(undecimated) and causally. Registers nothing; used by models/gpt.py.

Also here: the O(T) chunked scan behind the EMA variant (decay_scan, ema) and the dilated depthwise
causal convolution behind the learnable variant. The fused GPU kernel for box_mean is triton_ops.py;
box_mean stays the CPU path and the reference it is tested against.
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
    Prefix sums make it O(T) per coordinate whatever the window. Accumulates in float32 (float64 input:
    float64, so that it can serve as the reference for the fused kernel).
    """
    B, T, N = x.shape
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    cs = F.pad(x.to(work).cumsum(1), (0, 0, 1, 0))  # (B, T+1, N), cs[:, t] = sum of x[:, :t]
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


def decay_scan(x: torch.Tensor, a: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """s[t] = a * s[t-1] + x[t] with s[-1] = 0, along T of x (B, T, N), one decay a (N,) in [0, 1) per coordinate.

    O(T) without a Python loop over T: inside chunks of C positions the scan is one small matrix
    product with the (C, C) lower-triangular decay matrix a**(t-k); the state carried from chunk to
    chunk obeys the same recurrence with decay a**C over the chunk ends, solved by recursion
    (depth log_C T). Powers are taken directly (never a**t * a**-k), so nothing overflows.
    """
    B, T, N = x.shape
    C = max(1, min(chunk, T))
    nc = -(-T // C)
    xc = F.pad(x, (0, 0, 0, nc * C - T)).view(B, nc, C, N)
    i = torch.arange(C, device=x.device)
    lag = (i[:, None] - i[None, :]).to(a.dtype)  # (C, C): t - k
    P = torch.where(lag[..., None] >= 0, a.pow(lag.clamp(min=0)[..., None]), torch.zeros((), dtype=a.dtype,
                                                                                           device=a.device))  # (C, C, N)
    s = torch.einsum("tkn,bckn->bctn", P.to(x.dtype), xc)  # (B, nc, C, N): scan inside each chunk
    if nc > 1:
        ends = decay_scan(s[:, :, -1], a.pow(C), chunk)  # (B, nc, N): state after each chunk
        enter = F.pad(ends[:, :-1], (0, 0, 1, 0))  # (B, nc, N): state entering each chunk
        s = s + a.pow((i + 1).to(a.dtype)[:, None]).to(x.dtype) * enter[:, :, None]  # (C, N) x (B, nc, 1, N)
    return s.reshape(B, nc * C, N)[:, :T]


def ema(x: torch.Tensor, decay: torch.Tensor, sos: str = "available") -> torch.Tensor:
    """Causal exponential moving average of x (B, T, N) with one decay a (N,) per coordinate.

    y[t] = a * y[t-1] + (1 - a) * x[t], y[-1] = 0        (sos 'zero')
    sos 'available' divides by 1 - a**(t+1), the total weight that falls inside the sequence, so y is
    a weighted mean of the available positions (the analogue of box_mean's rule; y[0] = x[0]).
    Accumulates in float32 (float64 stays float64).
    """
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    a = decay.to(device=x.device, dtype=work)
    y = (1 - a) * decay_scan(x.to(work), a)
    if sos == "available":
        t = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=work)[:, None]  # (T, 1)
        y = y / (1 - a.pow(t)).clamp(min=torch.finfo(work).tiny)
    return y.to(x.dtype)


def dilated_causal_conv(z: torch.Tensor, taps: torch.Tensor, dilation: int) -> torch.Tensor:
    """y[t, j] = sum_i taps[j, i] * z[t - i*dilation, j] (zeros before the start): z (B, T, N), taps (N, K)."""
    B, T, N = z.shape
    K = taps.shape[1]
    u = F.pad(z.transpose(1, 2), ((K - 1) * dilation, 0))  # (B, N, (K-1)d + T)
    y = F.conv1d(u, taps.flip(-1).unsqueeze(1).to(z.dtype), groups=N, dilation=dilation)  # (B, N, T)
    return y.transpose(1, 2)
