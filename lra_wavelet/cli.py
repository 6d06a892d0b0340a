"""Command line: run, sweep, prepare, list, validate, report, plot.

    python -m lra_wavelet run --task listops --model wavelet --preset quick
    python -m lra_wavelet list tasks | models
    python -m lra_wavelet validate --task text --model gpt --set train.lr=3e-4
    python -m lra_wavelet sweep --tasks listops image --models gpt wavelet --seeds 0 1 2 --preset quick
    python -m lra_wavelet report runs results --out reports
    python -m lra_wavelet plot runs --out reports/figures

Bad input (unknown names or keys, malformed values, missing data) prints one line and exits with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml

from . import __version__
from . import config as config_mod
from .errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's default prints the usage too)
        raise UserError(f"{self.prog}: {message}")


def _registries():
    from .registry import MODELS, TASKS, load_all

    load_all()
    return TASKS, MODELS


def _common(p: argparse.ArgumentParser, task_required: bool = True):
    p.add_argument("--task", required=False, help="registered task name (see `list tasks`)")
    p.add_argument("--model", required=False, help="registered model name (see `list models`)")
    p.add_argument("--preset", help="a named block of the task's YAML, e.g. quick or paper")
    p.add_argument("--config", help="a YAML file of config keys (e.g. a saved runs/.../config.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key, e.g. --set train.lr=3e-4 --set model.d_model=64")
    p.add_argument("--data-dir", help="root of the official data (the lra_release tree); default $LRA_DATA")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--out", help="root of run directories (default runs)")


def _overrides(a) -> dict:
    o: dict = {}
    if a.seed is not None:
        o["seed"] = a.seed
    if a.max_steps is not None:
        if a.max_steps <= 0:
            raise UserError(f"--max-steps must be positive, got {a.max_steps}")
        o.setdefault("train", {})["max_steps"] = a.max_steps
    if a.data_dir is not None:
        if not Path(a.data_dir).expanduser().is_dir():
            raise UserError(f"--data-dir {a.data_dir}: directory not found")
        o.setdefault("task", {})["data_dir"] = a.data_dir
    if a.device is not None:
        o["device"] = a.device
    if a.out is not None:
        o["out"] = a.out
    return o


def _resolve(a, task=None, model=None, seed=None, grid_layer=None):
    _registries()
    o = _overrides(a)
    if seed is not None:
        o["seed"] = seed
    cfg = config_mod.resolve(task or a.task, model or a.model, a.preset, a.config, tuple(a.set), o, grid_layer)
    if getattr(a, "cmd", None) in ("run", "sweep", "validate"):  # before any data is loaded or model built
        writable_folder(cfg.out, "out")
    return cfg


def writable_folder(path: str, key: str = "--out") -> Path:
    """`path` is, or can be made as, a folder this user may write in; else a one-line error naming `key`."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"{key} {path}: exists and is not a folder")
    q = p
    while not q.exists():
        q = q.parent
    if not q.is_dir():
        raise UserError(f"{key} {path}: {q} is a file, not a folder")
    if not os.access(q, os.W_OK | os.X_OK):
        raise UserError(f"{key} {path}: {q} is not writable")
    try:  # access() says yes to root where the file system still refuses (/sys, /proc): try, leave nothing
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=q))
    except OSError as e:
        raise UserError(f"{key} {path}: {q} is not writable ({e.strerror})") from None
    return p


# ----------------------------------------------------------------------------- commands


INTERRUPTED = 130  # exit status of a run or sweep stopped by a signal (its checkpoint is saved)


def cmd_run(a) -> int:
    from .train import train

    if a.resume and a.force:
        raise UserError("--resume and --force contradict each other: "
                        "--resume continues the run, --force starts it over")
    cfg = _resolve(a)
    if not a.preset and not a.config and not a.set:
        import torch

        if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
            m = cfg.model
            print(f"no --preset: the reference configuration of '{cfg.task.name}' ({m.n_layers} layers, d_model "
                  f"{m.d_model}, {cfg.train.max_steps} steps) on the CPU; for a quick check use --preset quick",
                  file=sys.stderr)
    out = train(cfg, resume=a.resume, force=a.force, progress=not a.no_progress, strict_resume=a.resume)
    _summary(out, cfg)
    return {"ok": 0, "partial": INTERRUPTED}.get(out.status, 1)


def _summary(out, cfg=None) -> None:
    test = out.metrics.get("test", {})
    main = {k: v for k, v in test.items() if k in ("accuracy", "loss", "bits_per_token")}
    shown = ", ".join(f"test {k} {v:.4f}" for k, v in main.items()) or "no test metrics"
    print(f"{out.status}: {shown}")
    if cfg is not None and (note := _smoke_note(cfg)):
        print(note)
    print(f"results: {out.run_dir / 'result.csv'}")


def _smoke_note(cfg) -> str:
    """One line for a run with less than the reference budget: its numbers check the pipeline, nothing more."""
    TASKS, _ = _registries()
    ref = config_mod.resolve(cfg.task.name, cfg.model.name)
    less = config_mod.reduced(config_mod.deviations(cfg.to_dict(), ref.to_dict()))
    if not less:
        return ""
    task = TASKS.get(cfg.task.name)
    what = ", ".join(f"{k.split('.')[1]} {mine} < {'all' if r is None else r}" for k, (mine, r) in less.items())
    expected = (f"an accuracy near or below chance ({task.chance:.0%}) is expected" if task.kind != "lm"
                else "a loss far above the reference's is expected")
    return f"note: a smoke run ({what} of the reference configuration): {expected}; it checks the pipeline only"


def cmd_validate(a) -> int:
    """The resolved config, once the model has been built for the task (what run would refuse, this refuses)."""
    from .train import build_model

    TASKS, _ = _registries()
    cfg = _resolve(a)
    model = build_model(TASKS.get(cfg.task.name)(cfg.task), cfg.model)
    print(yaml.safe_dump(config_mod.yaml_ready(cfg.to_dict()), sort_keys=False), end="")
    print(f"# config_hash: {cfg.hash}")
    print(f"# parameters: {model.n_params():,}")
    return 0


def cmd_prepare(a) -> int:
    """Build a task's cache once; optionally export its ready splits (npy for task.prepared, or a DatasetDict)."""
    TASKS, _ = _registries()
    cfg = _resolve(a, model=a.model or "gpt")
    for flag, d in (("--export", a.export), ("--export-hf", a.export_hf)):  # checked before any data is made
        if d and Path(d).exists() and (not Path(d).is_dir() or any(Path(d).iterdir())):
            raise UserError(f"{flag} {d}: exists and is not an empty folder")
    task = TASKS.get(cfg.task.name)(cfg.task)
    splits = task.splits()
    sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    from .data.base import cache_root

    print(f"{task.name}: {sizes} (data_source={task.source}; cache under {cache_root()})")
    if a.export:
        out = task.export(Path(a.export))
        print(f"exported to {out}; use it anywhere with --set task.prepared={out}")
    if a.export_hf:
        out = task.export_hf(Path(a.export_hf))
        print(f"exported a Hugging Face DatasetDict to {out}; read it with datasets.load_from_disk('{out}')")
    return 0


def cmd_list(a) -> int:
    import pandas as pd

    TASKS, MODELS = _registries()
    if a.what == "tasks":
        rows = []
        for name in TASKS.names():
            cls = TASKS.get(name)
            cfg = config_mod.resolve(name, "gpt")
            t = cls(cfg.task)
            rows.append({"task": name, "kind": t.kind, "seq_len": t.seq_len, "classes": t.n_classes or "-",
                         "vocab": t.vocab_size, "data source": _source_hint(t, cfg.task),
                         "description": t.description})
        print(pd.DataFrame(rows).to_string(index=False))
    else:
        from .flops import count
        from .train import build_model

        rows = []
        for name in MODELS.names():
            cfg = config_mod.resolve(a.task, name, a.preset)
            t = TASKS.get(a.task)(cfg.task)
            try:  # the check run makes: a model that cannot run on this task is listed as n/a, with the reason
                c = count(build_model(t, cfg.model), t)
                rows.append({"model": name, "params": f"{c['params']:,}",
                             "GFLOPs/example": f"{c['flops_per_example'] / 1e9:.2f}",
                             "description": ((MODELS.get(name).__doc__ or "").strip().splitlines() or [""])[0]})
            except (UserError, RuntimeError) as e:
                why = str(e).removeprefix(f"model '{name}'").lstrip(": ").split(": ")[0]
                rows.append({"model": name, "params": "-", "GFLOPs/example": "-", "description": f"n/a: {why}"})
        size = f"preset '{a.preset}'" if a.preset else "the reference size"
        print(f"at {size} of task '{a.task}' (tasks/{a.task}.yaml):")
        print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _source_hint(task, tcfg) -> str:
    if tcfg.data_dir:
        return "official (data dir)"
    return task.default_source


def cmd_sweep(a) -> int:
    from . import sweep

    return sweep.run(a, _resolve)


def _existing(paths) -> list:
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise UserError(f"{missing[0]}: no such file or folder (expected run folders or result files)")
    return paths


def cmd_report(a) -> int:
    from .report import LRA_TASKS, write_reports

    _existing(a.paths)

    reach = {}
    for item in a.reach or []:
        task, _, level = item.partition("=")
        try:
            value = float(level)
        except ValueError:
            value = -1.0
        if task not in LRA_TASKS or not 0 < value <= 1:
            raise UserError(f"--reach {item}: expected TASK=LEVEL with LEVEL a validation accuracy in (0, 1], "
                            f"e.g. listops=0.30, and TASK one of {', '.join(LRA_TASKS)}")
        reach[task] = value
    write_reports(a.paths, writable_folder(a.out), tables=a.table, include_reduced=a.include_reduced, reach=reach)
    return 0


def cmd_plot(a) -> int:
    from .plot import write_plots

    _existing(a.paths)
    for p in write_plots(a.paths, writable_folder(a.out), include_reduced=a.include_reduced):
        print(p)
    return 0


# ----------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lra_wavelet", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"lra_wavelet {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="train and evaluate one model on one task")
    _common(r)
    r.add_argument("--resume", action="store_true", help="continue the run with this config from its checkpoint")
    r.add_argument("--force", action="store_true", help="run again even if a finished result exists")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="print the resolved config without training")
    _common(v)
    v.set_defaults(fn=cmd_validate)

    pr = sub.add_parser("prepare", help="build a task's data cache once")
    _common(pr)
    pr.add_argument("--export", metavar="DIR", help="also write the splits to DIR, loadable with task.prepared=DIR")
    pr.add_argument("--export-hf", metavar="DIR",
                    help="also write the splits to DIR as a Hugging Face DatasetDict (datasets.load_from_disk)")
    pr.set_defaults(fn=cmd_prepare)

    ls = sub.add_parser("list", help="list registered tasks or models")
    ls.add_argument("what", choices=["tasks", "models"])
    ls.add_argument("--task", default="listops", help="task whose reference size is used for model sizes")
    ls.add_argument("--preset", help="a named block of the task's YAML (e.g. paper) to size the models by instead")
    ls.set_defaults(fn=cmd_list)

    sw = sub.add_parser("sweep", help="task × model × seed grid; skips finished cells, resumes unfinished ones")
    _common(sw)
    sw.add_argument("--tasks", nargs="+")
    sw.add_argument("--models", nargs="+")
    sw.add_argument("--seeds", nargs="+", type=int)
    sw.add_argument("--grid", help="YAML with tasks, models, seeds (and optionally preset, set)")
    sw.add_argument("--order", choices=["model", "seed"], default="model",
                    help="within a task: each model's seeds in turn (model, the default), or every model's first "
                         "seed before any second (seed: a sweep stopped early leaves whole seeds to compare)")
    sw.add_argument("--gpus", nargs="+", metavar="ID",
                    help="one worker process per GPU id (or 'all'), each with its own log under OUT/logs")
    sw.add_argument("--stack-seeds", action="store_true",
                    help="train each configuration's seeds together as one batched (vmapped) model in this process: "
                         "faster for small launch-bound models (measure with benchmarks/bench_throughput.py "
                         "--variants seeds3); each seed keeps its own run folder and rows (lra_wavelet/stacked.py)")
    sw.add_argument("--launcher", choices=["local", "submitit"], default="local",
                    help="local: here (or --gpus workers); submitit: a SLURM job array, one task per cell")
    sw.add_argument("--submitit", action="append", default=[], metavar="KEY=VALUE",
                    help="submitit executor parameter, e.g. slurm_partition=gpu, timeout_min=240, gpus_per_node=1")
    sw.add_argument("--submitit-dir", help="submitit's folder of job scripts and logs (default OUT/submitit)")
    sw.add_argument("--cluster", choices=["slurm", "local", "debug"],
                    help="submitit's executor (default: slurm where sbatch exists, else local processes)")
    sw.add_argument("--no-wait", action="store_true", help="submitit: submit and exit, do not follow the jobs")
    sw.add_argument("--no-progress", action="store_true")
    sw.add_argument("--dry-run", action="store_true",
                    help="list every cell and what the sweep would do with it (done, resume, run), train nothing")
    sw.set_defaults(fn=cmd_sweep)

    reduced_help = "also show runs with less than the task's reference budget (e.g. --preset quick), marked"
    rp = sub.add_parser("report", help="tables (Markdown + CSV) from tidy result rows")
    rp.add_argument("paths", nargs="*", default=["runs", "results"])
    rp.add_argument("--out", default="reports", help="folder for the tables (default reports)")
    rp.add_argument("--table", nargs="+", default=["lra", "pretrain", "ablation"],
                    choices=["lra", "pretrain", "ablation"])
    rp.add_argument("--include-reduced", action="store_true", help=reduced_help)
    rp.add_argument("--reach", action="append", metavar="TASK=LEVEL",
                    help="also lra_reach.{md,csv}: the step each seed first reached this validation accuracy "
                         "(0-1) on TASK, e.g. listops=0.30 (repeatable)")
    rp.set_defaults(fn=cmd_report)

    pl = sub.add_parser("plot", help="figures (PNG) from run curves and result rows")
    pl.add_argument("paths", nargs="*", default=["runs", "results"])
    pl.add_argument("--out", default="reports/figures", help="folder for the figures (default reports/figures)")
    pl.add_argument("--include-reduced", action="store_true", help=reduced_help)
    pl.set_defaults(fn=cmd_plot)
    for sp in sub.choices.values():  # the user's own tasks and models, for every subcommand
        sp.add_argument("--include", action="append", default=[], metavar="PATH",
                        help="a .py file (or a folder of them) that registers tasks or models; repeatable")
    return p


def main(argv=None) -> int:
    try:
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else argv):  # no command: the list of commands, as a usage error
            parser.print_help(sys.stderr)
            return 2
        args = parser.parse_args(argv)
        if args.include:
            from .registry import include

            include(*args.include)
        status = args.fn(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return status
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`... | head`): stop quietly, with the shell's status for SIGPIPE
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit-time flush cannot fail
        return 141


if __name__ == "__main__":
    sys.exit(main())
