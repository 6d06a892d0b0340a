"""Every registered task × the baseline model trains a few steps through the one loop.

Data comes from a prepared folder (the format of `prepare --export`) holding random tokens with the
task's own shapes, vocabulary and padding, so this covers the model / trainer side of every task; the
loaders are tested on their official formats in their own test files.
"""

import json

import numpy as np
import pandas as pd
import pytest

from lra_wavelet import config as C
from lra_wavelet import train as T
from lra_wavelet.registry import TASKS

TINY = ("model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.head_dim=16",
        "train.batch_size=4", "train.max_steps=3", "train.eval_every=3", "train.warmup_steps=1",
        "train.eval_batches=2", "device=cpu")


def prepared(task, d, rng):
    arrays, kinds = {}, {}
    for split in ("train", "val", "test"):
        if task.kind == "lm":
            arrays[f"{split}_tokens"] = rng.integers(0, task.vocab_size, 400).astype(np.uint16)
            kinds[split] = "stream"
            continue
        shape = (12, 2, 48) if task.kind == "retrieve" else (12, 48)
        x = rng.integers(1, task.vocab_size, shape)
        if task.pad_id is not None:
            x[..., 40:] = task.pad_id  # trailing padding
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x.astype(np.uint16), rng.integers(0, task.n_classes, 12)
        kinds[split] = "array"
    d.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        np.save(d / f"{name}.npy", a)
    (d / "meta.json").write_text(json.dumps({"task": task.name, "version": task.version,
                                             "data_source": "generated", "splits": kinds}))


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_trains_with_the_baseline(name, tmp_path):
    model = "gpt"
    seq = ("task.seq_len=32",) if "seq_len" in {f for f in C.resolve(name, model).task.__dataclass_fields__} else ()
    cfg = C.resolve(name, model, sets=TINY + seq + (f"out={tmp_path / 'runs'}",))
    task = TASKS.get(name)(cfg.task)
    prepared(task, tmp_path / "prep", np.random.default_rng(0))
    cfg = C.resolve(name, model, sets=TINY + seq + (f"out={tmp_path / 'runs'}", f"task.prepared={tmp_path / 'prep'}"))
    out = T.train(cfg, progress=False)
    df = pd.read_csv(out.run_dir / "result.csv")
    assert out.status == "ok" and set(df.split) == {"val", "test"} and np.isfinite(df.value).all()
    metric = "bits_per_token" if task.kind == "lm" else "accuracy"
    assert metric in set(df.metric)
