"""train.logger: curves also in TensorBoard event files (read back here) or W&B; the tidy files stay the truth."""

import json
import sys

import pytest

from lra_wavelet import config
from lra_wavelet.cli import main

from conftest import TINY_LISTOPS

TINY = [a for s in TINY_LISTOPS for a in ("--set", s)]
RUN = ["run", "--task", "listops", "--model", "gpt", "--device", "cpu", "--no-progress", *TINY,
       "--set", "train.max_steps=4", "--set", "train.eval_every=2"]


def test_tensorboard_event_files_hold_the_curves_of_metrics_jsonl(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main([*RUN, "--out", str(tmp_path), "--set", "train.logger=tensorboard"]) == 0
    (metrics,) = tmp_path.rglob("metrics.jsonl")
    recs = [json.loads(ln) for ln in metrics.read_text().splitlines()]
    events = EventAccumulator(str(metrics.parent / "tensorboard"))
    events.Reload()
    for split, metric in (("train", "loss"), ("train", "lr"), ("val", "accuracy"), ("val", "loss")):
        want = [(r["step"], r[metric]) for r in recs if r["split"] == split]
        got = [(e.step, e.value) for e in events.Scalars(f"{split}/{metric}")]
        assert [s for s, _ in got] == [s for s, _ in want] and len(want) == 2
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)  # stored as float32


def test_the_logger_does_not_change_the_run_id():
    sets = (*TINY_LISTOPS,)
    plain = config.resolve("listops", "gpt", sets=sets)
    logged = config.resolve("listops", "gpt", sets=(*sets, "train.logger=tensorboard"))
    assert logged.train.logger == "tensorboard" and logged.hash == plain.hash


def test_wandb_missing_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    assert main([*RUN, "--out", str(tmp_path), "--set", "train.logger=wandb"]) == 2
    err = capsys.readouterr().err
    assert "train.logger=wandb needs the wandb package: pip install 'lra_wavelet[wandb]'" in err
    assert err.count("\n") == 1
    assert main([*RUN, "--out", str(tmp_path), "--set", "train.logger=tb"]) == 2
    assert "expected one of none, tensorboard, wandb" in capsys.readouterr().err
