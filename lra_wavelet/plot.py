"""Figures (seaborn, PNG): validation curves per task (hue = model), the LRA accuracy chart and the LRA
learning curves (one panel per task; the runs the LRA tables count).

A model has one colour in every figure (MODEL_COLOURS, keyed by name); runs of different configurations of
one model are drawn apart (line style), never averaged together; sparse curves (a few evaluations) draw
markers; the LRA chart puts tasks in the benchmark's order with seed-spread error bars and hatches bars
computed on substitute data; each bar carries its table cell's marks (report.cell_marks: † ‡ *), explained
in the legend.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import UserError
from .report import (LRA_MODELS, LRA_TASKS, MARKS, PRETRAIN_VARIANTS, _chance, load_curves, load_rows, lra_runs,
                     lra_table)

MARKERS_UP_TO = 25  # evaluations per run at most for which points are drawn as markers


def _palette() -> list:
    import seaborn as sns

    return sns.color_palette("tab10") + sns.color_palette("Dark2")


KNOWN_MODELS = list(dict.fromkeys(LRA_MODELS + PRETRAIN_VARIANTS))  # the tables' order; each a fixed colour


def model_order(models) -> list[str]:
    """`models` in the tables' order (KNOWN_MODELS), any other after them by name: every figure's hue order."""
    models = set(models)
    return [m for m in KNOWN_MODELS if m in models] + sorted(models - set(KNOWN_MODELS))


def model_colour(model: str):
    """The model's colour: fixed for the known models, from a hash of the name for any other."""
    pal, known = _palette(), KNOWN_MODELS
    if model in known:
        return pal[known.index(model)]
    return pal[len(known) + int(hashlib.sha256(model.encode()).hexdigest(), 16) % (len(pal) - len(known))]


def _pyplot():
    """pyplot on the file-only Agg backend (figures are written, never shown), except inside a notebook, whose
    inline backend is kept (a notebook drawing with these functions shows their figures)."""
    import matplotlib

    if "inline" not in str(matplotlib.get_backend()).lower():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(paths, out: Path, include_reduced: bool = False) -> list[Path]:
    plt = _pyplot()
    curves = load_curves(paths)
    df = load_rows(paths)
    if curves.empty and df.empty:
        raise UserError(f"no runs under {', '.join(map(str, paths))} (expected run folders with metrics.jsonl "
                        "or result.csv)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    # a run stopped before its end (partial) is run again by the next sweep: its curve is not averaged in
    unfinished = set(df.run_id[df.status == "partial"]) if len(df) else set()
    val = curves[(curves.split == "val") & ~curves.run_id.isin(unfinished)] if len(curves) else curves
    labels = configuration_labels(lra_runs(df, include_reduced=True)[0]) if len(df) else {}
    for task, g in (val.groupby("task") if len(val) else []):
        written.append(_save(curve_figure(task, g, labels), out / f"curves_{task}.png", plt))
    _, summary = lra_table(df, include_reduced)
    if len(summary):
        written.append(_save(lra_chart(summary), out / "lra_accuracy.png", plt))
    fig = lra_curves(curves, lra_runs(df, include_reduced)[0])
    if fig is not None:
        written.append(_save(fig, out / "lra_curves.png", plt))
    return written


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # a legend outside the axes is kept
    plt.close(fig)
    return path


def configuration_labels(runs) -> dict:
    """run_id -> the name of its configuration as the LRA tables give it (its setup: 'reference', 'preset
    gpt-init at 5000 steps', ...; with the config id added where one model has several configurations under
    one setup, e.g. two custom settings). `runs`: report.lra_runs' runs."""
    if not len(runs):
        return {}
    several = runs.groupby(["model", "setup"]).config_id.transform("nunique") > 1
    names = runs.setup.where(~several, runs.setup + " " + runs.config_id.astype(str))
    return dict(zip(runs.run_id, names))


def _legend_outside(fig, axes, title: str | None = None):
    """One legend for the figure, right of the axes (never over a curve), each label once."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                   title=title, title_fontsize=8, frameon=False)


def curve_figure(task: str, g, labels: dict | None = None):
    """Validation curves of one task: hue = model, line style = configuration when a model has several (named
    by `labels`, run_id -> configuration, where given: configuration_labels; else by the config id)."""
    import seaborn as sns

    plt = _pyplot()
    metric = "accuracy" if "accuracy" in g and g["accuracy"].notna().any() else "loss"
    g = g[g[metric].notna()]
    names = g.run_id.map(labels or {}).astype(object)  # all-NaN (float) where no run has a label
    g = g.assign(configuration=names.where(names.notna(), g.config_id.astype(str)))
    split_configs = bool((g.groupby("model").configuration.nunique() > 1).any())
    sparse = g.groupby("run_id").step.nunique().max() <= MARKERS_UP_TO
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=g, x="step", y=metric, hue="model", hue_order=model_order(g.model),
                 style="configuration" if split_configs else None,
                 palette={m: model_colour(m) for m in g.model.unique()}, errorbar="sd",
                 marker="o" if sparse else None, ax=ax)
    ax.set_title(f"{task}: validation {metric} (mean ± sd over seeds)")
    if metric == "loss":
        ax.set_ylabel("NLL (nats/token)" if "bits_per_token" in g else "loss")
    _legend_outside(fig, [ax])
    return fig


def lra_chart(summary):
    """Grouped bars, tasks in LRA order, error bars = sd over seeds, hatched = substitute data, faded = a preset or
    custom setup (not the table's configuration), a dotted line at each task's chance; a bar is labelled with its
    table cell's marks (the summary's `marks` column) and the legend, right of the axes, says what each means."""
    import numpy as np
    from matplotlib.patches import Patch

    plt = _pyplot()
    tasks = [t for t in LRA_TASKS if t in set(summary.task)]
    groups = list(dict.fromkeys(zip(summary.model, summary.setup)))
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * len(groups) * len(tasks) + 4), 4))
    for i, (model, setup) in enumerate(groups):
        g = summary[(summary.model == model) & (summary.setup == setup)].set_index("task")
        x = np.array([j for j, t in enumerate(tasks) if t in g.index]) + (i - (len(groups) - 1) / 2) * width
        rows = g.loc[[t for t in tasks if t in g.index]]
        label = model if setup == "reference" else f"{model} ({setup})"
        bars = ax.bar(x, rows["mean"], width, yerr=rows["std"].fillna(0), capsize=3, label=label,
                      color=model_colour(model), alpha=1.0 if setup.startswith("reference") else 0.35, edgecolor="black",
                      linewidth=0.5)
        for bar, src in zip(bars, rows.data_source):
            if "substitute" in src:
                bar.set_hatch("//")
        ax.bar_label(bars, labels=rows["marks"].fillna("").tolist(), fontsize=9, padding=2)
    for j, t in enumerate(tasks):  # each task's chance level across its group of bars
        ax.hlines(_chance(t) * 100, j - 0.45, j + 0.45, color="grey", linestyle=":", linewidth=1,
                  label="chance" if j == 0 else None)
    ax.set_xticks(range(len(tasks)), [LRA_TASKS[t] for t in tasks])
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)  # room for the marks above the tallest bar
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("LRA test accuracy (mean ± sd over seeds)")
    handles, _ = ax.get_legend_handles_labels()
    used = set(" ".join(summary["marks"].fillna("")).split())
    if summary.data_source.str.contains("substitute").any():
        used.add("†")
    handles += [Patch(facecolor="white", edgecolor="black", hatch="//" if m == "†" else None, visible=m == "†",
                      label=f"{m} {what}" + (" (hatched)" if m == "†" else "")) for m, what in MARKS.items() if m in used]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the bars
    return fig


def lra_curves(curves, runs):
    """One panel per LRA task: validation accuracy against step, a line per model (mean over seeds) with a band
    from the lowest to the highest seed (a collapsed seed shows as the band's floor; dotted line = chance).
    `curves`: report.load_curves; `runs`: report.lra_runs' runs (those that finished are drawn, named by their
    setup). Configurations are drawn apart (line style), never averaged together. None when no run has a curve."""
    import seaborn as sns

    plt = _pyplot()
    if "accuracy" not in curves:
        return None
    ok = runs[runs.status == "ok"]
    g = curves[(curves.split == "val") & curves.accuracy.notna() & curves.run_id.isin(set(ok.run_id))]
    if g.empty:
        return None
    g = g.assign(accuracy=g.accuracy * 100, configuration=g.run_id.map(configuration_labels(ok)))
    tasks = [t for t in LRA_TASKS if t in set(g.task)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(6.0, 4.8 * len(tasks)), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        d = g[g.task == task]
        models = set(d.model)
        only_reference = set(d.configuration) == {"reference"}
        sparse = d.groupby("run_id").step.nunique().max() <= MARKERS_UP_TO
        sns.lineplot(data=d, x="step", y="accuracy", hue="model", hue_order=model_order(models),
                     style=None if only_reference else "configuration", palette={m: model_colour(m) for m in models},
                     estimator="mean", errorbar=("pi", 100), marker="o" if sparse else None, ax=ax)
        chance = _chance(task) * 100
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
        lo, hi = ax.get_ylim()  # at least 10 points tall: curves flat at chance are not magnified into noise
        ax.set_ylim(min(lo, chance - 5), max(hi, chance + 5))
        ax.set_title(LRA_TASKS[task])
        ax.set_ylabel("validation accuracy (%)")
    _legend_outside(fig, axes[0], title="line: mean, band: min–max\nover seeds")
    fig.suptitle("LRA validation accuracy", fontsize=11)
    return fig
