"""Tables of DESIGN §7 pivoted late from tidy rows: LRA, pre-training (steps-to-match), ablations.

Cells are mean ± std over seeds with the seed count; a missing cell is shown as missing ('—'), never
as zero; averages cover only the cells that ran and say how many. Published rows are labelled.
Cells computed on substitute data are marked '†' (not comparable with published numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import results
from .evaluate import steps_to_match

LRA_TASKS = {"listops": "ListOps", "text": "Text", "retrieval": "Retrieval", "image": "Image",
             "pathfinder": "Pathfinder", "pathx": "Path-X"}
AVG_TASKS = ["listops", "text", "retrieval", "image", "pathfinder"]  # the LRA paper's Avg: Path-X excluded
LRA_MODELS = ["transformer", "fnet", "wavspa", "gpt", "wavelet", "wavelet-learnable"]
PUBLISHED = [  # test accuracy (%), with the source of each row
    ("Transformer (published: Tay et al. 2021, LRA Table 1)", [36.37, 64.27, 57.46, 42.44, 71.40, "FAIL"], 54.39),
    ("FNet (published: Lee-Thorp et al. 2021)", [35.33, 65.11, 59.61, 38.67, 77.80, "FAIL"], 55.30),
    ("AdaWavSpA, Transformer backbone (published: WavSpA authors' repository README)",
     [55.40, 81.60, 79.27, 55.58, 81.12, None], 70.59),
]
LM_BASELINE = "gpt"
PRETRAIN_VARIANTS = ["wavelet", "wavelet-learnable", "wavelet-ema"]


def _fmt(vals: list[float], scale: float = 100.0, digits: int = 2) -> str:
    v = np.asarray(vals, dtype=float) * scale
    if len(v) == 1:
        return f"{v[0]:.{digits}f} (n=1)"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f} (n={len(v)})"


def lra_table(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Markdown-ready table of strings, tidy numeric summary) of test accuracy per model × task."""
    acc = df[(df.split == "test") & (df.metric == "accuracy") & df.task.isin(list(LRA_TASKS))]
    failed = df[df.status.isin(["diverged", "failed"]) & df.task.isin(list(LRA_TASKS))]
    models = [m for m in LRA_MODELS if m in set(acc.model) | set(failed.model)]
    models += sorted((set(acc.model) | set(failed.model)) - set(models))
    rows, summary = [], []
    for m in models:
        row, means = {"Model": m}, {}
        for t, col in LRA_TASKS.items():
            cell = acc[(acc.model == m) & (acc.task == t) & (acc.status == "ok")]
            if len(cell):
                vals = cell.value.tolist()
                sub = " †" if (cell.data_source == "substitute").any() else ""
                mixed = " ‡" if cell.seed.duplicated().any() else ""  # same seed twice: different configurations
                row[col] = _fmt(vals) + sub + mixed
                means[t] = float(np.mean(vals)) * 100
                summary.append({"model": m, "task": t, "mean": means[t], "std": float(np.std(vals, ddof=1)) * 100
                                if len(vals) > 1 else float("nan"), "n_seeds": len(vals),
                                "data_source": ",".join(sorted(set(cell.data_source)))})
            elif len(failed[(failed.model == m) & (failed.task == t)]):
                row[col] = "FAIL"
            else:
                row[col] = "—"
        ran = [means[t] for t in AVG_TASKS if t in means]
        row["Avg"] = "—" if not ran else (f"{np.mean(ran):.2f}" + ("" if len(ran) == 5 else f" ({len(ran)}/5 tasks)"))
        rows.append(row)
    for name, vals, avg in PUBLISHED:
        row = {"Model": name}
        for col, v in zip(LRA_TASKS.values(), vals):
            row[col] = "—" if v is None else (v if isinstance(v, str) else f"{v:.2f}")
        row["Avg"] = f"{avg:.2f}"
        rows.append(row)
    return pd.DataFrame(rows, columns=["Model", *LRA_TASKS.values(), "Avg"]), pd.DataFrame(summary)


def load_curves(paths) -> pd.DataFrame:
    """Validation curves: metrics.jsonl of run directories, plus committed curves*.csv files."""
    frames = []
    for p in map(Path, paths):
        if not p.exists():
            continue
        files = [p] if p.is_file() else list(p.rglob("metrics.jsonl")) + list(p.rglob("curves*.csv"))
        for f in files:
            if f.name == "metrics.jsonl":
                env = f.parent / "env.json"
                cfg = f.parent / "config.yaml"
                if not cfg.is_file():
                    continue
                import yaml

                c = yaml.safe_load(cfg.read_text())
                recs = [json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()]
                d = pd.DataFrame(recs)
                if d.empty:
                    continue
                d["run_id"] = json.loads(env.read_text()).get("run_id", f.parent.name) if env.is_file() else f.parent.name
                d["task"], d["model"], d["seed"] = c["task"]["name"], c["model"]["name"], c["seed"]
                frames.append(d)
            elif f.suffix == ".csv":
                frames.append(pd.read_csv(f))
    if not frames:
        return pd.DataFrame(columns=["run_id", "task", "model", "seed", "step", "split", "loss", "wall_time_s"])
    return pd.concat(frames, ignore_index=True).drop_duplicates(subset=["run_id", "split", "step"], keep="last")


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
        row = {"Corpus": task, "Base (val NLL)": _fmt(base.groupby("seed").apply(
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


def ablation_table(df: pd.DataFrame, paths) -> pd.DataFrame:
    """Final validation loss (lm) or test accuracy (classify) of every wavelet-family configuration."""
    import yaml

    cfgs = {}
    for p in map(Path, paths):
        if p.is_dir():
            for f in p.rglob("config.yaml"):
                c = yaml.safe_load(f.read_text())
                cfgs[f.parent.name] = c
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
    rows = []
    for (task, model, metric), g in keep.groupby(["task", "model", "metric"]):
        by_setting: dict = {}
        defaults = own_defaults(model)
        for r in g.itertuples():
            m = cfgs.get(r.run_id, {}).get("model", {})
            same = lambda k: m[k] == defaults[k] or (isinstance(defaults[k], tuple) and tuple(m[k]) == defaults[k])  # noqa: E731
            diff = ", ".join(f"{k}={m[k]}" for k in defaults if k in m and not same(k)) or "defaults"
            by_setting.setdefault(diff, []).append(r.value)
        for setting, vals in by_setting.items():
            rows.append({"task": task, "model": model, "setting": setting, "metric": f"{metric}",
                         "value": _fmt(vals, scale=100 if metric == "accuracy" else 1, digits=2 if metric == "accuracy" else 4)})
    return pd.DataFrame(rows)


def write_reports(paths, out: Path, tables=("lra", "pretrain", "ablation")) -> dict:
    df = results.load(paths)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    if "lra" in tables:
        table, summary = lra_table(df)
        note = ("Test accuracy (%), mean ± std over seeds (n = seeds). '—' = not run; FAIL = diverged/failed. "
                "Avg = mean of the five tasks without Path-X, as in the LRA paper, over the cells that ran. "
                "† = substitute data (not comparable with published numbers). ‡ = the cell pools runs of "
                "different configurations (a seed occurs more than once): report one configuration per folder.")
        written["lra"] = _write(out / "lra_table", table, "LRA", note)
        summary.to_csv(out / "lra_summary.csv", index=False)
    if "pretrain" in tables:
        table = pretrain_table(load_curves(paths), df)
        note = ("Base = the GPT baseline's final validation NLL (nats/token); Ours = WaveletGPT's at the same step; "
                "steps-to-match = first evaluated step at which WaveletGPT reaches Base; speed-ups = baseline "
                "steps (wall-clock) / WaveletGPT's at that point; loss gain = relative NLL reduction at equal steps.")
        written["pretrain"] = _write(out / "pretrain_table", table, "Pre-training", note)
    if "ablation" in tables:
        table = ablation_table(df, paths)
        written["ablation"] = _write(out / "ablation_table", table, "Ablations",
                                     "One row per wavelet setting that ran (settings that differ from the defaults).")
    return written


def _write(stem: Path, table: pd.DataFrame, title: str, note: str) -> Path:
    table.to_csv(stem.with_suffix(".csv"), index=False)
    md = f"## {title}\n\n" + (markdown(table) if len(table) else "(no runs yet)") + f"\n\n{note}\n"
    results.atomic_write_text(stem.with_suffix(".md"), md)
    print(md)
    return stem.with_suffix(".md")


def markdown(table: pd.DataFrame) -> str:
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
