"""Tables of DESIGN §7 pivoted late from tidy rows: LRA, pre-training (steps-to-match), ablations.

Cells are mean ± std over seeds with the seed count and the seeds that did not finish (`(n=3, 1 diverged)`);
a missing cell is shown as missing ('—'), never as zero; averages cover only the cells that ran and say how
many. Each run is compared with its task's reference configuration (tasks/<task>.yaml, read through
config.resolve): runs with less than the reference budget (a --preset quick, fewer steps, capped splits) are
left out of the LRA table unless asked for (`--include-reduced`), and the caption counts them; a row says
its setup (reference, a preset, custom); a cell that averages runs of different configurations is marked.
Published rows carry their source and protocol. Cells on substitute data are marked '†'. Beside the LRA
accuracy table, a speed table over the same cells: the median step at which a run first reaches 95% of its own
final validation accuracy, with runs collapsed to a constant guess counted apart.
An unreadable input is a one-line error naming the file; an empty or truncated result file is a warning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import typing
from pathlib import Path

import numpy as np
import pandas as pd

from . import config as config_mod
from . import results
from .errors import UserError
from .evaluate import steps_to_match

LRA_TASKS = {"listops": "ListOps", "text": "Text", "retrieval": "Retrieval", "image": "Image",
             "pathfinder": "Pathfinder", "pathx": "Path-X"}  # the LRA paper's order
AVG_TASKS = ["listops", "text", "retrieval", "image", "pathfinder"]  # the LRA paper's Avg: Path-X excluded
LRA_MODELS = ["transformer", "fnet", "wavspa", "gpt", "wavelet", "wavelet-learnable"]
PUBLISHED = [  # (name, source and protocol, test accuracy (%) in LRA_TASKS order, Avg)
    ("Transformer (published)", "Tay et al., ICLR 2021, LRA Table 1 (= the benchmark README's leaderboard): the "
     "benchmark's reference configurations on its official data", [36.37, 64.27, 57.46, 42.44, 71.40, "FAIL"], 54.39),
    ("FNet (published)", "Lee-Thorp et al. 2021 (FNet), its LRA table: the LRA setup with attention replaced by "
     "Fourier mixing, as reported there", [35.33, 65.11, 59.61, 38.67, 77.80, "FAIL"], 55.30),
    ("AdaWavSpA, Transformer backbone (published)", "the WavSpA authors' repository README (commit 0610f76): "
     "their own training code and settings, not re-run here", [55.40, 81.60, 79.27, 55.58, 81.12, None], 70.59),
]
LM_BASELINE = "gpt"
PAPER_SETUP = "preset paper"  # the WaveletGPT paper's own decoder protocol (tasks/paper/lra_decoders.yaml)
PRETRAIN_VARIANTS = ["wavelet", "wavelet-learnable", "wavelet-ema"]
REQUIRED = ["run_id", "task", "model", "seed", "split", "metric", "status", "schema_version"]  # a cut line lacks one


def is_paper_setup(setup: str) -> bool:
    """Whether a run's setup is the paper's decoder protocol (the `paper` preset, at its budget or fewer steps)."""
    return setup == PAPER_SETUP or setup.startswith(PAPER_SETUP + " at ")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _fmt(vals: list[float], scale: float = 100.0, digits: int = 2, extra: str = "") -> str:
    v = np.asarray(vals, dtype=float) * scale
    n = f"n={len(v)}" + (f", {extra}" if extra else "")
    if len(v) == 1:
        return f"{v[0]:.{digits}f} ({n})"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f} ({n})"


def headline_metric(task: str) -> str:
    """The metric a task's tables report (its class's `headline_metric`; by default accuracy, lm: loss)."""
    cls = _task_class(task)
    if cls is None:
        return "accuracy"
    return getattr(cls, "headline_metric", None) or ("loss" if cls.kind == "lm" else "accuracy")


def _task_class(task: str):
    from .registry import TASKS

    return TASKS.get(task) if task in TASKS else None


# ----------------------------------------------------------------------------- reading


def load_rows(paths) -> pd.DataFrame:
    """The tidy rows under `paths` (as results.load) plus `run_dir`, the folder of the run's result.csv
    (where its config.yaml is). A result file that cannot be read is a UserError naming it; an empty or
    truncated one is a warning naming it, so that a cell's n never shrinks silently."""
    frames = []
    for f in results.find_result_files(paths):
        d = _read_result_file(f)
        if d is not None:
            frames.append(d.assign(run_dir=str(f.parent) if f.name == "result.csv" else ""))
    if not frames:
        return pd.DataFrame(columns=results.SCHEMA + ["run_dir"])
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates(subset=["run_id", "split", "metric"], keep="last").reset_index(drop=True)


def _read_result_file(f: Path):
    """One file's rows, checked. Other CSVs in a results folder (tables, summaries) are not result files:
    they are skipped unless they carry the result schema."""
    strict = f.name == "result.csv"
    try:
        d = pd.read_csv(f)
    except pd.errors.EmptyDataError:
        if strict:
            warn(f"{f}: empty file (no header, no rows): its run is left out")
        return None
    except UnicodeDecodeError as e:
        if strict:
            raise UserError(f"{f}: not a text CSV (undecodable byte at offset {e.start}); "
                            "expected result rows") from None
        return None
    except (pd.errors.ParserError, OSError) as e:
        if strict:
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{f}: not a CSV of result rows ({why})") from None
        return None
    missing = [c for c in results.SCHEMA if c not in d.columns]
    if missing:
        if strict:
            raise UserError(f"{f}: column '{missing[0]}' missing; expected the result schema "
                            f"({', '.join(results.SCHEMA)})")
        return None
    d = d[results.SCHEMA]
    if d.empty:
        warn(f"{f}: a header and no rows (the run stopped before writing any): its run is left out")
        return None
    cut = d[REQUIRED].isna().any(axis=1) | ~d.status.isin(results.STATUSES)
    if cut.any():
        lines = ", ".join(str(i + 2) for i in d.index[cut][:5])
        warn(f"{f}: line {lines} incomplete (a truncated file?): {int(cut.sum())} row(s) left out")
        d = d[~cut]
    for col in ("value", "seed", "step", "schema_version"):
        num = pd.to_numeric(d[col], errors="coerce")
        bad = num.isna() & d[col].notna()
        if bad.any():
            i = d.index[bad][0]
            raise UserError(f"{f}:{i + 2}: column '{col}' holds {d[col][i]!r}; expected a number")
        d = d.assign(**{col: num})
    return d


def run_config(run_dir) -> dict | None:
    """A run folder's saved config.yaml as a dict (None when the folder has none); a bad one is a UserError."""
    if not run_dir:
        return None
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    c = config_mod.load_yaml(path)
    if not all(isinstance(c.get(k), dict) and c[k].get("name") for k in ("task", "model")) or \
            not isinstance(c.get("train", {}), dict):
        raise UserError(f"{path}: expected a saved run config (task and model sections with a name, a train section)")
    _check_types(c, path)
    return c


def _check_types(c: dict, path: Path) -> None:
    """The values of the keys this code knows have their types (a hand-edited `max_steps: abc` would otherwise
    be compared with numbers); keys it does not know (an older or newer version's) are left alone."""
    from .registry import MODELS, TASKS
    sections = {"train": config_mod.TrainConfig}
    for name, reg in (("task", TASKS), ("model", MODELS)):
        if c[name]["name"] in reg:
            sections[name] = reg.get(c[name]["name"]).Config
    for name, cls in sections.items():
        hints = typing.get_type_hints(cls)
        for k, v in c.get(name, {}).items():
            if k in hints:
                try:
                    config_mod._coerce(v, hints[k], f"{name}.{k}")
                except UserError as e:
                    raise UserError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------- runs against the reference


@functools.lru_cache(maxsize=None)
def _reference(task: str, model: str, preset: str | None = None) -> dict | None:
    try:
        return config_mod.resolve(task, model, preset, sets=("task.data_dir=null",)).to_dict()
    except UserError:  # a task or model this code no longer has, or a preset it lacks
        return None


@functools.lru_cache(maxsize=None)
def _reference_hash(task: str, model: str, seed: int, preset: str | None = None) -> str | None:
    try:
        return config_mod.resolve(task, model, preset, sets=("task.data_dir=null", f"seed={seed}")).hash
    except UserError:
        return None


def _presets(task: str) -> list[str]:
    try:
        return sorted(config_mod.task_yaml(task).get("presets") or {})
    except UserError:
        return []


def config_id(cfg: dict | None) -> str:
    """A short id of what a saved config computes, the seed and where data and results live aside:
    runs with equal ids differ only in their seed (those are the runs a cell may pool)."""
    if cfg is None:
        return "?"
    d = {k: dict(cfg.get(k) or {}) for k in ("task", "model", "train")}
    for k in config_mod.WHERE_KEYS:
        d["task"].pop(k, None)
    for k in config_mod.SPEED_ONLY_KEYS:
        d["train"].pop(k, None)
    config_mod.drop_later_defaults(d)  # a key added later, at its default: as a run made before it
    return hashlib.sha256(json.dumps(config_mod.yaml_ready(d), sort_keys=True).encode()).hexdigest()[:8]


def classify_run(task: str, model: str, seed, cfg: dict | None, config_hash, step, status) -> dict:
    """setup ('reference', 'preset NAME', 'custom', 'not recorded'), reduced (less than the reference budget)
    and the deviations from the reference, as text."""
    ref = _reference(task, model)
    if ref is None:
        return {"setup": "not recorded", "reduced": False, "deviations": "task or model unknown to this code"}
    if cfg is None:  # no config.yaml beside the rows: the hash tells the reference and the presets apart
        seed = int(seed) if pd.notna(seed) else 0
        preset = next((p for p in (None, *_presets(task)) if config_hash == _reference_hash(task, model, seed, p)), "?")
        setup = {None: "reference", "?": "not recorded"}.get(preset, f"preset {preset}")
        devs = config_mod.deviations(_reference(task, model, preset) or ref, ref) if setup.startswith("preset") else {}
    else:
        devs = config_mod.deviations(cfg, ref)
        setup = "custom"
        for name in (None, *_presets(task)):  # the reference or a preset, at its budget or at fewer steps only
            base = ref if name is None else _reference(task, model, name)
            off = config_mod.deviations(cfg, base) if base is not None else None
            if off is None or set(off) - {"train.max_steps"}:
                continue
            label = "reference" if name is None else f"preset {name}"
            setup = label if not off else f"{label} at {off['train.max_steps'][0]} steps"  # one uniform reduced budget
            break
    less = config_mod.reduced(devs)
    if status == "ok" and pd.notna(step) and step < ref["train"]["max_steps"]:
        less = {**less, "steps": (int(step), ref["train"]["max_steps"])}
    text = ", ".join(f"{k}={v[0]} (reference {v[1]})" for k, v in devs.items())
    return {"setup": setup, "reduced": bool(less), "deviations": text}


def run_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: task, model, seed, status, step, data_source, its headline test value (NaN unless ok),
    config_id, max_steps (its config's train.max_steps; NaN without a config.yaml), setup, reduced and
    deviations."""
    _reference.cache_clear()  # task YAMLs are read afresh for every table
    _reference_hash.cache_clear()
    df = df.copy()
    for c in results.SCHEMA + ["run_dir"]:
        if c not in df:
            df[c] = np.nan if c != "run_id" else df.index.astype(str)
    df["run_dir"] = df.run_dir.astype(object).fillna("")
    out = []
    for run_id, g in df.groupby("run_id", sort=False):
        first = g.iloc[0]
        metric = headline_metric(first.task)
        test = g[(g.split == "test") & (g.metric == metric)]
        cfg = run_config(first.run_dir)
        status = first.status if (g.status == first.status).all() else sorted(set(g.status) - {"ok"})[0]
        if status == "ok" and not len(test):
            status = "incomplete"  # rows say ok but the headline test row is missing (a truncated result.csv)
        step = g.step.max()
        out.append({"run_id": run_id, "task": first.task, "model": first.model, "seed": first.seed,
                    "status": status, "step": step, "data_source": first.data_source, "metric": metric,
                    "value": float(test.value.iloc[0]) if status == "ok" and len(test) else np.nan,
                    "config_id": config_id(cfg), "max_steps": (cfg or {}).get("train", {}).get("max_steps", np.nan),
                    **classify_run(first.task, first.model, first.seed, cfg, first.config_hash, step, status)})
    cols = ["run_id", "task", "model", "seed", "status", "step", "data_source", "metric", "value", "config_id",
            "max_steps", "setup", "reduced", "deviations"]
    return pd.DataFrame(out, columns=cols)


def _not_finished(runs: pd.DataFrame, ok: bool = False) -> str:
    """'1 diverged, 1 failed' for the runs of a cell that did not finish ok (with ok=True: '2 ok, 1 diverged')."""
    counts = (runs if ok else runs[runs.status != "ok"]).status.value_counts()
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _none_finished(runs: pd.DataFrame, extra: str) -> str:
    """A cell that gives no number: 'unfinished' when a seed was only stopped (partial rows: the next sweep runs
    it again, from its checkpoint where that still exists) and none failed or diverged, else FAIL."""
    stopped = (runs.status == "partial").any() and not runs.status.isin(["failed", "diverged", "incomplete"]).any()
    return f"{'unfinished' if stopped else 'FAIL'} ({extra})"


def _pooled(runs: pd.DataFrame) -> bool:
    """Runs of more than one configuration (or one seed twice: two data folders) in one cell."""
    ok = runs[runs.status == "ok"]
    return ok.config_id.nunique() > 1 or ok.seed.duplicated().any()


MARKS = {"†": "substitute data", "‡": "pools configurations or one seed twice",
         "*": "below the reference budget"}  # the caption of each cell mark, for the table and the chart


def cell_marks(cell: pd.DataFrame) -> str:
    """' † ‡ *' as they apply to one cell's runs (see MARKS); the table and the chart both use it."""
    ok = cell[(cell.status == "ok") & cell.value.notna()]
    return (" †" if (ok.data_source == "substitute").any() else "") + (" ‡" if _pooled(cell) else "") + \
        (" *" if cell.reduced.any() else "")


# ----------------------------------------------------------------------------- tables


SUMMARY_COLUMNS = ["model", "setup", "task", "metric", "mean", "std", "n_seeds", "not_finished", "collapsed", "chance",
                   "data_source", "reduced", "configurations", "deviations", "marks"]


def lra_runs(df: pd.DataFrame, include_reduced: bool = False, paper: bool | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(the runs of an LRA task that the LRA tables and figures show, the runs left out for their budget, the
    (model, setup) rows in table order): every LRA table draws on the same runs by the same rules. paper: only
    the runs of the paper's decoder protocol (True), all but those (False), or all (None)."""
    runs = run_table(df[df.task.isin(list(LRA_TASKS))]) if len(df) else run_table(df)
    if paper is not None:
        runs = runs[runs.setup.map(is_paper_setup) == paper]
    left = runs[runs.reduced] if not include_reduced else runs.iloc[:0]
    runs = runs[~runs.index.isin(left.index)]
    order = {m: i for i, m in enumerate(LRA_MODELS)}
    setups = sorted(set(zip(runs.model, runs.setup)), key=lambda ms: (order.get(ms[0], len(order)), ms[0],
                                                                      ms[1] != "reference", ms[1]))
    return runs, left, setups


def _left_out_note(left: pd.DataFrame) -> list[str]:
    if not len(left):
        return []
    return [f"Left out: {len(left)} run(s) with less than the reference budget ({_not_finished(left, ok=True)}), "
            "e.g. made with --preset quick: pass --include-reduced to show them."]


def _scale(rows: pd.DataFrame) -> float:
    """What a table multiplies the rows' values by: accuracies in %, other metrics as they are."""
    return 100.0 if rows.metric.iloc[0] == "accuracy" else 1.0


def _cell(df: pd.DataFrame, cell: pd.DataFrame) -> tuple[str, pd.DataFrame, int, str, str]:
    """(the table's text for one cell's runs, its finished runs, how many of those collapsed, the text beside n,
    its marks): mean ± std (n, ...) and marks; FAIL / unfinished when none finished; '—' when none ran."""
    ok = cell[(cell.status == "ok") & cell.value.notna()]
    n_collapsed = _n_collapsed(df, ok)
    extra = ", ".join(filter(None, [f"{n_collapsed} collapsed" if n_collapsed else "", _not_finished(cell)]))
    marks = cell_marks(cell)
    if len(ok):
        text = _fmt(ok.value.tolist(), scale=_scale(ok), extra=extra) + marks
    else:
        text = _none_finished(cell, extra) if len(cell) else "—"
    return text, ok, n_collapsed, extra, marks


def lra_table(df: pd.DataFrame, include_reduced: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Markdown-ready table of strings, tidy numeric summary) of the headline test metric per model, setup
    and task. The table's `attrs['notes']` holds the caption lines that depend on the rows (what was left out,
    the published rows' sources). The paper's decoder protocol (setup preset paper) is left to
    lra_decoders_table: these rows are the benchmark's model sizes."""
    runs, left, setups = lra_runs(df, include_reduced, paper=False)
    rows, summary = [], []
    for m, setup in setups:
        row, means = {"Model": m, "Setup": setup}, {}
        for t, col in LRA_TASKS.items():
            cell = runs[(runs.model == m) & (runs.setup == setup) & (runs.task == t)]
            row[col], ok, n_collapsed, extra, marks = _cell(df, cell)
            if len(ok):
                scale = _scale(ok)
                means[t] = float((ok.value * scale).mean())  # as _fmt rounds it: the Avg agrees with the cell
                summary.append({"model": m, "setup": setup, "task": t, "metric": ok.metric.iloc[0],
                                "mean": means[t], "std": float(ok.value.std(ddof=1)) * scale if len(ok) > 1
                                else float("nan"), "n_seeds": len(ok), "not_finished": extra,
                                "collapsed": n_collapsed, "chance": _chance(t) * scale, "data_source": ",".join(sorted(set(ok.data_source))),
                                "reduced": bool(cell.reduced.any()), "configurations": int(ok.config_id.nunique()),
                                "deviations": "; ".join(sorted(set(ok.deviations) - {""})),
                                "marks": marks.strip()})
        ran = [means[t] for t in AVG_TASKS if t in means]
        row["Avg"] = "—" if not ran else (f"{np.mean(ran):.2f}" + ("" if len(ran) == 5 else f" ({len(ran)}/5 tasks)"))
        rows.append(row)
    rows.append({"Model": "Chance", "Setup": "constant guess", **{col: f"{_chance(t) * 100:.2f}"
                 for t, col in LRA_TASKS.items()}, "Avg": f"{np.mean([_chance(t) * 100 for t in AVG_TASKS]):.2f}"})
    notes = []
    for i, (name, source, vals, avg) in enumerate(PUBLISHED, 1):
        row = {"Model": name, "Setup": f"published [{i}]"}
        for col, v in zip(LRA_TASKS.values(), vals):
            row[col] = "—" if v is None else (v if isinstance(v, str) else f"{v:.2f}")
        row["Avg"] = f"{avg:.2f}"
        rows.append(row)
        notes.append(f"[{i}] {source}.")
    table = pd.DataFrame(rows, columns=["Model", "Setup", *LRA_TASKS.values(), "Avg"])
    custom = [f"{s['model']} × {LRA_TASKS[s['task']]}: {s['deviations']}" for s in summary
              if s["setup"] == "custom" and s["deviations"]]
    table.attrs["notes"] = _left_out_note(left) + notes + (
        ["Custom cells, their settings against the reference: " + "; ".join(custom) + "."] if custom else [])
    return table, pd.DataFrame(summary, columns=SUMMARY_COLUMNS)


def welch_interval(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) - mean(b), and the `level` confidence interval of that difference by Welch's t-test, scipy's),
    each seed one sample; NaN bounds when a side has fewer than two seeds, none when neither side varies."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return d, float("nan"), float("nan")
    if a.var() + b.var() == 0:  # (scipy's interval is NaN there)
        return d, d, d
    from scipy.stats import ttest_ind

    ci = ttest_ind(a, b, equal_var=False).confidence_interval(level)
    return d, float(ci.low), float(ci.high)


def _union_marks(*marks: str) -> str:
    chars = {c for m in marks for c in m.strip()}
    return "".join(f" {c}" for c in MARKS if c in chars)


def lra_compare_table(df: pd.DataFrame, include_reduced: bool = False, base: str = "wavelet") -> pd.DataFrame:
    """WaveletGPT (`base`) against every other model of the same setup, per LRA task: the difference of mean test
    accuracy (points) with its 95% Welch interval over seeds, and what the interval says. The runs are the
    accuracy table's (finished seeds, collapsed ones included, as there)."""
    runs, _, setups = lra_runs(df, include_reduced)
    ok = runs[(runs.status == "ok") & runs.value.notna()]
    order = {m: i for i, m in enumerate(LRA_MODELS)}
    rows = []
    for setup in sorted({s for m, s in setups if m == base}, key=lambda s: (s != "reference", s)):
        for t, col in LRA_TASKS.items():
            a = ok[(ok.model == base) & (ok.setup == setup) & (ok.task == t)]
            if not len(a):
                continue
            scale = _scale(a)
            others = sorted(set(ok[(ok.setup == setup) & (ok.task == t)].model) - {base},
                            key=lambda m: (order.get(m, len(order)), m))
            for m in others:
                b = ok[(ok.model == m) & (ok.setup == setup) & (ok.task == t)]
                d, lo, hi = welch_interval(a.value * scale, b.value * scale)
                reading = ("too few seeds" if np.isnan(lo) else f"{base} higher" if lo > 0 else
                           f"{base} lower" if hi < 0 else "no clear difference")
                rows.append({"Task": col, "Setup": setup, base: _fmt(a.value.tolist(), scale=scale), "vs": m,
                             "Other": _fmt(b.value.tolist(), scale=scale), "Difference": f"{d:+.2f}",
                             "95% interval": "—" if np.isnan(lo) else f"[{lo:+.2f}, {hi:+.2f}]",
                             "Reading": reading + _union_marks(cell_marks(a), cell_marks(b))})
    return pd.DataFrame(rows)


def lra_decoders_table(df: pd.DataFrame, include_reduced: bool = False, base: str = "wavelet",
                       baseline: str = LM_BASELINE) -> pd.DataFrame:
    """The paper's own LRA protocol, in its own table: GPT (`baseline`) and WaveletGPT (`base`) at the paper's size
    (each task's `paper` preset), test accuracy mean ± std (n) per task, and per setup a row of the difference
    (points) with its 95% Welch interval over seeds. Only the tasks where such a run exists are columns."""
    runs, _, setups = lra_runs(df, include_reduced, paper=True)
    tasks = [t for t in LRA_TASKS if (runs.task == t).any()]
    rows = []
    for setup in sorted({s for _, s in setups}):
        rows += [{"Model": baseline, "Setup": setup}, {"Model": base, "Setup": setup}]
        diff = {"Model": f"{base} − {baseline}", "Setup": setup}
        for t in tasks:
            here = runs[(runs.setup == setup) & (runs.task == t)]
            rows[-2][LRA_TASKS[t]], b, *_ = _cell(df, here[here.model == baseline])
            rows[-1][LRA_TASKS[t]], a, *_ = _cell(df, here[here.model == base])
            diff[LRA_TASKS[t]] = "—"
            if len(a) and len(b):
                scale = _scale(a)
                d, lo, hi = welch_interval(a.value * scale, b.value * scale)
                diff[LRA_TASKS[t]] = f"{d:+.2f}" + ("" if np.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]")
        rows.append(diff)
    return pd.DataFrame(rows, columns=["Model", "Setup", *(LRA_TASKS[t] for t in tasks)])


DECODERS_NOTE = (
    "The WaveletGPT paper's own LRA protocol for the decoders (tasks/paper/lra_decoders.yaml): GPT and WaveletGPT at "
    "the paper's size (10 layers, d_model 128, FFN 512, 8 heads: each task's `paper` preset), otherwise the task's "
    "reference training. Test accuracy (%), mean ± std over seeds, cells as in lra_table (* † ‡ marks too); the "
    "difference row: WaveletGPT's mean minus GPT's, in points, with its 95% Welch interval over seeds (none below "
    "two seeds a side). These runs are not in lra_table.md, whose rows are the benchmark's model sizes.")


def _n_collapsed(df: pd.DataFrame, ok: pd.DataFrame) -> int:
    """How many of a cell's finished runs tested no better than a constant guess (`collapsed`, on their test
    accuracy and macro-F1): they stay in the mean, as the protocol counts them, and are named beside n."""
    if not len(ok) or ok.metric.iloc[0] != "accuracy":
        return 0
    f1 = pd.Series(dtype=float)
    if "run_id" in df:  # rows without run ids (hand-made tables) have no macro-F1 to match: accuracy alone
        test = df[(df.split == "test") & df.run_id.isin(ok.run_id)]
        f1 = test[test.metric == "macro_f1"].set_index("run_id").value
    return sum(collapsed(r.task, r.value, f1.get(r.run_id, float("nan"))) for r in ok.itertuples())


def _chance(task: str) -> float:
    cls = _task_class(task)
    return float(cls.chance) if cls is not None else float("nan")


SPEED_SHARE = 0.95  # the speed table's level: this share of a run's final validation accuracy
SPEED_COLUMNS = ["model", "setup", "task", "median_step", "median_share", "n_seeds", "collapsed", "no_curve",
                 "not_finished", "seeds", "marks"]


def steps_to_share(curve: pd.DataFrame, share: float = SPEED_SHARE) -> tuple[int, float]:
    """(the first evaluated step at which validation accuracy reaches `share` of the final one, that final
    accuracy) of one run's validation points (step, accuracy; any order). The final point always qualifies."""
    c = curve.sort_values("step")
    final = float(c.accuracy.iloc[-1])
    return int(c.step[c.accuracy >= share * final].iloc[0]), final


def constant_guess_f1(task: str, accuracy: float) -> float:
    """The macro-F1 of always predicting one class that makes up `accuracy` of the split: that class scores
    F1 = 2a / (1 + a), every other class 0 (evaluate.classification_metrics averages over all n_classes)."""
    n = getattr(_task_class(task), "n_classes", 0)
    return 2 * accuracy / ((1 + accuracy) * n) if n else float("nan")


def collapsed(task: str, accuracy: float, macro_f1: float = float("nan")) -> bool:
    """Whether a run learned no more than a constant guess: accuracy at or below the task's chance, or a
    macro-F1 no higher than guessing one class would give at that accuracy. The second catches a collapse to
    the majority class, which beats uniform chance on an unbalanced split (ListOps: about 17% against 10%)."""
    if accuracy <= _chance(task):
        return True
    guess = constant_guess_f1(task, accuracy)
    return bool(pd.notna(macro_f1) and pd.notna(guess) and macro_f1 <= guess * (1 + 1e-6))  # 1e-6: float rounding


def _run_speed(run, curve: pd.DataFrame | None) -> dict:
    """One ok run's entry in the speed table: its state ('ok', 'collapsed', 'no curve'), step and share."""
    out = {"seed": run.seed, "state": "no curve", "step": np.nan, "share": np.nan, "final": np.nan}
    if curve is None or curve.empty:
        return out
    step, final = steps_to_share(curve)
    last = curve.sort_values("step").iloc[-1]
    f1 = last["macro_f1"] if "macro_f1" in curve else float("nan")
    return {**out, "state": "collapsed" if collapsed(run.task, final, f1) else "ok", "step": step,
            "share": step / run.max_steps if pd.notna(run.max_steps) and run.max_steps > 0 else np.nan,
            "final": final}


def _seed_text(s: dict) -> str:
    what = {"ok": lambda: f"{s['step']:.0f}", "no curve": lambda: "no curve",
            "collapsed": lambda: f"collapsed at {s['final'] * 100:.1f}%"}[s["state"]]()
    return f"seed {s['seed']:.0f}: {what}"


def _val_accuracy_by_run(curves: pd.DataFrame) -> dict:
    """{run_id: its validation points with an accuracy}, from load_curves' frame."""
    if not len(curves) or "accuracy" not in curves:
        return {}
    return dict(tuple(curves[(curves.split == "val") & curves.accuracy.notna()].groupby("run_id")))


def lra_speed_table(df: pd.DataFrame, curves: pd.DataFrame,
                    include_reduced: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Markdown-ready table, tidy summary) of the steps each LRA cell's runs take to reach SPEED_SHARE of
    their own final validation accuracy: median over seeds and as a share of max_steps. The cells and their
    marks are the accuracy table's (lra_runs, cell_marks); a collapsed run (see `collapsed`) reaches its
    final level at once, so it is counted beside n instead of in the median, as is an ok run without a curve."""
    runs, left, setups = lra_runs(df, include_reduced)
    by_run = _val_accuracy_by_run(curves)
    rows, summary = [], []
    for m, setup in setups:
        row = {"Model": m, "Setup": setup}
        for t, col in LRA_TASKS.items():
            cell = runs[(runs.model == m) & (runs.setup == setup) & (runs.task == t)]
            if not len(cell):
                row[col] = "—"
                continue
            speeds = [_run_speed(r, by_run.get(r.run_id)) for r in cell[cell.status == "ok"].itertuples()]
            fast = [s for s in speeds if s["state"] == "ok"]
            counts = pd.Series([s["state"] for s in speeds if s["state"] != "ok"], dtype=object).value_counts()
            unfinished = _not_finished(cell)
            extra = ", ".join([*(f"{n} {k}" for k, n in counts.items()), *([unfinished] if unfinished else [])])
            row[col] = _none_finished(cell, extra)
            if len(speeds) == len(cell) and set(counts.index) == {"no curve"}:  # finished, only the curves missing
                row[col] = f"— ({extra})"
            if not speeds:  # no seed finished: nothing to summarise (as in lra_summary.csv)
                continue
            step = float(np.median([s["step"] for s in fast])) if fast else np.nan
            share = float(np.median([s["share"] for s in fast])) if fast else np.nan  # NaN: a max_steps unknown
            marks = cell_marks(cell)
            if fast:
                of_budget = "" if pd.isna(share) else f"{share:.0%}, " if share >= 0.01 else "<1%, "
                row[col] = f"{step:.0f} ({of_budget}n={len(fast)}" + (f", {extra}" if extra else "") + ")" + marks
            summary.append({"model": m, "setup": setup, "task": t, "median_step": step, "median_share": share,
                            "n_seeds": len(fast), "collapsed": int(counts.get("collapsed", 0)),
                            "no_curve": int(counts.get("no curve", 0)), "not_finished": unfinished,
                            "seeds": "; ".join(_seed_text(s) for s in sorted(speeds, key=lambda s: s["seed"])),
                            "marks": marks.strip()})
        rows.append(row)
    table = pd.DataFrame(rows, columns=["Model", "Setup", *LRA_TASKS.values()])
    table.attrs["notes"] = _left_out_note(left)
    return table, pd.DataFrame(summary, columns=SPEED_COLUMNS)


def lra_reach_table(df: pd.DataFrame, curves: pd.DataFrame, levels: dict,
                    include_reduced: bool = False) -> pd.DataFrame:
    """Per LRA cell and task in `levels` ({task: accuracy in 0-1}): the first evaluated step at which each
    finished seed's validation accuracy reached that level ('never' if it did not), and the median over the
    seeds that did. An absolute level says when a model left a plateau (ListOps' majority class, 17.6%), which
    a share of each run's own final accuracy does not for a run that fell back at the end."""
    runs, _, setups = lra_runs(df, include_reduced)
    by_run = _val_accuracy_by_run(curves)
    rows = []
    for t, level in levels.items():
        for m, setup in setups:
            cell = runs[(runs.model == m) & (runs.setup == setup) & (runs.task == t) & (runs.status == "ok")]
            if not len(cell):
                continue
            seeds, steps = [], []
            for r in cell.sort_values("seed").itertuples():
                c = by_run.get(r.run_id)
                if c is None:
                    seeds.append(f"seed {r.seed:.0f}: no curve")
                    continue
                hit = c.sort_values("step").loc[lambda d: d.accuracy >= level, "step"]
                seeds.append(f"seed {r.seed:.0f}: {hit.iloc[0]:.0f}" if len(hit) else f"seed {r.seed:.0f}: never")
                steps += [int(hit.iloc[0])] if len(hit) else []
            rows.append({"Task": LRA_TASKS.get(t, t), "Model": m, "Setup": setup, "Level": f"{level:.0%}",
                         "Median step": f"{np.median(steps):.0f} (n={len(steps)} of {len(cell)})" if steps else
                         f"never (n=0 of {len(cell)})", "Seeds": "; ".join(seeds) + cell_marks(cell)})
    return pd.DataFrame(rows, columns=["Task", "Model", "Setup", "Level", "Median step", "Seeds"])


REACH_NOTE = (
    "Per finished run (status ok): the first evaluation step at which its validation accuracy reached the level "
    "('never': not within the run). Median over the seeds that reached it; n of the finished seeds. Cells and "
    "marks as in lra_table (* † ‡). Levels are given to `report --reach TASK=LEVEL`.")


CURVE_NUMBERS = ("step", "loss", "accuracy", "bits_per_token", "wall_time_s")


def load_curves(paths) -> pd.DataFrame:
    """Validation curves: metrics.jsonl of run directories (with their config_id), plus committed curves*.csv."""
    frames = []
    for p in map(Path, paths):
        if not p.exists():
            continue
        if p.is_file():
            files = [p] if p.name == "metrics.jsonl" or (p.name.startswith("curves") and p.suffix == ".csv") else []
        else:
            files = sorted(p.rglob("metrics.jsonl")) + sorted(p.rglob("curves*.csv"))
        for f in files:
            if f.name == "metrics.jsonl":
                c = run_config(f.parent)
                if c is None:
                    warn(f"{f}: no config.yaml beside it: its curves are left out")
                    continue
                d = pd.DataFrame(_read_metrics(f))
                if d.empty:
                    continue
                env = f.parent / "env.json"
                d["run_id"] = _run_id(env) or f.parent.name
                d["task"], d["model"], d["seed"] = c["task"]["name"], c["model"]["name"], c.get("seed", 0)
                d["config_id"] = config_id(c)
                frames.append(d)
            else:
                try:
                    frames.append(pd.read_csv(f))
                except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
                    raise UserError(f"{f}: not a CSV of curve points ({type(e).__name__})") from None
    if not frames:
        return pd.DataFrame(columns=["run_id", "task", "model", "seed", "step", "split", "loss", "wall_time_s",
                                     "config_id"])
    df = pd.concat(frames, ignore_index=True)
    df["config_id"] = df.config_id.fillna("?") if "config_id" in df else "?"
    return df.drop_duplicates(subset=["run_id", "split", "step"], keep="last")


def _read_metrics(f: Path) -> list[dict]:
    """The records of a metrics.jsonl. A torn last line (a run killed mid-write) is a warning and is left out;
    any other line that is not a JSON record with numeric values is a UserError naming the file and line."""
    try:
        lines = f.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{f}: not a text file (undecodable byte at offset {e.start}); expected JSON lines") from None
    except OSError as e:
        raise UserError(f"{f}: cannot read ({e.strerror})") from None
    recs = []
    numbered = [(i, ln) for i, ln in enumerate(lines, 1) if ln.strip()]
    for i, ln in numbered:
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError as e:
            if i == numbered[-1][0]:
                warn(f"{f}:{i}: torn last line (the run was stopped while writing it): left out")
                continue
            raise UserError(f"{f}:{i}: not a JSON record ({e.msg})") from None
        if not isinstance(rec, dict) or "step" not in rec or "split" not in rec:
            raise UserError(f"{f}:{i}: expected a record with 'step' and 'split', got {ln[:60]!r}")
        for k in CURVE_NUMBERS:
            v = rec.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise UserError(f"{f}:{i}: '{k}' is {v!r}; expected a number")
        recs.append(rec)
    return recs


def _run_id(env: Path):
    if not env.is_file():
        return None
    try:
        return json.loads(env.read_text(encoding="utf-8")).get("run_id")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise UserError(f"{env}: not a JSON object (expected the run's environment record)") from None


def pretrain_table(curves: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Per corpus: baseline final val NLL, WaveletGPT at the same step, steps-to-match, speed-ups."""
    val = curves[curves.split == "val"] if len(curves) else curves
    lm_val = val[val.bits_per_token.notna()] if "bits_per_token" in val else val.iloc[:0]  # lm tasks only
    lm_tasks = sorted(set(df[df.metric == "bits_per_token"].task) | set(lm_val.task))
    rows = []
    for task in lm_tasks:
        tv = val[val.task == task]
        base = tv[tv.model == LM_BASELINE]
        if base.empty:
            continue
        pooled = any(g.config_id.nunique() > 1 or g.groupby("seed").run_id.nunique().gt(1).any()
                     for m, g in tv.groupby("model") if m in (LM_BASELINE, *PRETRAIN_VARIANTS))
        row = {"Corpus": task + (" ‡" if pooled else ""), "Base (val NLL)": _fmt(base.groupby("seed").apply(
            lambda g: g.sort_values("step").loss.iloc[-1]).tolist(), scale=1, digits=4)}
        for variant in PRETRAIN_VARIANTS:
            cand = tv[tv.model == variant]
            stats = []
            for seed, b in base.groupby("seed"):
                c = cand[cand.seed == seed]
                if c.empty:
                    continue
                b, c = b.sort_values("step"), c.sort_values("step")
                stats.append(steps_to_match(b.step, b.loss, c.step, c.loss, b.wall_time_s, c.wall_time_s))
            name = "Ours" if variant == "wavelet" else variant
            if not stats:
                row[f"{name} (val NLL)"] = "—"
                continue
            row[f"{name} (val NLL)"] = _fmt([s["cand_loss_at_base_final"] for s in stats], scale=1, digits=4)
            if variant == "wavelet":
                matched = [s["steps_to_match"] for s in stats if s["steps_to_match"] is not None]
                row["steps-to-match"] = (f"{np.mean(matched):.0f} / {stats[0]['base_final_step']}"
                                         f" ({len(matched)}/{len(stats)} seeds matched)")
                sp = [s["speedup_steps"] for s in stats if s["speedup_steps"]]
                sw = [s["speedup_wall"] for s in stats if s["speedup_wall"]]
                row["speed-up (steps)"] = _fmt(sp, scale=1) if sp else "not reached"
                row["speed-up (wall)"] = _fmt(sw, scale=1) if sw else "not reached"
                row["loss gain"] = _fmt([s["loss_gain"] for s in stats], scale=100) + " %"
        rows.append(row)
    return pd.DataFrame(rows)


def ablation_table(df: pd.DataFrame, paths=None) -> pd.DataFrame:
    """Final validation loss (lm) or test accuracy (classify) of every wavelet-family setting, one row per
    setting and configuration: runs of different configurations are never pooled under one setting."""
    from dataclasses import fields

    from .config import ModelConfig
    from .registry import MODELS

    base = {f.name for f in fields(ModelConfig)}

    def own_defaults(model: str) -> dict:
        """The model's own switches (its Config fields beyond the shared ones) at their defaults."""
        if model not in MODELS.names():
            return {}
        cfg = MODELS.get(model).Config()
        return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in base}

    keep = df[(df.model.str.startswith("wavelet") | (df.model == "gpt")) & (df.status == "ok")]
    keep = keep[((keep.split == "val") & (keep.metric == "loss") & keep.task.isin(set(df[df.metric == "bits_per_token"].task)))
                | ((keep.split == "test") & (keep.metric == "accuracy"))]
    if keep.empty:
        return pd.DataFrame()
    runs = run_table(df[df.run_id.isin(set(keep.run_id))]).set_index("run_id")
    rows = []
    for (task, model, metric), g in keep.groupby(["task", "model", "metric"]):
        by_setting: dict = {}
        defaults = own_defaults(model)
        for r in g.itertuples():
            m = (run_config(r.run_dir) or {}).get("model", {})
            same = lambda k: config_mod.yaml_ready(m[k]) == config_mod.yaml_ready(defaults[k])  # noqa: E731
            diff = ", ".join(f"{k}={m[k]}" for k in defaults if k in m and not same(k)) or "defaults"
            run = runs.loc[r.run_id]
            setup = f"custom {run.config_id}" if run.setup == "custom" else run.setup
            by_setting.setdefault((diff, setup), []).append(r.value)
        for (setting, setup), vals in by_setting.items():
            rows.append({"task": task, "model": model, "setting": setting, "config": setup, "metric": f"{metric}",
                         "value": _fmt(vals, scale=100 if metric == "accuracy" else 1, digits=2 if metric == "accuracy" else 4)})
    return pd.DataFrame(rows)


def write_reports(paths, out: Path, tables=("lra", "pretrain", "ablation"), include_reduced: bool = False,
                  reach: dict | None = None) -> dict:
    df = load_rows(paths)
    curves = load_curves(paths) if {"lra", "pretrain"} & set(tables) else None
    if df.empty and (curves is None or curves.empty):
        raise UserError(f"no result rows under {', '.join(map(str, paths))} (expected run folders with a result.csv)")
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    if "lra" in tables:
        table, summary = lra_table(df, include_reduced)
        note = "\n\n".join([
            "Test accuracy (%), mean ± std over seeds (n = seeds that finished; seeds that diverged or failed are "
            "counted beside n; k collapsed = k of the n finished seeds tested no better than a constant guess: at or "
            "below chance, or a macro-F1 no higher than always guessing one class; they are in the mean). "
            "'—' = not run; FAIL = no number (seeds failed, diverged or left no usable value); unfinished = a seed was stopped "
            "before the end and none failed (the next sweep runs it again, from its checkpoint where that still "
            "exists). Avg = mean of the five tasks without Path-X, as in the LRA paper, over the cells that ran. Setup: reference = the task's reference "
            "configuration (tasks/<task>.yaml, without --preset); preset NAME = that preset of the YAML; reference (or preset NAME) at "
            "N steps = the reference configuration (or that preset) with train.max_steps lowered to N and nothing else changed (a "
            "cosine schedule decays over the shorter run; an rsqrt one is the reference run's first N steps); custom = other settings (lra_summary.csv lists them); not "
            "recorded = no config.yaml beside the rows. "
            "* = less than the reference budget (fewer steps, smaller batches or capped splits): "
            "not comparable with the published rows. † = substitute data (not comparable with published numbers). "
            "‡ = the cell pools runs of different configurations (or one seed twice): report one configuration "
            "per folder. Chance = a constant guess.", *table.attrs.get("notes", [])])
        decoders = lra_decoders_table(df, include_reduced)
        if len(decoders):
            note += "\n\nThe paper's own decoder protocol (setup preset paper) is in lra_decoders_table.md."
        written["lra"] = _write(out / "lra_table", table, "LRA", note)
        if len(decoders):
            written["lra_decoders"] = _write(out / "lra_decoders_table", decoders,
                                             "LRA: the paper's protocol, GPT vs WaveletGPT at the paper's size",
                                             DECODERS_NOTE)
        results.atomic_write_text(out / "lra_summary.csv", summary.to_csv(index=False))
        speed, speed_summary = lra_speed_table(df, curves, include_reduced)
        title = f"LRA: steps to {SPEED_SHARE:.0%} of the final validation accuracy"
        written["lra_speed"] = _write(out / "lra_speed", speed, title,
                                      "\n\n".join([SPEED_NOTE, *speed.attrs.get("notes", [])]))
        results.atomic_write_text(out / "lra_speed_summary.csv", speed_summary.to_csv(index=False))
        written["lra_compare"] = _write(out / "lra_compare", lra_compare_table(df, include_reduced),
                                        "LRA: WaveletGPT against each model", COMPARE_NOTE)
        if reach:
            written["lra_reach"] = _write(out / "lra_reach", lra_reach_table(df, curves, reach, include_reduced),
                                          "LRA: steps to reach a validation accuracy", REACH_NOTE)
    if "pretrain" in tables:
        table = pretrain_table(curves, df)
        note = ("Base = the GPT baseline's final validation NLL (nats/token); Ours = WaveletGPT's at the same step; "
                "steps-to-match = first evaluated step at which WaveletGPT reaches Base; speed-ups = baseline "
                "steps (wall-clock) / WaveletGPT's at that point; loss gain = relative NLL reduction at equal steps.")
        if table.Corpus.str.endswith("‡").any() if len(table) else False:
            note += " ‡ = a model's runs on this corpus span more than one configuration: the row pools them."
        written["pretrain"] = _write(out / "pretrain_table", table, "Pre-training", note)
    if "ablation" in tables:
        table = ablation_table(df)
        written["ablation"] = _write(out / "ablation_table", table, "Ablations",
                                     "One row per wavelet setting that ran (settings that differ from the defaults) "
                                     "and configuration (reference, a preset, or custom with the id of its "
                                     "configuration): runs of different configurations are never averaged together.")
    return {k: v for k, v in written.items() if v is not None}


COMPARE_NOTE = (
    "Test accuracy (%) of WaveletGPT (wavelet) and of each other model in the same setup and task, mean ± std over "
    "the seeds that finished (collapsed seeds included, as in lra_table). Difference = wavelet's mean minus the "
    "other's, in points; 95% interval: Welch's t over seeds, each seed one sample (with 3 seeds a side the "
    "interval is wide). Reading: 'higher' / 'lower' when "
    "the interval excludes 0, else 'no clear difference'; 'too few seeds' below two on a side. Marks as in "
    "lra_table (* † ‡).")


SPEED_NOTE = (
    f"Per run: the first evaluation step at which its validation accuracy reaches {SPEED_SHARE:.0%} of its final "
    "validation accuracy (the last validation point of its metrics.jsonl; evaluations every train.eval_every "
    "steps). Per cell: the median of that step over the seeds counted in n (a median of an even n may fall between "
    "evaluations) and, in parentheses, the median of the step as a share of the run's train.max_steps. The cells "
    "are the accuracy table's: only runs that finished (status ok) count, with the same setups and marks (* † ‡); "
    "seeds that diverged or failed are counted beside n. collapsed = a finished run whose final validation "
    "accuracy is at or below chance, or whose final macro-F1 is no higher than always guessing one class would "
    "score at that accuracy (a collapse to the majority class): it reaches its own final level at once, so it "
    "is counted beside n, not in the median. no curve = a finished run without a metrics.jsonl. FAIL / unfinished "
    "= no seed gives a step. Per-seed steps: lra_speed_summary.csv.")


def _write(stem: Path, table: pd.DataFrame, title: str, note: str) -> Path | None:
    """The table as CSV and Markdown; an empty table is not written (a CSV of no columns is a lone newline)."""
    if table.empty:
        print(f"{title}: no rows for this table in these results; {stem.name}.csv/.md not written", file=sys.stderr)
        return None
    results.atomic_write_text(stem.with_suffix(".csv"), table.to_csv(index=False))
    md = f"## {title}\n\n" + markdown(table) + f"\n\n{note}\n"
    results.atomic_write_text(stem.with_suffix(".md"), md)
    print(md)
    return stem.with_suffix(".md")


def markdown(table: pd.DataFrame) -> str:
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
