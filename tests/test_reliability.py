"""The trainer leaves rows that say what happened, one writer per run folder, memory checked before
training, resume that does what it says, and speed switches that change no number."""

import json
import math
import os
import socket
import subprocess

import pandas as pd
import pytest
import torch

from lra_wavelet import results
from lra_wavelet import train as T
from lra_wavelet.errors import UserError
from lra_wavelet.models.gpt import WaveletConfig, WaveletOp
from lra_wavelet.registry import MODELS

from test_train import rows, tiny


def poison_loss_at(monkeypatch, call: int):
    calls = {"n": 0}
    real = T.loss_fn

    def poisoned(logits, y):
        calls["n"] += 1
        loss = real(logits, y)
        return loss * math.nan if calls["n"] == call else loss

    monkeypatch.setattr(T, "loss_fn", poisoned)


@pytest.mark.parametrize("lazy", [False, True])
def test_divergence_before_the_first_evaluation_leaves_a_row_with_its_step(tmp_path, monkeypatch, lazy):
    """NaN in the second step: a 'diverged' row at step 1 (lazy: found at the log step, reported at its own step);
    the folder is not resumed into the same NaN."""
    poison_loss_at(monkeypatch, 2)
    cfg = tiny(tmp_path, "wavelet", f"train.lazy_metrics={lazy}")
    out = T.train(cfg, progress=False)
    df = rows(out.run_dir)
    assert out.status == "diverged" and (df.status == "diverged").all()
    loss = df[(df.split == "train") & (df.metric == "loss")]
    assert len(loss) == 1 and loss.step.item() == 1 and math.isnan(loss.value.item())
    again = T.train(cfg, resume=True, progress=False)
    assert again.status == "diverged" and again.skipped


def test_one_writer_per_run_folder_and_files_0644(tmp_path):
    cfg = tiny(tmp_path, "wavelet", "train.max_steps=4")
    _, run_dir = T.run_paths(cfg)
    run_dir.mkdir(parents=True)
    host = socket.gethostname()
    (run_dir / "lock").write_text(f"{os.getppid()} {host}\n")  # a live owner
    with pytest.raises(UserError, match=f"process {os.getppid()} on {host}"):
        T.train(cfg, progress=False)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run_dir / "lock").write_text(f"{dead.pid} {host}\n")  # killed -9 long ago: taken over
    (run_dir / "error.json").write_text("{}")  # a failure recorded by an earlier attempt
    lines = []
    out = T.train(cfg, log=lines.append)  # progress on, stderr not a terminal: plain step lines
    assert out.status == "ok" and not (run_dir / "lock").exists() and not (run_dir / "error.json").exists()
    assert [ln.split(":")[0] for ln in lines if ": loss" in ln] == ["step 2/4", "step 4/4"]
    for name in ("result.csv", "config.yaml", "env.json", "metrics.jsonl"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~results.UMASK, name


def test_memory_is_checked_before_training(tmp_path, monkeypatch):
    huge = tiny(tmp_path, "wavelet", "train.batch_size=1000000000")
    with pytest.raises(UserError, match=r"train.batch_size=1000000000 needs about .* free: use train.batch_size="):
        T.train(huge, progress=False)
    assert not T.run_paths(huge)[1].exists()  # nothing written
    cfg = tiny(tmp_path)
    est = T.estimate_memory(T.build(cfg))
    assert est["micro_batch"] == 8 and est["per_example"] > 0 and est["state"] > 0
    monkeypatch.setattr(T, "free_memory", lambda device: est["state"] + int(1.5 * est["per_example"] * 4.5))
    with pytest.raises(UserError, match=r"use train.batch_size=4, or train.grad_accum=2 "):
        T.train(cfg, progress=False)


def test_grad_accum_gives_the_update_of_one_batch():
    """Two micro-batches of 4 and one batch of 8: the same gradients and the same parameters after the step."""
    one = T.build(tiny("unused"))
    two = T.build(tiny("unused", "wavelet", "train.grad_accum=2"))
    batch = next(T.batches(one, 0))
    for p in (one, two):
        T.train_step(p, batch)
    for (name, a), b in zip(one.model.named_parameters(), two.model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7, msg=name)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_resume_refuses_what_it_cannot_mean(tmp_path):
    cfg = tiny(tmp_path, "wavelet", "train.max_steps=4")
    with pytest.raises(UserError, match="nothing to resume: no checkpoint in"):
        T.train(cfg, strict_resume=True, progress=False)
    with pytest.raises(UserError, match="--resume and --force contradict"):
        T.train(cfg, strict_resume=True, force=True, progress=False)
    T.train(cfg, progress=False)
    changed = tiny(tmp_path, "wavelet", "train.max_steps=4", "train.lr=1e-3")
    with pytest.raises(UserError, match=f"other configurations\\): {T.run_paths(cfg)[0]}"):
        T.train(changed, strict_resume=True, progress=False)
    cosine = tiny(tmp_path, "wavelet", "train.max_steps=4", "train.schedule=cosine")
    T.train(cosine, progress=False)
    longer = tiny(tmp_path, "wavelet", "train.max_steps=8", "train.schedule=cosine")
    with pytest.raises(UserError, match="decays over train.max_steps"):
        T.train(longer, strict_resume=True, progress=False)


def curve(run_dir):
    """The curve's measurements (not its timings)."""
    recs = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_time_s", "tokens_per_s")} for r in recs]


def test_more_steps_continue_a_finished_run_and_speed_switches_change_no_number(tmp_path):
    """rsqrt (independent of max_steps): 4 steps, then --resume with 8, equals 8 steps from the start; the
    continued runs use lazy metrics and prefetching, the reference neither."""
    ref = T.train(tiny(tmp_path / "ref", "wavelet", "train.max_steps=8"), progress=False)
    fast = ("train.lazy_metrics=true", "train.prefetch=2")
    short = T.train(tiny(tmp_path / "b", "wavelet", "train.max_steps=4", *fast), progress=False)
    cont = T.train(tiny(tmp_path / "b", "wavelet", "train.max_steps=8", *fast), strict_resume=True, progress=False)
    assert json.loads((cont.run_dir / "env.json").read_text())["continued_from"] == short.run_dir.name
    a, b = rows(ref.run_dir), rows(cont.run_dir)
    pd.testing.assert_frame_equal(a[["split", "metric", "value", "step"]], b[["split", "metric", "value", "step"]])
    ca, cb = curve(ref.run_dir), curve(cont.run_dir)
    assert [(r["step"], r["split"]) for r in ca] == [(r["step"], r["split"]) for r in cb]
    for ra, rb in zip(ca, cb):  # lazy sums the train loss in float32 on the device
        assert rb.pop("split") == ra.pop("split") and rb == pytest.approx(ra, rel=1e-6), (ra, rb)


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap of the CPU attention kernel: a loop
@pytest.mark.parametrize("model", MODELS.names())
def test_seeds_stacked_into_one_model_take_their_separate_steps(model):
    """Two seeds as one vmapped model (no dropout), for every registered model: at each of two steps the losses,
    and the gradients after each seed's own clipping (0.1: below every model's norm here), equal the seeds'
    separate runs'; unstack hands each seed its weights. (Gradients, not updated weights: Adam at eps 1e-9 turns
    rounding noise in a gradient that is zero analytically, as FNet's first LayerNorm has, into a +-lr step.)"""
    cfgs = [tiny("unused", model, f"seed={s}", "train.grad_clip=0.1") for s in (0, 1)]
    alone = [T.build(c) for c in cfgs]
    stack = T.stack_seeds([T.build(c, splits=alone[0].splits) for c in cfgs])
    data = T.batches(stack.parts[0], 0, make=lambda s: T.stacked_host_batch(stack, s))
    for step in range(2):
        losses, _ = T.stacked_step(stack, next(data))
        for i, p in enumerate(alone):
            loss, _ = T.train_step(p, next(T.batches(p, step)))
            torch.testing.assert_close(losses[i], loss.detach(), rtol=1e-5, atol=1e-6)
            for name, q in p.model.named_parameters():
                torch.testing.assert_close(stack.params[name].grad[i], q.grad, rtol=1e-4, atol=1e-6,
                                           msg=lambda m: f"{name}, step {step}: {m}")
    T.unstack(stack)
    for i, q in enumerate(stack.parts):
        for name, b in q.model.named_parameters():
            assert torch.equal(b, stack.params[name][i]), name


def test_vmapped_wavelet_op_takes_the_prefix_sums_where_the_kernel_was_chosen():
    """impl 'triton' picks the fused kernel for a plain tensor, but under vmap (stacked seeds) the prefix sums,
    which vmap can batch (the kernel's autograd.Function cannot): the same values and gradients as impl 'prefix'.
    The impl is set after construction, since the config refuses 'triton' where Triton does not import."""
    cfg = WaveletConfig(d_model=8, impl="prefix")
    ref, op = WaveletOp(cfg, context=16), WaveletOp(cfg, context=16)
    op.impl = "triton"
    x = torch.randn(3, 2, 16, 8, requires_grad=True)  # 3 seeds of (B, T, E)
    assert op.use_fused(x[0])
    g = torch.randn(3, 2, 16, 8)
    want = torch.stack([ref(x[i]) for i in range(3)])
    got = torch.func.vmap(op)(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    (want_grad,) = torch.autograd.grad((want * g).sum(), x)
    (got_grad,) = torch.autograd.grad((got * g).sum(), x)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=0)


def test_eval_batch_size_groups_the_same_examples():
    """train.eval_batch_size changes only how a pass is grouped: the whole split, and a pass of eval_batches x
    batch_size examples, give the same metrics at any grouping (and a different limit gives other numbers)."""
    p = T.build(tiny("unused", "transformer"))
    ref = T.evaluate_split(p, "val", whole=True)
    for ebs in (3, 64):
        p.cfg.train.eval_batch_size = ebs
        assert T.evaluate_split(p, "val", whole=True) == pytest.approx(ref, rel=1e-5)
    p.cfg.train.eval_batch_size, p.cfg.train.eval_batches = 0, 2
    two = T.evaluate_split(p, "val")
    p.cfg.train.eval_batch_size = 5  # 2 x batch_size examples, in groups of 5 (the last one cut)
    assert T.evaluate_split(p, "val") == pytest.approx(two, rel=1e-5)
    assert two != pytest.approx(ref, rel=1e-5)


def test_a_checkpoint_restored_for_another_device_keeps_its_rng_state_on_the_cpu(tmp_path):
    """Resuming on a GPU once failed ('RNG state must be a torch.ByteTensor'): the checkpoint was mapped onto the
    run's device, RNG state included. Restored for a non-CPU device ('meta' stands in for CUDA here), the CPU RNG
    state is still set and the weights still load."""
    p = T.build(tiny(tmp_path, "transformer"))
    T.save_checkpoint(p, tmp_path / "ck.pt", 3, None, 1.0)
    want = torch.get_rng_state()
    torch.rand(5)
    p.device = torch.device("meta")
    assert T.load_checkpoint(p, tmp_path / "ck.pt")[0] == 3
    assert torch.equal(torch.get_rng_state(), want)


def test_off_and_on_read_as_words_for_choice_keys(tmp_path):
    """YAML 1.1 reads a bare `off` as False: `--set train.amp=off` and `amp: off` in a YAML file still mean 'off'."""
    from lra_wavelet import config as C
    assert C.resolve("listops", "transformer", sets=("train.amp=off",)).train.amp == "off"
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  amp: off\n")
    assert C.resolve("listops", "transformer", config_file=str(f)).train.amp == "off"
    with pytest.raises(UserError, match="train.compile"):
        C.resolve("listops", "transformer", sets=("train.compile=maybe",))


def test_rows_take_the_commit_given_for_a_copied_checkout(monkeypatch):
    """A working tree copied to a GPU machine keeps a stale .git: $LRA_WAVELET_GIT_SHA names the real commit."""
    assert results.git_sha() != "0123456789ab"
    monkeypatch.setenv("LRA_WAVELET_GIT_SHA", "0123456789ab")
    assert results.git_sha() == "0123456789ab"
