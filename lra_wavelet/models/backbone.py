"""The shared sequence backbone: embeddings, pre-LayerNorm blocks with a pluggable token mixer, heads.

Every registered model is a `SequenceModel`. It reads the task's shape (kind, vocab, classes, length,
pad) and answers `forward(batch) -> logits` for all three task kinds:

    classify:  batch["x"] (B, L)     -> (B, n_classes)
    retrieve:  batch["x"] (B, 2, L)  -> (B, n_classes)   one shared encoder, two pooled documents
    lm:        batch["x"] (B, T)     -> (B, T, vocab)

Subclasses change one thing each: `causal`, the token mixer (`make_mixer`), or what happens to the
residual stream after each block (`post_block`) — WaveletGPT is the last kind.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig


class Attention(nn.Module):
    """Multi-head self-attention through SDPA (flash / memory-efficient kernels where available)."""

    def __init__(self, cfg: ModelConfig, causal: bool):
        super().__init__()
        self.n_heads, self.causal, self.dropout = cfg.n_heads, causal, cfg.attn_dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3×(B, nh, T, hs)
        # causal: right padding never reaches a valid position, so no padding mask is needed
        attn_mask = None if (self.causal or mask is None) else mask[:, None, None, :]  # (B, 1, 1, T) keys
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=self.causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.proj(self.drop(F.gelu(self.fc(x))))


class Block(nn.Module):
    """x + mixer(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: ModelConfig, mixer: nn.Module):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
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


class SequenceModel(nn.Module):
    Config = ModelConfig
    causal = False
    default_pool = "cls"
    # True when outputs at valid positions do not depend on trailing padding (attention with a key mask,
    # or causal): the trainer may then cut all-padding columns off a batch. Global mixers set False.
    pad_invariant = True

    def __init__(self, task, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.kind, self.pad_id = cfg, task.kind, task.pad_id
        self.pool_mode = cfg.pool or self.default_pool
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
        self.ln_f = nn.LayerNorm(d)
        self.head = self.make_head(task, cfg)
        self.apply(self._init)

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

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def encode(self, x: torch.Tensor):
        """(B, L) ids -> hidden states (B, L', D) and validity mask (B, L') or None (L' = L + 1 with CLS)."""
        mask = None if self.pad_id is None else x != self.pad_id
        h = self.tok(x)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), h], dim=1)
            if mask is not None:
                mask = F.pad(mask, (1, 0), value=True)
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
        if self.pool_mode == "cls":
            return h[:, 0]
        if self.pool_mode == "mean":
            if mask is None:
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
