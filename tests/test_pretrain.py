"""Pre-training: a tiny LM lowers its loss on each corpus (tiny data in the real formats, written here),
and the steps-to-match measurement on synthetic curves."""

import json

import numpy as np
import pytest

from lra_wavelet import config as C
from lra_wavelet import train as T
from lra_wavelet.evaluate import steps_to_match

TINY = ("model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.d_ff=64", "task.seq_len=32",
        "train.batch_size=8", "train.max_steps=40", "train.eval_every=10", "train.warmup_steps=4",
        "train.lr=1e-2", "train.eval_batches=4", "device=cpu")


def val_losses(run_dir):
    recs = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if r["split"] == "val"]


def lowers_loss(task, data_dir, tmp_path, model="gpt"):
    cfg = C.resolve(task, model, sets=TINY + (f"task.data_dir={data_dir}", f"out={tmp_path / 'runs'}"))
    out = T.train(cfg, progress=False)
    losses = val_losses(out.run_dir)
    uniform = np.log(T.TASKS.get(task)(cfg.task).vocab_size)  # an untrained model's loss, about ln V
    assert out.status == "ok" and losses[-1] < losses[0] and losses[-1] < 0.7 * uniform, losses
    return out


def test_text8(tmp_path):
    words = "the quick brown fox jumps over the lazy dog and then it rests ".split()
    rng = np.random.default_rng(0)
    (tmp_path / "text8").write_text(" ".join(rng.choice(words, 12000)))
    lowers_loss("text8", tmp_path, tmp_path, "wavelet")


def test_audio(tmp_path):
    sf = pytest.importorskip("soundfile")
    (tmp_path / "audio").mkdir()
    t = np.arange(16000) / 16000
    for i in range(10):
        sf.write(tmp_path / "audio" / f"tone{i}.wav", 0.6 * np.sin(2 * np.pi * (200 + 20 * i) * t), 16000)
    lowers_loss("audio", tmp_path, tmp_path)


def test_music(tmp_path):
    from test_corpora import _midi, _notes_events

    root = tmp_path / "maestro-v3.0.0"
    root.mkdir()
    rows = ["canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration"]
    for i in range(8):
        notes = [(k * 240, k * 240 + 200, 60 + (k % 8), 80) for k in range(120)]  # a repeating scale
        _midi(root / f"p{i}.midi", _notes_events(notes))
        split = "train" if i < 6 else ("validation" if i == 6 else "test")
        rows.append(f"c,t{i},{split},2018,p{i}.midi,p{i}.wav,30")
    (root / "maestro-v3.0.0.csv").write_text("\n".join(rows) + "\n")
    lowers_loss("music", tmp_path, tmp_path)


def test_steps_to_match_on_synthetic_curves():
    steps = [100, 200, 300, 400]
    base = [3.0, 2.5, 2.2, 2.0]
    cand = [2.6, 2.1, 1.9, 1.8]  # reaches the baseline's final 2.0 at step 300
    r = steps_to_match(steps, base, steps, cand, base_wall=[10, 20, 30, 40], cand_wall=[11, 22, 33, 44])
    assert r["target"] == 2.0 and r["steps_to_match"] == 300
    assert r["speedup_steps"] == pytest.approx(400 / 300) and r["speedup_wall"] == pytest.approx(40 / 33)
    assert r["loss_gain"] == pytest.approx((2.0 - 1.8) / 2.0)
    never = steps_to_match(steps, base, steps, [3.1, 2.9, 2.7, 2.5])
    assert never["steps_to_match"] is None and never["speedup_steps"] is None and never["loss_gain"] < 0
    # unsorted input and a candidate evaluated on a different grid
    r = steps_to_match(steps[::-1], base[::-1], [50, 150, 250, 350, 450], [2.9, 2.4, 2.0, 1.9, 1.85])
    assert r["steps_to_match"] == 250 and r["cand_loss_at_base_final"] == 1.9


def test_report_flags_pooled_configurations_and_keeps_classification_out_of_the_pretraining_table():
    import pandas as pd

    from lra_wavelet import report

    def row(model, seed, value, task="listops"):
        return dict(task=task, model=model, split="test", metric="accuracy", value=value, status="ok",
                    data_source="generated", seed=seed)

    df = pd.DataFrame([row("gpt", 0, 0.3), row("gpt", 1, 0.4), row("wavelet", 0, 0.3), row("wavelet", 0, 0.5)])
    table, _ = report.lra_table(df)
    cells = dict(zip(table.Model, table.ListOps))
    assert "‡" not in cells["gpt"] and cells["wavelet"].endswith("‡")
    curves = pd.DataFrame([dict(run_id=f"r{m}", task="listops", model=m, seed=0, step=s, split="val", loss=1.0 / s,
                                accuracy=0.2, wall_time_s=s) for m in ("gpt", "wavelet") for s in (1, 2)])
    assert report.pretrain_table(curves, df).empty
