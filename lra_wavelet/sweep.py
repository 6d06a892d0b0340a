"""Sweeps: a task × model × seed grid, run here cell by cell, spread over GPUs, or sent to SLURM.

    sweep --tasks listops image --models gpt wavelet --seeds 0 1 2            # cells one after another, here
    sweep --grid tasks/paper/pretrain.yaml --gpus all                         # one worker process per GPU
    sweep --grid tasks/paper/pretrain.yaml --launcher submitit --submitit slurm_partition=gpu   # a job array

Every cell is one `train(cfg, resume=True)`: a finished cell is skipped, an unfinished one continues from its
checkpoint, a cell that diverged before stays diverged (it is not resumed). A cell's run folder is named by its
config hash, so a re-run after a crash, a kill or a preemption repeats nothing and no row is written twice.
Workers and jobs receive plain config dicts (and the `--include` files), never pickled classes, so a
user's own model or task crosses the process boundary like a built-in one.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from . import config as config_mod
from .errors import UserError

INTERRUPTED = 130  # exit status of a sweep stopped by a signal (the running cells' checkpoints are saved)
GRID_KEYS = {"tasks", "models", "seeds", "preset", "set"}


@dataclass
class Cell:
    task: str
    model: str
    seed: int
    cfg: dict  # the resolved RunConfig as plain data (crosses process boundaries)

    @property
    def label(self) -> str:
        return f"{self.task} × {self.model} × seed {self.seed}"


@dataclass
class Result:
    status: str  # ok | diverged | failed | partial
    seconds: float = 0.0
    skipped: bool = False  # finished (or diverged) before: nothing trained
    note: str = ""  # test metrics, or the error


# ----------------------------------------------------------------------------- the grid


def plan(a, resolve) -> list[Cell]:
    """The grid of `sweep` arguments (and an optional --grid YAML), every cell resolved before any runs:
    a bad key or name in any cell is an error before the first cell trains. `resolve(a, task=, model=,
    seed=, grid_layer=)` is the CLI's resolver (flags, --set, --config, presets)."""
    grid, layer = {"tasks": a.tasks, "models": a.models, "seeds": a.seeds}, {}
    if a.grid:
        g = config_mod.load_yaml(a.grid)
        unknown = set(g) - GRID_KEYS - set(config_mod.TOP_KEYS)
        if unknown:
            raise UserError(f"{a.grid}: unknown key '{sorted(unknown)[0]}'; expected tasks, models, seeds, preset, set "
                            f"or config sections ({', '.join(config_mod.TOP_KEYS)})")
        layer = {k: v for k, v in g.items() if k in config_mod.TOP_KEYS}
        grid.update({k: g[k] for k in ("tasks", "models", "seeds") if k in g and not grid.get(k)})
        a.preset = a.preset or g.get("preset")
        a.set = list(g.get("set") or []) + a.set
    for k in ("tasks", "models"):
        if not grid.get(k):
            raise UserError(f"sweep: no {k} given (--{k} ... or a --grid YAML with '{k}:')")
        if not isinstance(grid[k], list) or not all(isinstance(v, str) for v in grid[k]):
            raise UserError(f"{a.grid or 'sweep'}: '{k}' must be a list of names, got {grid[k]!r}")
    seeds = grid.get("seeds") or [0]
    if not isinstance(seeds, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in seeds):
        raise UserError(f"{a.grid or 'sweep'}: 'seeds' must be a list of integers, got {seeds!r}")
    # order: task, then model, then seed (each model's seeds together), or with --order seed task, then seed,
    # then model (every model's seed 0 before any seed 1: a sweep stopped early leaves whole seeds to compare)
    if getattr(a, "order", "model") == "seed":
        triples = [(t, m, s) for t in grid["tasks"] for s in seeds for m in grid["models"]]
    else:
        triples = [(t, m, s) for t in grid["tasks"] for m in grid["models"] for s in seeds]
    cells, seen = [], set()
    for t, m, s in triples:
        cfg = resolve(a, task=t, model=m, seed=int(s), grid_layer=layer)
        key = (cfg.task.name, cfg.model.name, cfg.seed, cfg.hash)
        if key not in seen:  # `--seeds 0 0`: one run folder, one cell
            seen.add(key)
            cells.append(Cell(t, m, int(s), cfg.to_dict()))
    return cells


def rebuild(d: dict):
    """The RunConfig of a cell's plain dict (in a worker or a job): validated again, same hash."""
    from .registry import MODELS, TASKS

    cfg = config_mod.RunConfig(
        task=config_mod.build_section(TASKS.get(d["task"]["name"]).Config, d["task"], "task"),
        model=config_mod.build_section(MODELS.get(d["model"]["name"]).Config, d["model"], "model"),
        train=config_mod.build_section(config_mod.TrainConfig, d["train"], "train"),
        seed=d["seed"], device=d["device"], out=d["out"])
    config_mod.check(cfg)
    return cfg


def distinct_tasks(cells: list[Cell]):
    """(cell, Task) for each distinct task configuration of the grid (the first cell that has it)."""
    from .registry import TASKS

    seen = set()
    for c in cells:
        key = json.dumps(c.cfg["task"], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            yield c, TASKS.get(c.task)(rebuild(c.cfg).task)


def check_data(cells: list[Cell], log=print) -> None:
    """Ask every task of the grid where its data would come from, before any cell trains, so that a missing
    stand-in or data dir stops the sweep up front (one line, exit 2) rather than after some cells."""
    said = set()  # one line per task and source (Image's encoders and decoders differ in pixel0_is_pad only)
    for c, task in distinct_tasks(cells):
        which = getattr(task, "which_source", None)
        if which is not None:
            source = which()
            if isinstance(source, str) and (c.task, source) not in said:
                said.add((c.task, source))
                log(f"data: {c.task} from {source}")


def prepare_data(cells: list[Cell]) -> None:
    """Build each distinct task's data cache here, once, before workers start: two workers must not generate
    the same cache at the same time, and a broken source should stop the sweep before any worker runs."""
    for _, task in distinct_tasks(cells):
        task.splits()


# ----------------------------------------------------------------------------- one cell


def run_cell(cfg, progress: bool = True) -> Result:
    """Train (or skip, or resume) one cell; an exception is recorded as the cell's failure, not raised."""
    from . import train as T

    t0 = time.perf_counter()
    try:
        out = T.train(cfg, resume=True, progress=progress)
    except Exception as e:  # one broken cell must not stop the grid; it is recorded as failed
        return _failed([cfg], e, time.perf_counter() - t0)[0]
    return _result(out, time.perf_counter() - t0)


def _failed(cfgs: list, e: Exception, seconds: float) -> list[Result]:
    """Each cell's `failed` Result for an exception, recorded in its folder (error.json)."""
    from . import train as T

    why = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
    if not isinstance(e, UserError):  # a bug, not bad input: its traceback belongs in the sweep's log
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    return [Result("failed", seconds, note=f"{why} (recorded in {T.record_failure(c, e)})") for c in cfgs]


def _result(out, seconds: float, how: str = "") -> Result:
    (out.run_dir / "error.json").unlink(missing_ok=True)  # a failure of an earlier attempt is stale now
    test = out.metrics.get("test", {})
    note = ", ".join(f"test {k} {v:.4f}" for k, v in test.items() if k in ("accuracy", "loss", "bits_per_token"))
    return Result(out.status, seconds, out.skipped, f"{note or 'no test metrics'}{how}; {out.run_dir}")


def run_stack(cfgs: list, progress: bool = True) -> list[Result]:
    """The seeds of one cell configuration as one stacked model (stacked.train_seeds); each seed's Result, the
    stack's time shared out between the seeds that trained. A failure fails every seed of the stack."""
    from . import stacked

    t0 = time.perf_counter()
    try:
        outs = stacked.train_seeds(cfgs, progress=progress)
    except Exception as e:
        return _failed(cfgs, e, (time.perf_counter() - t0) / len(cfgs))
    trained = [o for o in outs if not o.skipped]
    share = (time.perf_counter() - t0) / max(len(trained), 1)
    stacked_now = [o for o in trained if "stacked_with" in _env_of(o.run_dir)]  # (not those that ran alone)
    how = f" (stacked: {len(stacked_now)} seeds, {share * len(trained):.1f} s in all)"
    return [_result(o, 0.0 if o.skipped else share, how if o in stacked_now else "") for o in outs]


def _env_of(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "env.json").read_text())
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------------------- progress and summary


class Progress:
    """`[k/N] cell: status (time) | elapsed, ETA` lines. The ETA counts only cells that trained (a skipped cell
    takes no time) and divides the remaining work by the number of workers."""

    def __init__(self, total: int, parallel: int = 1):
        self.total, self.parallel = total, max(1, parallel)
        self.t0, self.durations, self.finished = time.perf_counter(), [], 0

    def done(self, cell: Cell, r: Result) -> None:
        self.finished += 1
        if not r.skipped:
            self.durations.append(r.seconds)
        left = self.total - self.finished
        if left and self.durations:
            eta = _hms(sum(self.durations) / len(self.durations) * left / min(self.parallel, left))
        else:
            eta = "—" if left else "0:00:00"
        what = "skipped (" + r.status + " before)" if r.skipped else f"{r.status} in {r.seconds:.1f} s"
        print(f"[{self.finished}/{self.total}] {cell.label}: {what}; {r.note} | elapsed "
              f"{_hms(time.perf_counter() - self.t0)}, ETA {eta}", file=sys.stderr, flush=True)


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def summarise(cells: list[Cell], results: dict, interrupted: bool = False) -> int:
    """Count ok / diverged / failed / partial (and not run) cells; exit 0 only when every cell finished ok."""
    counts = {k: 0 for k in ("ok", "diverged", "failed", "partial", "not run")}
    for i, c in enumerate(cells):
        r = results.get(i)
        counts[r.status if r else "not run"] += 1
        if r is None or r.status != "ok":
            print(f"  {r.status if r else 'not run'}: {c.label}" + (f" ({r.note})" if r and r.note else ""))
    shown = ", ".join(f"{n} {k}" for k, n in counts.items() if n or k in ("ok", "failed"))
    tail = "; interrupted, re-run the same sweep to continue" if interrupted else ""
    print(f"sweep: {len(cells)} cells: {shown}{tail}")
    if interrupted or counts["partial"]:
        return INTERRUPTED
    return 0 if counts["ok"] == len(cells) else 1


# ----------------------------------------------------------------------------- launchers


def run_here(cells: list[Cell], progress: bool = True, stack: bool = False) -> int:
    """One cell after another in this process; a signal stops the grid after saving the running cell.
    stack (--stack-seeds): the seeds of each configuration as one stacked model, at its first seed's place."""
    bar, results = Progress(len(cells)), {}
    groups = seed_groups(cells) if stack else {i: [i] for i in range(len(cells))}
    for i in range(len(cells)):
        if i in results or i not in groups:
            continue
        for k in groups[i]:
            print(f"[{len(results) + 1 + groups[i].index(k)}/{len(cells)}] {cells[k].label}", file=sys.stderr,
                  flush=True)
        if len(groups[i]) == 1:
            got = [run_cell(rebuild(cells[i].cfg), progress=progress)]
        else:
            got = run_stack([rebuild(cells[k].cfg) for k in groups[i]], progress=progress)
        for k, r in zip(groups[i], got):
            results[k] = r
            bar.done(cells[k], r)
        if any(r.status == "partial" for r in got):  # interrupted (SIGTERM / Ctrl-C): stop; resumes on a re-run
            return summarise(cells, results, interrupted=True)
    return summarise(cells, results)


def seed_groups(cells: list[Cell]) -> dict[int, list[int]]:
    """The cells of one configuration but the seed, keyed by the first one's index (in grid order)."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cells):
        key = json.dumps({k: v for k, v in c.cfg.items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(i)
    return {g[0]: g for g in groups.values()}


def parse_gpus(gpus: list[str]) -> list[str]:
    """`--gpus 0 1` or `--gpus all` (every visible CUDA device): the device ids, one worker each."""
    if gpus == ["all"]:
        import torch

        n = torch.cuda.device_count()
        if not n:
            raise UserError("--gpus all: no CUDA device is visible (name ids, e.g. --gpus 0 1, with --device cpu "
                            "to run CPU workers)")
        return [str(i) for i in range(n)]
    bad = [g for g in gpus if not g.isdigit()]
    if bad:
        raise UserError(f"--gpus {bad[0]}: expected device ids (0 1 ...) or 'all'")
    return gpus


def run_workers(cells: list[Cell], gpus: list[str], include=(), log_dir: Path | None = None) -> int:
    """One worker process per GPU id (`CUDA_VISIBLE_DEVICES` set to it), taking the next cell from a shared
    queue as soon as it is free; each worker writes its own log. A worker that dies takes only its current
    cell with it (recorded as failed); SIGTERM or Ctrl-C stops every worker after saving its cell."""
    import multiprocessing as mp

    if any(c.cfg["device"].startswith("cuda:") for c in cells):
        raise UserError("--gpus sets each worker's GPU; leave --device at auto or cuda (not cuda:N)")
    prepare_data(cells)
    ctx = mp.get_context("spawn")  # fresh interpreters: CUDA state is never inherited from this process
    todo, events, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    for i in range(len(cells)):
        todo.put(i)
    log_dir = Path(log_dir or Path(cells[0].cfg["out"]) / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    procs, logs = {}, {}
    for w, gpu in enumerate(gpus):
        logs[w] = log_dir / (f"sweep-gpu{gpu}.log" if gpus.count(gpu) == 1 else f"sweep-gpu{gpu}-{w}.log")
        p = ctx.Process(target=_worker, args=(w, [c.cfg for c in cells], list(include), str(logs[w]), todo,
                                              events, stop))  # not daemonic: a cell may start its own processes
        with _env(CUDA_VISIBLE_DEVICES=gpu):  # in the child's environment from its first instruction
            p.start()
        procs[w] = p
        print(f"worker {w}: GPU {gpu}, log {logs[w]}", file=sys.stderr)

    def forward(signum, frame):  # stop taking cells; the running ones save their checkpoints
        stop.set()
        for p in procs.values():
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    old_term = signal.signal(signal.SIGTERM, forward)
    bar, results, running = Progress(len(cells), len(gpus)), {}, {}
    try:
        while len(results) < len(cells):
            try:
                kind, w, i, r = events.get(timeout=0.5)
            except queue.Empty:
                dead = [w for w, p in procs.items() if not p.is_alive() and w in running]
                for w in dead:  # died in a cell (killed, out of memory): that cell failed, the others go on
                    i = running.pop(w)
                    why = f"worker {w} (GPU {gpus[w]}) died with exit code {procs[w].exitcode}; see {logs[w]}"
                    results[i] = Result("failed", note=why)
                    _record(cells[i], RuntimeError(why))
                    bar.done(cells[i], results[i])
                if not any(p.is_alive() for p in procs.values()) and events.empty():
                    break
                continue
            if kind == "start":
                running[w] = i
                print(f"  worker {w} (GPU {gpus[w]}): {cells[i].label}", file=sys.stderr, flush=True)
                continue
            running.pop(w, None)
            results[i] = r
            bar.done(cells[i], r)
            if r.status == "partial":
                forward(signal.SIGTERM, None)
    except KeyboardInterrupt:  # Ctrl-C reached every worker too (same process group)
        stop.set()
    finally:
        signal.signal(signal.SIGTERM, old_term)
        for p in procs.values():
            p.join(timeout=60)
    return summarise(cells, results, interrupted=stop.is_set())


@contextlib.contextmanager
def _env(**values):
    """Set environment variables for the duration of the block (a spawned child inherits them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _record(cell: Cell, error: BaseException) -> None:
    from .train import record_failure

    record_failure(rebuild(cell.cfg), error)


def _worker(w: int, cfgs: list[dict], include: list[str], log_path: str, todo, events, stop) -> None:
    """A worker process: its stdout and stderr (progress bars, warnings) go to its own log file."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    print(f"== worker {w}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}, pid {os.getpid()}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    from .registry import include as include_paths

    include_paths(*include)
    while not stop.is_set():
        try:
            i = todo.get_nowait()
        except queue.Empty:
            return
        events.put(("start", w, i, None))
        print(f"-- cell {i}: {cfgs[i]['task']['name']} × {cfgs[i]['model']['name']} × seed {cfgs[i]['seed']}",
              flush=True)
        try:
            r = run_cell(rebuild(cfgs[i]), progress=True)
        except KeyboardInterrupt:  # outside the training loop: nothing of this cell was saved
            r = Result("partial", note="interrupted")
        print(f"-- cell {i}: {r.status}; {r.note}", flush=True)
        events.put(("done", w, i, r))
        if r.status == "partial":
            return


# ----------------------------------------------------------------------------- SLURM (submitit)


class CellJob:
    """The callable of a submitit job array: one cell per array task. On preemption or timeout submitit calls
    `checkpoint()`, which resubmits the same call; the requeued job's `train(resume=True)` continues from the
    cell's last checkpoint (train.checkpoint_every)."""

    def __init__(self, include=()):
        self.include = list(include)

    def __call__(self, cfg: dict) -> dict:
        from .registry import include as include_paths

        include_paths(*self.include)
        return asdict(run_cell(rebuild(cfg), progress=False))

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def submitit_executor(folder: Path, cluster: str | None, params: dict, n_cells: int, device: str):
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher submitit needs the submitit package: pip install 'lra_wavelet[cluster]'") from None
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    defaults = {"name": "lra_wavelet-sweep", "timeout_min": 240, "tasks_per_node": 1, "nodes": 1,
                "gpus_per_node": 0 if device == "cpu" else 1, "slurm_array_parallelism": n_cells}
    if ex.cluster != "slurm":
        defaults.pop("slurm_array_parallelism")
    try:
        ex.update_parameters(**{**defaults, **params})
    except (ValueError, TypeError, AssertionError) as e:  # submitit asserts the types of its parameters
        raise UserError(f"--submitit: {e}") from None
    return ex


def run_submitit(cells: list[Cell], params: dict, include=(), folder: Path | None = None, cluster=None,
                 wait: bool = True) -> int:
    """Submit the grid as one job array (one task per cell) and, unless wait=False, follow it to the end."""
    folder = Path(folder or Path(cells[0].cfg["out"]) / "submitit")
    ex = submitit_executor(folder, cluster, params, len(cells), cells[0].cfg["device"])
    jobs = ex.map_array(CellJob(include), [c.cfg for c in cells])
    print(f"submitted {len(jobs)} cells as {ex.cluster} job(s) {jobs[0].job_id.split('_')[0]}; logs under {folder}",
          file=sys.stderr, flush=True)
    if not wait:
        print(f"sweep: {len(cells)} cells submitted; follow them with squeue, collect rows with `report`")
        return 0
    bar, results = Progress(len(cells), len(cells)), {}
    poll_s = 10.0 if ex.cluster == "slurm" else 0.5
    try:
        while len(results) < len(jobs):
            for i, j in enumerate(jobs):
                if i in results or not j.done():
                    continue
                try:
                    results[i] = Result(**j.result())
                except Exception as e:  # the job itself failed (import error, killed, timed out too often)
                    results[i] = Result("failed", note=f"job {j.job_id}: {str(e).strip().splitlines()[-1]}")
                bar.done(cells[i], results[i])
            if len(results) < len(jobs):
                time.sleep(poll_s)
    except KeyboardInterrupt:
        print(f"stopped following; the jobs keep running ({folder})", file=sys.stderr)
        return INTERRUPTED
    return summarise(cells, results)


def parse_params(items: list[str]) -> dict:
    """`--submitit KEY=VALUE` items (values read as YAML): executor parameters such as slurm_partition=gpu."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--submitit {item!r}: expected KEY=VALUE, e.g. --submitit slurm_partition=gpu")
        out[key.strip()] = config_mod.parse_set(f"v={raw}")["v"]
    return out


def cell_state(cfg) -> str:
    """What running this cell would do, decided as train() decides it (`_finished`, then `resume_from`), from its
    run folder alone: nothing is trained and no data is loaded."""
    from . import train as T

    run_dir = T.run_paths(cfg)[1]
    ended = T._finished(run_dir, lambda s: None)
    if ended is not None:
        return "done" if ended.status == "ok" else "diverged before (kept)"
    source = T.resume_from(cfg, run_dir, resume=True, force=False, strict=False, log=lambda s: None)
    if source is None:
        return "run from step 0" if run_dir.is_dir() else "run"
    if source.parent != run_dir:
        return f"continue {source.parent.name}"
    import torch

    try:  # the checkpoint's own step (the curve may run past it); mmap: the weights are not read
        return f"resume at step {int(torch.load(source, map_location='cpu', mmap=True, weights_only=False)['step'])}"
    except Exception as e:  # noqa: BLE001 (a dry run reports what it finds; the real run raises)
        return f"resume ({source} unreadable: {type(e).__name__})"


def earlier_seconds(cfg) -> list[float]:
    """The wall times (result rows' wall_time_s) of the finished runs beside this cell's folder that differ from it
    in their seed alone (report.config_id): what a cell of this configuration took where these runs were made
    (a stacked seed's: its stack's time over the seeds stacked)."""
    import yaml

    from . import report, results
    from . import train as T

    run_dir = T.run_paths(cfg)[1]
    mine, times = report.config_id(config_mod.yaml_ready(cfg.to_dict())), []
    for rows in sorted(run_dir.parent.glob("*/result.csv")):
        if rows.parent == run_dir or not (rows.parent / "config.yaml").is_file():
            continue
        try:
            other = yaml.safe_load((rows.parent / "config.yaml").read_text())
            found = results.folder_rows(rows.parent)
            if results.ended(r.get("status") for r in found) == "ok" and report.config_id(other) == mine:
                k = len(_env_of(rows.parent).get("stacked_with") or [1])  # a stacked seed: its share of the stack's
                times.append(max(float(r["wall_time_s"]) for r in found) / k)
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
            continue  # an unreadable folder gives no estimate; the sweep itself reports it
    return times


def dry_run(cells: list[Cell]) -> int:
    """`sweep --dry-run`: every cell and what a sweep would do with it, with the time a cell to run may take (the
    median wall time of the finished runs of its configuration, other seeds, in the same folder), then the counts
    and the estimated total; no data is touched."""
    import statistics

    cfgs = [rebuild(c.cfg) for c in cells]
    states = [cell_state(cfg) for cfg in cfgs]
    width = max(len(c.label) for c in cells)
    estimate, unknown = 0.0, 0
    for c, cfg, st in zip(cells, cfgs, states):
        note = ""
        if st != "done" and not st.startswith("diverged"):
            times = earlier_seconds(cfg)
            if times:  # a resumed cell has only its remaining steps to go
                at = int(st.split()[-1]) if st.startswith("resume at step ") else 0
                secs = statistics.median(times) * max(0.0, 1 - at / max(cfg.train.max_steps, 1))
                estimate += secs
                note = f"  (~{secs / 60:.1f} min: {len(times)} earlier seed(s))"
            else:
                unknown += 1
        print(f"{c.label:<{width}}  {st}{note}")
    done = sum(st == "done" for st in states)
    kept = sum(st.startswith("diverged") for st in states)
    to_run = len(cells) - done - kept
    total = (f"; ~{estimate / 60:.0f} min for {to_run - unknown} of them at earlier seeds' wall time"
             + (f", {unknown} without an earlier seed" if unknown else "")) if to_run > unknown else ""
    print(f"sweep --dry-run: {len(cells)} cells: {done} done, {kept} diverged, {to_run} to run{total}")
    return 0


def run(a, resolve) -> int:
    """`sweep`: the grid of `a`, its data checked, on the launcher `a` names."""
    cells = plan(a, resolve)
    if getattr(a, "dry_run", False):
        return dry_run(cells)
    check_data(cells, log=lambda m: print(m, file=sys.stderr))
    include = [str(Path(p).resolve()) for p in (getattr(a, "include", None) or [])]
    stack = getattr(a, "stack_seeds", False)
    if stack and (a.launcher == "submitit" or a.gpus):
        raise UserError("--stack-seeds trains a cell's seeds together in this process: not with --gpus or "
                        "--launcher submitit (they run one seed per worker or job)")
    if a.launcher == "submitit":
        if a.gpus:
            raise UserError("--gpus is for the local launcher; with submitit each array task gets its GPUs "
                            "(--submitit gpus_per_node=N)")
        return run_submitit(cells, parse_params(a.submitit), include, a.submitit_dir, a.cluster, wait=not a.no_wait)
    if a.gpus:
        return run_workers(cells, parse_gpus(a.gpus), include)
    return run_here(cells, progress=not a.no_progress, stack=stack)
