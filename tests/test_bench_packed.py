"""benchmarks/bench_packed.py: K processes of one run started together, their tokens/s summed; MPS only when its
daemon starts, and said why not otherwise."""

import importlib.util
import os
import re

from conftest import REPO

spec = importlib.util.spec_from_file_location("bench_packed", REPO / "benchmarks" / "bench_packed.py")
packed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(packed)


def test_k_processes_train_together_and_their_tokens_per_s_add_up(tmp_path, capsys):
    md = tmp_path / "packed.md"
    assert packed.main(["--quick", "--variant", "fast", "--procs", "2", "--seconds", "0.5", "--warmup", "1",
                        "--sync-every", "1", "--md", str(md)]) == 0
    text = md.read_text()
    rows = {int(m[1]): m for m in re.finditer(r"^\| plain \| (\d) \| ([\d.]+)M \| ([^|]+)\| x([\d.]+) \| (\d+)%",
                                              text, re.M)}
    assert set(rows) == {1, 2}, text  # 1 is always measured: every ratio is against it
    assert float(rows[1][4]) == 1.0 and float(rows[2][2]) > 0
    assert int(rows[2][5]) >= 50  # the two timed windows overlap: they started on one signal
    assert "batch x length 4 x 64" in text


def test_mps_that_cannot_start_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert packed.start_mps(dict(os.environ)) == "nvidia-cuda-mps-control not found"
    fake = tmp_path / "nvidia-cuda-mps-control"
    fake.write_text("#!/bin/sh\necho 'cannot start: not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    why = packed.start_mps(dict(os.environ))
    assert why.startswith("nvidia-cuda-mps-control -d exited 1") and "not permitted" in why


def test_a_failed_process_fails_its_row_and_bad_arguments_are_one_line_errors(capsys):
    ok = [{"tokens_per_s": 1e6, "t0": 0.0, "t1": 1.0}]
    rows = packed.table({("plain", 1): [ok], ("plain", 2): [[ok[0], {"error": "RuntimeError: out of memory"}]]},
                        [1, 2], ["plain"])
    assert rows[2].startswith("| plain | 1 | 1M | 1M | x1.00 | 100%")
    assert rows[3] == "| plain | 2 | failed: RuntimeError: out of memory | - | - | - |"
    for bad in (["--procs", "0"], ["--procs", "a"], ["--variant", "seeds3"], ["--variant", "nope"]):
        assert packed.main(bad) == 2
        assert capsys.readouterr().err.count("\n") == 1
