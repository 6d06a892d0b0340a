"""The one training loop, for every task kind and model, as parts that can be called alone.

    build(cfg)                  task, data, model, AdamW, schedule, autocast: a `Parts`
    batches(p, start)           the device batches of steps start, start+1, ... (optionally prefetched)
    train_step(p, batch)        one optimisation step: forward_backward (train.grad_accum micro-batches), then
                                apply_update (clip, AdamW, schedule); the loop checks for NaN in between
    evaluate(...)               metrics on a split
    save_checkpoint / load_checkpoint
    result_rows                 tidy rows for result.csv
    log_metrics                 every curve point (train and val) passes through here
    train(cfg)                  composes them: resume, loop, evaluation, checkpoints, signals, rows

    AdamW + warm-up and rsqrt / cosine / linear / constant decay, gradient clipping, bf16 autocast on
    CUDA, optional torch.compile, evaluation every `eval_every` steps, a resumable checkpoint every
    `checkpoint_every` steps (model, optimiser, scheduler, RNG states, data position), tidy result rows.

Data order is a pure function of (seed, step), so `--resume` after a kill reproduces the uninterrupted
run exactly on the CPU. Under `torchrun --nproc_per_node=N` each rank takes every N-th example of the
same global batch (DistributedDataParallel); only rank 0 writes, and it holds the run folder's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from . import config as config_mod
from . import loggers, results
from .config import RunConfig
from .errors import UserError
from .evaluate import classification_metrics, lm_metrics
from .models.backbone import probe_flash_varlen, varlen_kernel
from .registry import MODELS, TASKS

CRASH_ENV = "LRA_WAVELET_CRASH_AT_STEP"  # tests: hard-exit (as if killed) right after this step


@dataclass
class Outcome:
    run_dir: Path
    status: str
    metrics: dict = field(default_factory=dict)  # {"test": {"accuracy": ...}, "val": {...}}
    skipped: bool = False


# ----------------------------------------------------------------------------- setup


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device '{name}' requested but CUDA is not available; use --device cpu")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    elif name != "cpu":
        raise UserError(f"device '{name}': expected auto, cpu, cuda or cuda:N")
    return torch.device(name)


def init_distributed(cfg: RunConfig) -> tuple[int, int, torch.device]:
    """(rank, world, device): joins torchrun's process group when there is one and selects the device."""
    rank, world, local_rank = dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cfg.device != "cpu" and torch.cuda.is_available() else "gloo")
    device = pick_device(cfg.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return rank, world, device


def lr_lambda(t: config_mod.TrainConfig):
    """Multiplier of the peak lr at optimizer step `step` (0-based): linear warm-up min(1, (step + 1) / w), then
    the configured decay, floored at min_lr_ratio. Every schedule counts step + 1, one ahead of the LRA
    benchmark's counter (its lr is 0 at step 0 and reaches the peak at step w; ours is lr / w at step 0 and the
    peak at step w - 1): kept, since changing it would change every run made so far.

    Cosine: progress runs over train.cosine_cycle. 'after_warmup': (step + 1 - w) / (n - w), so the lr reaches
    the floor at the last step. 'max_steps': (step + 1 - w) / n, the benchmark's cosine_decay with
    steps_per_cycle = num_train_steps (train_utils.create_learning_rate_scheduler), so the last step is at
    0.5 (1 + cos(pi (n - w) / n)) of the peak, not 0. Progress is clamped at 1 (the floor) where the benchmark
    takes it mod 1 (a new cycle from the peak): the same wherever progress < 1, which is every step of a run
    with warm-up; with warmup_steps 0 the last step reaches 1, and the clamp keeps the floor there."""
    w, n, floor = t.warmup_steps, t.max_steps, t.min_lr_ratio
    period = max(1, n if t.cosine_cycle == "max_steps" and t.schedule == "cosine" else n - w)

    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / w) if w else 1.0
        if t.schedule == "constant":
            return warm
        if t.schedule == "rsqrt":  # the LRA schedule, normalised so that the peak is lr
            return warm * math.sqrt(max(w, 1) / max(step + 1, w, 1))
        progress = min(1.0, max(0, step + 1 - w) / period)
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if t.schedule == "cosine" else 1 - progress
        return warm * (floor + (1 - floor) * decay)

    return f


def make_optimizer(model: torch.nn.Module, t: config_mod.TrainConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay, as flax.optim.Adam's). What decays is the model's `weight_decay_on`:
    'all' (the LRA benchmark's: every parameter) or 'matrices' (biases, norms and other 1-d parameters do
    not). Parameters marked `no_weight_decay` (wavelet filters, which decay would pull off their init) never do."""
    on = getattr(getattr(model, "cfg", None), "weight_decay_on", "matrices")
    params = [p for p in model.parameters() if p.requires_grad]
    decays = [(on == "all" or p.dim() >= 2) and not getattr(p, "no_weight_decay", False) for p in params]
    decay = [p for p, d in zip(params, decays) if d]
    other = [p for p, d in zip(params, decays) if not d]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": other, "weight_decay": 0.0}]
    fused = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)  # one kernel per step on GPU
    return torch.optim.AdamW(groups, lr=t.lr, betas=tuple(t.betas), eps=t.eps, fused=fused or None)


def to_device(batch: dict, device: torch.device, rank: int = 0, world: int = 1) -> dict:
    out = {}
    for k, v in batch.items():
        v = v[rank::world] if world > 1 else v
        out[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)).to(device, non_blocking=True)
    return out


def bucket_lengths(seq_len: int, buckets: int) -> list[int]:
    """`buckets` evenly spaced lengths up to seq_len (multiples of 8 where possible): the only shapes a
    trimmed batch takes, so compiled graphs and CUDA graphs are reused."""
    return sorted({min(seq_len, -(-seq_len * k // buckets // 8) * 8) for k in range(1, buckets + 1)})


GROUPED_BUCKETS = 8  # compiled and train.length_groups > 1: the lengths a micro-batch may take (8 static graphs)


def length_buckets(t: config_mod.TrainConfig) -> int:
    """train.length_buckets, where 0 means multiples of 128 when eager and the full length when compiled: a
    compiled model gets one static shape (each new length would be a recompile, and dynamic-shape graphs
    and a compiled ListOps transformer whose trimmed lengths varied failed on CUDA, torch 2.11: "shape
    '[1921, 512]' is invalid for input of size 1"), or with train.length_groups GROUPED_BUCKETS static shapes
    (one length for every micro-batch would undo the grouping)."""
    if t.length_buckets or not t.compile:
        return t.length_buckets
    return GROUPED_BUCKETS if t.length_groups > 1 else 1


def trim_padding(batch: dict, pad_id: int, multiple: int = 128, buckets: int = 0) -> dict:
    """Cut trailing columns that are padding in every row, rounded up to `multiple` (or, with `buckets`,
    up to the nearest of `bucket_lengths`) to bound the number of distinct shapes. Exact for models whose
    valid positions never see padding (`pad_invariant`)."""
    x = batch["x"]
    used = np.nonzero((x != pad_id).reshape(-1, x.shape[-1]).any(0))[0]
    need = int(used[-1]) + 1 if len(used) else 1
    if buckets:
        n = next(b for b in bucket_lengths(x.shape[-1], buckets) if b >= need)
    else:
        n = min(x.shape[-1], -(-need // multiple) * multiple)
    return {**batch, "x": x[..., :n]} if n < x.shape[-1] else batch


def row_lengths(x: np.ndarray, pad_id: int) -> np.ndarray:
    """Each row's length: one past its last position that is not padding (0 for an all-padding row); a row of
    several documents (retrieval's (2, L)) counts its longest."""
    used = (x != pad_id).reshape(x.shape[0], -1, x.shape[-1]).any(1)
    last = x.shape[-1] - np.argmax(used[:, ::-1], axis=1)
    return np.where(used.any(1), last, 0)


def group_by_length(batch: dict, pad_id: int, groups: int, buckets: int = 0) -> list[tuple[np.ndarray, dict]]:
    """`groups` equal micro-batches of the batch's rows, shortest rows first (a stable sort by row_lengths), each
    trimmed on its own (trim_padding); with each, the indices of its rows in the batch. Exact for pad-invariant
    models, as trim_padding: a row's logits do not depend on which rows share its micro-batch."""
    n = len(batch["y"])
    order = np.argsort(row_lengths(batch["x"], pad_id), kind="stable")
    out = []
    for i in range(groups):
        idx = order[i * n // groups:(i + 1) * n // groups]
        out.append((idx, trim_padding({k: v[idx] for k, v in batch.items()}, pad_id, buckets=buckets)))
    return out


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for (B, C) class logits and for (B, T, V) next-token logits alike."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


def run_paths(cfg: RunConfig) -> tuple[str, Path]:
    run_id = f"{cfg.task.name}-{cfg.model.name}-s{cfg.seed}-{cfg.hash}"
    return run_id, Path(cfg.out) / cfg.task.name / cfg.model.name / run_id


def record_failure(cfg: RunConfig, error: BaseException) -> Path:
    """A run that raised: one row with status 'failed' (and the error in error.json, with its traceback unless it
    is a UserError), so reports show FAIL, not '—'."""
    run_id, run_dir = run_paths(cfg)
    row = dict(run_id=run_id, task=cfg.task.name, model=cfg.model.name, seed=cfg.seed, split="train",
               metric="error", value=float("nan"), step=0, status="failed", config_hash=cfg.hash,
               git_sha=results.git_sha(), schema_version=results.SCHEMA_VERSION)
    results.write_rows(run_dir / "result.csv", [row])
    info = {"run_id": run_id, "error": f"{type(error).__name__}: {error}"}
    if not isinstance(error, UserError):
        info["traceback"] = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    results.write_json(run_dir / "error.json", info)
    return run_dir


def build_model(task, mcfg):
    """The model `mcfg` names, built for `task` (on the CPU), or a UserError saying why it cannot run there.
    run, validate and `list models` all ask this, so they agree on what runs where."""
    try:
        model = MODELS.get(mcfg.name)(task, mcfg)
    except ValueError as e:
        raise UserError(f"model '{mcfg.name}': {e}") from None
    if task.kind == "lm" and not model.causal:
        raise UserError(f"model '{mcfg.name}' is not causal: trained on next-token prediction it would see "
                        f"the tokens it predicts; use gpt or a wavelet decoder for '{task.name}'")
    return model


# ----------------------------------------------------------------------------- the parts of a run


@dataclass
class Parts:
    """What one run trains with, built from its config by `build`; every other part takes it."""

    cfg: RunConfig
    task: object
    splits: dict
    model: torch.nn.Module  # the module itself (state dicts, parameters)
    net: torch.nn.Module  # the model as run: compiled and / or DistributedDataParallel
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    amp: Callable  # () -> the autocast context (or a null one)
    device: torch.device
    rank: int = 0
    world: int = 1
    trim: bool = False  # cut all-padding columns (pad-invariant classifiers only)
    groups: int = 1  # micro-batches of rows sorted by length, each trimmed (train.length_groups where trim holds)
    # train.attn_varlen as applied (env.json): False where it changes nothing (off, no padding, or a causal model it
    # may not skip the padding of), else the kernel it runs (models/backbone.py varlen_kernel)
    attn_varlen: object = False
    curves: loggers.Logger = field(default_factory=loggers.Logger)  # TensorBoard / W&B views (train.logger)
    resumed_curve: Optional[str] = None  # metrics.jsonl as it was when the checkpoint resumed from was saved
    resumed_best: Optional[dict] = None  # best.pt's weights then (train.test_on=best)
    given: Optional[RunConfig] = None  # the config as given (auto values unresolved): what config.yaml records

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.train.batch_size * self.task.seq_len * (2 if self.task.kind == "retrieve" else 1)


def compile_by_default(device: torch.device, task) -> bool:
    """train.compile's auto: on for classification and retrieval on CUDA, where it was measured faster (ListOps
    1.3x, Pathfinder 1.4x, results/benchmarks/throughput.md); off for language modelling (not measured there
    yet) and on the CPU (smoke tests, where compilation costs more than it saves)."""
    return device.type == "cuda" and task.kind != "lm"


def build(cfg: RunConfig, device: torch.device = torch.device("cpu"), rank: int = 0, world: int = 1,
          task=None, splits: Optional[dict] = None) -> Parts:
    """Task, data, model, optimiser, schedule and autocast for `cfg`, seeded by cfg.seed. The model is compiled
    (train.compile) and wrapped for DDP (world > 1). `task` and `splits`, when given, replace the registered
    task and its data (benchmarks: synthetic batches of a task's shape)."""
    t = cfg.train
    if t.batch_size % (world * t.grad_accum):
        raise UserError(f"train.batch_size ({t.batch_size}) must be divisible by the number of processes ({world}) "
                        f"times train.grad_accum ({t.grad_accum})")
    if t.length_groups > 1:
        if t.grad_accum > 1:
            raise UserError(f"train.length_groups={t.length_groups} and train.grad_accum={t.grad_accum}: both split "
                            "the batch into micro-batches; set one of them (length_groups also sorts rows by length)")
        for what, n in (("train.batch_size", t.batch_size // world), ("the evaluation batch",
                                                                      t.eval_batch_size or t.batch_size)):
            if n % t.length_groups:
                raise UserError(f"train.length_groups={t.length_groups}: {what} per process ({n}) must be divisible "
                                "by it (equal micro-batches)")
    torch.manual_seed(cfg.seed)
    task = TASKS.get(cfg.task.name)(cfg.task) if task is None else task
    given = cfg
    if t.compile is None:  # auto, resolved here so that every part sees what the run does (config.yaml keeps auto)
        t = dataclasses.replace(t, compile=compile_by_default(device, task))
        cfg = dataclasses.replace(cfg, train=t)
    splits = task.splits() if splits is None else splits
    if t.test_on == "best" and getattr(task, "stood_in", {}).get("val") == "test":
        raise UserError(f"train.test_on=best: task '{task.name}' validates on its test split (it has no validation "
                        "split of its own, as in the benchmark), so the tested checkpoint would be chosen on the test "
                        "examples themselves; use train.test_on=final (the benchmark's rule)")
    if t.eval_drop_last and task.kind == "lm":
        raise UserError(f"train.eval_drop_last: task '{task.name}' is a language model, whose evaluation windows "
                        "are not the benchmark's batches; the switch applies to classifiers only")
    if t.eval_drop_last:  # evaluate's rule, checked before any step is spent
        for name in ("val", "test"):
            if name in splits:
                whole_batches(len(splits[name]), t.batch_size, f"the {name} split")
    if t.attn_varlen and device.type == "cuda" and varlen_kernel(device, True) == "flash varlen":
        # (the capability asked here, never inside a compiled graph) and the kernel tried once, before any step
        failed = probe_flash_varlen(device)
        if failed:
            raise UserError(f"train.attn_varlen: flash's variable-length kernel fails on this GPU with torch "
                            f"{torch.__version__} ({failed}); leave it off")
    model = build_model(task, cfg.model).to(device)
    # train.attn_varlen zeroes the padded positions' attention (models/backbone.py varlen_attention), so it is
    # taken only where no valid position and no readout sees them: in a model whose mixing never carries padding
    # to a valid position (the class's pad_invariant; a readout of the padding gets the benchmark's uniform rows,
    # exactly), and for causal attention also only where the padding trails and the readout reads none of it
    mixing_invariant = getattr(type(model), "pad_invariant", False)
    trailing = getattr(model, "pad_invariant", False) and not getattr(task, "padding_leads", False)
    for m in model.modules():
        if hasattr(m, "pad_heads_to"):  # attention (speed only: train.attn_pad_heads)
            m.pad_heads_to = t.attn_pad_heads
            m.varlen = t.attn_varlen and (trailing if m.causal else mixing_invariant)
    opt = make_optimizer(model, t)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(t))
    torch.set_float32_matmul_precision(t.matmul_precision)  # process-wide: each run (a sweep's cells) sets its own
    use_bf16 = t.amp == "bf16" or (t.amp == "auto" and device.type == "cuda")
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    net = model
    if t.compile:
        net = torch.compile(model, mode=None if t.compile_mode == "default" else t.compile_mode, dynamic=False)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    trim = task.kind != "lm" and task.pad_id is not None and model.pad_invariant
    varlen = task.pad_id is not None and any(getattr(m, "varlen", False) for m in model.modules())
    return Parts(cfg, task, splits, model, net, opt, sched, amp, device, rank, world, trim,
                 groups=t.length_groups if trim else 1, attn_varlen=varlen and varlen_kernel(device, use_bf16),
                 given=given)


def host_batch(p: Parts, step: int) -> dict:
    """Training batch `step` for this rank, as CPU tensors (pinned when prefetched for a GPU: the copy is then
    asynchronous)."""
    t = p.cfg.train
    batch = p.splits["train"].train_batch(step, t.batch_size, p.cfg.seed)
    mine = lambda b: {k: v[p.rank::p.world] for k, v in b.items()} if p.world > 1 else b  # noqa: E731
    if p.groups > 1:  # this rank's rows, then its micro-batches: a list of batches
        return [host_tensors(p, mb) for _, mb in group_by_length(mine(batch), p.task.pad_id, p.groups,
                                                                 length_buckets(t))]
    if p.trim:  # (the whole batch's columns: every rank gets one width)
        batch = trim_padding(batch, p.task.pad_id, buckets=length_buckets(t))
    return host_tensors(p, mine(batch))


def host_tensors(p: Parts, batch: dict) -> dict:
    """A batch of arrays as int64 CPU tensors, pinned when prefetched for a GPU (the copy is then asynchronous)."""
    pin = p.device.type == "cuda" and p.cfg.train.prefetch
    out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in batch.items()}
    return {k: v.pin_memory() if pin else v for k, v in out.items()}


def batches(p: Parts, start: int, make: Optional[Callable] = None):
    """Device batches of steps start, start+1, ...; with train.prefetch > 0 a background thread prepares that
    many batches ahead, so data never waits on the GPU (the batches are the same: a pure function of the step).
    make(step): the host batch of a step (default: host_batch of `p`; stacked seeds pass theirs), or a list of
    micro-batches (train.length_groups)."""
    ahead, step = p.cfg.train.prefetch, start
    make = make or (lambda s: host_batch(p, s))
    one = lambda b: {k: v.to(p.device, non_blocking=True) for k, v in b.items()}  # noqa: E731
    dev = lambda b: [one(mb) for mb in b] if isinstance(b, list) else one(b)  # noqa: E731
    if not ahead:
        while True:
            yield dev(make(step))
            step += 1
    with ThreadPoolExecutor(1, thread_name_prefix="lra-prefetch") as pool:
        pending = deque(pool.submit(make, s) for s in range(step, step + ahead))
        step += ahead
        while True:
            ready = pending.popleft().result()
            pending.append(pool.submit(make, step))
            step += 1
            yield dev(ready)


def forward_backward(p: Parts, batch: dict) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Gradients of the batch's mean loss, in train.grad_accum equal micro-batches (the same gradient as one
    batch: each micro-batch's mean loss is divided by their number), or over the equal micro-batches `batch`
    already is (a list: train.length_groups). Returns the batch's mean loss and, for classifiers, its fraction
    of correct predictions (0-d tensors on the device)."""
    t = p.cfg.train
    if isinstance(batch, list):
        mbs = batch
    else:
        k, n = t.grad_accum, batch["y"].shape[0]
        mbs = [batch] if k == 1 else [{key: v[i * n // k:(i + 1) * n // k] for key, v in batch.items()} for i in range(k)]
    k = len(mbs)
    graphs = t.compile and t.compile_mode == "reduce-overhead"
    p.opt.zero_grad(set_to_none=True)
    losses, correct = [], []
    for i, mb in enumerate(mbs):
        if graphs:  # CUDA graphs: this forward may reuse the previous one's output memory
            torch.compiler.cudagraph_mark_step_begin()
        sync = contextlib.nullcontext() if p.world == 1 or i == k - 1 else p.net.no_sync()  # all-reduce once
        with sync:
            with p.amp():
                logits = p.net(mb)
            loss = loss_fn(logits, mb["y"])
            (loss / k if k > 1 else loss).backward()
        losses.append(loss.detach())
        if p.task.kind != "lm":
            correct.append((logits.argmax(-1) == mb["y"]).float().mean())
    mean = lambda xs: xs[0] if k == 1 else torch.stack(xs).mean()  # noqa: E731
    return mean(losses), (mean(correct) if correct else None)


def apply_update(p: Parts) -> Optional[torch.Tensor]:
    """Gradient clipping, AdamW, the schedule's next learning rate. Returns the gradients' global norm before
    clipping where it clipped (0-d device tensor, not read), else None."""
    norm = None
    if p.cfg.train.grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(p.model.parameters(), p.cfg.train.grad_clip)
    p.opt.step()
    p.sched.step()
    return norm


def grad_norm(model: torch.nn.Module) -> torch.Tensor:
    """The global L2 norm of the model's gradients (0-d device tensor, float32; not read here), as clip_grad_norm_
    measures it: what the curve records at each log step when no clipping measured it already, so a spike
    before a collapse or a divergence is visible in metrics.jsonl. Reads the gradients only (the optimiser step
    leaves them as they were): no number changes."""
    grads = [q.grad for q in model.parameters() if q.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([g.float() for g in torch._foreach_norm(grads)]))


def train_step(p: Parts, batch: dict) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """One optimisation step: what the loop runs per step, less its NaN / stop check between the two halves.
    Returns the batch's loss and accuracy (device tensors)."""
    loss, acc = forward_backward(p, batch)
    apply_update(p)
    return loss, acc


def agree(p: Parts, *flags) -> list[bool]:
    """The flags (bools or 0-d device tensors: non-finite loss, stop requested) OR-ed over the ranks: a rank
    leaving the loop alone would hang the others. One device-to-host copy."""
    if p.world == 1:
        return [bool(f) for f in flags]
    v = torch.stack([torch.as_tensor(f, device=p.device).float().reshape(()) for f in flags])
    dist.all_reduce(v, op=dist.ReduceOp.MAX)
    return [bool(f) for f in v.tolist()]


# ----------------------------------------------------------------------------- evaluation


def whole_batches(n: int, batch_size: int, what: str) -> int:
    """The examples of a split of `n` that whole batches cover (train.eval_drop_last); none is a UserError."""
    if n < batch_size:
        raise UserError(f"train.eval_drop_last: {what} holds {n} examples, fewer than one batch of "
                        f"train.batch_size={batch_size}; lower the batch size or turn it off")
    return n // batch_size * batch_size


@torch.no_grad()
def evaluate(model, split, task, cfg: RunConfig, device, amp, rank: int = 0, world: int = 1,
             trim: bool = False, max_batches: int | None = None) -> dict:
    """Metrics on a split; ranks evaluate interleaved batches and share their sums / predictions.
    max_batches: None = train.eval_batches (validation passes), 0 = the whole split (testing)."""
    model.eval()
    loss_sum, count, preds, labels = torch.zeros((), device=device, dtype=torch.float64), 0, [], []
    limit = cfg.train.eval_batches if max_batches is None else max_batches
    n_max = limit * cfg.train.batch_size if limit else None  # the examples a pass covers, whatever the grouping
    if cfg.train.eval_drop_last and task.kind != "lm":  # whole batches of train.batch_size only, as the benchmark
        whole = whole_batches(len(split), cfg.train.batch_size, "an evaluation split")
        n_max = whole if n_max is None else min(n_max, whole)
    bs = cfg.train.eval_batch_size or cfg.train.batch_size
    seen = 0
    for i, batch in enumerate(split.eval_batches(bs, -(-n_max // bs) if n_max else 0)):
        n = len(batch["y"])
        if n_max is not None and seen + n > n_max:
            batch = {k: v[:n_max - seen] for k, v in batch.items()}
        seen += n
        if i % world != rank:
            continue
        for b, rows in _eval_pieces(batch, task, cfg, bs, trim, device):
            with amp():
                logits = model(b)[:rows]
            y = b["y"][:rows]
            # sums and predictions stay on the device until the pass ends: one host sync per pass, not per batch
            loss_sum += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
            count += y.numel()
            if task.kind != "lm":
                preds.append(logits.argmax(-1))
                labels.append(y)
    loss_sum = float(loss_sum)
    preds = [torch.cat(preds).cpu().numpy()] if preds else []
    labels = [torch.cat(labels).cpu().numpy()] if labels else []
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, (loss_sum, count, preds, labels))
        loss_sum = sum(g[0] for g in gathered)
        count = sum(g[1] for g in gathered)
        preds = [p for g in gathered for p in g[2]]
        labels = [lab for g in gathered for lab in g[3]]
    model.train()
    loss = loss_sum / max(count, 1)
    if task.kind == "lm":
        return lm_metrics(loss)
    return {"loss": loss, **classification_metrics(np.concatenate(labels), np.concatenate(preds), task.n_classes)}


def _eval_pieces(batch: dict, task, cfg: RunConfig, bs: int, trim: bool, device):
    """An evaluation batch as the model takes it: (device batch, rows to keep) pieces. Trimmed where the model
    is pad-invariant; compiled, a short last batch is filled to `bs` rows with copies of its last row (their
    logits dropped: one shape, one graph); with train.length_groups, its micro-batches by length, the filling
    copies sorted last among equals and dropped where they land (every metric here ignores the rows' order)."""
    t = cfg.train
    groups = t.length_groups if trim else 1
    rows = len(batch["y"])
    if groups == 1:
        b = to_device(trim_padding(batch, task.pad_id, buckets=length_buckets(t)) if trim else batch, device)
        if t.compile and rows < bs:
            b["x"] = torch.cat([b["x"], b["x"][-1:].expand(bs - rows, *b["x"].shape[1:])])
        return [(b, rows)]
    if rows < bs:  # (eager too: micro-batches of equal size, as in training)
        batch = {k: np.concatenate([v, np.repeat(v[-1:], bs - rows, axis=0)]) for k, v in batch.items()}
    pieces = []
    for idx, mb in group_by_length(batch, task.pad_id, groups, length_buckets(t)):
        real = idx < rows
        keep = int(real.sum())
        mb = to_device(mb, device)
        if keep < len(idx):  # move the filling copies to the end, so [:keep] drops them
            perm = torch.from_numpy(np.argsort(~real, kind="stable")).to(device)
            mb = {k: v[perm] for k, v in mb.items()}
        pieces.append((mb, keep))
    return pieces


def evaluate_split(p: Parts, name: str, whole: bool = False) -> dict:
    """`evaluate` on one of the run's splits: validation passes use train.eval_batches, testing the whole split."""
    return evaluate(p.net, p.splits[name], p.task, p.cfg, p.device, p.amp, p.rank, p.world, p.trim,
                    max_batches=0 if whole else None)


# ----------------------------------------------------------------------------- checkpoints, rows, curve


def save_checkpoint(p: Parts, path: Path, step: int, best: Optional[dict], wall: float) -> None:
    """Everything `load_checkpoint` needs to continue bit-for-bit: weights, optimiser, schedule, RNG, step, and
    the curve so far (metrics.jsonl beside it) and, with train.test_on=best, the best weights (best.pt), so that
    a resume restores those of the run it continues even if the folder's files were since replaced (by an older
    copy of the folder, or by the interrupted attempt after this checkpoint)."""
    if not p.main:
        return
    state = {"model": p.model.state_dict(), "optimizer": p.opt.state_dict(), "scheduler": p.sched.state_dict(),
             "rng": {"torch": torch.get_rng_state(),
                     "cuda": torch.cuda.get_rng_state(p.device) if p.device.type == "cuda" else None},
             "step": step, "best": best, "wall_time_s": wall, "config_hash": p.cfg.hash}
    curve, best_pt = path.parent / "metrics.jsonl", path.parent / "best.pt"
    state["metrics"] = curve.read_text() if curve.is_file() else ""
    if p.cfg.train.test_on == "best" and best_pt.is_file():  # the weights `best` names, as they are now
        state["best_model"] = torch.load(best_pt, map_location="cpu", weights_only=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(p: Parts, path: Path) -> tuple[int, Optional[dict], float]:
    """Restore a checkpoint into `p`; returns (step, best validation record, wall time so far)."""
    # on the CPU: the RNG states must stay CPU byte tensors (load_state_dict moves the rest to the model's device)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    p.model.load_state_dict(ck["model"])
    p.opt.load_state_dict(ck["optimizer"])
    p.sched.load_state_dict(ck["scheduler"])
    torch.set_rng_state(ck["rng"]["torch"])
    if p.device.type == "cuda" and ck["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(ck["rng"]["cuda"], p.device)
    p.resumed_curve = ck.get("metrics")  # (None in checkpoints made before the curve was kept in them)
    p.resumed_best = ck.get("best_model")
    return ck["step"], ck["best"], ck["wall_time_s"]


def result_rows(p: Parts, entries: list[tuple[str, dict, int]], wall: float, status: str) -> list[dict]:
    """Tidy rows: one per (split, metric) of `entries` = [(split, metrics, step the metrics were measured at)]."""
    env = results.environment(p.device)
    run_id, _ = run_paths(p.cfg)
    base = dict(run_id=run_id, task=p.task.name, task_version=p.task.version, data_source=p.task.source,
                model=p.cfg.model.name, n_params=p.model.n_params(), seed=p.cfg.seed, config_hash=p.cfg.hash,
                git_sha=env["git_sha"], device=env["device"], schema_version=results.SCHEMA_VERSION)
    return [dict(base, split=split, metric=k, value=v, step=step, tokens_seen=step * p.tokens_per_step,
                 wall_time_s=round(wall, 3), status=status)
            for split, ms, step in entries for k, v in ms.items()]


def log_metrics(p: Parts, run_dir: Path, rec: dict) -> None:
    """Every curve point (train and val) passes through here: appended to metrics.jsonl by rank 0."""
    if p.main:
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        p.curves.log(rec)


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop curve points logged after the checkpoint so no point appears twice, and a line torn
    by a kill in the middle of writing it."""
    if not path.is_file():
        return
    keep = []
    for ln in path.read_text().splitlines():
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] <= step:
            keep.append(ln)
    results.atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def _metrics_from_rows(df) -> dict:
    out: dict = {}
    for r in df.itertuples():
        out.setdefault(r.split, {})[r.metric] = r.value
    return out


# ----------------------------------------------------------------------------- seeds as one batched model


@dataclass
class SeedStack:
    """Several seeds of one configuration trained as one batched model (torch.func.stack_module_state + vmap):
    each kernel does every seed's work, for the tiny launch-bound models (Pathfinder, Image). `parts` are the
    seeds' own runs; `unstack` copies the weights back into their models (evaluation, checkpoints, rows).
    Dropout draws differ from the seeds' separate runs (vmap's own random streams); without dropout one step
    equals the seeds' separate steps up to float rounding."""

    parts: list
    params: dict  # name -> (S, ...) leaf tensors
    buffers: dict
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    fn: Callable  # (params, buffers, x, y) -> every seed's (loss, predictions): the vmapped forward, maybe compiled
    compile_mode: Optional[str] = None  # torch.compile's mode when fn is compiled, else None
    norms: Optional[torch.Tensor] = None  # (S,) each seed's gradient norm before clipping, at the last step


def stack_seeds(parts: list, compile: bool = False, mode: str = "default") -> SeedStack:
    """One SeedStack of Parts that differ only in their seed (and so in their initial weights and data order).
    compile: the vmapped forward through torch.compile (static shapes: batches then trimmed as a compiled run's)."""
    params, buffers = torch.func.stack_module_state([p.model for p in parts])
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    names = {id(q): n for n, q in parts[0].model.named_parameters()}
    opt = make_optimizer(parts[0].model, parts[0].cfg.train)  # the same groups, then the stacked tensors in them
    for g in opt.param_groups:
        g["params"] = [params[names[id(q)]] for q in g["params"]]
    p0 = parts[0]

    def one(params, buffers, x, y):
        with p0.amp():
            logits = torch.func.functional_call(p0.model, (params, buffers), ({"x": x},))
        return loss_fn(logits, y), logits.argmax(-1)

    fn = torch.func.vmap(one, randomness="different")
    if compile:
        fn = torch.compile(fn, mode=None if mode == "default" else mode, dynamic=False)
        if p0.device.type == "cuda":
            fn = _without_cudnn_attention(fn)
    return SeedStack(parts, params, buffers, opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(p0.cfg.train)),
                     fn, mode if compile else None)


def sdpa_backends_for_stack() -> list:
    """The attention kernels a compiled stack may use on CUDA: every one but cuDNN's. Compiling the vmapped step
    with cuDNN attention fails (torch 2.11, H200: `TypeError: expected Tensor() for op:
    torch.ops.aten._scaled_dot_product_cudnn_attention.default`, results/benchmarks/throughput_stacked_2026-12-04.md);
    the others compute the same attention. With a key mask the memory-efficient kernel then failed too, as the
    compiled backward ran (`LSE is not correctly aligned (strideH)`, throughput_groups_2026-12-04.md), which is
    why a stack compiles only when train.compile is true (stacked.py)."""
    from torch.nn.attention import SDPBackend
    return [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def _without_cudnn_attention(fn: Callable) -> Callable:
    """fn called under sdpa_kernel(sdpa_backends_for_stack()): set outside the compiled function, so the kernel
    choice is made when torch.compile traces the forward and backward, and the graph keeps it."""
    from torch.nn.attention import sdpa_kernel

    def call(*args):
        with sdpa_kernel(sdpa_backends_for_stack()):
            return fn(*args)
    return call


def stacked_host_batch(st: SeedStack, step: int) -> dict:
    """Every seed's training batch `step`, stacked (S, B, ...) and trimmed together (to the longest seed's), as
    CPU tensors (pinned for a GPU with train.prefetch, as host_batch's)."""
    p0 = st.parts[0]
    raw = [p.splits["train"].train_batch(step, p.cfg.train.batch_size, p.cfg.seed) for p in st.parts]
    batch = {k: np.stack([b[k] for b in raw]) for k in raw[0]}
    if p0.trim:  # (a compiled stack: one static shape unless train.length_buckets, as a compiled run)
        t = dataclasses.replace(p0.cfg.train, compile=st.compile_mode is not None)
        batch = trim_padding(batch, p0.task.pad_id, buckets=length_buckets(t))
    return host_tensors(p0, batch)


def stacked_step(st: SeedStack, batch: dict, norms: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """One optimisation step of every seed: vmapped forward and backward, each seed's gradient clipped by its
    own norm (as clip_grad_norm_ does per run), AdamW, schedule. Returns the (S,) losses and accuracies; the
    seeds' gradient norms are left in st.norms where clipping measured them or `norms` asks (a log step)."""
    p0, t = st.parts[0], st.parts[0].cfg.train
    if st.compile_mode == "reduce-overhead":  # CUDA graphs: this forward may reuse the previous one's output memory
        torch.compiler.cudagraph_mark_step_begin()
    losses, preds = st.fn(st.params, st.buffers, batch["x"], batch["y"])
    st.opt.zero_grad(set_to_none=True)
    losses.sum().backward()  # seeds share no weight: the sum's gradient is each seed's own
    grads = [q.grad for q in st.params.values() if q.grad is not None]
    st.norms = None
    if grads and (norms or t.grad_clip > 0):
        st.norms = torch.stack([g.reshape(len(st.parts), -1).float().pow(2).sum(1) for g in grads]).sum(0).sqrt()
    if t.grad_clip > 0 and grads:
        scale = (t.grad_clip / (st.norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))
    st.opt.step()
    st.sched.step()
    acc = (preds == batch["y"]).float().flatten(1).mean(1) if p0.task.kind != "lm" else None
    return losses.detach(), acc


@torch.no_grad()
def unstack(st: SeedStack, optimizer: bool = False) -> None:
    """Copy each seed's weights from the stack into its own model; optimizer: also its AdamW moments, step
    count, learning rate and schedule, so that each seed's Parts is its own run's state (a checkpoint of it
    continues alone or stacked again)."""
    for i, p in enumerate(st.parts):
        for name, q in p.model.named_parameters():
            q.copy_(st.params[name][i])
        for name, b in p.model.named_buffers():
            if name in st.buffers:
                b.copy_(st.buffers[name][i])
        if optimizer:
            mine = _in_order(p.opt)
            for j, q in enumerate(_in_order(st.opt)):
                if q in st.opt.state:
                    p.opt.state[mine[j]] = {k: (v[i].clone() if torch.is_tensor(v) and v.dim() else
                                                v.clone() if torch.is_tensor(v) else v)
                                            for k, v in st.opt.state[q].items()}
            _copy_schedule(st.opt, st.sched, p.opt, p.sched)


@torch.no_grad()
def restack(st: SeedStack) -> None:
    """unstack's inverse for the optimiser: each seed's AdamW state (e.g. just restored from its checkpoint)
    into the stack's; the seeds must be at the same step (the step count and schedule are shared)."""
    order, per = _in_order(st.opt), [_in_order(p.opt) for p in st.parts]
    for j, q in enumerate(order):
        states = [p.opt.state.get(per[i][j]) for i, p in enumerate(st.parts)]
        if not all(states):
            continue
        st.opt.state[q] = {k: (torch.stack([s[k] for s in states]).to(q.device) if torch.is_tensor(v) and v.dim()
                               else v.clone() if torch.is_tensor(v) else v) for k, v in states[0].items()}
    p0 = st.parts[0]
    _copy_schedule(p0.opt, p0.sched, st.opt, st.sched)


def _in_order(opt: torch.optim.Optimizer) -> list:
    return [q for g in opt.param_groups for q in g["params"]]


def _copy_schedule(src_opt, src_sched, dst_opt, dst_sched) -> None:
    """The schedule's position and each group's current learning rate (what the next optimiser step uses)."""
    dst_sched.load_state_dict(src_sched.state_dict())
    for a, b in zip(src_opt.param_groups, dst_opt.param_groups):
        b["lr"] = a["lr"]
        if "initial_lr" in a:
            b["initial_lr"] = a["initial_lr"]


# ----------------------------------------------------------------------------- memory


def free_memory(device: torch.device) -> Optional[int]:
    """Bytes the run may use: free GPU memory on CUDA, the system's available memory on the CPU (None: unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def saved_bytes(model: torch.nn.Module, p: Parts, device) -> int:
    """Bytes autograd keeps for the backward pass of one full-length training example of `p`'s task through
    `model` on `device`: one forward (train mode, the run's autocast) that counts the storages it saves,
    parameters excluded. The RNG is restored, so the run's numbers do not change."""
    params = {q.untyped_storage()._cdata for q in model.parameters()}  # _cdata: the storage's identity
    saved: dict = {}

    def pack(x):
        s = x.untyped_storage()
        if s._cdata not in params:
            saved[s._cdata] = s.nbytes()
        return x

    with torch.random.fork_rng(devices=[p.device] if p.device.type == "cuda" else []):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x), p.amp():
            out = model(longest_example(p, device))
    del out
    return sum(saved.values())


def longest_example(p: Parts, device) -> dict:
    """One training example as long as the run's batches can be: the training arrays' width (the task's
    seq_len for token streams), token id 1 everywhere (no position is padding)."""
    x = getattr(p.splits.get("train"), "x", None)
    length = min(p.task.seq_len, x.shape[-1]) if x is not None else p.task.seq_len
    shape = (1, 2, length) if p.task.kind == "retrieve" else (1, length)
    return {"x": torch.full(shape, 1 if p.task.vocab_size > 1 else 0, dtype=torch.long, device=device)}


def activation_bytes(p: Parts, free: Optional[int] = None) -> int:
    """`saved_bytes` of one example. On the CPU the meta device first gives an upper bound without allocating
    anything (it takes attention's plain path, which saves the T x T scores); only when that bound fits in
    `free` does a real forward measure it. On a GPU a real forward; running out of memory there is not fitting."""
    if p.device.type != "cuda":
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                meta = build_model(p.task, p.cfg.model).train()
            bound = saved_bytes(meta, p, "meta")
            if free is not None and 1.5 * bound > free:
                return bound
        except (RuntimeError, NotImplementedError, TypeError, ValueError):
            pass  # an operation without a meta kernel: measure for real
        return saved_bytes(p.model, p, p.device)
    try:
        return saved_bytes(p.model, p, p.device)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return (free or 0) + 1


def estimate_memory(p: Parts, free: Optional[int] = None) -> dict:
    """Peak training memory in bytes, a rough upper bound: the parameters, their gradients and AdamW's two moments
    (4 copies), plus 1.5 x the activations of one micro-batch (the backward pass's temporaries on top)."""
    t = p.cfg.train
    state = 4 * sum(q.numel() * q.element_size() for q in p.model.parameters())
    per_example = activation_bytes(p, free)
    micro = t.batch_size // (p.world * t.grad_accum)
    return {"state": state, "per_example": per_example, "micro_batch": micro,
            "total": state + int(1.5 * per_example * micro)}


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000


def check_memory(p: Parts) -> None:
    """Refuse (a UserError) a run whose estimated peak memory exceeds what the device has free, before it
    allocates anything large; suggest a batch size or train.grad_accum that fits."""
    t = p.cfg.train
    free = free_memory(p.device) if t.memory_check else None
    if free is None:
        return
    est = estimate_memory(p, free)
    (refused,) = agree(p, est["total"] > free)  # torchrun: every rank stops if one must (or the others would hang)
    if not refused:
        return
    if est["total"] <= free:
        raise UserError("another process of this torchrun run has too little free memory for train.batch_size="
                        f"{t.batch_size} (its message says what fits)")
    fit = int((free - est["state"]) / (1.5 * max(est["per_example"], 1)))  # examples per micro-batch that fit
    per_rank = t.batch_size // p.world
    need = (f"train.batch_size={t.batch_size} needs about {_size(est['total'])} on {p.device} "
            f"({_size(est['state'])} weights, gradients and AdamW state, {_size(est['per_example'])} of activations "
            f"per example) but {_size(free)} is free")
    if fit < 1:
        raise UserError(f"{need}: even one example per micro-batch does not fit; use a smaller model or another device "
                        "(train.memory_check=false skips this check)")
    batch = p.world * 2 ** int(math.log2(fit))
    accum = next((k for k in range(2, per_rank + 1) if per_rank % k == 0 and per_rank // k <= fit), None)
    hint = f"use train.batch_size={batch}" + (f", or train.grad_accum={accum} (the same update in micro-batches)"
                                              if accum else "")
    raise UserError(f"{need}: {hint} (train.memory_check=false skips this check)")


# ----------------------------------------------------------------------------- the run folder


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """One writer per run folder: `lock` holds the owner's pid and host while it runs. Another live owner is a
    UserError naming it; a lock left by a dead process (kill -9) is taken over. A folder left empty is removed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "lock"
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(path)
            if owner is not None:
                raise UserError(f"{run_dir} is being written by {owner} (lock file {path.name}); wait for it to "
                                "finish or stop it (delete the lock only if that process is gone)") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # stale: its owner is dead
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        break
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only if nothing was written (a refused start)


def _lock_owner(path: Path) -> Optional[str]:
    """'process PID on HOST' while the lock's owner lives (or cannot be checked: another host), else None."""
    try:
        pid_s, host = path.read_text().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return f"process {pid} on {host}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"process {pid} on {host}"


def _finished(run_dir: Path, log) -> Optional[Outcome]:
    """The outcome of a run that ended before (ok or diverged), or None: those are not run again without --force."""
    path = run_dir / "result.csv"
    prev = results.load([path]) if path.is_file() else None
    status = results.ended(prev["status"]) if prev is not None and len(prev) else None
    if status is None:
        return None
    if status == "ok":
        log(f"already done: {run_dir} (same config and seed; pass --force to run again)")
        return Outcome(run_dir, "ok", _metrics_from_rows(prev), skipped=True)
    train_rows = prev[prev["split"] == "train"]  # diverged
    at = int(train_rows["step"].iloc[0]) if len(train_rows) else int(prev["step"].max())
    log(f"diverged before: {run_dir} (non-finite loss at step {at}); not resumed, since its checkpoint would "
        "diverge again; change the config (e.g. a lower train.lr) or pass --force to run it again from step 0")
    return Outcome(run_dir, "diverged", _metrics_from_rows(prev), skipped=True)


def _siblings(cfg: RunConfig, run_dir: Path) -> list[Path]:
    """Other run folders of the same task, model and seed (other configurations)."""
    prefix = f"{cfg.task.name}-{cfg.model.name}-s{cfg.seed}-"
    return sorted(d for d in run_dir.parent.glob(prefix + "*") if d.is_dir() and d != run_dir)


def continuation(cfg: RunConfig, run_dir: Path) -> Optional[Path]:
    """The folder of a run whose config is this one with a smaller train.max_steps and whose checkpoint this
    run can continue (the one with the most steps; diverged or failed runs excluded), or None."""
    found = None
    for d in _siblings(cfg, run_dir):
        try:
            steps = int(yaml.safe_load((d / "config.yaml").read_text())["train"]["max_steps"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            continue
        shorter = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=steps))
        if steps >= cfg.train.max_steps or run_paths(shorter)[1].name != d.name:
            continue
        ended = _finished(d, lambda s: None)
        if not (d / "checkpoint.pt").is_file() or (ended is not None and ended.status != "ok"):
            continue
        if found is None or steps > found[0]:
            found = (steps, d)
    return found[1] if found else None


def resume_from(cfg: RunConfig, run_dir: Path, resume: bool, force: bool, strict: bool, log) -> Optional[Path]:
    """The checkpoint this run continues from, or None for a fresh start; UserErrors for what cannot be meant.

    A run folder is keyed on the whole config, max_steps included. Raising train.max_steps makes a new folder;
    with --resume it continues the shorter run's final checkpoint (recorded as `continued_from` in env.json)
    when the schedule does not depend on max_steps (constant, rsqrt): then the result is the same as a run of
    the new length from step 0. Cosine and linear decay over max_steps, so a continued run would not be."""
    ckpt = run_dir / "checkpoint.pt"
    if force:
        return None
    if ckpt.is_file():
        if not resume:
            raise UserError(f"{run_dir} holds an unfinished run: pass --resume to continue it or --force to start over")
        return ckpt
    if not resume:
        return None
    shorter = continuation(cfg, run_dir)
    if shorter is not None and cfg.train.schedule in ("constant", "rsqrt"):
        return shorter / "checkpoint.pt"
    if shorter is not None:
        msg = (f"{shorter.name} is this run with fewer steps, but train.schedule={cfg.train.schedule} decays over "
               f"train.max_steps, so continuing it would not give the {cfg.train.max_steps}-step run")
        if strict:
            raise UserError(f"{msg}: pass --force to train {cfg.train.max_steps} steps from step 0")
        log(f"{msg}; starting from step 0")
        return None
    if strict:
        others = _siblings(cfg, run_dir)
        hint = (f"; other runs of {cfg.task.name} / {cfg.model.name} / seed {cfg.seed} (other configurations): "
                + ", ".join(d.name for d in others[:5]) + (" ..." if len(others) > 5 else "")) if others else ""
        raise UserError(f"nothing to resume: no checkpoint in {run_dir} (config hash {cfg.hash}){hint}; "
                        "run without --resume to start it")
    return None


def prepare_run_dir(p: Parts, run_dir: Path, start: int, source: Optional[Path]) -> None:
    """config.yaml, env.json and the curve so far: the checkpoint's own (or, from older checkpoints, the file's;
    copied from the run continued, if any), points after the checkpoint dropped."""
    if not p.main:
        return
    run_id, _ = run_paths(p.cfg)
    env = {**results.environment(p.device), "run_id": run_id, "config_hash": p.cfg.hash, "world_size": p.world,
           "compiled": p.cfg.train.compile,  # (what was asked; compiling() adds the graphs it made)
           "length_groups": p.groups,  # (train.length_groups as applied: 1 for a model that is not pad-invariant)
           "matmul_precision": torch.get_float32_matmul_precision(),
           "attn_varlen": p.attn_varlen,
           "data": p.task.provenance(p.splits)}
    if source is not None and source.parent != run_dir:
        env.update(continued_from=source.parent.name, continued_at_step=start)
        for name in ("metrics.jsonl", "best.pt"):
            if (source.parent / name).is_file():
                shutil.copyfile(source.parent / name, run_dir / name)
    if source is not None and p.resumed_curve is not None:
        results.atomic_write_text(run_dir / "metrics.jsonl", p.resumed_curve)
    if source is not None and p.resumed_best is not None:  # not a best.pt the abandoned attempt wrote later
        torch.save(p.resumed_best, run_dir / "best.tmp")
        os.replace(run_dir / "best.tmp", run_dir / "best.pt")
    config_mod.save(p.given or p.cfg, run_dir / "config.yaml")
    results.write_json(run_dir / "env.json", env)
    _truncate_metrics(run_dir / "metrics.jsonl", start)


# ----------------------------------------------------------------------------- the loop


class Meter:
    """Running train loss / accuracy between log steps and the first non-finite loss. lazy (train.lazy_metrics):
    kept on the device and read only at log steps, so the hot loop never waits for the GPU; else read every
    step, exactly as summed on the host."""

    def __init__(self, lazy: bool, device: torch.device):
        self.lazy, self.device = lazy, device
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device) if lazy else None
        self.bad_loss = torch.zeros((), device=device) if lazy else None
        self.reset()

    def reset(self) -> None:
        self.loss, self.correct, self.n = 0.0, 0.0, 0

    def watch(self, loss: torch.Tensor, step: int) -> None:
        """lazy: remember the first step whose loss is not finite (on the device)."""
        first = ~torch.isfinite(loss) & (self.bad_step < 0)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_loss = torch.where(first, loss.float(), self.bad_loss)

    def add(self, loss: torch.Tensor, acc: Optional[torch.Tensor]) -> None:
        if self.lazy:
            self.loss = self.loss + loss.float()
            self.correct = self.correct + (acc if acc is not None else 0.0)
        else:
            self.loss += loss.item()
            self.correct += acc.item() if acc is not None else 0.0
        self.n += 1

    def read(self) -> tuple[float, float]:
        """Mean loss and accuracy since the last read (one device-to-host copy when lazy)."""
        if self.lazy:
            loss, correct = torch.stack([torch.as_tensor(self.loss).float(),
                                         torch.as_tensor(self.correct, device=self.device).float()]).tolist()
        else:
            loss, correct = self.loss, self.correct
        n = max(self.n, 1)
        self.reset()
        return loss / n, correct / n

    def first_bad(self, p: Parts) -> tuple[int, float]:
        """lazy: (step, loss) of the first non-finite loss, the earliest over the ranks."""
        step = torch.where(self.bad_step < 0, torch.iinfo(torch.long).max, self.bad_step)
        if p.world > 1:
            mine = step.clone()
            dist.all_reduce(step, op=dist.ReduceOp.MIN)
            return int(step), float(self.bad_loss) if int(mine) == int(step) else float("nan")
        return int(step), float(self.bad_loss)


def val_metric(task) -> str:
    """What a validation pass is judged by: loss for language models, accuracy for classifiers."""
    return "loss" if task.kind == "lm" else "accuracy"


def update_best(p: Parts, run_dir: Path, best: Optional[dict], metrics: dict, step: int) -> Optional[dict]:
    """The best validation record after a pass at `step`; with train.test_on=best its weights go to best.pt."""
    key = val_metric(p.task)
    if best is not None and not (metrics[key] < best["value"] if key == "loss" else metrics[key] > best["value"]):
        return best
    if p.main and p.cfg.train.test_on == "best":
        torch.save(p.model.state_dict(), run_dir / "best.tmp")
        os.replace(run_dir / "best.tmp", run_dir / "best.pt")
    return {"step": step, "value": metrics[key], "metrics": metrics}


def run_loop(p: Parts, run_dir: Path, start: int, best: Optional[dict], history_wall: float, progress: bool,
             log) -> Outcome:
    """Train from `start` to train.max_steps with evaluation, checkpoints, signals and NaN handling; write the
    rows. Returns the outcome."""
    t, task, ckpt_path = p.cfg.train, p.task, run_dir / "checkpoint.pt"
    crash_at = int(os.environ.get(CRASH_ENV, -1))
    step, last_val, val_step, last_train, diverged = start, {}, start, None, None
    t0 = time.perf_counter() - history_wall
    bar = tqdm(total=t.max_steps, initial=start, desc=f"{task.name}/{p.cfg.model.name}", unit="step",
               disable=None if (progress and p.main) else True, dynamic_ncols=True, file=sys.stderr)
    plain = progress and p.main and bar.disable  # off a terminal: a plain line per log step instead of the bar
    stop = {"signal": None}
    old_handler = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(signal=s))  # every rank: torchrun signals them all
    meter, data = Meter(t.lazy_metrics, p.device), batches(p, start)
    p.curves = loggers.make(t.logger if p.main else "none", run_dir, run_dir.name, p.cfg, start)
    p.model.train()
    tick, tick_tokens = time.perf_counter(), 0
    try:
        while step < t.max_steps and (p.world > 1 or stop["signal"] is None):
            loss, acc = forward_backward(p, next(data))
            if t.lazy_metrics:
                meter.watch(loss, step)
            else:  # the ranks decide together, before the update
                nonfinite, stopping = agree(p, ~torch.isfinite(loss).all(), stop["signal"] is not None)
                if stopping and p.world > 1:
                    stop["signal"] = stop["signal"] or signal.SIGTERM
                    break
                if nonfinite:
                    diverged = (step, loss.item())
                    break
            clipped = apply_update(p)
            step += 1
            bar.update(1)
            meter.add(loss, acc)
            tick_tokens += p.tokens_per_step

            halt = False
            if step % t.log_every == 0 or step == t.max_steps:
                if t.lazy_metrics:  # the deferred checks: NaN (and, under DDP, the stop agreement)
                    nonfinite, stopping = agree(p, meter.bad_step >= 0, stop["signal"] is not None)
                    if nonfinite:
                        diverged = meter.first_bad(p)
                        break
                    halt = stopping and p.world > 1
                dt = time.perf_counter() - tick
                mean_loss, mean_acc = meter.read()
                rec = {"step": step, "split": "train", "loss": mean_loss, "lr": p.sched.get_last_lr()[0],
                       "tokens_per_s": tick_tokens / max(dt, 1e-9), "wall_time_s": time.perf_counter() - t0}
                if task.kind != "lm":
                    rec["accuracy"] = mean_acc
                g = float(clipped if clipped is not None else grad_norm(p.model))  # this step's, before clipping
                rec["grad_norm"] = g if math.isfinite(g) else None  # inf / nan kept as null
                log_metrics(p, run_dir, rec)
                last_train = rec
                shown = {k: f"{v:.3g}" for k, v in rec.items() if k in ("loss", "accuracy", "tokens_per_s")}
                bar.set_postfix(shown)
                if plain:
                    log(f"step {step}/{t.max_steps}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
                tick, tick_tokens = time.perf_counter(), 0
            if step == 3 and start == 0 and p.device.type == "cpu" and p.main:
                eta = (time.perf_counter() - t0) / 3 * t.max_steps
                if eta > 600:
                    log(f"estimated training time on this CPU: {eta / 3600:.1f} h for {t.max_steps} steps "
                        "(try a smaller preset such as quick, or a GPU)")

            if step % t.eval_every == 0 or step == t.max_steps:
                last_val, val_step = evaluate_split(p, "val"), step
                log_metrics(p, run_dir, {"step": step, "split": "val", **last_val,
                                         "wall_time_s": time.perf_counter() - t0})
                if plain:
                    log(f"step {step}/{t.max_steps}: val {val_metric(task)} {last_val[val_metric(task)]:.4g}")
                best = update_best(p, run_dir, best, last_val, step)
            if t.checkpoint_every and step % t.checkpoint_every == 0 and step < t.max_steps:
                save_checkpoint(p, ckpt_path, step, best, time.perf_counter() - t0)
            if step == crash_at:
                os._exit(137)  # simulate a hard kill: nothing below runs
            if halt:  # lazy DDP: the ranks agreed at this log step to stop (after its point, evaluation, checkpoint)
                stop["signal"] = stop["signal"] or signal.SIGTERM
                break
    except KeyboardInterrupt:
        stop["signal"] = signal.SIGINT
    finally:
        bar.close()
        data.close()
        p.curves.close()
        signal.signal(signal.SIGTERM, old_handler)
    return _finish(p, run_dir, step, best, last_val, val_step, last_train, diverged, stop["signal"],
                   time.perf_counter() - t0, log)


def _finish(p: Parts, run_dir: Path, step: int, best, last_val: dict, val_step: int, last_train: Optional[dict],
            diverged: Optional[tuple], stopped, wall: float, log) -> Outcome:
    """Rows, the final checkpoint and the outcome of a loop that ended: interrupted, diverged, or ok. Every row
    carries the step its metrics were measured at."""
    t, ckpt_path, result_path = p.cfg.train, run_dir / "checkpoint.pt", run_dir / "result.csv"
    metrics = {"val": last_val} if last_val else {}
    entries = [("val", last_val, val_step)] if last_val else []
    if last_train is not None:
        train_entry = ("train", {k: last_train[k] for k in ("loss", "accuracy") if k in last_train}, last_train["step"])
    else:
        train_entry = ("train", {"loss": float("nan")}, step)
    if stopped is not None:
        save_checkpoint(p, ckpt_path, step, best, wall)
        if p.main:
            results.write_rows(result_path, result_rows(p, entries + [train_entry], wall, "partial"))
            log(f"interrupted at step {step}: checkpoint saved; continue with --resume ({run_dir})")
        return Outcome(run_dir, "partial", metrics)
    if diverged is not None:
        at, value = diverged
        log(f"loss is {value} at step {at}: stopping (status=diverged)")
        if p.main:
            results.write_rows(result_path, result_rows(p, entries + [("train", {"loss": value}, at)], wall,
                                                        "diverged"))
        if not t.lazy_metrics:  # lazy: the weights already took the non-finite update; keep the last good checkpoint
            save_checkpoint(p, ckpt_path, step, best, wall)
        if p.world > 1:
            dist.barrier()
        return Outcome(run_dir, "diverged", metrics)

    if not last_val:  # resumed at the last step (killed while testing): the final validation is measured again
        last_val, val_step = evaluate_split(p, "val"), step
        metrics, entries = {"val": last_val}, [("val", last_val, val_step)]
    save_checkpoint(p, ckpt_path, step, best, wall)  # the final state (before best weights are loaded for testing)
    if t.test_on == "best" and best is not None and (run_dir / "best.pt").is_file():
        p.model.load_state_dict(torch.load(run_dir / "best.pt", map_location=p.device, weights_only=True))
    metrics["test"] = evaluate_split(p, "test", whole=True)
    metrics["test"]["tested_step"] = best["step"] if (t.test_on == "best" and best) else step
    if p.main:
        results.write_rows(result_path, result_rows(p, entries + [("test", metrics["test"], step)], wall, "ok"))
        with contextlib.suppress(FileNotFoundError):
            (run_dir / "error.json").unlink()  # a failure recorded before is stale now
    if p.world > 1:
        dist.barrier()
    return Outcome(run_dir, "ok", metrics)


def train(cfg: RunConfig, resume: bool = False, force: bool = False, progress: bool = True, log=print,
          strict_resume: bool = False) -> Outcome:
    """Train `cfg` in its run folder (see `run_paths`) and write its rows.

    resume: continue the folder's checkpoint (or a shorter run of this config, see `resume_from`) if there is one.
    strict_resume (the CLI's --resume): also a UserError when there is nothing to resume. force: start over.
    A run that ended ok or diverged is not run again (skipped=True) unless forced."""
    if strict_resume and force:
        raise UserError("--resume and --force contradict each other: --resume continues the run, --force starts "
                        "it over from step 0; give one of them")
    rank, world, device = init_distributed(cfg)
    run_id, run_dir = run_paths(cfg)
    with run_lock(run_dir) if rank == 0 else contextlib.nullcontext():
        done = None if force else _finished(run_dir, log if rank == 0 else (lambda s: None))
        if done is not None:
            return done
        source = resume_from(cfg, run_dir, resume or strict_resume, force, strict_resume, log)
        p = build(cfg, device, rank, world)
        check_memory(p)
        start, best, wall = 0, None, 0.0
        if source is not None:
            start, best, wall = load_checkpoint(p, source)
            if p.main:
                log(f"resuming {run_dir} at step {start}" + (f" (continuing {source.parent.name})"
                                                           if source.parent != run_dir else ""))
        prepare_run_dir(p, run_dir, start, source)
        with compiling(p, auto=cfg.train.compile is None, log=log if p.main else (lambda s: None), run_dir=run_dir):
            return run_loop(p, run_dir, start, best, wall, progress, log if p.main else (lambda s: None))


def compiled_graphs() -> int:
    """Graphs torch._dynamo has compiled in this process so far (its own counter; a reset keeps it)."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@contextlib.contextmanager
def compiling(p: Parts, auto: bool, log, run_dir: Optional[Path] = None):
    """Around a compiled run's loop (nothing for an eager one):
    * a fresh dynamo state, on entry and on exit: every model's forward is one code object
      (SequenceModel.forward), so the graphs of the runs before this one in the process (a sweep's cells) would
      count towards dynamo's recompile limit, past which it runs the model eagerly without an error (here, not
      in build: a benchmark may hold several compiled models at once); room for 32 graphs (one per length
      bucket and mode);
    * with train.compile auto, a model the compiler fails on runs eagerly (dynamo's suppress_errors, with the
      backward compiled at once so that its failure falls back too) instead of failing the run; compile set to
      true fails it (unless TORCHDYNAMO_SUPPRESS_ERRORS is set);
    * the graphs compiled go into env.json (`graphs_compiled`), and a run that compiled none says so."""
    if not p.cfg.train.compile:
        yield
        return
    import torch._dynamo
    import torch._functorch.config

    dyn = torch._dynamo.config
    limit = "recompile_limit" if hasattr(dyn, "recompile_limit") else "cache_size_limit"  # (renamed in 2.6)
    settings = {(dyn, limit): max(getattr(dyn, limit), 32), (dyn, "suppress_errors"): auto or dyn.suppress_errors}
    if auto and hasattr(torch._functorch.config, "force_non_lazy_backward_lowering"):  # (torch >= 2.5)
        settings[(torch._functorch.config, "force_non_lazy_backward_lowering")] = True
    saved = {key: getattr(*key) for key in settings}
    torch._dynamo.reset()
    for (mod, name), value in settings.items():
        setattr(mod, name, value)
    before = compiled_graphs()
    try:
        yield
        graphs = compiled_graphs() - before
        if run_dir is not None and p.main and (run_dir / "env.json").is_file():
            env = json.loads((run_dir / "env.json").read_text())
            results.write_json(run_dir / "env.json", {**env, "graphs_compiled": graphs})
        if not graphs:
            log("train.compile: nothing was compiled (the compiler failed or was not reached): the run was eager")
    finally:
        for (mod, name), value in saved.items():
            setattr(mod, name, value)
        torch._dynamo.reset()
