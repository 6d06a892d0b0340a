"""GPT (causal decoder) and WaveletGPT: the same decoder with multi-scale structure imposed on the
residual stream after every block, adding no parameters (Verma, arXiv 2409.12924; DESIGN.md §5).

Variants, one registered subclass each, differing only in their Config defaults and their Op:
    wavelet             Haar: trailing box means at dyadic windows (0 parameters)
    wavelet-learnable   a causal depthwise kernel per modified coordinate and layer, = the Haar box at init
    wavelet-ema         exponential moving averages, decay spaced linearly over the coordinates (0 parameters)
    wavelet-single      one window for every modified coordinate (the single-scale control)
    wavelet-noncausal   centred windows in a bidirectional encoder
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from ..registry import MODELS
from . import triton_ops
from .backbone import SequenceModel
from .ops import box_mean, dilated_causal_conv, ema, level_map


@MODELS.register("gpt")
class GPT(SequenceModel):
    """Causal decoder; a classification readout takes the last valid position (or the mean)."""

    causal = True
    default_pool = "last"
    pad_invariant = True  # causal: right padding never reaches a valid position


@dataclass
class WaveletConfig(ModelConfig):
    mod_frac: float = 0.5  # fraction of the d_model coordinates that are modified
    coords: Literal["second_half", "first_half", "interleaved"] = "second_half"  # which ones
    level_map: Literal["linear", "single"] = "linear"  # l(j) = 1 + floor(j log2 L / n_mod); or one level
    single_level: Optional[int] = None  # level for level_map=single (None: the largest, window ~ L)
    sos: Literal["available", "zero"] = "available"  # start of sequence: mean over what exists, or zero-pad
    transform_embedding: bool = False  # also transform the embedding output (before block 0)
    causal_op: bool = True  # False: centred windows (for encoders)
    # Haar op: prefix sums, or the fused Triton kernel; auto = the kernel on CUDA when triton imports (under
    # torch.compile too, for static shapes), prefix sums elsewhere and under vmap (see WaveletOp.use_fused)
    impl: Literal["auto", "prefix", "triton"] = "auto"

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.mod_frac <= 1.0:
            raise ValueError(f"mod_frac must be in [0, 1], got {self.mod_frac}")
        if self.impl == "triton" and not triton_ops.HAS_TRITON:
            raise ValueError("impl 'triton' needs the triton package, which does not import here; use auto or prefix")


class WaveletOp(nn.Module):
    """Replace the chosen coordinates of x (B, T, E) by their moving means at their own scale. No parameters.

    Two implementations of the same function: prefix sums (ops.box_mean; any device, the reference)
    and a fused Triton kernel that reads x once and writes the whole output once (triton_ops).
    Subclasses change `smooth` (what happens to the chosen coordinates) and set fusable = False.
    """

    fusable = True  # the fused kernel computes exactly this op's function

    def __init__(self, cfg: WaveletConfig, context: int):
        super().__init__()
        E = cfg.d_model
        n_mod = round(E * cfg.mod_frac)
        if cfg.coords == "second_half":
            idx = torch.arange(E - n_mod, E)
        elif cfg.coords == "first_half":
            idx = torch.arange(n_mod)
        else:  # spread evenly over the embedding
            idx = torch.linspace(0, E - 1, n_mod).round().long() if n_mod else torch.arange(0)
        self.contiguous = n_mod == 0 or bool((idx[1:] - idx[:-1] == 1).all())
        self.lo, self.hi = (int(idx[0]), int(idx[-1]) + 1) if n_mod else (0, 0)
        self.register_buffer("idx", idx, persistent=False)
        windows = 2 ** level_map(n_mod, context, cfg.level_map, cfg.single_level)
        self.register_buffer("windows", windows, persistent=False)
        self.causal, self.sos, self.impl = cfg.causal_op, cfg.sos, cfg.impl
        # the fused kernel's view: a window per coordinate of E (0 = untouched) and the window's offset
        win = torch.zeros(E, dtype=torch.int32)
        win[idx] = windows.int()
        off = torch.zeros(E, dtype=torch.int32) if self.causal else torch.where(win > 0, win - 1 - win // 2, 0).int()
        self.register_buffer("win_full", win, persistent=False)
        self.register_buffer("off_full", off, persistent=False)
        self.max_off = int(off.max()) if E else 0

    def smooth(self, z: torch.Tensor) -> torch.Tensor:
        return box_mean(z, self.windows, causal=self.causal, sos=self.sos)

    def use_fused(self, x: torch.Tensor) -> bool:
        """impl 'triton': always the kernel. 'auto': the kernel on CUDA in eager mode; under torch.compile the
        kernel or the prefix-sum formulation (which the compiler fuses with the neighbouring ops), whichever
        made the compiled training step faster (triton_ops.COMPILED_KERNEL; results/benchmarks/wavelet_op.md).

        Under a torch.func transform (vmap of stacked seeds, grad, jvp) always the prefix sums, whatever impl
        says: they are plain torch ops, which every transform knows, while the kernel launches on the raw
        (B, T, E) storage of one tensor and has no batching rule (teaching it one would mean folding the vmapped
        axis into B and checking that every seed's stacked window buffers agree). The test is the one
        autograd.Function.apply itself makes before it asks for the functorch form."""
        if not self.fusable or self.impl == "prefix" or torch._C._are_functorch_transforms_active():
            return False
        if self.impl == "triton":
            return True
        if not triton_ops.usable(x):
            return False
        if not triton_ops.is_compiling():
            return True
        # under torch.compile: the kernel for static shapes (what was measured); a graph traced with a symbolic
        # length (batches trimmed to varying lengths) keeps the prefix-sum form, which needs no launch constants
        return triton_ops.COMPILED_KERNEL and all(isinstance(n, int) for n in x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.idx.numel() == 0:
            return x
        if self.use_fused(x):
            return triton_ops.box_mean_triton(x, self.win_full, self.off_full, self.max_off, self.sos == "zero",
                                              self.lo, self.hi)
        if self.contiguous:  # (B, T, lo) | smoothed (B, T, n_mod) | (B, T, E - hi)
            return torch.cat([x[..., : self.lo], self.smooth(x[..., self.lo : self.hi]), x[..., self.hi :]], dim=-1)
        out = x.clone()
        out[..., self.idx] = self.smooth(x[..., self.idx])
        return out


@MODELS.register("wavelet")
class WaveletGPT(GPT):
    """GPT whose residual stream passes through WaveletOp after every block (zero added parameters)."""

    Config = WaveletConfig
    Op = WaveletOp
    per_layer = False  # True: every transformed layer gets its own Op (needed once the Op has parameters)

    def __init__(self, task, cfg: WaveletConfig):
        super().__init__(task, cfg)
        if self.causal and not cfg.causal_op:
            raise ValueError("a causal decoder needs causal_op=true (centred windows see the future)")
        if self.per_layer:  # index 0 is the embedding's op when transform_embedding, else block 0's
            n = cfg.n_layers + int(cfg.transform_embedding)
            self.wavelets = nn.ModuleList(self.Op(cfg, task.seq_len) for _ in range(n))
        else:
            self.wavelet = self.Op(cfg, task.seq_len)

    def post_block(self, x, layer):
        if layer < 0 and not self.cfg.transform_embedding:
            return x
        if self.per_layer:
            return self.wavelets[layer + int(self.cfg.transform_embedding)](x)
        return self.wavelet(x)


# ----------------------------------------------------------------------------- learnable


@dataclass
class LearnableConfig(WaveletConfig):
    taps: int = 32  # learnable taps per modified coordinate and layer (a power of two)

    def __post_init__(self):
        super().__post_init__()
        if self.taps < 1 or self.taps & (self.taps - 1):
            raise ValueError(f"taps must be a power of two (so that a dilated kernel tiles every window), got {self.taps}")


class LearnableOp(WaveletOp):
    """A causal depthwise kernel per modified coordinate, exactly the Haar box at initialisation.

    Coordinate j with window w = 2**l(j) gets K taps k[j, 0..K-1] at dilation d = max(1, w / K),
    applied after a fixed box *sum* over d positions:

        y[t] = sum_i k[i] * s[t - i*d],    s[t] = x[t] + x[t-1] + ... + x[t-d+1]

    so the effective kernel is piecewise constant in steps of d and spans up to K*d >= w positions.
    Initialising k[i] = 1/w for the first w/d taps (0 for the rest, which only exists when w < K)
    makes y exactly the mean of the last w inputs, the Haar op. Start of sequence: 'zero' is the
    convolution's zero padding; 'available' multiplies by w / min(t+1, w), which is the Haar rule at
    initialisation and a fixed per-position gain afterwards. Paper size (10 layers, 64 modified
    coordinates, K = 32): 20,480 parameters, the ~0.02M the paper reports.
    """

    fusable = False

    def __init__(self, cfg: LearnableConfig, context: int):
        super().__init__(cfg, context)
        if not self.causal:
            raise ValueError("the learnable variant is causal; set causal_op=true")
        K, w = cfg.taps, self.windows
        d = (w // K).clamp(min=1)  # dilation per coordinate
        taps = torch.zeros(len(w), K)
        for j in range(len(w)):
            taps[j, : int(w[j] // d[j])] = 1.0 / float(w[j])
        self.taps = nn.Parameter(taps)  # (n_mod, K)
        self.taps.no_weight_decay = True  # a filter, not a weight matrix: decay would pull it off the Haar box
        # windows never decrease with j (ops.level_map), so each dilation is one contiguous run of coordinates
        assert bool((w[1:] >= w[:-1]).all()), "level map must be non-decreasing"
        self.groups = [(int(v), int((d < v).sum()), int((d <= v).sum())) for v in d.unique().tolist()]

    def smooth(self, z: torch.Tensor) -> torch.Tensor:
        B, T, N = z.shape
        parts = []
        for d, a, b in self.groups:  # one grouped convolution per dilation d, coordinates a:b
            s = z[..., a:b]
            if d > 1:  # box sum over the last d positions (zeros before the start)
                c = s.cumsum(1)
                s = c - F.pad(c, (0, 0, d, 0))[:, :T]
            parts.append(dilated_causal_conv(s, self.taps[a:b], d))
        out = torch.cat(parts, dim=-1)
        if self.sos == "available":
            t = torch.arange(1, T + 1, device=z.device)[:, None]  # (T, 1)
            w = self.windows[None, :]
            out = out * (w.to(out.dtype) / torch.minimum(t, w).to(out.dtype))
        return out


@MODELS.register("wavelet-learnable")
class WaveletLearnable(WaveletGPT):
    """WaveletGPT with learnable causal kernels (one set per layer) initialised to the Haar boxes."""

    Config = LearnableConfig
    Op = LearnableOp
    per_layer = True


# ----------------------------------------------------------------------------- EMA


@dataclass
class EMAConfig(WaveletConfig):
    # decay a_j of modified coordinate j of n: lo + (hi - lo) * (j + 1) / (n + 1), endpoints excluded
    ema_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        super().__post_init__()
        lo, hi = self.ema_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"ema_range must satisfy 0 <= lo <= hi <= 1, got {self.ema_range}")


class EMAOp(WaveletOp):
    """Causal exponential moving averages y[t] = a y[t-1] + (1-a) x[t], one decay per coordinate.

    The paper's ablation: 'an alpha linearly varying between 0 and 1' over the modified coordinates.
    Decays grow with j like the Haar windows do (a ~ 1 - 2/(w+1) is an EMA of span w). O(T) through
    a chunked scan (ops.decay_scan). Start of sequence as for the Haar op: 'available' normalises by
    the weight inside the sequence, 'zero' starts from y[-1] = 0. No parameters.
    """

    fusable = False

    def __init__(self, cfg: EMAConfig, context: int):
        super().__init__(cfg, context)
        if not self.causal:
            raise ValueError("the EMA variant is causal; set causal_op=true")
        n = len(self.windows)
        lo, hi = cfg.ema_range
        self.register_buffer("decay", lo + (hi - lo) * (torch.arange(n, dtype=torch.float64) + 1) / (n + 1),
                             persistent=False)

    def smooth(self, z: torch.Tensor) -> torch.Tensor:
        return ema(z, self.decay, sos=self.sos)


@MODELS.register("wavelet-ema")
class WaveletEMA(WaveletGPT):
    """WaveletGPT with exponential moving averages in place of the Haar boxes (0 parameters)."""

    Config = EMAConfig
    Op = EMAOp


@dataclass
class SingleScaleConfig(WaveletConfig):
    level_map: Literal["linear", "single"] = "single"


@MODELS.register("wavelet-single")
class WaveletSingle(WaveletGPT):
    """Control: one window for every modified coordinate (the largest by default)."""

    Config = SingleScaleConfig


@dataclass
class NonCausalConfig(WaveletConfig):
    causal_op: bool = False
    pool: Optional[Literal["cls", "mean", "last"]] = "cls"


@MODELS.register("wavelet-noncausal")
class WaveletEncoder(WaveletGPT):
    """Encoder (bidirectional attention) with centred multi-scale windows."""

    Config = NonCausalConfig
    causal = False
    default_pool = "cls"
    pad_invariant = False  # centred windows reach into the padding
