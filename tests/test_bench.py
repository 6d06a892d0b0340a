"""benchmarks/bench_throughput.py: every compiled cell measured compiled, or marked; repeats shown with their spread."""

import argparse
import functools
import importlib.util
import sys

import pytest
import torch

from conftest import REPO

spec = importlib.util.spec_from_file_location("bench_throughput", REPO / "benchmarks" / "bench_throughput.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

QUICK = argparse.Namespace(steps=2, set=[], quick=True, data="synthetic")
CPU = torch.device("cpu")


def test_a_cell_shows_the_median_and_spread_and_a_compiled_cell_that_ran_eagerly_shows_no_number():
    rs = [bench.measure("listops", "transformer", "base", QUICK, CPU) for _ in range(3)]
    tps = sorted(r["tokens_per_s"] / 1e6 for r in rs)
    text = bench.cell(rs, None, None, 3)
    assert text.startswith(f"{tps[1]:.3g}M ({tps[0]:.3g}-{tps[2]:.3g}) |") and "graphs" not in text
    assert "[2 of 3]" in bench.cell(rs[:2], None, None, 3)  # the budget cut the repeats short
    eager = [dict(r, compiled=True, graphs=0) for r in rs]  # what dynamo past its recompile limit leaves
    text = bench.cell(eager, None, None, 3)
    assert "not compiled" in text and not any(f"{v:.3g}M" in text for v in tps)


@pytest.mark.slow  # ~10 s on 2 cores, most of it importing torch._dynamo and its first trace (eager backend)
def test_each_compiled_cell_compiles_in_a_fresh_dynamo_state(monkeypatch):
    """Two compiled cells in one process: each runs its loop inside train.compiling (dynamo reset before and
    after it, as a run of a sweep), and each compiles its own graphs, so neither cell is marked 'not compiled'.
    (What a cell that compiled nothing shows: the test above.)"""
    import torch._dynamo

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    resets, real = [], torch._dynamo.reset
    monkeypatch.setattr(torch._dynamo, "reset", lambda: (resets.append(1), real())[1])
    rs = [bench.measure("listops", m, "compiled", QUICK, CPU) for m in ("transformer", "wavelet")]
    assert all(r["graphs"] > 0 for r in rs) and len(resets) == 2 * len(rs)
    assert "not compiled" not in bench.cell(rs[1:], None, None, 1)


def test_mfu_counts_the_models_flops_not_the_zero_columns_of_padded_heads(monkeypatch):
    """train.attn_pad_heads=8 pads Pathfinder's 4-wide heads: the kernel does more work, the model does not, so a
    cell's FLOPs per token are the same with and without the padding (and the padding is back on afterwards);
    train.attn_varlen's skipped padding counts as done (nominal FLOPs), and its cell is measured, not failed."""
    narrow = argparse.Namespace(**{**vars(QUICK), "set": ["model.qkv_dim=8"]})  # 2 heads of width 4, as Pathfinder's
    for name, switch in (("pad8", "train.attn_pad_heads=8"), ("varlen", "train.attn_varlen=true")):  # eager
        monkeypatch.setitem(bench.VARIANTS, f"base-{name}", (*bench.EAGER, switch))  # (a variant's own switches win)
    per_token = [r["flops_per_s"] / r["tokens_per_s"]
                 for r in (bench.measure("pathfinder", "transformer", v, narrow, CPU)
                           for v in ("base", "base-pad8", "base-varlen"))]
    assert per_token[1:] == pytest.approx(per_token[:1] * 2, rel=1e-9)


def test_bench_wavelet_rounds_stop_at_the_budget_and_stay_interleaved(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_wavelet", REPO / "benchmarks" / "bench_wavelet.py")
    wav = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wav)
    clock = [0.0]
    monkeypatch.setattr(wav.time, "time", lambda: clock[0])
    calls = []

    def timer(step, steps):  # each configuration's timing takes 10 s of the (fake) clock
        calls.append(step)
        clock[0] += 10
        return 1.0

    runs = {k: (k, [], 0.0, []) for k in ("gpt", "wavelet")}
    assert wav.timed_rounds(runs, rounds=5, steps=3, deadline=35.0, timer=timer) == 2  # round 3 starts at 40 s
    assert calls == ["gpt", "wavelet", "gpt", "wavelet"] and all(len(v[1]) == 2 for v in runs.values())
    assert wav.timed_rounds(runs, rounds=2, steps=3, timer=timer) == 2  # no budget: every round


def test_the_minutes_table_gives_no_number_for_a_variant_that_ran_nowhere():
    # 2026-12-04: seeds3c failed in every cell and the table said "0 (incomplete)", as if it cost nothing
    table = {("listops", "transformer", "fast"): {"ref_steps": 5000, "steps_per_s": 25.0},
             ("listops", "wavelet", "fast"): {"ref_steps": 5000, "steps_per_s": 50.0},
             ("listops", "wavelet", "seeds3"): {"ref_steps": 5000, "steps_per_s": 10.0}}
    rows = bench.minutes_table(table, ["listops"], ["transformer", "wavelet"], ["fast", "seeds3", "seeds3c"], 3)
    assert rows[2] == "| listops | 15 | 25 (incomplete) | - (none measured) |"  # (200 + 100) s x 3; 500 s x 3
    assert rows[3] == "| **all** | **15** | **25** (incomplete) | - (none measured) |"


def test_quick_with_task_data_is_a_one_line_error(monkeypatch, capsys):
    # --quick shrinks the sequence to 64; a task's own rows keep their length, which failed deep in the model
    monkeypatch.setattr(sys, "argv", ["bench_throughput.py", "--quick", "--data", "task", "--tasks", "listops"])
    assert bench.main() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--quick with --data task" in err


def test_bench_attention_times_varlen_only_where_a_mask_leaves_something_to_skip(tmp_path, monkeypatch):
    """benchmarks/bench_attention.py --quick on the CPU: each masked row has a varlen time, an unmasked one a dash,
    and the table is on disk."""
    spec = importlib.util.spec_from_file_location("bench_attention", REPO / "benchmarks" / "bench_attention.py")
    att = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(att)
    monkeypatch.setattr(att, "QUICK", {"tiny": (2, 2, 17, 4, True, 0, 0.0), "tiny-open": (2, 2, 17, 8, False, 0, 0.0)})
    monkeypatch.setattr(sys, "argv", ["bench_attention.py", "--quick", "--repeat", "1", "--iters", "1",
                                      "--md", str(tmp_path / "att.md")])
    assert att.main() == 0
    head, _, masked, unmasked = (tmp_path / "att.md").read_text().strip().splitlines()[2:]
    assert head.rstrip(" |").endswith("| varlen")
    assert masked.split("|")[-2].strip()[0].isdigit() and unmasked.split("|")[-2].strip() == "-"
