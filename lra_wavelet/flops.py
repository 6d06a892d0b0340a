"""Parameter and forward-FLOP counts of a model on a task: `count(model, task)`.

FLOPs are measured, not derived by hand: one forward pass on one example of the task's shape
(classify (1, L), retrieve (1, 2, L): both documents, lm (1, T)) runs under
torch.utils.flop_counter.FlopCounterMode, which counts the matrix products (linear layers, batched
products, convolutions, scaled-dot-product attention) as 2 FLOPs per multiply-add. Added here:
  * the CPU flash-attention kernel (SDPA on CPU), with the same formula as the CUDA ones;
  * FFTs (FNet), at the usual 5 N log2 N real FLOPs per complex transform of length N
    (half of that for a real-to-complex one).
Not counted: elementwise work (norms, activations, softmax inside attention, the Haar moving
means, which are O(T*E) additions), so the numbers are the matmul-dominated cost models are usually
compared by. Variants that run as products are counted as such: the EMA variant's chunked scan (a
small matrix product per chunk) and the learnable variant's depthwise convolution. Causal attention is counted as full attention, as FlopCounterMode does: a causal
kernel skips about half of those products. Every new model is counted without code here, because
the count comes from running it.
"""

from __future__ import annotations

import math

import torch
from torch.utils import flop_counter as fc

aten = torch.ops.aten


def _fft_flop(self_shape, dim, *args, out_shape=None, real_input=False, **kwargs) -> int:
    numel = math.prod(self_shape)
    per_point = sum(5 * math.log2(max(self_shape[d], 2)) for d in dim)  # one 1-D transform per dim
    return int(numel * per_point * (0.5 if real_input else 1.0))


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return fc.sdpa_flop_count(query_shape, key_shape, value_shape)


def _mapping() -> dict:
    m = {aten._fft_c2c: _fft_flop, aten._fft_c2r: _fft_flop,
         aten._fft_r2c: lambda *a, **k: _fft_flop(*a, real_input=True, **k)}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        m[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flop
    return m


def example(task, device="cpu") -> dict:
    """One input of the task's shape (token id 1 everywhere: no position is padding when pad_id is 0)."""
    shape = (1, 2, task.seq_len) if task.kind == "retrieve" else (1, task.seq_len)
    fill = 1 if task.vocab_size > 1 else 0
    return {"x": torch.full(shape, fill, dtype=torch.long, device=device)}


@torch.no_grad()
def count(model: torch.nn.Module, task) -> dict:
    """{'params': trainable + frozen parameter count, 'flops_per_example': forward FLOPs for one example}."""
    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with fc.FlopCounterMode(display=False, custom_mapping=_mapping()) as counter:
            model(example(task, device))
    finally:
        model.train(was_training)
    return {"params": int(params), "flops_per_example": int(counter.get_total_flops())}
