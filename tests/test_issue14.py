"""Issue 14 re-checked on the merged code: the cases a reviewer's fault injection found still open."""

from lra_wavelet import report, results


def _rows(run_id, status, splits):
    base = dict(run_id=run_id, task="listops", task_version=1, data_source="generated", model="gpt", n_params=10,
                seed=0, step=5, tokens_seen=0, wall_time_s=1.0, status=status, config_hash="h", git_sha="x",
                device="cpu", schema_version=1)
    return [dict(base, split=s, metric="accuracy", value=0.2) for s in splits]


def test_a_run_whose_test_row_was_cut_off_is_counted_incomplete_not_an_empty_fail(tmp_path):
    """A truncated result.csv can keep the val rows (status ok) and lose the test row: the cell must say why."""
    d = tmp_path / "listops" / "gpt" / "r"
    results.write_rows(d / "result.csv", _rows("r", "ok", ["val"]))
    table, _ = report.lra_table(report.load_rows([tmp_path]), include_reduced=True)
    assert dict(zip(table.Model, table.ListOps))["gpt"] == "FAIL (1 incomplete)"
