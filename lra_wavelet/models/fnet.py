"""FNet: token mixing by the real part of a 2-D discrete Fourier transform (Lee-Thorp et al., 2021).

The attention sublayer of the encoder is replaced by y = Re(FFT_seq(FFT_hidden(x))), which has no
parameters and costs O(T log T) per coordinate. The rest of the block (pre-LN, MLP, heads, pooling)
is the shared backbone's.

Two choices differ from the paper's post-LN encoder, both for the same reason (our blocks are pre-LN,
so the mixer output is added to the residual stream unnormalised):
  * the DFT is the unitary one (norm='ortho', scaled by 1/sqrt(T*E)), so the mixer keeps the scale of
    its input instead of multiplying it by ~sqrt(T*E);
  * padding: positions that are padding (the task's pad_id, the same mask the Transformer's attention
    uses) are set to zero before the transform. A DFT mixes every position into every other, so
    without this the padding tokens' hidden states would leak into the valid positions; with it the
    valid outputs do not depend on what the padded positions hold. The sequence-axis DFT still runs
    over the full padded length L (the frequencies are those of length L; zero-padding a signal is
    what a DFT of a shorter sequence padded to L means), which is what FNet on LRA did.
The transform runs in float32 (cuFFT half precision wants power-of-two sizes) and is cast back.
Initialisation, weight decay, pooling and the retrieval head follow the LRA benchmark's conventions
(backbone.LRAConfig), whose code base FNet's LRA numbers were produced in.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import MODELS
from .backbone import LRAConfig, SequenceModel


class FourierMix(nn.Module):
    """Re(FFT2(x)) over (sequence, hidden), padded positions zeroed first. No parameters."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, T, E) -> (B, T, E)
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        return torch.fft.fft2(x.float(), dim=(1, 2), norm="ortho").real.to(x.dtype)


@MODELS.register("fnet")
class FNet(SequenceModel):
    """Encoder with Fourier token mixing (real part of a 2-D DFT) in place of attention; no mixing parameters."""

    Config = LRAConfig
    causal = False
    default_pool = "cls"
    retrieval_pool = "first"
    pad_invariant = False  # the transform mixes over the whole (padded) length

    def make_mixer(self, layer: int) -> nn.Module:
        return FourierMix()
