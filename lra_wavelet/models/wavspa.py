"""Wavelet-space attention in the manner of WavSpA (Zhuang et al., arXiv 2210.01989).

The attention sublayer of the encoder becomes: a J-level discrete wavelet transform along the
sequence, self-attention inside each level's coefficient sequence, and the inverse transform:

    x (B, L, E) --DWT--> d_1 (L/2), d_2 (L/4), ..., d_J (L/2^J), a_J (L/2^J)
                --attention on each of the J+1 sequences separately--> --IDWT--> (B, L, E)

Why each level separately (not one attention over the concatenated coefficients): a level's
coefficients are one signal at one resolution, so attention inside it relates like with like; the
levels interact through the inverse transform and the next block. It is also cheaper: the levels
cost sum_l (L/2^l)^2 < L^2/3 score entries instead of L^2. The J+1 sequences share one set of
attention weights, so the model has exactly the Transformer's parameter count (fixed wavelets).

Wavelets: `haar` (fixed, the default) or `ortho`, an adaptive variant in the spirit of their learnable
wavelets (AdaWavSpA / OrthoWavSpA): every level and channel gets a learnable 2x2 orthogonal filter
bank [[cos th, sin th], [sin th, -cos th]] applied to pairs of neighbouring samples, initialised at
th = pi/4, which is Haar. Any th keeps the transform orthogonal, so the inverse is exact by
construction. (Longer learnable filters, as in the paper's lifting schemes, are not implemented.)

Lengths not divisible by 2^J are zero-padded at the end and cropped after the inverse transform.
Padding (the task's pad_id, and that internal padding, also when the task has no pad id) is zeroed
before the transform, and a coefficient is a valid key when its support holds at least one valid
position, so valid outputs never depend on padded inputs, nor on how much padding follows them.
Initialisation, weight decay, pooling and the retrieval head follow the LRA benchmark's conventions
(backbone.LRAConfig), whose code base WavSpA's LRA numbers were produced in.

Padding against WavSpA's own code (EvanZhuang/wavspa 0610f76, models/wavspa/wavspa_learn.py), which also
takes `inputs > 0` as its mask (black pixels on the image tasks: task.pixel0_is_pad in our reference
configs): it zeroes masked positions of each block's input, residual stream included, before the LayerNorm
(so they enter the transform as the LayerNorm's bias), and its attention over coefficients has no mask. Here
masked positions are zeroed after the LayerNorm, inside the mixer, padded coefficients are masked keys, and
the residual stream keeps them. Both hide padding from the mixing; the readouts differ at padded positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .backbone import Attention, LRAConfig, SequenceModel


@dataclass
class WavSpAConfig(LRAConfig):
    levels: int = 3  # J, the number of DWT levels
    wavelet: Literal["haar", "ortho"] = "haar"  # fixed Haar, or learnable orthogonal 2-tap filters

    def __post_init__(self):
        super().__post_init__()
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")


def dwt(x: torch.Tensor, levels: int, angles: torch.Tensor | None = None) -> list[torch.Tensor]:
    """x (B, L, E) with L divisible by 2**levels -> [d_1, ..., d_J, a_J], d_l of shape (B, L / 2**l, E).

    Haar: a = (x[2k] + x[2k+1]) / sqrt 2, d = (x[2k] - x[2k+1]) / sqrt 2 (pywt's 'haar' convention).
    angles (levels, E): the orthogonal filter bank a = c x0 + s x1, d = s x0 - c x1 per level and channel.
    """
    out, a = [], x
    for l in range(levels):
        x0, x1 = a[:, 0::2], a[:, 1::2]
        if angles is None:
            c = s = 1 / math.sqrt(2)
        else:
            c, s = torch.cos(angles[l]).to(x.dtype), torch.sin(angles[l]).to(x.dtype)
        a, d = c * x0 + s * x1, s * x0 - c * x1
        out.append(d)
    return out + [a]


def idwt(coeffs: list[torch.Tensor], angles: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of dwt: the filter bank is symmetric and orthogonal, so it is its own inverse."""
    a = coeffs[-1]
    for l in reversed(range(len(coeffs) - 1)):
        d = coeffs[l]
        if angles is None:
            c = s = 1 / math.sqrt(2)
        else:
            c, s = torch.cos(angles[l]).to(a.dtype), torch.sin(angles[l]).to(a.dtype)
        x0, x1 = c * a + s * d, s * a - c * d
        a = torch.stack([x0, x1], dim=2).flatten(1, 2)  # interleave: (B, n, 2, E) -> (B, 2n, E)
    return a


class WaveletAttention(nn.Module):
    def __init__(self, cfg: WavSpAConfig):
        super().__init__()
        self.levels = cfg.levels
        self.attn = Attention(cfg, causal=False)  # shared by every level
        self.angles = nn.Parameter(torch.full((cfg.levels, cfg.d_model), math.pi / 4)) if cfg.wavelet == "ortho" else None
        if self.angles is not None:
            self.angles.no_weight_decay = True  # decay would pull the filter bank towards theta = 0, not Haar (pi/4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        B, L, E = x.shape
        step = 2 ** self.levels
        Lp = -(-L // step) * step
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        elif Lp > L:  # no pad id: only the internal padding is invalid
            mask = torch.ones(B, L, dtype=torch.bool, device=x.device)
        x = F.pad(x, (0, 0, 0, Lp - L))
        m = None if mask is None else F.pad(mask, (0, Lp - L), value=False)
        coeffs = dwt(x, self.levels, self.angles)
        mixed = []
        for l, c in enumerate(coeffs):  # level l+1 details, then the approximation at level J
            size = 2 ** min(l + 1, self.levels)  # positions under one coefficient
            ml = None if m is None else m.view(B, -1, size).any(-1)  # valid if any position under it is
            mixed.append(self.attn(c, ml))
        return idwt(mixed, self.angles)[:, :L]


@MODELS.register("wavspa")
class WavSpA(SequenceModel):
    """Encoder whose attention works in Haar (or learnable orthogonal) wavelet space."""

    Config = WavSpAConfig
    causal = False
    default_pool = "cls"
    retrieval_pool = "first"
    pad_invariant = True  # the Haar supports are local and padded coefficients are masked keys (tests check it)

    def make_mixer(self, layer: int) -> nn.Module:
        top = math.ceil(math.log2(max(self.max_len, 2)))  # more levels would only pad the sequence further
        if self.cfg.levels > top:
            raise ValueError(f"levels must be <= {top} for sequences of length {self.max_len}, got {self.cfg.levels}")
        return WaveletAttention(self.cfg)
