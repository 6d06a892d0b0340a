import json
import math

import pandas as pd
import pytest

from lra_wavelet import config as C
from lra_wavelet import train as T
from lra_wavelet.errors import UserError
from lra_wavelet.results import SCHEMA

from conftest import TINY_LISTOPS, cli


def tiny(tmp_path, model="wavelet", *extra):
    return C.resolve("listops", model, sets=tuple(TINY_LISTOPS) + (f"out={tmp_path}", "device=cpu") + extra)


def rows(run_dir):
    return pd.read_csv(run_dir / "result.csv")


def test_rows_follow_the_schema_and_are_complete(tmp_path):
    out = T.train(tiny(tmp_path), progress=False)
    df = rows(out.run_dir)
    assert list(df.columns) == SCHEMA
    assert set(zip(df.split, df.metric)) >= {("val", "accuracy"), ("test", "accuracy"), ("test", "loss")}
    assert (df.status == "ok").all() and (df.data_source == "generated").all()
    assert (df.step == 12).all() and df.n_params.iloc[0] > 0
    assert not list(out.run_dir.glob("*.tmp")) and not list(out.run_dir.glob(".*.tmp"))
    env = json.loads((out.run_dir / "env.json").read_text())
    assert {"git_sha", "torch", "device", "package_version"} <= set(env)
    curve = [json.loads(ln) for ln in (out.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in curve if r["split"] == "val"] == [4, 8, 12]


def test_the_curve_records_the_gradient_norm_at_each_log_step(tmp_path):
    """Every train point of metrics.jsonl carries the step's global gradient norm (before clipping), as
    clip_grad_norm_ measures it: what shows a spike before a collapse."""
    import torch

    out = T.train(tiny(tmp_path), progress=False)
    train = [json.loads(ln) for ln in (out.run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r["split"] == "train"]
    assert train and all(isinstance(r["grad_norm"], float) and r["grad_norm"] > 0 for r in train)
    clipped = T.train(tiny(tmp_path / "clip", "wavelet", "train.grad_clip=1e-4"), progress=False)  # clip's own norm
    points = [json.loads(ln) for ln in (clipped.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["grad_norm"] > 1e-4 for r in points if r["split"] == "train")  # before clipping, not after
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model(torch.randn(5, 3)).square().sum().backward()
    expect = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    assert float(T.grad_norm(model)) == pytest.approx(float(expect), rel=1e-6)


def test_resume_after_a_kill_gives_the_same_final_metrics(tmp_path):
    """A hard exit after step 6 (checkpoint at step 4) in the middle of writing a metrics.jsonl line, the
    folder's curve then replaced by another attempt's (a stale point), then --resume: the checkpoint's own
    curve is restored, and the curve and the rows are those of an uninterrupted run."""
    ref = T.train(tiny(tmp_path / "a", "wavelet", "model.dropout=0.1"), progress=False)
    args = ["run", "--task", "listops", "--model", "wavelet", "--out", str(tmp_path / "b"), "--device", "cpu",
            "--no-progress"] + [a for s in TINY_LISTOPS for a in ("--set", s)] + ["--set", "model.dropout=0.1"]
    killed = cli(*args, env={T.CRASH_ENV: "6"}, check=False)
    assert killed.returncode == 137
    run_dir = tmp_path / "b" / ref.run_dir.relative_to(tmp_path / "a")
    assert (run_dir / "checkpoint.pt").is_file() and not (run_dir / "result.csv").exists()  # no half rows
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "split": "tr')  # killed mid-write
    stale = '{"step": 2, "split": "train", "loss": 9.9}\n'  # e.g. an older copy of the folder put back
    (run_dir / "metrics.jsonl").write_text(stale + (run_dir / "metrics.jsonl").read_text())
    cfg = tiny(tmp_path / "b", "wavelet", "model.dropout=0.1")
    with pytest.raises(UserError, match="--resume"):  # refuses to clobber an unfinished run
        T.train(cfg, progress=False)
    T.train(cfg, resume=True, progress=False)
    a, b = rows(ref.run_dir), rows(run_dir)
    pd.testing.assert_series_equal(a.value, b.value)
    measured = lambda d: [{k: v for k, v in json.loads(ln).items() if k not in ("wall_time_s", "tokens_per_s")}
                          for ln in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert measured(run_dir) == measured(ref.run_dir)  # every point once, the torn one gone


def test_same_seed_same_numbers_and_saved_config_repeats_the_run(tmp_path):
    a = T.train(tiny(tmp_path / "a"), progress=False)
    cfg = C.resolve(config_file=str(a.run_dir / "config.yaml"), sets=(f"out={tmp_path / 'b'}",))
    b = T.train(cfg, progress=False)
    assert b.run_dir.name == a.run_dir.name
    pd.testing.assert_series_equal(rows(a.run_dir).value, rows(b.run_dir).value)
    again = T.train(cfg, progress=False)  # finished: not run twice
    assert again.skipped


def test_nan_loss_stops_cleanly_as_diverged(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = T.loss_fn

    def poisoned(logits, y):
        calls["n"] += 1
        loss = real(logits, y)
        return loss * math.nan if calls["n"] == 5 else loss

    monkeypatch.setattr(T, "loss_fn", poisoned)
    out = T.train(tiny(tmp_path), progress=False)
    df = rows(out.run_dir)
    assert out.status == "diverged" and (df.status == "diverged").all() and "test" not in set(df.split)


@pytest.mark.parametrize("schedule", ["rsqrt", "cosine", "linear", "constant"])
def test_schedules_warm_up_to_the_peak(schedule):
    t = C.TrainConfig(schedule=schedule, warmup_steps=10, max_steps=100, lr=1.0)
    f = T.lr_lambda(t)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    if schedule != "constant":
        assert f(99) < f(50) < 1.0


def benchmark_cosine(step: int, w: int, n: int) -> float:
    """google-research/long-range-arena cd31e5c, train_utils.create_learning_rate_scheduler with factors
    'constant * linear_warmup * cosine_decay' and steps_per_cycle = num_train_steps, restated (constant 1)."""
    ret = min(1.0, step / w)
    progress = max(0.0, (step - w) / float(n))
    return ret * max(0.0, 0.5 * (1.0 + math.cos(math.pi * (progress % 1.0))))


def test_cosine_cycle_max_steps_is_the_benchmarks_cosine_decay():
    """train.cosine_cycle=max_steps: the benchmark's formula at every step (at its step + 1: our counter is one
    ahead), ending above 0 at 0.5 (1 + cos(pi (n - w) / n)); the default after_warmup ends at 0 or the floor."""
    w, n = 5, 50
    f = T.lr_lambda(C.TrainConfig(schedule="cosine", cosine_cycle="max_steps", warmup_steps=w, max_steps=n))
    for step in range(n):
        assert f(step) == pytest.approx(benchmark_cosine(step + 1, w, n), abs=1e-12), step
    end = 0.5 * (1 + math.cos(math.pi * (n - w) / n))
    assert f(n - 1) > 0 and abs(f(n - 1) - end) < 1e-9
    default = T.lr_lambda(C.TrainConfig(schedule="cosine", warmup_steps=w, max_steps=n))
    assert C.TrainConfig().cosine_cycle == "after_warmup"
    assert default(n - 1) == pytest.approx(0.0, abs=1e-12) and default(w - 1) == pytest.approx(1.0)
    for step in range(w, n):  # the default's own rule, unchanged: decay over the n - w steps after warm-up
        assert default(step) == pytest.approx(0.5 * (1 + math.cos(math.pi * (step + 1 - w) / (n - w))))
    floored = T.lr_lambda(C.TrainConfig(schedule="cosine", warmup_steps=w, max_steps=n, min_lr_ratio=0.1))
    assert floored(n - 1) == pytest.approx(0.1)
    bench_floored = T.lr_lambda(C.TrainConfig(schedule="cosine", cosine_cycle="max_steps", warmup_steps=w,
                                              max_steps=n, min_lr_ratio=0.1))
    assert bench_floored(n - 1) == pytest.approx(0.1 + 0.9 * end)
    # without warm-up the last step reaches progress 1: clamped to the floor (the benchmark's % 1 would restart)
    nowarm = T.lr_lambda(C.TrainConfig(schedule="cosine", cosine_cycle="max_steps", warmup_steps=0, max_steps=n))
    assert nowarm(n - 1) == pytest.approx(0.0, abs=1e-12) and nowarm(n) == pytest.approx(0.0, abs=1e-12)
    # only the cosine reads it
    for schedule in ("linear", "rsqrt", "constant"):
        a, b = (T.lr_lambda(C.TrainConfig(schedule=schedule, cosine_cycle=c, warmup_steps=w, max_steps=n))
                for c in ("after_warmup", "max_steps"))
        assert [a(s) for s in range(n)] == [b(s) for s in range(n)], schedule


@pytest.mark.parametrize("model", ["transformer", "gpt", "wavelet"])
def test_trimming_padding_is_exact(model):
    """Trailing all-padding columns are cut (to a multiple of 128), and pad-invariant models give the same logits."""
    import numpy as np
    import torch

    from lra_wavelet.registry import MODELS

    x = np.zeros((2, 512), dtype=np.int64)
    x[0, :130], x[1, :5] = 3, 4
    x[0, 7] = 5
    trimmed = T.trim_padding({"x": x, "y": np.zeros(2)}, 0)
    assert trimmed["x"].shape == (2, 256)
    bucketed = T.trim_padding({"x": x, "y": np.zeros(2)}, 0, buckets=3)  # train.length_buckets
    assert T.bucket_lengths(512, 3) == [176, 344, 512] and bucketed["x"].shape == (2, 176)
    task = type("Task", (), dict(kind="classify", seq_len=512, vocab_size=8, n_classes=3, pad_id=0))()
    cls = MODELS.get(model)
    assert cls.pad_invariant
    torch.manual_seed(0)
    net = cls(task, cls.Config(name=model, n_layers=2, d_model=16, n_heads=2, d_ff=32, dropout=0.0)).eval()
    with torch.no_grad():
        full = net({"x": torch.from_numpy(x)})
        cut = net({"x": torch.from_numpy(trimmed["x"])})
        bucket = net({"x": torch.from_numpy(bucketed["x"])})
    torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bucket, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model,sets,marked", [("wavelet-learnable", (), "taps"),
                                               ("wavspa", ("model.wavelet=ortho",), "angles")])
def test_wavelet_filters_get_no_weight_decay(model, sets, marked):
    """Weight decay applies to weight matrices only: learnable wavelet filters would be pulled off their init."""
    from lra_wavelet.data import base  # noqa: F401  (registers tasks)
    from lra_wavelet.registry import MODELS

    cfg = C.resolve("listops", model, "quick", sets=("train.weight_decay=0.1",) + sets)
    task = type("Task", (), dict(kind="classify", seq_len=64, vocab_size=20, n_classes=10, pad_id=0))()
    net = MODELS.get(model)(task, cfg.model)
    opt = T.make_optimizer(net, cfg.train)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = [n for n, p in net.named_parameters() if n.endswith(marked)]
    assert names and not any(id(dict(net.named_parameters())[n]) in decayed for n in names)
    assert any(id(p) in decayed for n, p in net.named_parameters() if n.endswith("weight") and p.dim() == 2)


def test_compiled_runs_get_one_static_length():
    """With train.compile and no train.length_buckets, batches keep the full length (one shape, no recompiles);
    eager runs trim to multiples of 128; an explicit train.length_buckets wins in both."""
    from lra_wavelet.config import TrainConfig

    assert T.length_buckets(TrainConfig(compile=True)) == 1 and T.bucket_lengths(2000, 1) == [2000]
    assert T.length_buckets(TrainConfig()) == 0
    assert T.length_buckets(TrainConfig(compile=True, length_buckets=4)) == 4


def test_compile_is_on_by_default_only_for_classification_on_cuda(tmp_path):
    """train.compile unset (auto) is resolved by build: off on the CPU, on for CUDA classification, off for CUDA
    language modelling; the config hash is the same either way, and `auto` reads as unset."""
    import torch

    from lra_wavelet import config as C

    kind = lambda k: type("Task", (), {"kind": k})()  # noqa: E731
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert T.compile_by_default(cuda, kind("classify")) and T.compile_by_default(cuda, kind("retrieve"))
    assert not T.compile_by_default(cuda, kind("lm")) and not T.compile_by_default(cpu, kind("classify"))
    cfg = tiny(tmp_path, "wavelet")
    assert cfg.train.compile is None
    p = T.build(cfg)
    assert p.cfg.train.compile is False and p.net is p.model and p.cfg.hash == cfg.hash
    assert C.resolve("listops", "wavelet", sets=("train.compile=true",)).hash == C.resolve("listops", "wavelet").hash
    assert C.resolve("listops", "wavelet", sets=("train.compile=auto",)).train.compile is None


def test_a_compiled_run_resets_dynamo_keeps_auto_in_its_config_and_says_it_compiled(tmp_path, monkeypatch):
    """A sweep trains its cells in one process and every model's forward is one code object, so each compiled
    run resets dynamo before and after its loop (or earlier cells' graphs would use up its recompile limit and
    later cells would run eagerly without a word); building alone does not (a benchmark may hold several compiled models).
    config.yaml keeps train.compile as given (auto), env.json says what the run did. torch.compile is replaced
    by the identity here: compiling costs half a minute on the CPU, and only the plumbing is tested."""
    import torch
    import yaml

    import torch._dynamo

    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)
    monkeypatch.setattr(T, "compile_by_default", lambda device, task: True)  # as on CUDA
    T.build(tiny(tmp_path / "a", "gpt"))
    assert resets == []
    out = T.train(tiny(tmp_path / "b", "wavelet"), progress=False)
    assert resets == [1, 1] and out.status == "ok"  # on entering the loop and on leaving it
    assert yaml.safe_load((out.run_dir / "config.yaml").read_text())["train"]["compile"] is None
    assert json.loads((out.run_dir / "env.json").read_text())["compiled"] is True


def test_compiled_evaluation_fills_a_short_last_group_and_drops_the_copies(tmp_path):
    """Evaluating as a compiled run does (one shape per pass): the model only ever sees full groups, and the
    metrics equal those of plain groups."""
    import dataclasses

    cfg = tiny(tmp_path, "wavelet", "train.eval_batch_size=5")
    p = T.build(cfg)
    seen = []
    real = p.model.forward
    p.model.forward = lambda batch: (seen.append(len(batch["x"])), real(batch))[1]
    plain = T.evaluate(p.model, p.splits["val"], p.task, cfg, p.device, p.amp, trim=p.trim, max_batches=0)
    assert set(seen) != {5}  # the split's size is not a multiple of 5: a short last group
    seen.clear()
    compiled = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=True))
    filled = T.evaluate(p.model, p.splits["val"], p.task, compiled, p.device, p.amp, trim=p.trim, max_batches=0)
    assert set(seen) == {5}
    assert filled == pytest.approx(plain, rel=1e-6)


def test_env_records_a_content_digest_of_the_runs_data(tmp_path):
    """env.json `data`: the source, the task version, the examples per split and a digest of the arrays'
    content: the same for the same data wherever it was built (a prepared export carries it), another for
    other data."""
    def data(out, *sets):
        run = T.train(tiny(out, "gpt", "train.max_steps=2", "train.eval_every=2", *sets), progress=False)
        return json.loads((run.run_dir / "env.json").read_text())["data"]

    a = data(tmp_path / "a")
    assert a["data_source"] == "generated" and a["examples"] == {"train": 96, "val": 24, "test": 24}
    assert len(a["arrays_sha256"]) == 16
    assert data(tmp_path / "b", "seed=5")["arrays_sha256"] == a["arrays_sha256"]  # the model's seed: same data
    assert data(tmp_path / "c", "task.gen_seed=7")["arrays_sha256"] != a["arrays_sha256"]


def test_eval_drop_last_evaluates_whole_batches_only_as_the_benchmark(tmp_path):
    """train.eval_drop_last: validation and test see only whole batches of train.batch_size (the benchmark's
    drop_remainder), whatever the evaluation grouping; the same metrics as evaluating exactly those examples.
    Off (the default) it leaves the hash of earlier runs unchanged; a split smaller than a batch is refused."""
    import dataclasses

    from lra_wavelet.errors import UserError

    cfg = tiny(tmp_path, "wavelet", "train.eval_batch_size=5", "train.batch_size=7")
    p = T.build(cfg)
    val, bs = p.splits["val"], cfg.train.batch_size
    whole = len(val) // bs * bs
    assert 0 < whole < len(val)  # the tiny split ends in a partial batch
    seen = []
    real = p.model.forward
    p.model.forward = lambda batch: (seen.append(len(batch["x"])), real(batch))[1]
    drop = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_drop_last=True))
    dropped = T.evaluate(p.model, val, p.task, drop, p.device, p.amp, trim=p.trim, max_batches=0)
    assert sum(seen) == whole
    cut = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_batches=whole // bs))
    assert dropped == pytest.approx(T.evaluate(p.model, val, p.task, cut, p.device, p.amp, trim=p.trim), rel=1e-6)
    assert cfg.hash == C.resolve("listops", "wavelet", sets=tuple(TINY_LISTOPS) + ("train.eval_drop_last=false",
                                 "train.eval_batch_size=5", "train.batch_size=7", "device=cpu",
                                 f"out={tmp_path}")).hash != drop.hash
    big = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_drop_last=True, batch_size=len(val) + 1))
    with pytest.raises(UserError, match="train.eval_drop_last: an evaluation split holds"):
        T.evaluate(p.model, val, p.task, big, p.device, p.amp, trim=p.trim, max_batches=0)


def test_a_resume_restores_the_checkpoints_curve_or_trims_the_folders(tmp_path):
    """prepare_run_dir on resume at step 4: the checkpoint's own curve replaces the folder's file; a checkpoint
    from before curves were kept in them (None) leaves the folder's file, trimmed to the checkpoint's step."""
    p = T.build(tiny(tmp_path, "wavelet"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lines = "".join(json.dumps({"step": s, "split": "train", "loss": 1.0}) + "\n" for s in range(2, 9, 2))
    for curve, expected in ((lines.replace("1.0", "2.0"), [2.0, 2.0]), (None, [1.0, 1.0])):
        (run_dir / "metrics.jsonl").write_text(lines)
        p.resumed_curve = curve
        T.prepare_run_dir(p, run_dir, 4, run_dir / "checkpoint.pt")
        kept = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in kept] == [2, 4] and [r["loss"] for r in kept] == expected


@pytest.mark.parametrize("part", ["forward", "backward"])
def test_auto_compile_falls_back_to_eager_when_the_compiler_fails_and_says_so(tmp_path, monkeypatch, part):
    """A compiler that raises on the forward or (compiled lazily, at the first backward) the backward graph:
    with train.compile auto the run still finishes (eagerly, said in the log, graphs_compiled in env.json);
    with train.compile=true the failure is the run's."""
    import torch
    from torch._dynamo.backends.common import aot_autograd

    def broken(gm, inputs):
        raise RuntimeError("compiler failure (simulated)")

    works = lambda gm, inputs: gm  # noqa: E731
    backend = aot_autograd(fw_compiler=broken if part == "forward" else works,
                           bw_compiler=broken if part == "backward" else works)
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real(model, backend=backend))
    monkeypatch.setattr(T, "compile_by_default", lambda device, task: True)
    said = []
    out = T.train(tiny(tmp_path / "auto", "gpt"), progress=False, log=said.append)
    assert out.status == "ok"
    graphs = json.loads((out.run_dir / "env.json").read_text())["graphs_compiled"]
    assert (graphs == 0) == any("nothing was compiled" in s for s in said)
    said.clear()
    with pytest.raises(Exception, match="simulated"):
        T.train(tiny(tmp_path / "on", "gpt", "train.compile=true"), progress=False, log=said.append)
    assert not torch._dynamo.config.suppress_errors and not any("nothing was compiled" in s for s in said)


def test_a_resume_restores_the_best_weights_of_its_checkpoint(tmp_path):
    """train.test_on=best: best.pt written after the checkpoint (by the attempt that was then interrupted) is
    replaced on resume by the best weights as they were when the checkpoint was saved."""
    import torch

    p = T.build(tiny(tmp_path, "wavelet", "train.test_on=best"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    then = {k: v.clone() for k, v in p.model.state_dict().items()}
    torch.save(then, run_dir / "best.pt")
    T.save_checkpoint(p, run_dir / "checkpoint.pt", 4, {"step": 4, "value": 0.5, "metrics": {}}, 1.0)
    torch.save({k: v + 1 for k, v in then.items()}, run_dir / "best.pt")  # a later best of the lost attempt
    T.load_checkpoint(p, run_dir / "checkpoint.pt")
    T.prepare_run_dir(p, run_dir, 4, run_dir / "checkpoint.pt")
    restored = torch.load(run_dir / "best.pt", weights_only=True)
    assert all(torch.equal(restored[k], then[k]) for k in then)


def test_eval_drop_last_with_a_split_smaller_than_a_batch_is_refused_before_training(tmp_path):
    """train.eval_drop_last with an evaluation split smaller than one batch: the one-line error at build, not after
    train.eval_every steps of training."""
    from lra_wavelet.errors import UserError

    with pytest.raises(UserError, match=r"train.eval_drop_last: the val split holds 24 examples, fewer than one batch"):
        T.build(tiny(tmp_path, "gpt", "train.eval_drop_last=true", "train.batch_size=32"))
    T.build(tiny(tmp_path, "gpt", "train.eval_drop_last=true", "train.batch_size=24"))  # one whole batch: fine
    import types  # a language model's windows are not the benchmark's batches: refused, not silently ignored

    lm = types.SimpleNamespace(kind="lm", name="text8", seq_len=16, vocab_size=11, n_classes=0, pad_id=None)
    with pytest.raises(UserError, match="train.eval_drop_last: task 'text8' is a language model"):
        T.build(tiny(tmp_path, "gpt", "train.eval_drop_last=true"), task=lm, splits={})


def test_each_run_sets_its_own_float32_matmul_precision_and_records_it(tmp_path):
    """train.matmul_precision is process-wide torch state: every build sets it (so one cell of a sweep never
    inherits the last one's), env.json records it, and only a non-default value changes the config hash (runs
    made before the key existed keep theirs)."""
    import torch

    before = torch.get_float32_matmul_precision()
    try:
        high = tiny(tmp_path, "wavelet", "train.matmul_precision=high")
        p = T.build(high)
        assert torch.get_float32_matmul_precision() == "high"
        T.prepare_run_dir(p, tmp_path, 0, None)  # what a run writes before its first step
        assert json.loads((tmp_path / "env.json").read_text())["matmul_precision"] == "high"
        T.build(tiny(tmp_path))
        assert torch.get_float32_matmul_precision() == "highest"
        assert tiny(tmp_path, "wavelet", "train.matmul_precision=highest").hash == tiny(tmp_path).hash != high.hash
    finally:
        torch.set_float32_matmul_precision(before)
    with pytest.raises(UserError, match="train.matmul_precision: expected one of highest, high, got 'medium'"):
        tiny(tmp_path, "wavelet", "train.matmul_precision=medium")
