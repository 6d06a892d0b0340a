"""Sweeps: worker processes per GPU (run on the CPU here), the summary's counts and exit status, data checked
before the first cell, stale failures cleared. The submitit launcher is tested in test_cluster.py."""

import json

import pandas as pd
import pytest

from lra_wavelet.cli import main
from lra_wavelet.errors import UserError
from lra_wavelet.registry import TASKS

from conftest import TINY_LISTOPS
from test_include import _restore_registries, readme_example  # noqa: F401 (a fixture: what a test registers goes)

TINY = [a for s in TINY_LISTOPS for a in ("--set", s)]
GRID = ["sweep", "--tasks", "listops", "--models", "gpt", "wavelet", "--device", "cpu", "--no-progress", *TINY,
        "--set", "train.max_steps=4"]


def test_cells_spread_over_two_worker_processes_each_with_its_log_then_resume(tmp_path, capsys):
    module, _ = readme_example(tmp_path / "user")  # the README's encoder variant, registered in each worker too
    grid = [*GRID, "--models", "gpt", "wavelet-encoder-quarter", "--include", str(module)]
    assert main([*grid, "--out", str(tmp_path), "--gpus", "0", "1"]) == 0
    err = capsys.readouterr().err
    logs = sorted((tmp_path / "logs").glob("sweep-gpu*.log"))
    assert [p.name for p in logs] == ["sweep-gpu0.log", "sweep-gpu1.log"]
    assert "CUDA_VISIBLE_DEVICES=0" in logs[0].read_text() and "CUDA_VISIBLE_DEVICES=1" in logs[1].read_text()
    ran = "".join(p.read_text() for p in logs)
    assert ran.count("-- cell 0: ok") == 1 and ran.count("-- cell 1: ok") == 1  # each cell once, by one worker
    assert "[2/2]" in err and "ETA" in err
    results = sorted(tmp_path.rglob("result.csv"))
    assert {p.parts[-3] for p in results} == {"gpt", "wavelet-encoder-quarter"}
    rows = pd.concat(pd.read_csv(p) for p in results)
    assert not rows.duplicated(["run_id", "split", "metric"]).any() and set(rows.status) == {"ok"}

    assert main([*grid, "--out", str(tmp_path)]) == 0  # re-run: every cell skipped, nothing written twice
    out, err = capsys.readouterr()
    assert "2 cells: 2 ok, 0 failed" in out and err.count("skipped (ok before)") == 2
    for m in tmp_path.rglob("metrics.jsonl"):
        keys = [(r["split"], r["step"]) for r in map(json.loads, m.read_text().splitlines())]
        assert len(keys) == len(set(keys))


def test_summary_counts_diverged_and_failed_and_a_later_success_clears_the_stale_error(tmp_path, capsys,
                                                                                      monkeypatch):
    from lra_wavelet import train as T

    real = T.train

    def flaky(cfg, **kw):
        if cfg.model.name == "wavelet":
            raise RuntimeError("CUDA out of memory (simulated)")
        return T.Outcome(T.run_paths(cfg)[1], "diverged", skipped=True)  # diverged in an earlier sweep

    monkeypatch.setattr(T, "train", flaky)
    assert main([*GRID, "--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "2 cells: 0 ok, 1 diverged, 1 failed" in out and "failed: listops × wavelet × seed 0" in out
    (error,) = tmp_path.rglob("error.json")
    info = json.loads(error.read_text())  # a bug's traceback is kept with the failure and shown in the log
    assert "in flaky" in info["traceback"] and "in flaky" in err

    monkeypatch.setattr(T, "train", real)
    assert main([*GRID, "--out", str(tmp_path), "--models", "wavelet"]) == 0
    assert "1 cells: 1 ok" in capsys.readouterr().out
    assert not error.exists()
    assert set(pd.read_csv(error.parent / "result.csv").status) == {"ok"}


def test_missing_data_stops_the_sweep_before_the_first_cell(tmp_path, capsys, monkeypatch):
    def missing(self):
        raise UserError(f"task '{self.name}': no data (simulated missing stand-in)")

    monkeypatch.setattr(TASKS.get("listops"), "which_source", missing, raising=False)
    assert main([*GRID, "--out", str(tmp_path)]) == 2
    assert "no data (simulated missing stand-in)" in capsys.readouterr().err
    assert not list(tmp_path.rglob("result.csv"))  # no cell ran

    monkeypatch.setattr(TASKS.get("listops"), "which_source", lambda self: "generated", raising=False)
    assert main([*GRID, "--out", str(tmp_path), "--models", "gpt", "--set", "train.max_steps=1"]) == 0
    assert capsys.readouterr().err.count("data: listops from generated") == 1  # once per distinct task config


def test_bad_gpu_ids_are_one_line_errors(tmp_path, capsys):
    assert main([*GRID, "--out", str(tmp_path), "--gpus", "zero"]) == 2
    assert "--gpus zero: expected device ids" in capsys.readouterr().err
    with pytest.raises(UserError, match="leave --device at auto or cuda"):
        from lra_wavelet import sweep

        sweep.run_workers([sweep.Cell("listops", "gpt", 0, {"device": "cuda:1", "out": str(tmp_path)})], ["0"])


def test_dry_run_lists_what_each_cell_would_do_and_trains_nothing(tmp_path, capsys):
    """sweep --dry-run: done / resume at step N / continue a shorter run / run, per cell, from the run folders
    alone (nothing written), then the counts. The folders are made as train() leaves them, without training."""
    import torch

    from lra_wavelet import config as C
    from lra_wavelet import results
    from lra_wavelet import train as T

    def folder(model, seed, steps, status=None, checkpoint=True):
        cfg = C.resolve("listops", model, sets=(*TINY_LISTOPS, f"train.max_steps={steps}", f"seed={seed}"),
                        overrides={"out": str(tmp_path), "device": "cpu"})
        run_id, d = T.run_paths(cfg)
        C.save(cfg, d / "config.yaml")
        (d / "metrics.jsonl").write_text(json.dumps({"step": steps, "split": "train", "loss": 1.0}) + "\n")
        if checkpoint:
            torch.save({"step": steps - 1}, d / "checkpoint.pt")  # the step it holds, behind the curve's last
        if status:
            results.write_rows(d / "result.csv", [dict(run_id=run_id, task="listops", model=model, seed=seed,
                                                       split="test", metric="accuracy", value=0.5, step=steps,
                                                       status=status, config_hash=cfg.hash,
                                                       wall_time_s=90.0 * (seed + 1))])
        return d

    folder("gpt", 0, 4, "ok")
    folder("gpt", 1, 4)  # stopped after its step-4 checkpoint
    shorter = folder("wavelet", 0, 2, "ok")  # finished at 2 steps, its checkpoint kept: the 4-step run continues it
    folder("wavelet", 2, 4, "diverged", checkpoint=False)
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file())
    assert main([*GRID, "--out", str(tmp_path), "--seeds", "0", "1", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    # a cell to run shows the wall time of the finished seeds of its configuration (gpt seed 0: 90 s); wavelet's
    # finished run is another configuration (2 steps): no estimate
    assert {a.strip(): b.strip() for a, b in (ln.split("  ", 1) for ln in out[:-1])} == {
        "listops × gpt × seed 0": "done", "listops × gpt × seed 1": "resume at step 3  (~0.4 min: 1 earlier seed(s))",
        "listops × gpt × seed 2": "run  (~1.5 min: 1 earlier seed(s))",
        "listops × wavelet × seed 0": f"continue {shorter.name}", "listops × wavelet × seed 1": "run",
        "listops × wavelet × seed 2": "diverged before (kept)"}
    assert out[-1] == ("sweep --dry-run: 6 cells: 1 done, 1 diverged, 4 to run; ~2 min for 2 of them at earlier "
                       "seeds' wall time, 2 without an earlier seed")
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()) == before


def test_order_seed_runs_every_model_s_first_seed_before_any_second(capsys):
    """--order seed: within a task, seed-major (a sweep stopped early leaves whole seeds to compare); the default
    keeps each model's seeds together. Both list the same cells."""
    grid = [*GRID, "--out", "/nonexistent-out", "--seeds", "0", "1", "--dry-run"]
    assert main(grid) == 0
    by_model = [ln.rsplit("  ", 1)[0].strip() for ln in capsys.readouterr().out.splitlines()[:-1]]
    assert main([*grid, "--order", "seed"]) == 0
    by_seed = [ln.rsplit("  ", 1)[0].strip() for ln in capsys.readouterr().out.splitlines()[:-1]]
    assert by_model == ["listops × gpt × seed 0", "listops × gpt × seed 1",
                        "listops × wavelet × seed 0", "listops × wavelet × seed 1"]
    assert by_seed == ["listops × gpt × seed 0", "listops × wavelet × seed 0",
                       "listops × gpt × seed 1", "listops × wavelet × seed 1"]


def test_the_data_line_is_said_once_per_task_and_source(monkeypatch):
    """Two task configurations with one source (Image's encoders and decoders differ in pixel0_is_pad only)."""
    from lra_wavelet import config as C
    from lra_wavelet import sweep

    monkeypatch.setattr(TASKS.get("listops"), "which_source", lambda self: "generated", raising=False)
    cells = [sweep.Cell("listops", "gpt", 0, C.resolve("listops", "gpt", sets=(f"task.max_len={n}",)).to_dict())
             for n in (64, 128)]
    said = []
    sweep.check_data(cells, log=said.append)
    assert said == ["data: listops from generated"]
