"""benchmarks/bench_packed.py: K processes of one run started together, their tokens/s summed; MPS only when its
daemon starts, and said why not otherwise."""

import importlib.util
import os

from conftest import REPO

spec = importlib.util.spec_from_file_location("bench_packed", REPO / "benchmarks" / "bench_packed.py")
packed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(packed)


def test_k_processes_train_together_and_report_overlapping_windows(tmp_path):
    a = packed.argparse.Namespace(task="pathfinder", model="wavelet", variant="fast", warmup=1, seconds=0.5,
                                  sync_every=1, wait_s=120.0, set=[], quick=True)
    got = packed.one_measurement(a, 2, dict(os.environ), tmp_path)
    assert all("error" not in r for r in got), got
    assert all(r["tokens_per_s"] > 0 and r["steps"] >= 1 and (r["batch"], r["seq"]) == (4, 64) for r in got)
    assert min(r["t1"] for r in got) > max(r["t0"] for r in got)  # both trained at once: one start signal
    row = packed.table({("plain", 1): [got[:1]], ("plain", 2): [got]}, [1, 2], ["plain"])[3]
    total = sum(r["tokens_per_s"] for r in got)
    assert row.startswith(f"| plain | 2 | {total / 1e6:.3g}M |")


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
    for bad in (["--procs", "0"], ["--procs", "a"], ["--variant", "seeds3"], ["--variant", "nope"],
                ["--set", "train.lr=abc"], ["--task", "nosuchtask"]):
        assert packed.main(bad) == 2
        assert capsys.readouterr().err.count("\n") == 1


def test_the_table_and_its_header_with_mps_measured_or_refused(tmp_path, monkeypatch):
    # main() as on the GPU, the processes faked: both MPS outcomes end up in the file, the daemon always quit
    fake = lambda a, k, env, work: [{"tokens_per_s": 1e6 * (2 if "CUDA_MPS_PIPE_DIRECTORY" in env else 1),  # noqa: E731
                                     "t0": 0.0, "t1": 1.0, "steps": 5, "device": "GPU", "torch": "2.x", "cuda": "13",
                                     "batch": 512, "seq": 1024}] * k
    monkeypatch.setattr(packed, "one_measurement", fake)
    quit_ = []
    monkeypatch.setattr(packed, "stop_mps", lambda env: quit_.append(env["CUDA_MPS_PIPE_DIRECTORY"]))
    monkeypatch.setattr(packed, "start_mps", lambda env: None)
    monkeypatch.setattr(packed, "mps_client_starts", lambda env: None)
    md = tmp_path / "a.md"
    assert packed.main(["--procs", "1,4", "--mps", "--md", str(md)]) == 0
    text = md.read_text()
    assert "batch x length 512 x 1024" in text and "| plain | 4 | 4M | 1M (1M-1M) | x4.00 |" in text
    assert "| mps | 4 | 8M | 2M (2M-2M) | x8.00 |" in text and "MPS: daemon log: 0 server start(s), 0 client connection(s); no control.log" in text and quit_
    monkeypatch.setattr(packed, "start_mps", lambda env: "nvidia-cuda-mps-control not found")
    assert packed.main(["--procs", "2", "--mps", "--md", str(md)]) == 0
    text = md.read_text()
    assert "| mps |" not in text and "MPS: could not start (nvidia-cuda-mps-control not found); plain rows only" in text

    monkeypatch.setattr(packed, "start_mps", lambda env: None)  # the daemon starts, but no client can
    monkeypatch.setattr(packed, "mps_client_starts", lambda env: "a CUDA client under the daemon did not start")
    quit_.clear()
    assert packed.main(["--procs", "2", "--mps", "--md", str(md)]) == 0
    assert "MPS: could not start (a CUDA client under the daemon did not start)" in md.read_text() and quit_


def test_a_failed_measurement_ends_its_mode_instead_of_repeating(tmp_path, monkeypatch):
    calls = []

    def failing(a, k, env, work):
        calls.append(k)
        return [{"error": "killed: no result 150 s after the start signal"}] * k

    monkeypatch.setattr(packed, "one_measurement", failing)
    md = tmp_path / "a.md"
    assert packed.main(["--procs", "1,4", "--repeat", "2", "--md", str(md)]) == 0
    text = md.read_text()
    assert calls == [1] and "| plain | 1 | failed: killed" in text and "| plain | 4 | not run |" in text
