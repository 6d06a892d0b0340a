"""The LRA chart carries the table's cell marks; a Hub id's source is checked against the offline cache."""

from lra_wavelet import plot, report

from test_report import make_run


def test_the_chart_labels_bars_with_the_table_marks(tmp_path):
    make_run(tmp_path, task="text", value=0.6, data_source="substitute")  # †
    make_run(tmp_path, model="wavelet", seed=0, sets=("model.d_model=32",), value=0.2)  # ‡: two configurations
    make_run(tmp_path, model="wavelet", seed=1, sets=("model.d_model=64",), value=0.3)
    make_run(tmp_path, preset="quick", value=0.15)  # *: below the reference budget, shown on request
    table, summary = report.lra_table(report.load_rows([tmp_path]), include_reduced=True)
    ax = plot.lra_chart(summary).axes[0]
    bar_marks = [t.get_text() for t in ax.texts if t.get_text()]
    cells = dict(zip(zip(table.Model, table.Setup), zip(table.ListOps, table.Text)))
    assert sorted(bar_marks) == sorted(["*", "‡", "†"])  # one labelled bar per marked cell, no more
    assert cells[("wavelet", "custom")][0].endswith("‡") and cells[("gpt", "reference")][1].endswith("†")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"† substitute data (hatched)", "‡ pools configurations or one seed twice",
            "* below the reference budget"} <= set(legend)
