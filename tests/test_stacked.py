"""Seeds stacked into one vmapped model (stacked.train_seeds, sweep --stack-seeds): each seed's folder, curve and
rows are its separate run's (no dropout: the same numbers up to float rounding); a stop checkpoints every seed
and the checkpoints continue stacked or alone; a diverged seed is its own; a sweep stacks a cell's seeds."""

import functools
import json

import pandas as pd
import pytest
import torch

from lra_wavelet import config as C
from lra_wavelet import stacked as S
from lra_wavelet import train as T
from lra_wavelet.cli import main
from lra_wavelet.errors import UserError

from conftest import TINY_LISTOPS

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap of the CPU attention kernel


def tiny(out, *extra, model="wavelet"):
    return C.resolve("listops", model, sets=tuple(TINY_LISTOPS) + (f"out={out}", "device=cpu") + extra)


def numbers(run_dir):
    df = pd.read_csv(run_dir / "result.csv")
    return df.set_index(["split", "metric"])[["value", "step", "status"]]


def curve(run_dir):
    recs = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_time_s", "tokens_per_s")} for r in recs]


def same_numbers(a, b):
    na, nb = numbers(a), numbers(b)
    assert list(na.index) == list(nb.index) and (na.status == nb.status).all() and (na.step == nb.step).all()
    pd.testing.assert_series_equal(na.value, nb.value, rtol=1e-4)
    ca, cb = curve(a), curve(b)
    assert [(r["step"], r["split"]) for r in ca] == [(r["step"], r["split"]) for r in cb]
    for ra, rb in zip(ca, cb):
        assert rb.pop("split") == ra.pop("split") and rb == pytest.approx(ra, rel=1e-4, abs=1e-6), (ra, rb)


@pytest.fixture(scope="module")
def separate(tmp_path_factory):
    """Seeds 0 and 1 trained one by one, as `run` trains them: the reference."""
    out = tmp_path_factory.mktemp("separate")
    return [T.train(tiny(out, f"seed={s}"), progress=False).run_dir for s in (0, 1)]


def test_stacked_seeds_write_their_separate_runs_folders_curves_and_rows(tmp_path, separate):
    outs = S.train_seeds([tiny(tmp_path, f"seed={s}") for s in (0, 1)], progress=False)
    assert [o.status for o in outs] == ["ok", "ok"]
    for o, ref in zip(outs, separate):
        assert o.run_dir.name == ref.name  # the same config hash: the report cannot tell them apart
        same_numbers(ref, o.run_dir)
        env = json.loads((o.run_dir / "env.json").read_text())
        assert env["stacked_with"] == [d.name for d in separate]
        assert (o.run_dir / "config.yaml").is_file() and not (o.run_dir / "lock").exists()
    again = S.train_seeds([tiny(tmp_path, f"seed={s}") for s in (0, 1)], progress=False)
    assert all(o.skipped and o.status == "ok" for o in again)  # finished: not run twice


def test_a_stop_checkpoints_every_seed_and_they_continue_stacked_or_alone(tmp_path, separate, monkeypatch):
    step_of = T.stacked_step
    calls = {"n": 0}

    def stopped_at_six(st, batch, **kw):  # Ctrl-C during the seventh step: six taken (a log step: no point lost)
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return step_of(st, batch, **kw)

    monkeypatch.setattr(T, "stacked_step", stopped_at_six)
    outs = S.train_seeds([tiny(tmp_path, f"seed={s}") for s in (0, 1)], progress=False)
    monkeypatch.setattr(T, "stacked_step", step_of)
    assert [o.status for o in outs] == ["partial", "partial"]
    for o in outs:
        assert torch.load(o.run_dir / "checkpoint.pt", weights_only=False)["step"] == 6
        assert set(numbers(o.run_dir).status) == {"partial"}
    # seed 0 continues alone (an ordinary checkpoint), then seed 1 stacked with seed 2 from scratch (step 0):
    # not at the same step, so seed 1 resumes alone too and seed 2 trains alone
    alone = T.train(tiny(tmp_path, "seed=0"), resume=True, progress=False)
    same_numbers(separate[0], alone.run_dir)
    mixed = S.train_seeds([tiny(tmp_path, f"seed={s}") for s in (1, 2)], progress=False)
    assert [o.status for o in mixed] == ["ok", "ok"]
    same_numbers(separate[1], mixed[0].run_dir)


def test_stacked_seeds_resume_together_from_their_checkpoints(tmp_path, separate, monkeypatch):
    step_of, calls = T.stacked_step, {"n": 0}

    def stopped(st, batch, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # two steps taken
            raise KeyboardInterrupt
        return step_of(st, batch, **kw)

    monkeypatch.setattr(T, "stacked_step", stopped)
    S.train_seeds([tiny(tmp_path, f"seed={s}") for s in (0, 1)], progress=False)
    monkeypatch.setattr(T, "stacked_step", step_of)
    logs = []
    outs = S.train_seeds([tiny(tmp_path, f"seed={s}") for s in (0, 1)], progress=False, log=logs.append)
    assert any("stacked into one model from step 2" in m for m in logs), logs
    for o, ref in zip(outs, separate):
        assert o.status == "ok"
        same_numbers(ref, o.run_dir)  # AdamW moments, step count and learning rate restored into the stack


def test_a_diverged_seed_gets_its_rows_and_the_others_go_on(tmp_path, separate, monkeypatch):
    step_of = T.stacked_step

    def nan_for_seed_1(st, batch, **kw):
        losses, acc = step_of(st, batch, **kw)
        return losses * torch.tensor([1.0, float("nan")]), acc

    monkeypatch.setattr(T, "stacked_step", nan_for_seed_1)
    outs = S.train_seeds([tiny(tmp_path, f"seed={s}") for s in (0, 1)], progress=False)
    assert [o.status for o in outs] == ["ok", "diverged"]
    same_numbers(separate[0], outs[0].run_dir)
    bad = pd.read_csv(outs[1].run_dir / "result.csv")
    assert set(bad.status) == {"diverged"} and bad[bad.split == "train"].step.tolist() == [0]


def test_only_seeds_of_one_configuration_stack(tmp_path):
    with pytest.raises(UserError, match="differs from seed 0 in more than its seed"):
        S.train_seeds([tiny(tmp_path, "seed=0"), tiny(tmp_path, "seed=1", "train.lr=1e-3")], progress=False)
    with pytest.raises(UserError, match="distinct"):
        S.train_seeds([tiny(tmp_path, "seed=0"), tiny(tmp_path, "seed=0")], progress=False)


def test_sweep_stack_seeds_trains_each_cell_s_seeds_together(tmp_path, capsys, separate):
    grid = ["sweep", "--tasks", "listops", "--models", "wavelet", "--seeds", "0", "1", "--device", "cpu",
            "--no-progress", *[a for s in TINY_LISTOPS for a in ("--set", s)], "--out", str(tmp_path)]
    assert main([*grid, "--stack-seeds"]) == 0
    out, err = capsys.readouterr()
    assert "2 cells: 2 ok" in out and err.count("(stacked: 2 seeds,") == 2
    for ref in separate:
        same_numbers(ref, next(tmp_path.rglob(ref.name)))
    # --dry-run's estimate for another seed: each stacked seed's share of its stack's wall time
    from lra_wavelet import sweep

    walls = [pd.read_csv(next(tmp_path.rglob(ref.name)) / "result.csv").wall_time_s.max() for ref in separate]
    assert sweep.earlier_seconds(tiny(tmp_path, "seed=2")) == pytest.approx([w / 2 for w in walls])
    assert main([*grid, "--stack-seeds", "--gpus", "0", "1"]) == 2
    assert "--stack-seeds trains a cell's seeds together" in capsys.readouterr().err


def test_a_compiled_stack_gives_the_same_numbers(tmp_path, separate, monkeypatch):
    """train.compile=true compiles the vmapped forward and backward (static shapes: full-length batches): the
    seeds' numbers are still their separate eager runs'. (Traced by dynamo and AOTAutograd, the graphs run by
    the aot_eager backend: inductor's code generation would take ~25 s on a cold CPU.)"""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    said = []
    outs = S.train_seeds([tiny(tmp_path, f"seed={s}", "train.compile=true") for s in (0, 1)], progress=False,
                         log=said.append)
    assert any("stacked into one model from step 0 (compiled)" in m for m in said)
    assert not any("nothing was compiled" in m for m in said), said
    for o, ref in zip(outs, separate):
        assert o.status == "ok" and o.run_dir.name == ref.name
        same_numbers(ref, o.run_dir)
        env = json.loads((o.run_dir / "env.json").read_text())
        assert env["compiled"] is True and env["stacked_with"]


def test_under_auto_a_stack_runs_eagerly_where_one_seed_would_compile(tmp_path, separate, monkeypatch):
    # On the GPU the compiled stack failed at run time with the fused masked-attention kernels, where auto's
    # fallback cannot catch it, so auto leaves a stack eager even where it compiles one seed (CUDA classifiers).
    monkeypatch.setattr(T, "compile_by_default", lambda device, task: True)
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("a stack under auto was compiled"))
    said = []
    outs = S.train_seeds([tiny(tmp_path, f"seed={s}") for s in (0, 1)], progress=False, log=said.append)
    assert any(m.endswith("stacked into one model from step 0") for m in said), said
    for o, ref in zip(outs, separate):
        assert json.loads((o.run_dir / "env.json").read_text())["compiled"] is False
        same_numbers(ref, o.run_dir)


def test_a_compiled_stack_on_cuda_keeps_cudnn_attention_out_while_it_traces_and_runs():
    # The compiled vmapped step failed with cuDNN attention on the H200 (torch 2.11); the wrapper that
    # stack_seeds puts around it there turns only that kernel off, for the call alone.
    seen = []

    def step(*args):
        seen.append((torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled(),
                     torch.backends.cuda.mem_efficient_sdp_enabled(), torch.backends.cuda.math_sdp_enabled()))
        return args

    before = torch.backends.cuda.cudnn_sdp_enabled()
    assert T._without_cudnn_attention(step)(1, 2) == (1, 2)
    assert seen == [(False, True, True, True)]
    assert torch.backends.cuda.cudnn_sdp_enabled() == before

