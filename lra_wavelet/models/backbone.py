"""The shared sequence backbone: embeddings, pre-LayerNorm blocks with a pluggable token mixer, heads.

Every registered model is a `SequenceModel`. It reads the task's shape (kind, vocab, classes, length,
pad) and answers `forward(batch) -> logits` for all three task kinds:

    classify:  batch["x"] (B, L)     -> (B, n_classes)
    retrieve:  batch["x"] (B, 2, L)  -> (B, n_classes)   one shared encoder, two pooled documents
    lm:        batch["x"] (B, T)     -> (B, T, vocab)

Subclasses change one thing each: `causal`, the token mixer (`make_mixer`), or what happens to the
residual stream after each block (`post_block`) — WaveletGPT is the last kind.

Two sets of conventions, each a config field: the decoders' (GPT-style, `ModelConfig` defaults; the LRA task
YAMLs give every model the benchmark's init, decay, eps and GELU, `--preset gpt-init` takes them back) and the
LRA benchmark's encoder (`LRAConfig`, used by transformer, fnet and wavspa), which google-research/
long-range-arena's Flax code fixes as follows (models/transformer/transformer.py, models/layers/common_layers.py,
flax.deprecated.nn and flax.optim at flax 0.3):
  * init 'lra': token embeddings N(0, 1); attention q, k, v and output projections xavier-uniform, each on
    its own (d_model x qkv_dim) matrix, no biases; MLP kernels xavier-uniform, biases N(0, 1e-6); classifier
    head Flax's Dense default (LeCun normal: truncated at 2 sd, variance 1/fan_in), biases zero; CLS zero,
    learned positions N(0, 0.02), LayerNorm 1 / 0 (same in both);
  * LayerNorm epsilon 1e-6, GELU as the tanh approximation (jax.nn.gelu's default);
  * weight decay on every parameter (flax.optim.Adam decays all; read by train.make_optimizer);
  * mean pooling over every position, padding included; the benchmark's attention masks padded queries as
    well as keys (bias -1e10), so a padded position attends uniformly to all positions: reproduced here when
    the model mean-pools with mean_pool 'all' (the only readout that sees padded positions; such a model is
    not pad-invariant). Attention dropout on those uniform rows is not reproduced (they are exact means);
  * retrieval: the two documents' first tokens (no CLS vector is prepended) and [e1, e2] to the MLP.
  * the CLS vector takes the padding mask of the first token (cls_mask 'first_token'), so an image whose first
    pixel is black (pixel 0 as padding) has its CLS masked: no position attends to it and it attends uniformly
    to every position, padding included, the readout the benchmark pools. Only such tasks (padding_leads) are
    affected; 'valid' keeps the CLS always valid.
One difference remains: an image that is all black (every position padding) attends from its CLS to the CLS
alone, where the benchmark's rows are all uniform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig


def padded_head_width(width: int, setting: int | None, masked: bool, cuda: bool) -> int:
    """The head width SDPA is given (train.attn_pad_heads; speed only: zero columns change no number).

    An int pads heads narrower than it (0: never). None (auto) pads to 8 on CUDA when the attention carries a key
    mask and its heads are narrower: with a mask no flash kernel runs, and the kernels that take masks refuse
    widths under 8, which leaves the math path (H200, Pathfinder's 512 x 4 x 1024 x 4 with a key mask: 70.0 ms
    per forward + backward, padded to 8 10.6 ms on cuDNN, results/benchmarks/attention_masked_2026-12-02.md).
    Without a mask flash takes width 4 itself, and padding measured no faster there."""
    if setting is None:
        setting = 8 if (masked and cuda) else 0
    return max(width, setting)


_SM80: dict[int, bool] = {}  # CUDA device index -> compute capability 8 or more (asked once, outside any graph)


def _sm80(device: torch.device) -> bool:
    i = torch.cuda.current_device() if device.index is None else device.index
    if i not in _SM80:
        _SM80[i] = torch.cuda.get_device_capability(i)[0] >= 8
    return _SM80[i]


def flash_varlen_ok(t: torch.Tensor) -> bool:
    """Whether flash's variable-length kernel takes `t`: CUDA, compute capability 8 or more, half precision."""
    return t.is_cuda and t.dtype in (torch.float16, torch.bfloat16) and _sm80(t.device)


def probe_flash_varlen(device: torch.device) -> str | None:
    """None if flash's variable-length kernel runs a tiny forward and backward on `device` (a CUDA device of
    capability 8 or more), else the first line of its error: a run asks before its first step, not mid-sweep."""
    try:
        q = torch.randn(6, 1, 8, device=device, dtype=torch.bfloat16, requires_grad=True)
        cu = torch.tensor([0, 2, 5], device=device, dtype=torch.int32)
        segment_attention(q, q, q, cu, 4, 0.0, 0.5).float().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except RuntimeError as e:
        return (str(e).strip().splitlines() or [type(e).__name__])[0]
    return None


def varlen_kernel(device: torch.device, half: bool) -> str:
    """The kernel train.attn_varlen runs on `device` (half: under bf16 autocast), as env.json records it; on CUDA
    it also asks the device's capability once, before anything is compiled."""
    if device.type != "cuda":
        return "per-segment SDPA"
    return "flash varlen" if half and _sm80(device) else "masked SDPA (flash varlen needs half precision)"


def varlen_layout(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(order, cu_seqlens, in_segment) of a (B, T) key mask. `order` lists the B x T flattened positions with
    every row's valid ones first (rows in order, positions in order within a row), then all padded ones;
    cu_seqlens (B + 1,) int32 are the rows' bounds within that order; in_segment (B x T,) is True for the first
    cu_seqlens[-1] entries. Every shape is fixed by (B, T): no host sync, so a compiled model keeps it in its graph."""
    flat = mask.reshape(-1)
    order = torch.argsort((~flat).to(torch.int8), stable=True)
    cu = F.pad(mask.sum(1, dtype=torch.int32).cumsum(0, dtype=torch.int32), (1, 0))
    return order, cu, flat[order]


def segment_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                      dropout_p: float, scale: float, causal: bool = False) -> torch.Tensor:
    """Attention within each segment [cu[i], cu[i + 1]) of (N, nh, hs) q, k, v (causal: each position attends to
    the segment's positions up to itself); the rows past cu[-1] are in no segment (their output and input
    gradients: unwritten). On CUDA in half precision flash's variable-length kernel (the one SDPA runs for nested
    tensors, called directly: no host sync, no graph break, its backward and dropout included; no work for the
    rows past cu[-1]); elsewhere each segment through SDPA, the same function."""
    if flash_varlen_ok(q):
        return torch.ops.aten._flash_attention_forward(q, k, v, cu, cu, max_len, max_len, dropout_p, causal, False,
                                                       scale=scale)[0]
    bounds = cu.tolist()
    parts = [F.scaled_dot_product_attention(*(t[s:e].transpose(0, 1) for t in (q, k, v)), dropout_p=dropout_p,
                                            is_causal=causal, scale=scale).transpose(0, 1)
             for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
    return torch.cat([*parts, q.new_zeros(q.shape[0] - bounds[-1], *q.shape[1:])])


def varlen_attention(qkv: torch.Tensor, mask: torch.Tensor, n_heads: int, dropout_p: float,
                     width: int = 0, causal: bool = False) -> torch.Tensor:
    """Attention of each row's valid positions among themselves: the same as SDPA with `mask` on the keys at every
    valid query, zero at padded queries, and no attention work for the padding (train.attn_varlen). Causal: each
    valid position attends to the valid ones up to itself, which is causal attention with no mask where the
    padding only trails (a valid position never sees it there), not where it may come first or in between.
    The valid positions of the batch are gathered to the front (varlen_layout: attention is the same for any
    order of a row's positions), each row one segment of segment_attention, and the result scattered back.
    qkv (B, T, 3 x inner), the input projection's output; mask (B, T) True where valid, every row with one valid
    position at least (SequenceModel.encode sees to it); heads narrower than `width` are zero-padded to it (as
    padded_head_width: the same attention; flash's to a multiple of 8 too). Returns (B, T, nh, hs), the layout
    the output projection reads. Under attention dropout the same in distribution (another kernel draws its
    masks)."""
    B, T, _ = qkv.shape
    order, cu, in_segment = varlen_layout(mask)
    packed = qkv.view(B * T, 3, n_heads, -1)
    hs = packed.shape[-1]
    width = max(width, hs)
    if flash_varlen_ok(qkv):
        width = -(-width // 8) * 8
    # the padded positions' rows (past cu[-1]) zeroed: flash leaves their gradient unwritten, and zero reaches qkv
    packed = torch.where(in_segment[:, None, None, None], packed.index_select(0, order), 0)
    if width > hs:
        packed = F.pad(packed, (0, width - hs))
    q, k, v = packed.unbind(1)
    y = segment_attention(q, k, v, cu, T, dropout_p, hs ** -0.5, causal)[..., :hs]
    out = torch.empty_like(y).index_copy(0, order, y)
    return torch.where(mask.reshape(-1, 1, 1), out, 0).view(B, T, n_heads, hs)


class Attention(nn.Module):
    """Multi-head self-attention through SDPA (flash / memory-efficient kernels where available), d_model ->
    qkv_dim (split over the heads) -> d_model, no biases."""

    def __init__(self, cfg: ModelConfig, causal: bool):
        super().__init__()
        self.n_heads, self.causal, self.dropout = cfg.n_heads, causal, cfg.attn_dropout
        self.inner = cfg.qkv_dim or cfg.d_model
        self.uniform_padded = False  # padded queries attend uniformly, as in the benchmark (set by the model)
        self.pad_heads_to: int | None = 0  # train.attn_pad_heads (set by build): see padded_head_width
        self.varlen = False  # train.attn_varlen (set by build, for causal attention only where padding trails)
        self.qkv = nn.Linear(cfg.d_model, 3 * self.inner, bias=False)
        self.proj = nn.Linear(self.inner, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.shape
        qkv = self.qkv(x)
        dropout_p = self.dropout if self.training else 0.0
        hs = self.inner // self.n_heads
        # causal: right padding never reaches a valid position, so no padding mask is needed
        masked = mask is not None and not self.causal
        # train.attn_varlen: no work for padding (on CUDA only where flash's kernel runs: the masked kernels beat a
        # loop over rows); causal attention takes it too, its right padding's rows zero, which no valid position
        # reads (build sets it only for pad-invariant causal models on tasks whose padding trails)
        if mask is not None and self.varlen and (flash_varlen_ok(qkv) or not qkv.is_cuda):
            y = varlen_attention(qkv, mask, self.n_heads, dropout_p,
                                 padded_head_width(hs, self.pad_heads_to, True, qkv.is_cuda),
                                 self.causal)  # (B, T, nh, hs)
        else:
            q, k, v = qkv.view(B, T, 3, self.n_heads, hs).permute(2, 0, 3, 1, 4)
            attn_mask = mask[:, None, None, :] if masked else None  # (B, 1, 1, T) keys
            pad = padded_head_width(hs, self.pad_heads_to, masked, q.is_cuda) - hs
            # zero-padded heads: no q.k changes and the extra output columns are zero, so the same attention (its
            # dropout the same in distribution), at a width more kernels take (cuDNN refuses Pathfinder's 4)
            qp, kp, vp = (F.pad(t, (0, pad)) for t in (q, k, v)) if pad else (q, k, v)
            y = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=attn_mask, is_causal=self.causal,
                                               dropout_p=dropout_p,
                                               scale=hs ** -0.5 if pad else None)[..., :hs].transpose(1, 2)
        if masked and self.uniform_padded:  # padded queries take the mean of every position's value
            v = qkv.view(B, T, 3, self.n_heads, hs)[:, :, 2]
            y = torch.where(mask[:, :, None, None], y, v.mean(1, keepdim=True))
        return self.proj(y.reshape(B, T, self.inner))  # y: (B, T, nh, hs)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.approximate = "tanh" if cfg.gelu == "tanh" else "none"

    def forward(self, x):
        return self.proj(self.drop(F.gelu(self.fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """x + mixer(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: ModelConfig, mixer: nn.Module):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps), nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mixer, self.mlp = mixer, MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask):
        x = x + self.drop(self.mixer(self.ln1(x), mask))
        return x + self.drop(self.mlp(self.ln2(x)))


def sinusoid(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: d // 2])
    return pe


@dataclass
class LRAConfig(ModelConfig):
    """ModelConfig at the LRA benchmark's encoder conventions (module docstring); each stays a switch."""

    mean_pool: Literal["all", "valid"] = "all"
    retrieval_combine: Literal["nli", "concat"] = "concat"
    init: Literal["gpt", "lra"] = "lra"
    weight_decay_on: Literal["matrices", "all"] = "all"
    norm_eps: float = 1e-6
    gelu: Literal["exact", "tanh"] = "tanh"
    cls_mask: Literal["first_token", "valid"] = "first_token"  # the CLS takes the first token's padding mask


def _gpt_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


def _lecun_normal_(w: torch.Tensor) -> None:
    """Flax's Dense default: a normal truncated at 2 sd, rescaled to variance 1 / fan_in."""
    std = math.sqrt(1.0 / w.shape[1]) / 0.87962566103423978  # the sd of a standard normal truncated to (-2, 2)
    nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


class SequenceModel(nn.Module):
    Config = ModelConfig
    causal = False
    default_pool = "cls"
    retrieval_pool = None  # the default pooling of each retrieval document (None: default_pool)
    # Declared by a model whose outputs at valid positions never depend on trailing padding (attention with
    # a key mask, or causal): the trainer may then cut all-padding columns off a batch (train.trim_padding).
    # An instance also turns it off when its readout averages the padding (mean_pool 'all').
    pad_invariant = False

    def __init__(self, task, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.kind, self.pad_id = cfg, task.kind, task.pad_id
        self.pool_mode = cfg.pool or (task.kind == "retrieve" and self.retrieval_pool) or self.default_pool
        if self.causal and self.pool_mode == "cls":
            raise ValueError("a causal model cannot pool a leading CLS vector; use pool 'last' or 'mean'")
        if task.kind == "lm" and self.pool_mode == "cls":
            self.pool_mode = "last"  # unused for lm; no CLS vector to prepend
        d = cfg.d_model
        self.max_len = task.seq_len + (self.pool_mode == "cls")
        self.tok = nn.Embedding(task.vocab_size, d)
        if cfg.pos == "learned":
            self.pos = nn.Parameter(torch.randn(self.max_len, d) * 0.02)
        else:
            self.register_buffer("pos", sinusoid(self.max_len, d) if cfg.pos == "sinusoidal" else torch.zeros(0, d),
                                 persistent=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, d)) if self.pool_mode == "cls" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, self.make_mixer(i)) for i in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.head = self.make_head(task, cfg)
        # the readout sees padded positions: mean pooling over all of them, or a CLS that is itself padding
        # when the sequence opens with padding (LRAConfig.cls_mask 'first_token' on the image tasks)
        self.cls_takes_first = (self.pool_mode == "cls" and getattr(cfg, "cls_mask", "valid") == "first_token"
                                and task.pad_id is not None and getattr(task, "padding_leads", False))
        reads_padding = (self.pool_mode == "mean" and cfg.mean_pool == "all") or self.cls_takes_first
        for m in self.modules():  # the padded positions' attention is only observable when the readout averages them
            if isinstance(m, Attention):
                m.uniform_padded = reads_padding
        self.pad_invariant = type(self).pad_invariant and not reads_padding
        self.reset_parameters()

    # -- what subclasses change ------------------------------------------------------------
    def make_mixer(self, layer: int) -> nn.Module:
        return Attention(self.cfg, self.causal)

    def post_block(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Applied to the residual stream after block `layer` (layer -1: after the embedding)."""
        return x

    # -- the common path -------------------------------------------------------------------
    def make_head(self, task, cfg) -> nn.Module:
        d, h = cfg.d_model, cfg.head_dim or cfg.d_ff
        if task.kind == "lm":
            head = nn.Linear(d, task.vocab_size, bias=False)
            head.weight = self.tok.weight  # tied input/output embedding
            return head
        if task.kind == "retrieve":
            d_in = 4 * d if cfg.retrieval_combine == "nli" else 2 * d
            return nn.Sequential(nn.Linear(d_in, h), nn.ReLU(), nn.Linear(h, h // 2), nn.ReLU(),
                                 nn.Linear(h // 2, task.n_classes))
        return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, task.n_classes))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """cfg.init 'gpt': every linear and embedding weight N(0, 0.02), biases zero. 'lra': the benchmark's
        initialisers (module docstring). Norms, CLS and learned positions are set where they are made."""
        if self.cfg.init == "gpt":
            self.apply(_gpt_init)  # (the same draws as before the switch existed: seeded runs repeat)
            return
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=1.0)
            elif isinstance(m, nn.Linear) and m.weight is not self.tok.weight:  # (tied: set as the embedding)
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Attention):  # q, k and v are three matrices in the benchmark, each with its own fans
                for w in m.qkv.weight.chunk(3):
                    nn.init.xavier_uniform_(w)
            elif isinstance(m, MLP):
                nn.init.normal_(m.fc.bias, std=1e-6)
                nn.init.normal_(m.proj.bias, std=1e-6)
        if self.kind != "lm":  # (an lm head is the tied token embedding)
            for m in self.head.modules():
                if isinstance(m, nn.Linear):
                    _lecun_normal_(m.weight)

    def encode(self, x: torch.Tensor):
        """(B, L) ids -> hidden states (B, L', D) and validity mask (B, L') or None (L' = L + 1 with CLS)."""
        mask = None if self.pad_id is None else x != self.pad_id
        h = self.tok(x)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), h], dim=1)
            if mask is not None:  # the benchmark's CLS takes the first token's mask (cls_takes_first)
                mask = torch.cat([mask[:, :1] if self.cls_takes_first else torch.ones_like(mask[:, :1]), mask], 1)
        if mask is not None:
            mask = mask.clone()
            mask[:, 0] |= ~mask.any(1)  # an all-padding row must still attend somewhere
        if self.pos.numel():
            h = h + self.pos[: h.shape[1]]
        h = self.post_block(self.drop(h), -1)
        for i, block in enumerate(self.blocks):
            h = self.post_block(block(h, mask), i)
        return self.ln_f(h), mask

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.pool_mode in ("cls", "first"):
            return h[:, 0]
        if self.pool_mode == "mean":
            if mask is None or self.cfg.mean_pool == "all":
                return h.mean(1)
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1)
        last = (mask.long().cumsum(1).argmax(1) if mask is not None  # index of the last valid position
                else torch.full((h.shape[0],), h.shape[1] - 1, device=h.device))
        return h[torch.arange(h.shape[0], device=h.device), last]

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["x"]
        if x.dim() == 3:  # retrieve: (B, 2, L) -> one shared encoder over 2B documents
            B = x.shape[0]
            e1, e2 = self.pool(*self.encode(x.flatten(0, 1))).view(B, 2, -1).unbind(1)
            feats = [e1, e2, e1 * e2, e1 - e2] if self.cfg.retrieval_combine == "nli" else [e1, e2]
            return self.head(torch.cat(feats, dim=-1))
        h, mask = self.encode(x)
        return self.head(h) if self.kind == "lm" else self.head(self.pool(h, mask))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
