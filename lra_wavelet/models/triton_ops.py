"""A fused Triton kernel for the WaveletGPT operation, forward and backward. Registers no model.

The operation (ops.box_mean) replaces coordinate e of x (B, T, E) by its moving mean over a window
of w[e] positions; w[e] = 0 leaves the coordinate untouched. The prefix-sum version reads and writes
the tensor several times (cumsum, two gathers, a divide, the concatenation with the untouched
coordinates). This kernel reads x once and writes y once, the floor for an out-of-place op:

    one program per (batch row b, block of BLOCK_E coordinates) walks T in tiles of BLOCK_T rows,
    keeping a running window sum per coordinate: S[t] = S[t-1] + x[t+off] - x[t+off-w].
    Inside a tile the update is a cumulative sum along T (tl.cumsum), so a tile costs one load of
    the entering rows and one of the leaving rows; the leaving rows were read w steps earlier by the
    same program and mostly come back from L2, not HBM.

Windows: the window of output t is [t+off-w+1, t+off]; off = 0 is the causal (trailing) mean,
off = w-1-w//2 the centred one. Positions outside [0, T) count as zeros; the start-of-sequence rule
'available' divides by the number of positions inside the sequence, 'zero' by w.

Backward: output t depends on inputs [t+off-w+1, t+off], so dL/dx[k] is the sum of g[t]/count[t]
over t in [k-off, k-off+w-1]. Read in reverse order (u = T-1-k) that is again a window
[u+off-w+1, u+off] with the same off: the backward is the same kernel walking T backwards, with
the forward's 1/count applied to the values as they are loaded. O(T), one read of g, one write.

In place (`_lead_kernel`, causal windows under torch.compile): the op as traced is `x.clone()` and
then a kernel that overwrites only the touched columns; the compiler writes the clone from the kernel
that produced x, so the op moves the touched columns' bytes alone (half at mod_frac 0.5). Each column
is walked so that every output reads rows at or after its own (the forward from T-1 down, the
backward from 0 up); the one row a tile needs from before it is carried in registers.

Entry point: `box_mean_triton`. Under torch.compile it calls `box_mean_fused`, a torch.library
triton_op (torch >= 2.6; an opaque custom op before) with its autograd formula: the compiler keeps
the graph whole and launches the kernel itself; in eager mode it calls a plain
torch.autograd.Function (the same two launches with less Python dispatch around them). Without
Triton (or without CUDA) nothing here is used: the prefix-sum version in ops.py is the fallback and
the reference.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except Exception:  # ImportError, or a broken install: the prefix-sum path is used
    HAS_TRITON = False

# launch configuration (chosen by benchmarks/bench_wavelet.py on an H200; see results/benchmarks)
T_AXIS, BLOCK_T, BLOCK_E, NUM_WARPS, NUM_STAGES = 1, 64, 32, 4, 1
# the in-place kernel (causal windows under torch.compile): BLOCK_T, BLOCK_E, num_warps, BLOCK_PRE, PREFETCH
# (the best fwd+bwd at the paper batch in the sweep of benchmarks/bench_wavelet.py --sweep-inplace)
INPLACE = (128, 16, 4, 256, True)
# impl 'auto' under torch.compile: True runs this kernel inside the compiled graph, False the prefix-sum
# formulation that the compiler fuses itself (whichever made the compiled training step faster there)
COMPILED_KERNEL = True


def usable(x: torch.Tensor) -> bool:
    """True when the fused kernel can run on x (Triton imports and x lives on a CUDA device)."""
    return HAS_TRITON and x.is_cuda


if HAS_TRITON:

    @triton.jit
    def _acc(v, IS_F64: tl.constexpr):
        """v in the accumulation type: float64 for float64 tensors, float32 otherwise."""
        if IS_F64:
            return v.to(tl.float64)
        else:
            return v.to(tl.float32)

    @triton.jit
    def _per_col(v, T_AXIS: tl.constexpr):
        """A per-coordinate vector (BLOCK_E,) as a 2-D tile operand; T_AXIS is the tile's sequence axis."""
        if T_AXIS == 0:
            return v[None, :]
        else:
            return v[:, None]

    @triton.jit
    def _per_row(v, T_AXIS: tl.constexpr):
        """A per-position vector (BLOCK_T,) as a 2-D tile operand."""
        if T_AXIS == 0:
            return v[:, None]
        else:
            return v[None, :]

    @triton.jit
    def _inv_count(p, w, off, T, IS_F64: tl.constexpr):
        """1 / (positions the forward window of physical output row p holds inside [0, T)); 'available' rule."""
        cnt = tl.minimum(p + off, T - 1) - tl.maximum(p + off - w + 1, 0) + 1
        return 1.0 / _acc(tl.maximum(cnt, 1), IS_F64)  # rows outside [0, T) are masked anyway; never divide by zero

    @triton.jit
    def _box_kernel(x_ptr, y_ptr, win_ptr, off_ptr, T, E, max_off,
                    sxb, sxt, sxe, syb, syt, sye,
                    REVERSE: tl.constexpr, PRESCALE: tl.constexpr, POSTSCALE: tl.constexpr,
                    ZERO_SOS: tl.constexpr, IS_F64: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr,
                    T_AXIS: tl.constexpr):
        # Tiles are (BLOCK_T, BLOCK_E) with T_AXIS = 0, (BLOCK_E, BLOCK_T) with T_AXIS = 1 (the scan runs along
        # the tile's last axis, the layout Triton's scan handles best; memory stays coalesced along E).
        # Per-column quantities are computed once; inside the loop every element costs one pointer add
        # per stream, one compare per mask, the scan, and (for 'available') a few integer ops.
        b = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)  # (BE,)
        cmask = _per_col(cols < E, T_AXIS)
        w = _per_col(tl.load(win_ptr + cols, mask=cols < E, other=0), T_AXIS)  # int32, 0 = untouched
        off = _per_col(tl.load(off_ptr + cols, mask=cols < E, other=0), T_AXIS)  # 0 on untouched columns
        smooth = w > 0
        colx = x_ptr + b * sxb + _per_col(cols.to(tl.int64) * sxe, T_AXIS)
        coly = y_ptr + b * syb + _per_col(cols.to(tl.int64) * sye, T_AXIS)
        # walking position t enters physical row t+off and leaves row t+off-w (mirrored: T-1-...)
        if REVERSE:
            xstep, ystep = -sxt, -syt
            x0 = colx + (T - 1) * sxt  # walking position 0
            coly = coly + (T - 1) * syt
        else:
            xstep, ystep = sxt, syt
            x0 = colx
        base_a = x0 + off.to(tl.int64) * xstep
        base_b = x0 + (off - w).to(tl.int64) * xstep
        lim_a = tl.where(cmask, T - off, 0)  # entering row exists while t < T - off (untouched: va = x[t])
        lo_b = tl.where(smooth, w - off, T)  # leaving row exists once t >= w - off
        inv_w = 1.0 / _acc(tl.maximum(w, 1), IS_F64)
        rows = _per_row(tl.arange(0, BLOCK_T), T_AXIS)
        acc = _acc(tl.zeros([BLOCK_E], tl.float32), IS_F64)

        # the window of the first output already holds walking positions 0 .. off-1 (centred windows only)
        for r0 in range(0, max_off, BLOCK_T):
            r = r0 + rows
            v = _acc(tl.load(x0 + r.to(tl.int64) * xstep, mask=(r < off) & (r < T) & smooth, other=0.0), IS_F64)
            if PRESCALE:
                if ZERO_SOS:
                    v = v * inv_w
                else:
                    if REVERSE:
                        v = v * _inv_count(T - 1 - r, w, off, T, IS_F64)
                    else:
                        v = v * _inv_count(r, w, off, T, IS_F64)
            acc += tl.sum(v, axis=T_AXIS)

        for t0 in range(0, T, BLOCK_T):
            t = t0 + rows  # (BT, 1) walking order
            step = t.to(tl.int64) * xstep
            va = _acc(tl.load(base_a + step, mask=t < lim_a, other=0.0), IS_F64)
            vb = _acc(tl.load(base_b + step, mask=(t >= lo_b) & (t < T), other=0.0), IS_F64)
            if PRESCALE:  # backward: the values are g / count of the forward output they came from
                if ZERO_SOS:
                    va, vb = va * inv_w, vb * inv_w
                else:
                    pa = T - 1 - (t + off)  # physical rows (PRESCALE is only used walking backwards)
                    va = va * _inv_count(pa, w, off, T, IS_F64)
                    vb = vb * _inv_count(pa + w, w, off, T, IS_F64)
            d = va - vb
            s = tl.cumsum(d, axis=T_AXIS) + _per_col(acc, T_AXIS)
            acc += tl.sum(d, axis=T_AXIS)
            if POSTSCALE:  # forward, walking forwards: physical row = t
                if ZERO_SOS:
                    s = s * inv_w
                else:
                    s = s * _inv_count(t, w, off, T, IS_F64)
            y = tl.where(smooth, s, va)  # untouched columns: va is x at row t (off = 0; scale 1)
            tl.store(coly + t.to(tl.int64) * ystep, y.to(y_ptr.dtype.element_ty), mask=(t < T) & cmask)


    @triton.jit
    def _lead_kernel(x_ptr, win_ptr, T, col0, col_end, sxb, sxt, sxe,
                     REVERSE: tl.constexpr, PRESCALE: tl.constexpr, POSTSCALE: tl.constexpr,
                     ZERO_SOS: tl.constexpr, IS_F64: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr,
                     BLOCK_PRE: tl.constexpr, PREFETCH: tl.constexpr):
        # In place, trailing (causal) windows only. Walking position u is physical row T-1-u (REVERSE: the
        # forward) or u (the backward); either way output u sums walking rows [u, u+w-1] (a leading window),
        # so a tile reads rows at or after its own and never one it has overwritten. Moving from u-1 to u
        # adds row u+w-1 and drops row u-1; row u-1 is the tile's own row shifted by one, which the cumulative
        # sums express without a shift (exclusive = inclusive - own) and, at the tile's first row, a carried copy
        # of the previous tile's last row (`carry`, its value before the store). Untouched columns are not read.
        # PREFETCH loads the next tile before storing this one (its rows lie after this tile's: no hazard).
        b = tl.program_id(0).to(tl.int64)
        cols = col0 + tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
        w = tl.load(win_ptr + cols, mask=cols < col_end, other=0)[:, None]  # (BE, 1); 0 = untouched
        smooth = w > 0
        if REVERSE:
            xstep = -sxt
            x0 = x_ptr + b * sxb + cols[:, None].to(tl.int64) * sxe + (T - 1) * sxt
        else:
            xstep = sxt
            x0 = x_ptr + b * sxb + cols[:, None].to(tl.int64) * sxe
        inv_w = 1.0 / _acc(tl.maximum(w, 1), IS_F64)
        rows = tl.arange(0, BLOCK_T)[None, :]

        # the window of walking position -1: rows 0 .. w-2 (summed in wider tiles: no scan needed)
        acc = _acc(tl.zeros([BLOCK_E], tl.float32), IS_F64)
        pre = tl.arange(0, BLOCK_PRE)[None, :]
        for r0 in range(0, tl.max(w) - 1, BLOCK_PRE):
            r = r0 + pre
            v = _acc(tl.load(x0 + r.to(tl.int64) * xstep, mask=(r < w - 1) & (r < T), other=0.0), IS_F64)
            if PRESCALE:  # the backward walks forwards: physical row = r
                v = v * _scale_causal(r, w, inv_w, ZERO_SOS, IS_F64)
            acc += tl.sum(v, axis=1)

        carry = _acc(tl.zeros([BLOCK_E], tl.float32), IS_F64)  # row u0-1 as it was before the store
        if PREFETCH:
            ua = rows + w - 1
            va_next = tl.load(x0 + ua.to(tl.int64) * xstep, mask=smooth & (ua < T), other=0.0)
            own_next = tl.load(x0 + rows.to(tl.int64) * xstep, mask=smooth & (rows < T), other=0.0)
        for u0 in range(0, T, BLOCK_T):
            u = u0 + rows
            ua = u + w - 1
            if PREFETCH:
                va, own = _acc(va_next, IS_F64), _acc(own_next, IS_F64)
                un = u + BLOCK_T
                va_next = tl.load(x0 + (un + w - 1).to(tl.int64) * xstep, mask=smooth & (un + w - 1 < T), other=0.0)
                own_next = tl.load(x0 + un.to(tl.int64) * xstep, mask=smooth & (un < T), other=0.0)
            else:
                va = _acc(tl.load(x0 + ua.to(tl.int64) * xstep, mask=smooth & (ua < T), other=0.0), IS_F64)
                own = _acc(tl.load(x0 + u.to(tl.int64) * xstep, mask=smooth & (u < T), other=0.0), IS_F64)
            if PRESCALE:
                va = va * _scale_causal(ua, w, inv_w, ZERO_SOS, IS_F64)
                own = own * _scale_causal(u, w, inv_w, ZERO_SOS, IS_F64)
            s = tl.cumsum(va - own, axis=1) + own + (acc - carry)[:, None]
            last = tl.sum(tl.where(rows == BLOCK_T - 1, own, 0.0), axis=1)
            acc += tl.sum(va - own, axis=1) + last - carry
            carry = last
            if POSTSCALE:  # the forward walks backwards: physical row = T-1-u
                s = s * _scale_causal(T - 1 - u, w, inv_w, ZERO_SOS, IS_F64)
            tl.store(x0 + u.to(tl.int64) * xstep, s.to(x_ptr.dtype.element_ty), mask=smooth & (u < T))

    @triton.jit
    def _scale_causal(p, w, inv_w, ZERO_SOS: tl.constexpr, IS_F64: tl.constexpr):
        """1 / (the divisor of causal output row p): w ('zero'), or the rows of [p-w+1, p] inside the sequence."""
        if ZERO_SOS:
            return inv_w
        else:
            return 1.0 / _acc(tl.maximum(tl.minimum(p + 1, w), 1), IS_F64)


def tiles(T: int) -> dict:
    """Launch parameters for length T (module settings; BLOCK_T never exceeds T rounded up to a power of 2)."""
    return dict(T_AXIS=T_AXIS, BLOCK_T=min(BLOCK_T, triton.next_power_of_2(max(T, 16))), BLOCK_E=BLOCK_E,
                num_warps=NUM_WARPS, num_stages=NUM_STAGES)


def _launch(x: torch.Tensor, win: torch.Tensor, off: torch.Tensor, max_off: int, zero_sos: bool,
            backward: bool, wrap=lambda kernel: kernel) -> torch.Tensor:
    if not HAS_TRITON:
        raise RuntimeError("the fused wavelet kernel needs Triton; use impl: prefix")
    B, T, E = x.shape
    y = torch.empty((B, T, E), device=x.device, dtype=x.dtype)
    if y.numel() == 0:
        return y
    launch = tiles(T)
    wrap(_box_kernel)[(B, triton.cdiv(E, launch["BLOCK_E"]))](
        x, y, win, off, T, E, max_off, *x.stride(), *y.stride(),
        REVERSE=backward, PRESCALE=backward, POSTSCALE=not backward, ZERO_SOS=zero_sos,
        IS_F64=x.dtype == torch.float64, **launch)
    return y


def _launch_inplace(y: torch.Tensor, win: torch.Tensor, lo: int, hi: int, zero_sos: bool, backward: bool,
                    wrap=lambda kernel: kernel) -> torch.Tensor:
    """The causal op in place on y's columns [lo, hi) (columns with win = 0 in that range are left alone)."""
    B, T, E = y.shape
    if y.numel() == 0 or hi <= lo:
        return y
    bt, be, warps, pre, prefetch = INPLACE
    bt = min(bt, triton.next_power_of_2(max(T, 16)))
    wrap(_lead_kernel)[(B, triton.cdiv(hi - lo, be))](
        y, win, T, lo, hi, *y.stride(),
        REVERSE=not backward, PRESCALE=backward, POSTSCALE=not backward, ZERO_SOS=zero_sos,
        IS_F64=y.dtype == torch.float64, BLOCK_T=bt, BLOCK_E=be, BLOCK_PRE=max(pre, bt), PREFETCH=prefetch,
        num_warps=warps)
    return y


_DOC = """y (B, T, E): coordinate e is the mean of x over window [t+off[e]-win[e]+1, t+off[e]]; win[e] = 0 copies x.

    win, off: int32 (E,) on x's device; max_off = max(off) (a Python int, so no device sync); the columns with
    win > 0 lie in [lo, hi)."""

# torch >= 2.6: a triton_op, which torch.compile sees into (it launches the kernel itself, with its own
# light launcher, and CUDA graphs capture it); older torch: an opaque custom op with a fake.
_triton_op = getattr(torch.library, "triton_op", None) if HAS_TRITON else None

if _triton_op is not None:

    def _traced(x, win, off, max_off, zero_sos, lo, hi, backward):
        # Causal windows (max_off = 0): a copy, then the kernel in place on the touched columns. The compiler
        # sees both: it writes the copy from the kernel that produced x (the residual add, or the gradients'
        # sum), so the op itself reads and writes only the touched columns: half the bytes at mod_frac 0.5.
        # Centred windows read both sides of a row and cannot run in place: the out-of-place kernel.
        if max_off == 0:
            return _launch_inplace(x.clone(), win, lo, hi, zero_sos, backward, wrap=torch.library.wrap_triton)
        return _launch(x, win, off, max_off, zero_sos, backward, wrap=torch.library.wrap_triton)

    @_triton_op("lra_wavelet::box_mean", mutates_args=())
    def box_mean_fused(x: torch.Tensor, win: torch.Tensor, off: torch.Tensor, max_off: int,
                       zero_sos: bool, lo: int, hi: int) -> torch.Tensor:
        return _traced(x, win, off, max_off, zero_sos, lo, hi, backward=False)

    @_triton_op("lra_wavelet::box_mean_backward", mutates_args=())
    def box_mean_fused_backward(g: torch.Tensor, win: torch.Tensor, off: torch.Tensor, max_off: int,
                                zero_sos: bool, lo: int, hi: int) -> torch.Tensor:
        return _traced(g, win, off, max_off, zero_sos, lo, hi, backward=True)

else:

    @torch.library.custom_op("lra_wavelet::box_mean", mutates_args=())
    def box_mean_fused(x: torch.Tensor, win: torch.Tensor, off: torch.Tensor, max_off: int,
                       zero_sos: bool, lo: int, hi: int) -> torch.Tensor:
        return _launch(x, win, off, max_off, zero_sos, backward=False)

    @torch.library.custom_op("lra_wavelet::box_mean_backward", mutates_args=())
    def box_mean_fused_backward(g: torch.Tensor, win: torch.Tensor, off: torch.Tensor, max_off: int,
                                zero_sos: bool, lo: int, hi: int) -> torch.Tensor:
        return _launch(g, win, off, max_off, zero_sos, backward=True)

    @box_mean_fused.register_fake
    def _(x, win, off, max_off, zero_sos, lo, hi):
        return x.new_empty(x.shape)

    @box_mean_fused_backward.register_fake
    def _(g, win, off, max_off, zero_sos, lo, hi):
        return g.new_empty(g.shape)


box_mean_fused.__doc__ = _DOC


def _setup_context(ctx, inputs, output):
    _, win, off, max_off, zero_sos, lo, hi = inputs
    ctx.save_for_backward(win, off)
    ctx.args = max_off, zero_sos, lo, hi


def _backward(ctx, g):
    win, off = ctx.saved_tensors
    return (box_mean_fused_backward(g, win, off, *ctx.args),) + (None,) * 6


box_mean_fused.register_autograd(_backward, setup_context=_setup_context)


class _BoxMean(torch.autograd.Function):
    """Eager-mode twin of box_mean_fused (same kernels, lighter dispatch)."""

    @staticmethod
    def forward(ctx, x, win, off, max_off, zero_sos):
        ctx.save_for_backward(win, off)
        ctx.max_off, ctx.zero_sos = max_off, zero_sos
        return _launch(x, win, off, max_off, zero_sos, backward=False)

    @staticmethod
    def backward(ctx, g):
        win, off = ctx.saved_tensors
        return _launch(g, win, off, ctx.max_off, ctx.zero_sos, backward=True), None, None, None, None


is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


def box_mean_triton(x: torch.Tensor, win: torch.Tensor, off: torch.Tensor, max_off: int, zero_sos: bool,
                    lo: int, hi: int) -> torch.Tensor:
    """The fused op: the custom op while torch.compile traces, the autograd.Function otherwise."""
    if is_compiling():
        return box_mean_fused(x, win, off, max_off, zero_sos, lo, hi)
    return _BoxMean.apply(x, win, off, max_off, zero_sos)
