"""train.length_groups: a batch's rows sorted by length into equal micro-batches, each trimmed on its own. For a
pad-invariant model the run's numbers are those of whole batches (no dropout: up to float rounding), in training
and in evaluation (a short last evaluation batch included); any other model keeps whole batches; what cannot be
meant is refused before a step is spent."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from lra_wavelet import config as C
from lra_wavelet import stacked as S
from lra_wavelet import train as T
from lra_wavelet.errors import UserError

from test_train import tiny

BUCKETS = ("train.length_buckets=4",)  # the tiny task's length is 64: trimmed to 16, 32, 48 or 64


def padded(lengths, width, pad=0):
    x = np.full((len(lengths), width), pad)
    for i, n in enumerate(lengths):
        x[i, :n] = 7
    return x


def test_rows_are_grouped_shortest_first_and_each_group_is_trimmed_to_its_own_bucket():
    lengths = [5, 60, 12, 30, 64, 3, 7, 40]
    batch = {"x": padded(lengths, 64), "y": np.arange(8)}
    assert list(T.row_lengths(batch["x"], 0)) == lengths
    groups = T.group_by_length(batch, 0, 2, buckets=4)
    assert [sorted(idx.tolist()) for idx, _ in groups] == [[0, 2, 5, 6], [1, 3, 4, 7]]
    assert [mb["x"].shape for _, mb in groups] == [(4, 16), (4, 64)]
    for idx, mb in groups:
        assert (mb["y"] == batch["y"][idx]).all() and (mb["x"] == batch["x"][idx, :mb["x"].shape[1]]).all()
    # retrieval's rows hold two documents: a row is as long as its longer one
    pair = np.stack([padded([3, 20], 32), padded([25, 2], 32)], axis=1)
    assert list(T.row_lengths(pair, 0)) == [25, 20]


def run(tmp_path, name, model, *extra):
    cfg = tiny(tmp_path / name, model, "train.eval_batch_size=16", *BUCKETS, *extra)  # val 24 = 16 + a short 8
    out = T.train(cfg, progress=False)
    assert out.status == "ok"
    env = json.loads((out.run_dir / "env.json").read_text())
    curve = [json.loads(ln) for ln in (out.run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [{k: v for k, v in r.items() if k not in ("wall_time_s", "tokens_per_s", "grad_norm")} for r in curve]
    return pd.read_csv(out.run_dir / "result.csv").set_index(["split", "metric"]).value, curve, env


@pytest.mark.parametrize("model", ["transformer", "wavelet"])
def test_a_grouped_run_of_a_pad_invariant_model_gives_the_numbers_of_whole_batches(tmp_path, model):
    whole, whole_curve, env1 = run(tmp_path, "whole", model)
    grouped, grouped_curve, env4 = run(tmp_path, "grouped", model, "train.length_groups=4")
    assert (env1["length_groups"], env4["length_groups"]) == (1, 4)
    mbs = T.host_batch(T.build(tiny(tmp_path / "x", model, *BUCKETS, "train.length_groups=4")), 0)
    widths = [mb["x"].shape[1] for mb in mbs]
    assert [len(mb["y"]) for mb in mbs] == [2] * 4 and widths == sorted(widths) and widths[0] < widths[-1]
    pd.testing.assert_series_equal(whole, grouped, rtol=1e-4)
    assert len(whole_curve) == len(grouped_curve)
    for a, b in zip(whole_curve, grouped_curve):
        assert a.keys() == b.keys()
        for k in a:
            same = a[k] == b[k] if isinstance(a[k], str) else a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6)
            assert same, (k, a["step"], a["split"])


def test_a_model_that_is_not_pad_invariant_keeps_whole_batches(tmp_path):
    whole, _, _ = run(tmp_path, "whole", "fnet")
    grouped, _, env = run(tmp_path, "grouped", "fnet", "train.length_groups=4")
    assert env["length_groups"] == 1
    pd.testing.assert_series_equal(whole, grouped)


def test_length_groups_is_a_speed_switch_and_what_it_cannot_mean_is_refused(tmp_path):
    ref = C.resolve("listops", "transformer")
    assert C.resolve("listops", "transformer", sets=("train.length_groups=4",)).hash == ref.hash
    with pytest.raises(UserError, match="train.length_groups must be >= 1"):
        C.resolve("listops", "transformer", sets=("train.length_groups=0",))
    with pytest.raises(UserError, match="train.length_groups=2 and train.grad_accum=2: both split"):
        T.build(tiny(tmp_path, "transformer", "train.length_groups=2", "train.grad_accum=2"))
    with pytest.raises(UserError, match=r"train.batch_size per process \(8\) must be divisible by it"):
        T.build(tiny(tmp_path, "transformer", "train.length_groups=3"))
    with pytest.raises(UserError, match=r"the evaluation batch per process \(12\) must be divisible"):
        T.build(tiny(tmp_path, "transformer", "train.length_groups=8", "train.eval_batch_size=12"))
    cfgs = [tiny(tmp_path, "transformer", f"seed={s}", "train.length_groups=2") for s in (0, 1)]
    with pytest.raises(UserError, match="not with stacked seeds"):
        S.check_stackable(cfgs)


def test_a_compiled_grouped_run_takes_a_few_static_lengths():
    t = C.resolve("listops", "transformer").train
    with_ = lambda **kw: T.length_buckets(dataclasses.replace(t, **kw))  # noqa: E731
    assert with_(compile=False, length_groups=4) == 0  # eager: multiples of 128
    assert with_(compile=True) == 1  # one static shape: the full length
    assert with_(compile=True, length_groups=4) == T.GROUPED_BUCKETS
    assert with_(compile=True, length_groups=4, length_buckets=3) == 3
