"""Several seeds of one configuration trained in one process as one batched model (`sweep --stack-seeds`).

For the small, launch-bound LRA models one seed leaves most of the GPU idle, and separate processes only
time-slice it (results/benchmarks/throughput.md); stacking the seeds' weights (torch.func.stack_module_state)
and vmapping one step over them makes every kernel do every seed's work. Each seed is still its own run: its
own run folder, config, curve, checkpoints and rows, exactly as `train.train` writes them, so the report, a
re-run and a resume see no difference. What differs from separate runs:

* dropout (and any other random draw in the forward) comes from vmap's per-seed streams of one generator,
  so a stacked seed's numbers equal its separate run's only without dropout (up to float rounding); with it
  they are another draw of the same distribution. Initial weights and data order are each seed's own.
* train.compile=true compiles the vmapped forward and backward, not each seed's model; evaluation runs each
  seed's model eagerly. A seed's batch is padded to the longest of the seeds' batches at that step
  (pad-invariant classifiers only trim padding: the same numbers). Under auto (the default) a stack runs
  eagerly: on the GPU the compiled stack failed with every fused attention kernel that takes a mask
  (results/benchmarks/throughput_groups_2026-12-04.md), the last one inside the CUDA kernel as the compiled
  backward ran, where auto's fallback (at compile time) cannot catch it.
* wall_time_s is the stack's: the time all of its seeds took together. env.json says `stacked_with`.

A seed that diverges gets its `diverged` rows at once and the others go on (the seeds share no weight);
a stop (SIGTERM, Ctrl-C) checkpoints every seed; the checkpoints are ordinary ones, so an unfinished seed
continues stacked or alone. Seeds that are not at the same step (one finished, one stopped elsewhere) are
run as the stack of those that are, the rest one by one (`train_seeds`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from . import loggers, results
from . import train as T
from .config import RunConfig
from .errors import UserError


def check_stackable(cfgs: list[RunConfig]) -> None:
    """A UserError unless the configs differ in their seed alone (and are distinct seeds)."""
    base = dataclasses.replace(cfgs[0], seed=0).hash
    for c in cfgs[1:]:
        if dataclasses.replace(c, seed=0).hash != base:
            raise UserError(f"stacked seeds must share one configuration: {c.task.name} / {c.model.name} seed {c.seed} "
                            f"differs from seed {cfgs[0].seed} in more than its seed")
    if cfgs[0].train.length_groups > 1:
        raise UserError(f"train.length_groups={cfgs[0].train.length_groups}: not with stacked seeds (a stack trains "
                        "every seed's batch whole, trimmed together); leave it at 1 or train the seeds one by one")
    if cfgs[0].train.attn_varlen:
        raise UserError("train.attn_varlen: not with stacked seeds (the variable-length kernel does not run under "
                        "vmap); leave it off or train the seeds one by one")
    seeds = [c.seed for c in cfgs]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"stacked seeds must be distinct, got {seeds}")


def train_seeds(cfgs: list[RunConfig], progress: bool = True, log=print) -> list[T.Outcome]:
    """Train the seeds of one configuration (as `train(cfg, resume=True)` each would: finished runs skipped,
    unfinished ones continued), those at the same step stacked into one model. Outcomes in the order given."""
    check_stackable(cfgs)
    if len(cfgs) == 1:
        return [T.train(cfgs[0], resume=True, progress=progress, log=log)]
    if T.dist_info()[1] > 1:
        raise UserError("stacked seeds run in one process: not under torchrun (run the seeds as separate runs)")
    device = T.pick_device(cfgs[0].device, 0)
    dirs = [T.run_paths(c)[1] for c in cfgs]
    out: dict[int, T.Outcome] = {}
    with contextlib.ExitStack() as locks:
        for d in dirs:
            locks.enter_context(T.run_lock(d))
        todo = []
        for i, d in enumerate(dirs):
            done = T._finished(d, log)
            if done is not None:
                out[i] = done
            else:
                todo.append(i)
        if len(todo) >= 2:
            parts, starts = _build(cfgs, todo, dirs, device, log)
            steps = [starts[i][0] for i in todo]
            group = [i for i in todo if starts[i][0] == max(steps, key=steps.count)]  # the largest same-step group
            if len(group) >= 2:
                for i, o in zip(group, _run(cfgs, group, parts, starts, dirs, progress, log)):
                    out[i] = o
    for i, c in enumerate(cfgs):  # the rest (alone, or not at the group's step): one by one, as train does
        if i not in out:
            out[i] = T.train(c, resume=True, progress=progress, log=log)
    return [out[i] for i in range(len(cfgs))]


def _build(cfgs, todo, dirs, device, log):
    """Each seed's Parts (eager; its data shared with the first seed's: the seeds' splits are the same) and
    where it starts: (step, best, wall, checkpoint path) from its checkpoint, or (0, None, 0.0, None)."""
    parts, starts, splits = {}, {}, None
    for i in todo:
        c = cfgs[i]
        eager = dataclasses.replace(c, train=dataclasses.replace(c.train, compile=False))
        p = T.build(eager, device, splits=splits)
        p.given = c  # config.yaml records the config as given
        splits = p.splits
        source = T.resume_from(c, dirs[i], True, False, False, log)
        starts[i] = (*T.load_checkpoint(p, source), source) if source is not None else (0, None, 0.0, None)
        parts[i] = p
    return parts, starts


def _run(cfgs, group, parts, starts, dirs, progress, log) -> list[T.Outcome]:
    ps = [parts[i] for i in group]
    T.check_memory(dataclasses.replace(ps[0], cfg=_scaled_batch(ps[0].cfg, len(ps))))  # the stack's activations
    start = starts[group[0]][0]
    c = cfgs[group[0]]
    want = bool(c.train.compile)  # auto: eager (the module docstring says why)
    for i, p in zip(group, ps):
        step, _, _, source = starts[i]
        T.prepare_run_dir(p, dirs[i], step, source)
        env = json.loads((dirs[i] / "env.json").read_text())
        results.write_json(dirs[i] / "env.json", {**env, "compiled": want,
                                                  "stacked_with": [T.run_paths(cfgs[j])[0] for j in group]})
        if source is not None:
            log(f"resuming {dirs[i]} at step {step} (stacked)")
    st = T.stack_seeds(ps, compile=want, mode=c.train.compile_mode)
    T.restack(st)  # the optimiser states just restored (nothing to move for a fresh start)
    log(f"{ps[0].task.name}/{ps[0].cfg.model.name}: seeds {', '.join(str(p.cfg.seed) for p in ps)} stacked into "
        f"one model from step {start}" + (" (compiled)" if want else ""))
    as_compiled = dataclasses.replace(ps[0], cfg=dataclasses.replace(c, train=dataclasses.replace(c.train,
                                                                                                  compile=want)))
    with T.compiling(as_compiled, auto=False, log=log):
        return loop(st, [dirs[i] for i in group], start, [starts[i][1] for i in group],
                    max(starts[i][2] for i in group), progress, log)


def _scaled_batch(cfg: RunConfig, k: int) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=cfg.train.batch_size * k))


def loop(st: T.SeedStack, dirs: list[Path], start: int, bests: list, history_wall: float, progress: bool,
         log) -> list[T.Outcome]:
    """train.run_loop for a stack: train to train.max_steps, evaluating and checkpointing each seed, reading the
    metrics (and each seed's NaN flag) on the host at log steps only; every seed's rows at its end."""
    ps, S = st.parts, len(st.parts)
    p0, t, task = st.parts[0], st.parts[0].cfg.train, st.parts[0].task
    val_metric = T.val_metric(task)
    dev = p0.device
    step, t0 = start, time.perf_counter() - history_wall
    last_val, last_train, val_step = [{} for _ in ps], [None] * S, start
    outcomes: list[Optional[T.Outcome]] = [None] * S  # set when a seed ends (diverged) before the others
    bar = tqdm(total=t.max_steps, initial=start, desc=f"{task.name}/{p0.cfg.model.name} x{S} seeds", unit="step",
               disable=None if progress else True, dynamic_ncols=True, file=sys.stderr)
    plain = progress and bar.disable
    stop = {"signal": None}
    old_handler = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(signal=s))
    for p, d in zip(ps, dirs):
        p.curves = loggers.make(t.logger, d, d.name, p.cfg, start)
    p0.model.train()  # the stacked forward runs the first seed's module (its mode: dropout on)
    data = T.batches(p0, start, make=lambda s: T.stacked_host_batch(st, s))
    zeros = lambda: torch.zeros(S, device=dev)  # noqa: E731
    loss_sum, acc_sum, n = zeros(), zeros(), 0
    bad_step = torch.full((S,), -1, dtype=torch.long, device=dev)
    bad_loss = zeros()
    tick, tick_steps = time.perf_counter(), 0
    try:
        while step < t.max_steps and stop["signal"] is None:
            losses, acc = T.stacked_step(st, next(data), norms=(step + 1) % t.log_every == 0 or step + 1 == t.max_steps)
            first = ~torch.isfinite(losses) & (bad_step < 0)
            bad_step = torch.where(first, step, bad_step)
            bad_loss = torch.where(first, losses.float(), bad_loss)
            loss_sum, n = loss_sum + losses.float(), n + 1
            if acc is not None:
                acc_sum = acc_sum + acc
            step += 1
            tick_steps += 1
            bar.update(1)
            if step % t.log_every == 0 or step == t.max_steps:
                bad = bad_step.tolist()
                for k, at in enumerate(bad):
                    if at >= 0 and outcomes[k] is None:  # this seed diverged: its rows now, the others go on
                        lazy = dataclasses.replace(ps[k], cfg=dataclasses.replace(  # no checkpoint of a NaN
                            ps[k].cfg, train=dataclasses.replace(t, lazy_metrics=True)))
                        outcomes[k] = T._finish(lazy, dirs[k], step, bests[k], last_val[k], val_step,
                                                last_train[k], (at, float(bad_loss[k])), None,
                                                time.perf_counter() - t0, log)
                if all(o is not None for o in outcomes):
                    break
                dt = time.perf_counter() - tick
                means = torch.stack([loss_sum, acc_sum, st.norms if st.norms is not None else zeros()]).div(
                    torch.tensor([n, n, 1], device=dev).unsqueeze(1)).tolist()
                lr = st.sched.get_last_lr()[0]
                for k, (p, d) in enumerate(zip(ps, dirs)):
                    if outcomes[k] is not None:
                        continue
                    rec = {"step": step, "split": "train", "loss": means[0][k], "lr": lr,
                           "tokens_per_s": tick_steps * p.tokens_per_step / max(dt, 1e-9),
                           "wall_time_s": time.perf_counter() - t0}
                    if task.kind != "lm":
                        rec["accuracy"] = means[1][k]
                    rec["grad_norm"] = means[2][k] if st.norms is not None else None
                    T.log_metrics(p, d, rec)
                    last_train[k] = rec
                if plain:
                    log(f"step {step}/{t.max_steps}: loss " + " ".join(f"{m:.3g}" for m in means[0]))
                loss_sum, acc_sum, n = zeros(), zeros(), 0
                tick, tick_steps = time.perf_counter(), 0
            evaluating = step % t.eval_every == 0 or step == t.max_steps
            saving = t.checkpoint_every and step % t.checkpoint_every == 0 and step < t.max_steps
            if evaluating or saving:
                T.unstack(st, optimizer=saving)
            if evaluating:
                val_step = step
                for k, (p, d) in enumerate(zip(ps, dirs)):
                    if outcomes[k] is not None:
                        continue
                    last_val[k] = T.evaluate_split(p, "val")
                    T.log_metrics(p, d, {"step": step, "split": "val", **last_val[k],
                                         "wall_time_s": time.perf_counter() - t0})
                    bests[k] = T.update_best(p, d, bests[k], last_val[k], step)
                if plain:
                    log(f"step {step}/{t.max_steps}: val {val_metric} "
                        + " ".join(f"{v[val_metric]:.4g}" for v in last_val if v))
            if saving:
                for k, (p, d) in enumerate(zip(ps, dirs)):
                    if outcomes[k] is None:
                        T.save_checkpoint(p, d / "checkpoint.pt", step, bests[k], time.perf_counter() - t0)
    except KeyboardInterrupt:
        stop["signal"] = signal.SIGINT
    finally:
        bar.close()
        data.close()
        signal.signal(signal.SIGTERM, old_handler)
    T.unstack(st, optimizer=True)
    wall = time.perf_counter() - t0
    for k, (p, d) in enumerate(zip(ps, dirs)):
        if outcomes[k] is None:
            outcomes[k] = T._finish(p, d, step, bests[k], last_val[k], val_step, last_train[k], None, stop["signal"],
                                    wall, log)
        p.curves.close()
    return outcomes
