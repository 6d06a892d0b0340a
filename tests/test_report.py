"""report and plot on hand-made run folders (config.yaml + result.csv + metrics.jsonl, no training)."""

import json

import numpy as np
import pandas as pd
import pytest

from lra_wavelet import config as C
from lra_wavelet import report, results
from lra_wavelet.cli import main


def make_run(root, task="listops", model="gpt", seed=0, preset=None, sets=(), status="ok", value=0.3,
             step=None, data_source="generated", curve=(0.2, 0.3), every=10, f1=None, test_f1=None):
    """A run folder as train() leaves it; step defaults to the config's max_steps; the curve is evaluated
    every `every` steps, with macro-F1 values `f1` if given."""
    cfg = C.resolve(task, model, preset, sets=(*sets, f"seed={seed}"))
    run_id = f"{task}-{model}-s{seed}-{cfg.hash}"
    d = root / task / model / run_id
    C.save(cfg, d / "config.yaml")
    step = cfg.train.max_steps if step is None else step
    base = dict(run_id=run_id, task=task, task_version=1, data_source=data_source, model=model, n_params=10,
                seed=seed, step=step, tokens_seen=0, wall_time_s=1.0, status=status, config_hash=cfg.hash,
                git_sha="x", device="cpu", schema_version=1)
    rows = [dict(base, split="val", metric="accuracy", value=curve[-1])]
    if status == "ok":
        rows.append(dict(base, split="test", metric="accuracy", value=value))
        if test_f1 is not None:
            rows.append(dict(base, split="test", metric="macro_f1", value=test_f1))
    results.write_rows(d / "result.csv", rows)
    pts = [{"step": (i + 1) * every, "split": "val", "loss": 1.0, "accuracy": a, "wall_time_s": i,
            **({"macro_f1": f1[i]} if f1 else {})} for i, a in enumerate(curve)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pts))
    return d


def lines_of(md: str) -> dict:
    return {tuple(c.strip() for c in ln.split("|")[1:3]): ln for ln in md.splitlines() if ln.startswith("| ")}


def test_cells_count_unfinished_seeds_and_leave_reduced_runs_out_unless_asked(tmp_path, capsys):
    for seed, v in enumerate([0.35, 0.36, 0.37]):
        make_run(tmp_path, seed=seed, value=v)
    make_run(tmp_path, seed=3, status="diverged", step=40)  # stopped early, as a diverged run does
    make_run(tmp_path, preset="quick", value=0.15)  # a smoke run: less than the reference budget
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--table", "lra"]) == 0
    md = (tmp_path / "rep" / "lra_table.md").read_text()
    rows = lines_of(md)
    assert "36.00 ± 1.00 (n=3, 1 diverged)" in rows[("gpt", "reference")]
    assert not any(k[0] == "gpt" and k[1] != "reference" for k in rows)
    assert "Left out: 1 run(s) with less than the reference budget (1 ok)" in md and "--include-reduced" in md
    assert rows[("Chance", "constant guess")].split("|")[3].strip() == "10.00"  # ListOps: 10 classes
    assert "[1] Tay et al., ICLR 2021, LRA Table 1" in md and ("Transformer (published)", "published [1]") in rows

    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--table", "lra", "--include-reduced"]) == 0
    rows = lines_of((tmp_path / "rep" / "lra_table.md").read_text())
    assert "15.00 (n=1) *" in rows[("gpt", "preset quick")]
    summary = pd.read_csv(tmp_path / "rep" / "lra_summary.csv")
    quick = summary[summary.setup == "preset quick"].iloc[0]
    assert quick.reduced and "train.max_steps" in quick.deviations and quick.chance == pytest.approx(10.0)


def test_a_uniform_reduced_budget_is_named_as_such_and_compared_within_it(tmp_path):
    """The reference configuration with only train.max_steps lowered (the table's reduced budgets): setup
    'reference at N steps', marked *, and WaveletGPT compared with the others at that same budget."""
    for model in ("gpt", "wavelet"):
        for seed in (0, 1):
            make_run(tmp_path, model=model, seed=seed, sets=("train.max_steps=1000",), value=0.3 + 0.01 * seed)
    make_run(tmp_path, model="gpt", seed=2, sets=("train.max_steps=1000", "model.d_model=32"))  # another setup
    df = report.load_rows([tmp_path])
    table, _ = report.lra_table(df, include_reduced=True)
    cells = dict(zip(zip(table.Model, table.Setup), table.ListOps))
    assert cells[("gpt", "reference at 1000 steps")] == "30.50 ± 0.71 (n=2) *"
    assert ("gpt", "custom") in cells and ("wavelet", "reference at 1000 steps") in cells
    assert any(n.startswith("Custom cells") and "gpt × ListOps: model.d_model=32 (reference " in n
               for n in table.attrs["notes"])  # a custom cell's settings are in the caption
    compare = report.lra_compare_table(df, include_reduced=True)
    row = compare[(compare.vs == "gpt") & (compare.Setup == "reference at 1000 steps")]
    assert len(row) == 1 and row.Difference.iloc[0] == "+0.00"
    # a preset at fewer steps is that preset at N steps, compared within it (never with the reference)
    for model in ("gpt", "wavelet"):
        make_run(tmp_path, model=model, preset="gpt-init", sets=("train.max_steps=500",), value=0.25)
    df = report.load_rows([tmp_path])
    table, _ = report.lra_table(df, include_reduced=True)
    cells = dict(zip(zip(table.Model, table.Setup), table.ListOps))
    assert cells[("gpt", "preset gpt-init at 500 steps")] == "25.00 (n=1) *"
    compare = report.lra_compare_table(df, include_reduced=True)
    assert len(compare[(compare.vs == "gpt") & (compare.Setup == "preset gpt-init at 500 steps")]) == 1


def test_reach_gives_each_seeds_first_step_at_an_accuracy_level(tmp_path, capsys):
    """report --reach listops=0.3: per cell, the first evaluated step each finished seed's validation accuracy
    reached 30% ('never' if not), the median over those that did; a bad level or task is a one-line error."""
    make_run(tmp_path, model="gpt", seed=0, curve=(0.1, 0.2, 0.31, 0.35))  # evaluations at steps 10..40
    make_run(tmp_path, model="gpt", seed=1, curve=(0.3, 0.32))
    make_run(tmp_path, model="gpt", seed=2, curve=(0.1, 0.2))
    make_run(tmp_path, model="wavelet", seed=0, status="partial", step=20)  # unfinished: not a row
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--table", "lra",
                 "--reach", "listops=0.3"]) == 0
    reach = pd.read_csv(tmp_path / "rep" / "lra_reach.csv")
    assert len(reach) == 1
    row = reach.iloc[0]
    assert (row.Model, row.Level, row["Median step"]) == ("gpt", "30%", "20 (n=2 of 3)")
    assert row.Seeds == "seed 0: 30; seed 1: 10; seed 2: never"
    for bad in ("listops=30", "listopz=0.3", "listops"):
        assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--reach", bad]) == 2
        assert f"--reach {bad}: expected TASK=LEVEL" in capsys.readouterr().err


def test_all_seeds_diverged_is_fail_with_the_count(tmp_path):
    for seed in (0, 1):
        make_run(tmp_path, model="wavelet", seed=seed, status="diverged", step=2)
    table, _ = report.lra_table(report.load_rows([tmp_path]))
    assert dict(zip(table.Model, table.ListOps))["wavelet"] == "FAIL (2 diverged)"
    make_run(tmp_path, model="gpt", seed=0, status="partial", step=2)  # only stopped: to be resumed, not a failure
    table, _ = report.lra_table(report.load_rows([tmp_path]))
    assert dict(zip(table.Model, table.ListOps))["gpt"] == "unfinished (1 partial)"
    make_run(tmp_path, model="transformer", seed=0, value=0.1, curve=(0.1, 0.1))  # finished, but collapsed
    speed, _ = report.lra_speed_table(report.load_rows([tmp_path]), report.load_curves([tmp_path]))
    cells = dict(zip(speed.Model, speed.ListOps))  # steps: none to give, but only the stopped seed is unfinished
    assert cells["transformer"] == "FAIL (1 collapsed)" and cells["gpt"] == "unfinished (1 partial)"
    make_run(tmp_path, model="transformer", seed=1, status="partial", step=2)  # may still give a number
    (make_run(tmp_path, model="fnet", seed=0) / "metrics.jsonl").unlink()  # finished, its curve lost
    speed, _ = report.lra_speed_table(report.load_rows([tmp_path]), report.load_curves([tmp_path]))
    cells = dict(zip(speed.Model, speed.ListOps))
    assert cells["transformer"] == "unfinished (1 collapsed, 1 partial)" and cells["fnet"] == "— (1 no curve)"


def test_different_configurations_are_never_pooled_silently(tmp_path, capsys):
    for seed in (0, 1):
        make_run(tmp_path, model="wavelet", seed=seed, sets=("model.d_model=32",), value=0.2)
    make_run(tmp_path, model="wavelet", seed=2, sets=("model.d_model=64",), value=0.3)
    table, summary = report.lra_table(report.load_rows([tmp_path]))
    cell = dict(zip(table.Model, table.ListOps))["wavelet"]
    assert "(n=3)" in cell and cell.endswith("‡") and int(summary.configurations.iloc[0]) == 2
    abl = report.ablation_table(report.load_rows([tmp_path]))
    assert len(abl) == 2 and abl.config.nunique() == 2  # one row per configuration, not one pooled "defaults"
    assert sorted(abl.value) == ["20.00 ± 0.00 (n=2)", "30.00 (n=1)"]


def test_empty_and_truncated_result_files_are_warnings_naming_the_file(tmp_path, capsys):
    for seed in (0, 1, 2):
        make_run(tmp_path, seed=seed)
    files = sorted(tmp_path.rglob("result.csv"))
    files[0].write_text(files[0].read_text().splitlines()[0] + "\n")  # a header and no rows
    text = files[1].read_text()
    files[1].write_text(text[: text.rindex(",ok,")])  # cut in the middle of the last row
    df = report.load_rows([tmp_path])
    err = capsys.readouterr().err
    assert f"{files[0]}: a header and no rows" in err and f"{files[1]}: line 3 incomplete" in err
    assert len(df[df.split == "test"]) == 1 and len(df[df.run_id == files[1].parent.name]) == 1


def _corrupt(tmp_path, what):
    d = make_run(tmp_path)
    if what == "binary result.csv":
        (d / "result.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00" * 20)
        return d / "result.csv", "not a text CSV"
    if what == "non-numeric value":
        (d / "result.csv").write_text((d / "result.csv").read_text().replace(",0.3,", ",abc,"))
        return d / "result.csv", ":2: column 'value' holds 'abc'; expected a number"
    if what == "bad config.yaml":
        (d / "config.yaml").write_text("task: [unclosed\n")
        return d / "config.yaml", "is not valid YAML"
    if what == "config.yaml of another kind":
        (d / "config.yaml").write_text("lr: 3\n")
        return d / "config.yaml", "expected a saved run config"
    if what == "torn metrics line":
        (d / "metrics.jsonl").write_text('{"step": 10, "split": "val", "lo\n{"step": 20, "split": "val"}\n')
        return d / "metrics.jsonl", ":1: not a JSON record"
    if what == "binary metrics.jsonl":
        (d / "metrics.jsonl").write_bytes(b"\xff\xfe\x00\x01" * 10)
        return d / "metrics.jsonl", "not a text file"
    if what == "non-numeric metric":
        (d / "metrics.jsonl").write_text('{"step": 10, "split": "val", "loss": "high"}\n')
        return d / "metrics.jsonl", ":1: 'loss' is 'high'; expected a number"
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["binary result.csv", "non-numeric value", "bad config.yaml",
                                  "config.yaml of another kind", "torn metrics line", "binary metrics.jsonl",
                                  "non-numeric metric"])
@pytest.mark.parametrize("cmd", ["report", "plot"])
def test_corrupt_inputs_are_one_line_errors_naming_the_file(tmp_path, capsys, what, cmd):
    path, match = _corrupt(tmp_path, what)
    assert main([cmd, str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and match in err and err.count("\n") == 1, err


def test_a_torn_last_metrics_line_is_a_warning(tmp_path, capsys):
    d = make_run(tmp_path, curve=(0.2, 0.3, 0.4))
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "spl')  # killed mid-write
    curves = report.load_curves([tmp_path])
    assert sorted(curves.step) == [10, 20, 30] and f"{d / 'metrics.jsonl'}:4: torn last line" in capsys.readouterr().err


def test_no_results_and_out_onto_a_file_are_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for cmd in ("report", "plot"):
        assert main([cmd, str(tmp_path / "empty"), "--out", str(tmp_path / "rep")]) == 2
        err = capsys.readouterr().err
        assert "no r" in err and str(tmp_path / "empty") in err and err.count("\n") == 1
    assert not (tmp_path / "rep").exists()
    make_run(tmp_path / "runs")
    (tmp_path / "file").write_text("keep me")
    for cmd in ("report", "plot"):
        assert main([cmd, str(tmp_path / "runs"), "--out", str(tmp_path / "file")]) == 2
        assert "exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep me"
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0  # classification only
    assert not (tmp_path / "rep" / "pretrain_table.csv").exists()  # no lone-newline CSV for an empty table
    assert (tmp_path / "rep" / "lra_summary.csv").read_text().startswith("model,setup,task,")
    assert "Pre-training: no rows" in capsys.readouterr().err


def test_headline_metric_and_chance_come_from_the_task():
    assert report.headline_metric("listops") == "accuracy" and report.headline_metric("retrieval") == "accuracy"
    assert report.headline_metric("text8") == "loss"
    assert report._chance("text") == 0.5 and report._chance("image") == 0.1


def test_figures_keep_colours_order_markers_and_error_bars(tmp_path):
    from lra_wavelet import plot

    assert plot.model_colour("wavelet") == plot.model_colour("wavelet") != plot.model_colour("gpt")
    assert plot.model_colour("my-new-model") == plot.model_colour("my-new-model")
    for seed, v in enumerate([0.3, 0.4]):
        make_run(tmp_path, task="image", seed=seed, value=v, curve=(0.3,))  # one evaluation per run
        make_run(tmp_path, task="listops", seed=seed, value=v, curve=(0.3,))
    make_run(tmp_path, task="text", value=0.6, data_source="substitute")
    _, summary = report.lra_table(report.load_rows([tmp_path]))
    ax = plot.lra_chart(summary).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ListOps", "Text", "Image"]  # LRA order
    heights = sorted(round(b.get_height(), 6) for b in ax.patches if b.get_height() > 0)
    assert heights == [35.0, 35.0, 60.0]
    assert any(c.has_yerr for c in ax.containers)
    assert [b.get_hatch() for b in ax.patches if round(b.get_height()) == 60] == ["//"]
    assert "chance" in [t.get_text() for t in ax.get_legend().get_texts()]  # a dotted line per task
    chance = {round(float(seg[0][1]), 3) for c in ax.collections for seg in c.get_segments()
              if len(seg) == 2 and abs(seg[1][0] - seg[0][0] - 0.9) < 1e-9}  # a task's width: not an error bar
    assert chance == {10.0, 50.0}  # ListOps / Image at 10%, Text at 50%
    curves = report.load_curves([tmp_path])
    ax = plot.curve_figure("image", curves[curves.task == "image"]).axes[0]
    assert ax.lines[0].get_marker() == "o"  # a single evaluation shows as a point
    assert ax.lines[0].get_color() == plot.model_colour("gpt") or \
        tuple(ax.lines[0].get_color()[:3]) == tuple(plot.model_colour("gpt"))


def test_accuracy_cells_name_seeds_that_collapsed_to_one_class(tmp_path):
    """A seed that tests at the majority class (above ListOps' 10% chance, at a constant guess's macro-F1) stays
    in the mean, as the protocol counts it, and is named beside n; the Avg column agrees with the cell."""
    make_run(tmp_path, seed=0, value=0.3625, test_f1=0.16)
    make_run(tmp_path, seed=1, value=0.155, test_f1=report.constant_guess_f1("listops", 0.155))
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--table", "lra"]) == 0
    row = lines_of((tmp_path / "rep" / "lra_table.md").read_text())[("gpt", "reference")]
    assert "| 25.88 ± 14.67 (n=2, 1 collapsed) |" in row and row.rstrip().endswith("| 25.88 (1/5 tasks) |")
    assert pd.read_csv(tmp_path / "rep" / "lra_summary.csv").collapsed.tolist() == [1]


def test_speed_table_takes_the_median_step_to_95_percent_and_flags_collapsed_runs(tmp_path):
    every = 1000  # ListOps' reference max_steps is 5000: 1000 steps = 20% of the budget
    for seed, curve in enumerate([(0.1, 0.2, 0.39, 0.4, 0.4), (0.2, 0.38, 0.4, 0.4, 0.4), (0.4, 0.4, 0.4, 0.4, 0.39)]):
        make_run(tmp_path, seed=seed, curve=curve, every=every, f1=[0.2] * 5)  # 95%: steps 3000, 2000, 1000
    majority = 0.176  # always guessing one class that is 17.6% of the split: above ListOps' 10% chance
    make_run(tmp_path, seed=3, curve=(0.3, majority, majority), every=every,
             f1=[0.1, *[report.constant_guess_f1("listops", majority)] * 2])
    make_run(tmp_path, seed=4, status="diverged", step=40)
    make_run(tmp_path, preset="quick", curve=(0.2, 0.3), every=40)  # reduced: 95% of 0.3 at step 80 of 80
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--table", "lra"]) == 0
    md = (tmp_path / "rep" / "lra_speed.md").read_text()
    rows = lines_of(md)
    assert "| 2000 (40%, n=3, 1 collapsed, 1 diverged) |" in rows[("gpt", "reference")]
    assert "Left out: 1 run(s) with less than the reference budget" in md and "95% of its final" in md
    assert not any(k[1] == "preset quick" for k in rows)
    cell = pd.read_csv(tmp_path / "rep" / "lra_speed_summary.csv").iloc[0]
    assert (cell.median_step, cell.median_share, cell.n_seeds, cell.collapsed) == (2000, 0.4, 3, 1)
    assert "seed 0: 3000; seed 1: 2000; seed 2: 1000; seed 3: collapsed at 17.6%" == cell.seeds
    assert report.collapsed("listops", 0.1) and report.collapsed("text", 0.5, 0.6)  # at chance, whatever its F1
    assert not report.collapsed("listops", majority, 0.05)  # a higher F1 than one class gives: it learned
    assert (tmp_path / "rep" / "lra_speed.csv").read_text().startswith("Model,Setup,ListOps,")

    table, _ = report.lra_speed_table(report.load_rows([tmp_path]), report.load_curves([tmp_path]),
                                      include_reduced=True)
    assert dict(zip(table.Setup, table.ListOps))["preset quick"] == "80 (100%, n=1) *"


def test_lra_curves_draw_one_panel_per_task_and_keep_configurations_apart(tmp_path):
    from matplotlib.colors import to_rgb

    from lra_wavelet import plot

    for seed in (0, 1):
        make_run(tmp_path, model="wavelet", seed=seed, curve=(0.2, 0.3 + seed / 10))
    make_run(tmp_path, model="wavelet", sets=("model.d_model=32",), curve=(0.1, 0.2))
    make_run(tmp_path, task="image", model="transformer", curve=(0.1, 0.2))
    make_run(tmp_path, model="transformer", status="failed", step=0)  # not counted by the tables: not drawn
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "lra_curves.png").stat().st_size > 0
    fig = plot.lra_curves(report.load_curves([tmp_path]), report.lra_runs(report.load_rows([tmp_path]))[0])
    listops, image = fig.axes
    assert (listops.get_title(), image.get_title()) == ("ListOps", "Image")  # LRA order
    lines = [ln for ln in listops.lines if len(ln.get_xdata()) and ln.get_label() != "chance"]  # the curves
    assert {to_rgb(ln.get_color()) for ln in lines} == {tuple(plot.model_colour("wavelet"))}  # no failed run
    assert len(lines) == 2  # reference and custom d_model=32: two lines, not one pooled mean
    assert max(ln.get_ydata()[-1] for ln in lines) == pytest.approx(35.0)  # the mean of 30% and 40% at the end
    legend = fig.legends[0]  # one legend for the figure, outside the panels, each label once
    assert listops.collections and "min–max" in legend.get_title().get_text() and listops.get_legend() is None
    texts = [t.get_text() for t in legend.get_texts()]
    assert "reference" in texts and any(t.startswith("custom") for t in texts) and len(texts) == len(set(texts))
    lo, hi = image.get_ylim()
    assert hi - lo >= 10  # a flat curve is not magnified into noise


def test_task_curves_name_configurations_by_their_setup(tmp_path):
    """curves_<task>.png draws a model's configurations apart under the names the tables give them (reference,
    preset P at N steps), not config hashes."""
    from lra_wavelet import plot

    make_run(tmp_path, model="wavelet", curve=(0.2, 0.3))
    make_run(tmp_path, model="wavelet", preset="quick", curve=(0.1, 0.2))
    rows = report.load_rows([tmp_path])
    labels = plot.configuration_labels(report.lra_runs(rows, include_reduced=True)[0])
    assert sorted(set(labels.values())) == ["preset quick", "reference"]
    curves = report.load_curves([tmp_path])
    fig = plot.curve_figure("listops", curves[curves.split == "val"], labels)
    assert {"reference", "preset quick"} <= {t.get_text() for t in fig.legends[0].get_texts()}


def test_compare_table_gives_welch_intervals_of_wavelet_against_each_model(tmp_path):
    """lra_compare: wavelet minus each other model of the same setup and task (in points), with the 95% interval
    of scipy's Welch t-test; an interval above 0 reads 'higher', one across 0 'no clear difference', one seed on a
    side 'too few seeds'; written by `report`."""
    from scipy import stats

    wav, gpt = [0.40, 0.41, 0.43], [0.30, 0.32, 0.29]
    for seed, (w, g) in enumerate(zip(wav, gpt)):
        make_run(tmp_path, model="wavelet", seed=seed, value=w)
        make_run(tmp_path, model="gpt", seed=seed, value=g)
    make_run(tmp_path, model="fnet", seed=0, value=0.5)
    for seed, v in enumerate([0.2, 0.6, 0.4]):  # a mean near wavelet's, a wide spread
        make_run(tmp_path, model="transformer", seed=seed, value=v)
    table = report.lra_compare_table(report.load_rows([tmp_path]))
    rows = {r.vs: r for r in table.itertuples()}
    ci = stats.ttest_ind([100 * v for v in wav], [100 * v for v in gpt], equal_var=False).confidence_interval()
    assert rows["gpt"].Difference == f"{100 * (np.mean(wav) - np.mean(gpt)):+.2f}"
    assert table.set_index("vs").loc["gpt", "95% interval"] == f"[{ci.low:+.2f}, {ci.high:+.2f}]"
    assert rows["gpt"].Reading == "wavelet higher"
    assert rows["transformer"].Reading == "no clear difference" and rows["transformer"].Difference.startswith("+")
    assert rows["fnet"].Reading == "too few seeds" and list(table.vs) == ["transformer", "fnet", "gpt"]  # order
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--table", "lra"]) == 0
    assert "| ListOps | reference |" in (tmp_path / "rep" / "lra_compare.md").read_text()


def test_task_curves_leave_out_runs_stopped_before_their_end(tmp_path, monkeypatch):
    """curves_<task>.png: a partial run (stopped by a time limit, to be run again) is not averaged into the mean
    over seeds; a diverged run stays visible."""
    from lra_wavelet import plot

    make_run(tmp_path, seed=0, curve=(0.2, 0.3))
    partial = make_run(tmp_path, seed=1, status="partial", step=10, curve=(0.9,))
    diverged = make_run(tmp_path, seed=2, status="diverged", step=20, curve=(0.1, 0.1))
    drawn = {}

    def curve_figure(task, g, labels=None):
        drawn[task] = g
        return plot._pyplot().figure()

    monkeypatch.setattr(plot, "curve_figure", curve_figure)
    plot.write_plots([tmp_path], tmp_path / "fig")
    run_ids = set(drawn["listops"].run_id)
    assert partial.name not in run_ids and diverged.name in run_ids and len(run_ids) == 2


def test_a_key_added_later_at_its_default_pools_with_runs_made_before_it(tmp_path):
    """A run made before train.eval_drop_last existed (no such key in its config.yaml) and a run that saved it at
    its default (false) are one configuration (config.LATER_KEYS): the same config_id, a cell without ‡; at a
    non-default value they are two."""
    import yaml

    old = make_run(tmp_path, seed=0, value=0.3)
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    cfg["train"].pop("eval_drop_last")  # as the committed runs' config.yaml files
    (old / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    make_run(tmp_path, seed=1, value=0.32)
    runs = report.run_table(report.load_rows([tmp_path]))
    assert runs.config_id.nunique() == 1
    table, _ = report.lra_table(report.load_rows([tmp_path]))
    assert "‡" not in table.ListOps.iloc[0] and "(n=2)" in table.ListOps.iloc[0]
    assert report.config_id(cfg) != report.config_id({**cfg, "train": {**cfg["train"], "eval_drop_last": True}})


def test_a_run_saved_before_a_later_key_is_compared_at_that_keys_default():
    """A Pathfinder run saved before train.cosine_cycle existed (no such key in its config.yaml) ran the cosine
    at after_warmup: against the reference's max_steps it is a custom setup with that deviation named, not the
    preset at fewer steps; the same run at max_steps is."""
    cfg = C.yaml_ready(C.resolve("pathfinder", "gpt", "gpt-init", sets=("train.max_steps=6240",)).to_dict())
    now = report.classify_run("pathfinder", "gpt", 0, cfg, None, 6240, "ok")
    assert now["setup"] == "preset gpt-init at 6240 steps" and now["reduced"]
    old = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "cosine_cycle"}}
    before = report.classify_run("pathfinder", "gpt", 0, old, None, 6240, "ok")
    assert before["setup"] == "custom" and before["reduced"]
    assert "train.cosine_cycle=after_warmup (reference max_steps)" in before["deviations"]
    listops = C.yaml_ready(C.resolve("listops", "gpt").to_dict())
    listops["train"].pop("cosine_cycle")  # the default both sides: no deviation
    assert report.classify_run("listops", "gpt", 0, listops, None, 5000, "ok")["setup"] == "reference"


def test_the_papers_decoder_protocol_gets_its_own_table_with_the_welch_difference(tmp_path):
    for seed, (g, w) in enumerate([(0.34, 0.37), (0.35, 0.38), (0.36, 0.36)]):
        make_run(tmp_path, model="gpt", seed=seed, preset="paper", value=g)
        make_run(tmp_path, model="wavelet", seed=seed, preset="paper", value=w)
    make_run(tmp_path, model="wavelet", seed=0, value=0.30)  # the reference size: stays in lra_table
    make_run(tmp_path, task="text", model="gpt", seed=0, preset="paper", status="partial", step=5)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--table", "lra"]) == 0
    main_md = (tmp_path / "rep" / "lra_table.md").read_text()
    assert ("wavelet", "reference") in lines_of(main_md)
    assert not any(k[1].startswith("preset paper") for k in lines_of(main_md))
    assert "lra_decoders_table.md" in main_md
    dec = pd.read_csv(tmp_path / "rep" / "lra_decoders_table.csv")
    assert list(dec.columns) == ["Model", "Setup", "ListOps", "Text"]  # only the tasks that ran at that size
    by = {m: r for m, r in zip(dec.Model, dec.to_dict("records"))}
    assert by["gpt"]["ListOps"] == "35.00 ± 1.00 (n=3)" and by["wavelet"]["ListOps"] == "37.00 ± 1.00 (n=3)"
    d, lo, hi = report.welch_interval([37, 38, 36], [34, 35, 36])
    assert by["wavelet − gpt"]["ListOps"] == f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" and d == pytest.approx(2.0)
    assert by["gpt"]["Text"].startswith("unfinished") and by["wavelet"]["Text"] == "—"
    assert by["wavelet − gpt"]["Text"] == "—"
