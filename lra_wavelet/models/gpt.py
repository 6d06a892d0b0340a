"""GPT (causal decoder) and WaveletGPT: the same decoder with multi-scale structure imposed on the
residual stream after every block, adding no parameters (Verma, arXiv 2409.12924; DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn as nn

from ..config import ModelConfig
from ..registry import MODELS
from .backbone import SequenceModel
from .ops import box_mean, level_map


@MODELS.register("gpt")
class GPT(SequenceModel):
    """Causal decoder; a classification readout takes the last valid position (or the mean)."""

    causal = True
    default_pool = "last"


@dataclass
class WaveletConfig(ModelConfig):
    mod_frac: float = 0.5  # fraction of the d_model coordinates that are modified
    coords: Literal["second_half", "first_half", "interleaved"] = "second_half"  # which ones
    level_map: Literal["linear", "single"] = "linear"  # l(j) = 1 + floor(j log2 L / n_mod); or one level
    single_level: Optional[int] = None  # level for level_map=single (None: the largest, window ~ L)
    sos: Literal["available", "zero"] = "available"  # start of sequence: mean over what exists, or zero-pad
    transform_embedding: bool = False  # also transform the embedding output (before block 0)
    causal_op: bool = True  # False: centred windows (for encoders)

    def __post_init__(self):
        if not 0.0 <= self.mod_frac <= 1.0:
            raise ValueError(f"mod_frac must be in [0, 1], got {self.mod_frac}")


class WaveletOp(nn.Module):
    """Replace the chosen coordinates of x (B, T, E) by their moving means at their own scale. No parameters."""

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
        self.register_buffer("windows", 2 ** level_map(n_mod, context, cfg.level_map, cfg.single_level),
                             persistent=False)
        self.causal, self.sos = cfg.causal_op, cfg.sos

    def smooth(self, z: torch.Tensor) -> torch.Tensor:
        return box_mean(z, self.windows, causal=self.causal, sos=self.sos)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.idx.numel() == 0:
            return x
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

    def __init__(self, task, cfg: WaveletConfig):
        super().__init__(task, cfg)
        self.wavelet = self.Op(cfg, task.seq_len)
        if self.causal and not cfg.causal_op:
            raise ValueError("a causal decoder needs causal_op=true (centred windows see the future)")

    def post_block(self, x, layer):
        if layer < 0 and not self.cfg.transform_embedding:
            return x
        return self.wavelet(x)


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
