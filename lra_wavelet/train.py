"""The one training loop, for every task kind and model.

    AdamW + warm-up and rsqrt / cosine / linear / constant decay, gradient clipping, bf16 autocast on
    CUDA, optional torch.compile, evaluation every `eval_every` steps, a resumable checkpoint every
    `checkpoint_every` steps (model, optimiser, scheduler, RNG states, data position), tidy result rows.

Data order is a pure function of (seed, step), so `--resume` after a kill reproduces the uninterrupted
run exactly on the CPU. Under `torchrun --nproc_per_node=N` each rank takes every N-th example of the
same global batch (DistributedDataParallel); only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from . import config as config_mod
from . import loggers, results
from .config import RunConfig
from .errors import UserError
from .evaluate import classification_metrics, lm_metrics
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


def lr_lambda(t: config_mod.TrainConfig):
    """Multiplier of the peak lr at a step: linear warm-up, then the configured decay."""
    w, n, floor = t.warmup_steps, t.max_steps, t.min_lr_ratio

    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / w) if w else 1.0
        if t.schedule == "constant":
            return warm
        if t.schedule == "rsqrt":  # the LRA schedule, normalised so that the peak is lr
            return warm * math.sqrt(max(w, 1) / max(step + 1, w, 1))
        progress = min(1.0, max(0, step + 1 - w) / max(1, n - w))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if t.schedule == "cosine" else 1 - progress
        return warm * (floor + (1 - floor) * decay)

    return f


def make_optimizer(model: torch.nn.Module, t: config_mod.TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight matrices decay; biases, norms, 1-d parameters and parameters marked
    `no_weight_decay` (wavelet filters) do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    decays = [p.dim() >= 2 and not getattr(p, "no_weight_decay", False) for p in params]
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


def trim_padding(batch: dict, pad_id: int, multiple: int = 128) -> dict:
    """Cut trailing columns that are padding in every row (rounded up to `multiple` to bound the number of
    distinct shapes). Exact for models whose valid positions never see padding (`pad_invariant`)."""
    x = batch["x"]
    used = np.nonzero((x != pad_id).reshape(-1, x.shape[-1]).any(0))[0]
    n = min(x.shape[-1], -(-(int(used[-1]) + 1 if len(used) else 1) // multiple) * multiple)
    return {**batch, "x": x[..., :n]} if n < x.shape[-1] else batch


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for (B, C) class logits and for (B, T, V) next-token logits alike."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


def run_paths(cfg: RunConfig) -> tuple[str, Path]:
    run_id = f"{cfg.task.name}-{cfg.model.name}-s{cfg.seed}-{cfg.hash}"
    return run_id, Path(cfg.out) / cfg.task.name / cfg.model.name / run_id


def record_failure(cfg: RunConfig, error: BaseException) -> Path:
    """A run that raised: one row with status 'failed' (and the error in env.json), so reports show FAIL, not '—'."""
    run_id, run_dir = run_paths(cfg)
    row = dict(run_id=run_id, task=cfg.task.name, model=cfg.model.name, seed=cfg.seed, split="train",
               metric="error", value=float("nan"), step=0, status="failed", config_hash=cfg.hash,
               git_sha=results.git_sha(), schema_version=results.SCHEMA_VERSION)
    results.write_rows(run_dir / "result.csv", [row])
    results.write_json(run_dir / "error.json", {"run_id": run_id, "error": f"{type(error).__name__}: {error}"})
    return run_dir


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, split, task, cfg: RunConfig, device, amp, rank: int = 0, world: int = 1,
             trim: bool = False, max_batches: int | None = None) -> dict:
    """Metrics on a split; ranks evaluate interleaved batches and share their sums / predictions.
    max_batches: None = train.eval_batches (validation passes), 0 = the whole split (testing)."""
    model.eval()
    loss_sum, count, preds, labels = 0.0, 0, [], []
    bs = cfg.train.batch_size
    limit = cfg.train.eval_batches if max_batches is None else max_batches
    for i, batch in enumerate(split.eval_batches(bs, limit)):
        if i % world != rank:
            continue
        b = to_device(trim_padding(batch, task.pad_id) if trim else batch, device)
        with amp():
            logits = model(b)
        loss_sum += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), b["y"].reshape(-1),
                                    reduction="sum").item()
        count += b["y"].numel()
        if task.kind != "lm":
            preds.append(logits.argmax(-1).cpu().numpy())
            labels.append(b["y"].cpu().numpy())
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


# ----------------------------------------------------------------------------- the loop


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


def train(cfg: RunConfig, resume: bool = False, force: bool = False, progress: bool = True,
          log=print) -> Outcome:
    rank, world, local_rank = dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cfg.device != "cpu" and torch.cuda.is_available() else "gloo")
    main = rank == 0
    device = pick_device(cfg.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    t = cfg.train
    if t.batch_size % world:
        raise UserError(f"train.batch_size ({t.batch_size}) must be divisible by the number of processes ({world})")

    run_id, run_dir = run_paths(cfg)
    ckpt_path, result_path = run_dir / "checkpoint.pt", run_dir / "result.csv"
    if result_path.is_file() and not force:
        prev = results.load([result_path])
        if len(prev) and (prev["status"] == "ok").all():
            log(f"already done: {run_dir} (same config and seed; pass --force to run again)")
            return Outcome(run_dir, "ok", _metrics_from_rows(prev), skipped=True)
    if ckpt_path.is_file() and not resume and not force:
        raise UserError(f"{run_dir} holds an unfinished run: pass --resume to continue it or --force to start over")

    torch.manual_seed(cfg.seed)
    task = TASKS.get(cfg.task.name)(cfg.task)
    splits = task.splits()
    model = build_model(task, cfg.model).to(device)
    n_params = model.n_params()
    opt = make_optimizer(model, t)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(t))
    use_bf16 = t.amp == "bf16" or (t.amp == "auto" and device.type == "cuda")
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext

    start, best, history_wall = 0, None, 0.0
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng"]["torch"])
        if device.type == "cuda" and ck["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], device)
        start, best, history_wall = ck["step"], ck["best"], ck["wall_time_s"]
        if main:
            log(f"resuming {run_dir} at step {start}")
    elif resume and main and run_dir.exists():
        log(f"nothing to resume at {run_dir}; starting from step 0")

    env = results.environment(device)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_mod.save(cfg, run_dir / "config.yaml")
        results.write_json(run_dir / "env.json", {**env, "run_id": run_id, "config_hash": cfg.hash,
                                                  "world_size": world})
        _truncate_metrics(run_dir / "metrics.jsonl", start)

    net = model
    if t.compile:
        net = torch.compile(model, mode=None if t.compile_mode == "default" else t.compile_mode)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    train_split, seq = splits["train"], task.seq_len
    trim = task.kind != "lm" and task.pad_id is not None and model.pad_invariant
    tokens_per_step = t.batch_size * seq * (2 if task.kind == "retrieve" else 1)
    crash_at = int(os.environ.get(CRASH_ENV, -1))
    val_metric = "loss" if task.kind == "lm" else "accuracy"
    better = (lambda a, b: a < b) if task.kind == "lm" else (lambda a, b: a > b)
    base = dict(run_id=run_id, task=task.name, task_version=task.version, data_source=task.source,
                model=cfg.model.name, n_params=n_params, seed=cfg.seed, config_hash=cfg.hash,
                git_sha=env["git_sha"], device=env["device"],
                schema_version=results.SCHEMA_VERSION)

    def rows_for(metrics: dict, step: int, wall: float, status: str) -> list[dict]:
        return [dict(base, split=split, metric=k, value=v, step=step, tokens_seen=step * tokens_per_step,
                     wall_time_s=round(wall, 3), status=status)
                for split, ms in metrics.items() for k, v in ms.items()]

    def save_checkpoint(step: int, wall: float):
        if not main:
            return
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "rng": {"torch": torch.get_rng_state(),
                         "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
                 "step": step, "best": best, "wall_time_s": wall, "config_hash": cfg.hash}
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)

    curves = loggers.make(t.logger if main else "none", run_dir, run_id, cfg, start)  # TensorBoard / W&B views

    def log_metrics(rec: dict):
        if main:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            curves.log(rec)

    # -- the loop ------------------------------------------------------------------------------
    status, step, last_val = "ok", start, {}
    t0 = time.perf_counter() - history_wall
    bar = tqdm(total=t.max_steps, initial=start, desc=f"{task.name}/{cfg.model.name}", unit="step",
               disable=None if (progress and main) else True, dynamic_ncols=True, file=sys.stderr)
    stop = {"signal": None}
    old_handler = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(signal=s))  # every rank: torchrun signals them all
    model.train()
    run_loss, run_correct, run_n, tick, tick_tokens = 0.0, 0, 0, time.perf_counter(), 0
    try:
        while step < t.max_steps and (world > 1 or stop["signal"] is None):
            batch = train_split.train_batch(step, t.batch_size, cfg.seed)
            if trim:
                batch = trim_padding(batch, task.pad_id)
            batch = to_device(batch, device, rank, world)
            with amp():
                logits = net(batch)
            loss = loss_fn(logits, batch["y"])
            finite = bool(torch.isfinite(loss).all())
            if world > 1:  # ranks decide together (a rank leaving the loop alone would hang the others)
                flags = torch.tensor([float(not finite), float(stop["signal"] is not None)], device=device)
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
                nonfinite, stopping = flags.tolist()  # one device-to-host copy
                finite = not nonfinite
                if stopping:
                    stop["signal"] = stop["signal"] or signal.SIGTERM
                    break
            if not finite:
                status = "diverged"
                log(f"loss is {loss.item()} at step {step}: stopping (status=diverged)")
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)

            run_loss += loss.item()
            run_n += 1
            if task.kind != "lm":
                run_correct += (logits.argmax(-1) == batch["y"]).float().mean().item()
            tick_tokens += tokens_per_step
            if step % t.log_every == 0 or step == t.max_steps:
                dt = time.perf_counter() - tick
                rec = {"step": step, "split": "train", "loss": run_loss / run_n, "lr": sched.get_last_lr()[0],
                       "tokens_per_s": tick_tokens / max(dt, 1e-9), "wall_time_s": time.perf_counter() - t0}
                if task.kind != "lm":
                    rec["accuracy"] = run_correct / run_n
                log_metrics(rec)
                bar.set_postfix({k: f"{v:.3g}" for k, v in rec.items() if k in ("loss", "accuracy", "tokens_per_s")})
                run_loss, run_correct, run_n, tick, tick_tokens = 0.0, 0, 0, time.perf_counter(), 0
            if step == 3 and start == 0 and device.type == "cpu" and main:
                eta = (time.perf_counter() - t0) / 3 * t.max_steps
                if eta > 600:
                    log(f"estimated training time on this CPU: {eta / 3600:.1f} h for {t.max_steps} steps "
                        "(try a smaller preset such as quick, or a GPU)")

            if step % t.eval_every == 0 or step == t.max_steps:
                last_val = evaluate(net, splits["val"], task, cfg, device, amp, rank, world, trim)
                log_metrics({"step": step, "split": "val", **last_val, "wall_time_s": time.perf_counter() - t0})
                if best is None or better(last_val[val_metric], best["value"]):
                    best = {"step": step, "value": last_val[val_metric], "metrics": last_val}
                    if main and t.test_on == "best":
                        torch.save(model.state_dict(), run_dir / "best.tmp")
                        os.replace(run_dir / "best.tmp", run_dir / "best.pt")
            if t.checkpoint_every and step % t.checkpoint_every == 0 and step < t.max_steps:
                save_checkpoint(step, time.perf_counter() - t0)
            if step == crash_at:
                os._exit(137)  # simulate a hard kill: nothing below runs
    except KeyboardInterrupt:
        stop["signal"] = signal.SIGINT
    finally:
        bar.close()
        curves.close()
        signal.signal(signal.SIGTERM, old_handler)

    wall = time.perf_counter() - t0
    if stop["signal"] is not None:
        save_checkpoint(step, wall)
        if main:
            results.write_rows(result_path, rows_for({"val": last_val} if last_val else {}, step, wall, "partial"))
            log(f"interrupted at step {step}: checkpoint saved; continue with --resume ({run_dir})")
        return Outcome(run_dir, "partial", {"val": last_val})

    metrics = {"val": last_val} if last_val else {}
    if status == "ok":
        if t.test_on == "best" and best is not None and (run_dir / "best.pt").is_file():
            model.load_state_dict(torch.load(run_dir / "best.pt", map_location=device, weights_only=True))
        metrics["test"] = evaluate(net, splits["test"], task, cfg, device, amp, rank, world, trim, max_batches=0)
        metrics["test"]["tested_step"] = best["step"] if (t.test_on == "best" and best) else step
    if main:
        results.write_rows(result_path, rows_for(metrics, step, wall, status))
        save_checkpoint(step, wall)  # the final state, for inspection and further evaluation
    if world > 1:
        dist.barrier()
    return Outcome(run_dir, status, metrics)


def _metrics_from_rows(df) -> dict:
    out: dict = {}
    for r in df.itertuples():
        out.setdefault(r.split, {})[r.metric] = r.value
    return out


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop curve points logged after the checkpoint so no point appears twice."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    results.atomic_write_text(path, "".join(ln + "\n" for ln in keep))
