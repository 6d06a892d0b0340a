"""Issue 14 re-checked on the merged code: the cases a reviewer's fault injection found still open."""

import re
from pathlib import Path

import pytest

from lra_wavelet import config as C
from lra_wavelet import report, results
from lra_wavelet.cli import main


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


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("cmd", ["run", "report"])
def test_out_where_the_file_system_refuses_writes_is_a_one_line_error(tmp_path, capsys, cmd):
    """access() says yes to root under /proc and /sys, yet nothing can be made there: found before any work."""
    args = ["run", "--task", "listops", "--model", "gpt"] if cmd == "run" else ["report", str(tmp_path)]
    assert main([*args, "--out", "/proc/lra-wavelet-out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/proc/lra-wavelet-out" in err[0] and "not writable" in err[0]


@pytest.mark.parametrize("key,line", [("train.max_steps", "  max_steps: abc"), ("model.d_model", "  d_model: abc")])
def test_a_config_yaml_with_a_wrong_type_is_a_one_line_error_naming_file_and_key(tmp_path, capsys, key, line):
    """A hand-edited config.yaml: a string where a number belongs was a TypeError (max_steps) or pooled silently."""
    cfg = C.resolve("listops", "gpt", "quick")
    d = tmp_path / "listops" / "gpt" / "r"
    C.save(cfg, d / "config.yaml")
    section, k = key.split(".")
    text = (d / "config.yaml").read_text()
    (d / "config.yaml").write_text(re.sub(rf"(?m)^  {k}: .*$", line, text, count=1))
    results.write_rows(d / "result.csv", _rows("r", "ok", ["val", "test"]))
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(d / "config.yaml") in err[0] and f"{key}: expected an integer" in err[0]
