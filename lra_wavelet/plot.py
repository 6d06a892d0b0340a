"""Figures (seaborn, PNG): validation curves per task (hue = model) and the LRA accuracy chart."""

from __future__ import annotations

from pathlib import Path

from . import results
from .report import LRA_TASKS, load_curves, lra_table


def write_plots(paths, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    out.mkdir(parents=True, exist_ok=True)
    written = []
    curves = load_curves(paths)
    val = curves[curves.split == "val"] if len(curves) else curves
    for task, g in (val.groupby("task") if len(val) else []):
        metric = "accuracy" if "accuracy" in g and g["accuracy"].notna().any() else "loss"
        fig, ax = plt.subplots(figsize=(6, 4))
        sns.lineplot(data=g, x="step", y=metric, hue="model", errorbar="sd", ax=ax)
        ax.set_title(f"{task}: validation {metric} (mean ± sd over seeds)")
        if metric == "loss":
            ax.set_ylabel("NLL (nats/token)" if "bits_per_token" in g else "loss")
        fig.tight_layout()
        path = out / f"curves_{task}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    _, summary = lra_table(results.load(paths))
    if len(summary):
        summary = summary.assign(task=summary.task.map(LRA_TASKS))
        fig, ax = plt.subplots(figsize=(8, 4))
        sns.barplot(data=summary, x="task", y="mean", hue="model", ax=ax)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("LRA test accuracy (mean over seeds)")
        fig.tight_layout()
        path = out / "lra_accuracy.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
