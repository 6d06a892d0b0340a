"""Model zoo: every model on every task kind, causality, parameter counts, the Haar op against pywt,
the wavelet transforms, the variants' initialisation, and the fused kernel against the reference."""

import math
import os
import types

import pytest
import torch

import lra_wavelet.models  # noqa: F401  (registers every model)
from lra_wavelet.flops import count
from lra_wavelet.models import ops, triton_ops
from lra_wavelet.models.gpt import EMAConfig, EMAOp, LearnableConfig, LearnableOp, WaveletConfig, WaveletOp
from lra_wavelet.models.wavspa import dwt, idwt
from lra_wavelet.registry import MODELS

TINY = dict(n_layers=2, d_model=16, n_heads=2, d_ff=32)
PAPER = dict(n_layers=10, d_model=128, n_heads=8, d_ff=512)
CAUSAL = [n for n in MODELS.names() if MODELS.get(n).causal]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: thread start-up would cost more than the arithmetic."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_task(kind, L=24, vocab=11, classes=3, pad_id=0):
    return types.SimpleNamespace(kind=kind, seq_len=L, vocab_size=vocab, n_classes=0 if kind == "lm" else classes,
                                 pad_id=pad_id)


def build(name, task, **kw):
    cls = MODELS.get(name)
    return cls(task, cls.Config(name=name, **{**TINY, **kw}))


def tokens(shape, vocab=11, n_pad=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, vocab, shape, generator=g)
    if n_pad:
        x[..., -n_pad:] = 0
    return x


# ----------------------------------------------------------------------------- every model, every kind


@pytest.mark.parametrize("kind", ["classify", "retrieve", "lm"])
@pytest.mark.parametrize("name", MODELS.names())
def test_forward_backward_every_parameter_gets_a_gradient(name, kind):
    torch.manual_seed(0)
    task = make_task(kind, L=20)
    model = build(name, task)
    B = 3
    x = tokens((B, 2, 20) if kind == "retrieve" else (B, 20), n_pad=0 if kind == "lm" else 5)
    out = model({"x": x})
    assert out.shape == ((B, 20, task.vocab_size) if kind == "lm" else (B, task.n_classes))
    out.float().pow(2).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}/{kind}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}/{kind}: non-finite gradient for {pname}"


# ----------------------------------------------------------------------------- causality

CAUSAL_CASES = [(n, {}) for n in CAUSAL] + [
    ("wavelet", dict(transform_embedding=True, sos="zero", coords="interleaved")),
    ("wavelet-learnable", dict(transform_embedding=True, sos="zero")),
    ("wavelet-ema", dict(sos="zero", mod_frac=1.0)),
]


def _prefix_outputs(model, x, readout):
    if readout == "lm":
        return model({"x": x})
    return model.encode(x)[0]  # per-position states, which the mean readout averages


@pytest.mark.parametrize("readout", ["lm", "classify-mean"])
@pytest.mark.parametrize("name,kw", CAUSAL_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CAUSAL_CASES)])
def test_causal_models_never_see_the_future(name, kw, readout):
    torch.manual_seed(0)
    L = 32
    kind = "lm" if readout == "lm" else "classify"
    model = build(name, make_task(kind, L=L, pad_id=None), pool=None if kind == "lm" else "mean", **kw).eval()
    x = tokens((2, L))
    ref = _prefix_outputs(model, x, readout)
    for t in (0, 7, 20):
        x2 = x.clone()
        x2[:, t + 1:] = tokens((2, L - t - 1), seed=t + 1)
        out = _prefix_outputs(model, x2, readout)
        torch.testing.assert_close(out[:, : t + 1], ref[:, : t + 1], rtol=0, atol=1e-5)
        assert not torch.allclose(out[:, t + 1:], ref[:, t + 1:])  # the perturbation does reach later outputs


def test_the_causality_test_detects_a_noncausal_model():
    model = build("wavelet-noncausal", make_task("lm", L=32, pad_id=None)).eval()
    x = tokens((2, 32))
    x2 = x.clone()
    x2[:, 21:] = tokens((2, 11), seed=3)
    assert not torch.allclose(model({"x": x})[:, :21], model({"x": x2})[:, :21])


# ----------------------------------------------------------------------------- parameter counts


def test_parameter_counts_at_paper_size():
    task = make_task("lm", L=512, vocab=256, pad_id=None)
    n = {name: build(name, task, **PAPER).n_params() for name in
         ("gpt", "wavelet", "wavelet-single", "wavelet-ema", "wavelet-learnable")}
    assert n["wavelet"] == n["gpt"] == n["wavelet-single"] == n["wavelet-ema"]
    assert 10_000 <= n["wavelet-learnable"] - n["gpt"] <= 40_000
    assert n["wavelet-learnable"] - n["gpt"] == 10 * 64 * 32  # layers x modified coordinates x taps


def test_flops_count_matches_the_matmuls_of_gpt():
    L, V = 24, 11
    task = make_task("lm", L=L, vocab=V, pad_id=None)
    model = build("gpt", task)
    d, ff, layers = TINY["d_model"], TINY["d_ff"], TINY["n_layers"]
    per_layer = 2 * L * d * 3 * d + 2 * L * d * d + 2 * L * d * ff * 2 + 4 * L * L * d  # qkv, proj, MLP, attention
    c = count(model, task)
    assert c == {"params": model.n_params(), "flops_per_example": layers * per_layer + 2 * L * d * V}
    fnet = count(build("fnet", task), task)["flops_per_example"]
    assert 0 < fnet < c["flops_per_example"]  # the FFT is counted, and cheaper than attention
    rt = make_task("retrieve", L=L, vocab=V)
    enc = count(build("gpt", rt), rt)["flops_per_example"]
    assert enc > 2 * layers * per_layer  # both documents


# ----------------------------------------------------------------------------- the Haar operation


def test_box_mean_equals_pywt_haar_approximation_where_the_window_is_full():
    pywt = pytest.importorskip("pywt")
    T = 64
    x = torch.randn(2, T, 3, dtype=torch.float64)
    for level in range(1, 7):
        w = 2 ** level
        y = ops.box_mean(x, torch.full((3,), w))
        approx = torch.from_numpy(pywt.wavedec(x.numpy(), "haar", level=level, axis=1, mode="periodization")[0])
        torch.testing.assert_close(y[:, w - 1 :: w], approx / 2 ** (level / 2), rtol=0, atol=1e-12)
        a = x.numpy()  # the same through single-level transforms applied repeatedly
        for _ in range(level):
            a = pywt.dwt(a, "haar", axis=1)[0]
        torch.testing.assert_close(y[:, w - 1 :: w], torch.from_numpy(a) / 2 ** (level / 2), rtol=0, atol=1e-12)


def test_wavelet_op_applies_pywt_levels_to_the_modified_coordinates():
    pywt = pytest.importorskip("pywt")
    T, E = 32, 16
    op = WaveletOp(WaveletConfig(d_model=E, impl="prefix"), context=T)
    x = torch.randn(2, T, E, dtype=torch.float64)
    y = op(x)
    torch.testing.assert_close(y[..., :8], x[..., :8], rtol=0, atol=0)  # the untouched half
    assert op.windows.tolist() == [2, 2, 4, 4, 8, 16, 16, 32]  # l(j) = 1 + floor(j * 5 / 8): 2 .. T
    for j, w in enumerate(op.windows.tolist()):
        level = int(math.log2(w))
        approx = pywt.wavedec(x[..., 8 + j].numpy(), "haar", level=level, axis=1, mode="periodization")[0]
        torch.testing.assert_close(y[:, w - 1 :: w, 8 + j], torch.from_numpy(approx) / 2 ** (level / 2),
                                   rtol=0, atol=1e-12)


def test_default_level_map_spans_windows_2_to_the_context():
    w = 2 ** ops.level_map(64, 512)
    assert w[0] == 2 and w[-1] == 512 and bool((w[1:] >= w[:-1]).all())


def test_start_of_sequence_rules():
    x = torch.randn(1, 6, 1, dtype=torch.float64)
    avail = ops.box_mean(x, torch.tensor([4]), sos="available")[0, :, 0]
    zero = ops.box_mean(x, torch.tensor([4]), sos="zero")[0, :, 0]
    torch.testing.assert_close(avail[1], x[0, :2, 0].mean())
    torch.testing.assert_close(zero[1], x[0, :2, 0].sum() / 4)
    torch.testing.assert_close(avail[5], zero[5])


# ----------------------------------------------------------------------------- variants


@pytest.mark.parametrize("sos", ["available", "zero"])
def test_learnable_op_at_init_is_the_haar_op(sos):
    T, E = 128, 32
    cfg = dict(d_model=E, sos=sos, impl="prefix")
    haar = WaveletOp(WaveletConfig(**cfg), context=T)
    learn = LearnableOp(LearnableConfig(taps=8, **cfg), context=T)  # windows 2..128: dilations 1..16
    assert {d for d, _, _ in learn.groups} == {1, 2, 4, 8, 16}
    x = torch.randn(2, T, E, dtype=torch.float64)
    torch.testing.assert_close(learn(x), haar(x), rtol=0, atol=1e-12)


def test_learnable_model_at_init_is_the_wavelet_model():
    task = make_task("lm", L=64, pad_id=None)
    torch.manual_seed(0)
    haar = build("wavelet", task, transform_embedding=True).eval()
    learn = build("wavelet-learnable", task, transform_embedding=True).eval()
    missing, unexpected = learn.load_state_dict(haar.state_dict(), strict=False)
    assert not unexpected and all(k.endswith("taps") for k in missing) and len(missing) == TINY["n_layers"] + 1
    x = tokens((2, 64))
    torch.testing.assert_close(learn({"x": x}), haar({"x": x}), rtol=0, atol=1e-5)


@pytest.mark.parametrize("sos", ["available", "zero"])
def test_ema_matches_a_loop(sos):
    T, N = 70, 5
    x = torch.randn(2, T, N, dtype=torch.float64)
    a = torch.tensor([0.0, 0.3, 0.9, 0.99, 0.999], dtype=torch.float64)
    y_ref, prev = torch.empty_like(x), torch.zeros(2, N, dtype=torch.float64)
    for t in range(T):
        prev = a * prev + (1 - a) * x[:, t]
        y_ref[:, t] = prev if sos == "zero" else prev / (1 - a ** (t + 1))
    torch.testing.assert_close(ops.ema(x, a, sos=sos), y_ref, rtol=0, atol=1e-10)
    s_ref = y_ref if sos == "zero" else None
    if s_ref is not None:  # deep recursion: chunks of 4 -> 18 -> 5 -> 2 chunk ends
        torch.testing.assert_close((1 - a) * ops.decay_scan(x, a, chunk=4), s_ref, rtol=0, atol=1e-10)


def test_ema_decays_are_spaced_linearly_over_the_modified_coordinates():
    op = EMAOp(EMAConfig(d_model=16), context=32)
    torch.testing.assert_close(op.decay, torch.arange(1, 9, dtype=torch.float64) / 9)


# ----------------------------------------------------------------------------- wavspa and the encoders


@pytest.mark.parametrize("wavelet", ["haar", "ortho"])
def test_dwt_then_idwt_reconstructs(wavelet):
    x = torch.randn(2, 48, 5, dtype=torch.float64)
    angles = None if wavelet == "haar" else torch.rand(3, 5, dtype=torch.float64) * 6
    coeffs = dwt(x, 3, angles)
    assert [c.shape[1] for c in coeffs] == [24, 12, 6, 6]
    torch.testing.assert_close(idwt(coeffs, angles), x, rtol=0, atol=1e-12)


def test_haar_dwt_equals_pywt():
    pywt = pytest.importorskip("pywt")
    x = torch.randn(2, 48, 5, dtype=torch.float64)
    ours = dwt(x, 3)
    ref = pywt.wavedec(x.numpy(), "haar", level=3, axis=1)  # [a_3, d_3, d_2, d_1]
    for c, r in zip(ours, ref[1:][::-1] + ref[:1]):
        torch.testing.assert_close(c, torch.from_numpy(r), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,kw", [("transformer", {}), ("transformer", {"pos": "learned"}),
                                     ("wavspa", {}), ("wavspa", {"wavelet": "ortho"})])
def test_encoder_output_ignores_padding_length(name, kw):
    """Valid positions never attend to padding: a longer padded tail leaves the prediction unchanged
    (L = 21 and 29 are not multiples of wavspa's 2**3, so its internal padding is exercised too)."""
    torch.manual_seed(0)
    short = build(name, make_task("classify", L=21), **kw).eval()
    long = build(name, make_task("classify", L=29), **kw).eval()
    state = short.state_dict()
    if "pos" in state:  # learned positions: the first 21 (+CLS) rows are shared
        long_state = long.state_dict()
        long_state["pos"][: state["pos"].shape[0]] = state["pos"]
        state = {**state, "pos": long_state["pos"]}
    long.load_state_dict(state)
    x = tokens((3, 21), n_pad=6)
    x_long = torch.cat([x, torch.zeros(3, 8, dtype=torch.long)], dim=1)
    torch.testing.assert_close(long({"x": x_long}), short({"x": x}), rtol=0, atol=1e-5)


def test_transformer_pad_id_switch_and_cls():
    """pad_id None (the pixel-0 switch off) makes token 0 an ordinary input that is attended to."""
    torch.manual_seed(0)
    masked = build("transformer", make_task("classify", L=24, pad_id=0)).eval()
    assert masked.cls is not None and not masked.cls.any()  # learned CLS vector, zero at init
    plain = build("transformer", make_task("classify", L=24, pad_id=None)).eval()
    plain.load_state_dict(masked.state_dict())
    x = tokens((2, 24), n_pad=8)
    assert not torch.allclose(plain({"x": x}), masked({"x": x}))


def test_fnet_mixing_ignores_what_padded_positions_hold():
    mixer = build("fnet", make_task("classify", L=24)).blocks[0].mixer
    mask = (torch.arange(25) < 17).expand(2, 25)  # CLS + 16 valid tokens, 8 padded
    h = torch.randn(2, 25, 16)
    h2 = h.clone()
    h2[:, 17:] = torch.randn(2, 8, 16)
    torch.testing.assert_close(mixer(h2, mask), mixer(h, mask))
    unmasked = mixer(h2, None)
    assert not torch.allclose(unmasked, mixer(h, None))
    # unitary transform: the mixer keeps the scale of its input (the real part holds about half the energy)
    assert 0.6 < mixer(h, None).norm() / h.norm() < 0.8


# ----------------------------------------------------------------------------- the fused kernel

FUSED = triton_ops.HAS_TRITON and (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1")


def test_impl_switch_without_triton():
    if triton_ops.HAS_TRITON:
        pytest.skip("triton imports here")
    with pytest.raises(ValueError, match="triton"):
        WaveletConfig(impl="triton")
    op = WaveletOp(WaveletConfig(d_model=8), context=16)  # auto falls back to prefix sums
    assert not op.use_fused(torch.zeros(1, 16, 8))


@pytest.mark.skipif(not FUSED, reason="needs triton and CUDA (or TRITON_INTERPRET=1)")
@pytest.mark.parametrize("causal,sos,coords", [(True, "available", "second_half"), (True, "zero", "interleaved"),
                                               (False, "available", "first_half"), (False, "zero", "second_half")])
def test_fused_kernel_matches_prefix_sums_forward_and_backward(causal, sos, coords):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    B, T, E = 3, 77, 40  # T not a multiple of the tile, E not a multiple of the column block
    cfg = dict(d_model=E, sos=sos, coords=coords, causal_op=causal, mod_frac=0.6)
    ref_op = WaveletOp(WaveletConfig(impl="prefix", **cfg), context=100).to(dev)
    fused_op = WaveletOp(WaveletConfig(impl="triton", **cfg), context=100).to(dev)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        x = torch.randn(B, T, E, device=dev, dtype=dtype).transpose(0, 1).contiguous().transpose(0, 1)  # strided
        x1, x2 = x.clone().requires_grad_(), x.double().clone().requires_grad_()
        y1, y2 = fused_op(x1), ref_op(x2)
        g = torch.randn_like(y2)
        (y1 * g.to(dtype)).sum().backward()
        (y2 * g).sum().backward()
        assert (y1.double() - y2).norm() / y2.norm() < tol
        assert (x1.grad.double() - x2.grad).norm() / x2.grad.norm() < tol
        # the custom op that torch.compile sees (causal windows: the in-place kernel on the touched columns)
        x3 = x.clone().requires_grad_()
        y3 = triton_ops.box_mean_fused(x3, fused_op.win_full, fused_op.off_full, fused_op.max_off, sos == "zero",
                                       fused_op.lo, fused_op.hi)
        (y3 * g.to(dtype)).sum().backward()
        assert (y3.double() - y2).norm() / y2.norm() < tol
        assert (x3.grad.double() - x2.grad).norm() / x2.grad.norm() < tol
        untouched = fused_op.win_full.cpu() == 0  # copied exactly
        torch.testing.assert_close(y3[..., untouched], x[..., untouched], rtol=0, atol=0)
        torch.testing.assert_close(x3.grad[..., untouched], g.to(dtype)[..., untouched], rtol=0, atol=0)
        assert torch.equal(x3.detach(), x)  # the input is not modified


@pytest.mark.skipif(not (triton_ops.HAS_TRITON and torch.cuda.is_available()), reason="needs triton and CUDA")
def test_fused_kernel_inside_torch_compile_matches_eager():
    """impl auto under torch.compile runs the kernel in the compiled graph (static shapes): same values, same grads."""
    op = WaveletOp(WaveletConfig(d_model=64), context=128).cuda()
    x = torch.randn(2, 128, 64, device="cuda")
    g = torch.randn_like(x)
    xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
    (op(xe) * g).sum().backward()
    yc = torch.compile(op, fullgraph=True)(xc)
    (yc * g).sum().backward()
    # causal windows run in place when compiled: another order of float32 sums than the eager kernel
    torch.testing.assert_close(yc, op(x), rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(xc.grad, xe.grad, rtol=1e-5, atol=2e-5)


# ----------------------------------------------------------------------------- the LRA benchmark's encoder

# Parameter counts of the benchmark's Flax TransformerEncoder / TransformerDualEncoder at each task's
# reference configuration (google-research/long-range-arena cd31e5c: embeddings, q/k/v/out without biases,
# MLP and head Dense layers with biases, LayerNorms, CLS vector, learned positions where configured).
LRA_PARAMS = {"listops": 8_948_746, "text": 3_486_722, "image": 248_458, "pathfinder": 26_530,
              "retrieval": 1_087_618}


@pytest.mark.parametrize("task_name", sorted(LRA_PARAMS))
def test_transformer_at_each_reference_configuration_is_the_benchmarks_size(task_name):
    from lra_wavelet import config as C
    from lra_wavelet.registry import TASKS
    from lra_wavelet.train import build_model

    cfg = C.resolve(task_name, "transformer")
    model = build_model(TASKS.get(task_name)(cfg.task), cfg.model)
    assert model.n_params() == LRA_PARAMS[task_name]
    if task_name == "pathfinder":  # the benchmark's config overrides only the ordinary dropout
        assert (cfg.model.dropout, cfg.model.attn_dropout) == (0.2, 0.1)



@pytest.mark.parametrize("task_name", ["image", "pathfinder", "pathx"])
def test_the_reference_encoders_treat_black_pixels_as_padding(task_name):
    """The benchmark's Transformer and WavSpA's LRA code mask `inputs > 0`: on the image tasks pixel 0 is
    padding to them (hidden from attention), so their reference configs set task.pixel0_is_pad; FNet and the
    causal decoders have no such mask and see every pixel; the switch turns it off."""
    from lra_wavelet import config as C
    from lra_wavelet.registry import TASKS

    for model, pad in {"transformer": 0, "wavspa": 0, "fnet": None, "gpt": None, "wavelet": None,
                       "wavelet-learnable": None}.items():
        assert TASKS.get(task_name)(C.resolve(task_name, model).task).pad_id == pad, model
    off = C.resolve(task_name, "transformer", sets=("task.pixel0_is_pad=false",))
    assert TASKS.get(task_name)(off.task).pad_id is None

def _lra_and_gpt(name="transformer", **kw):
    task = make_task("classify", L=16, vocab=50, classes=10)
    torch.manual_seed(0)
    dims = dict(n_layers=1, d_model=128, n_heads=4, d_ff=256, qkv_dim=64, **kw)
    return build(name, task, **dims), dims


def test_lra_initialisation_is_the_flax_models():
    model, d = _lra_and_gpt()
    D, Q, F_, H = d["d_model"], d["qkv_dim"], d["d_ff"], d["d_ff"]
    assert model.tok.weight.std().item() == pytest.approx(1.0, rel=0.05)  # nn.Embed N(0, 1)
    attn, mlp = model.blocks[0].mixer, model.blocks[0].mlp
    assert attn.qkv.bias is None and attn.proj.bias is None and attn.qkv.weight.shape == (3 * Q, D)
    for w, fan in [*((w, D + Q) for w in attn.qkv.weight.chunk(3)), (attn.proj.weight, Q + D),
                   (mlp.fc.weight, D + F_), (mlp.proj.weight, F_ + D)]:  # xavier-uniform, each matrix its own fans
        bound = math.sqrt(6 / fan)
        assert w.abs().max() <= bound and w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert 0 < mlp.fc.bias.abs().max() < 1e-5  # N(0, 1e-6)
    fc, out = model.head[0], model.head[2]
    for w, fan in ((fc.weight, D), (out.weight, H)):  # LeCun normal truncated at 2 sd: std 1/sqrt(fan_in)
        std = 1 / math.sqrt(fan)
        assert w.abs().max() <= 2 * std / 0.8796 + 1e-6 and w.std().item() == pytest.approx(std, rel=0.1)
    assert not fc.bias.any() and not model.cls.any()
    assert model.blocks[0].ln1.eps == model.ln_f.eps == 1e-6 and mlp.approximate == "tanh"


@pytest.mark.parametrize("name,kw", [("gpt", {}), ("wavelet", {}), ("transformer", {"init": "gpt"})])
def test_decoders_default_to_gpt_initialisation_and_the_transformer_can_have_it(name, kw):
    model, _ = _lra_and_gpt(name, **kw)
    for w in (model.tok.weight, model.blocks[0].mixer.qkv.weight, model.blocks[0].mlp.fc.weight, model.head[0].weight):
        assert w.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("name,kw,every", [("transformer", {}, True), ("wavspa", {}, True),
                                           ("transformer", {"weight_decay_on": "matrices"}, False),
                                           ("gpt", {}, False)])
def test_weight_decay_reaches_every_parameter_for_the_lra_encoders(name, kw, every):
    from lra_wavelet.config import TrainConfig
    from lra_wavelet.train import make_optimizer

    model, _ = _lra_and_gpt(name, **kw)
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert {"blocks.0.ln1.weight", "blocks.0.mlp.fc.bias", "head.0.bias"} <= names if every else \
        not any(n.endswith("bias") or ".ln" in n for n in names)
    assert "blocks.0.mlp.fc.weight" in names


def test_attention_of_padded_queries_is_uniform_as_in_the_benchmark():
    """mean_pool 'all': the Flax attention biases query-or-key padded pairs by -1e10, so a padded row is flat."""
    model, d = _lra_and_gpt(pool="mean")
    attn = model.blocks[0].mixer.eval()
    x = torch.randn(2, 16, d["d_model"])
    mask = torch.arange(16) < torch.tensor([[11], [5]])
    nh, hs = d["n_heads"], d["qkv_dim"] // d["n_heads"]
    q, k, v = attn.qkv(x).view(2, 16, 3, nh, hs).permute(2, 0, 3, 1, 4)
    pair = mask[:, None, :, None] & mask[:, None, None, :]
    scores = q @ k.transpose(-1, -2) / math.sqrt(hs) + torch.where(pair, 0.0, -1e10)
    ref = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 16, -1))
    torch.testing.assert_close(attn(x, mask), ref, rtol=1e-5, atol=1e-5)
    assert not model.pad_invariant  # the mean reads the padded positions


def test_mean_pool_all_averages_the_padding_and_valid_does_not():
    model, _ = _lra_and_gpt(pool="mean")
    model.eval()
    x = tokens((2, 16), vocab=50, n_pad=6)
    h, mask = model.encode(x)
    torch.testing.assert_close(model.pool(h, mask), h.mean(1))
    model.cfg.mean_pool = "valid"
    torch.testing.assert_close(model.pool(h, mask), h[:, :10].mean(1))


def test_retrieval_head_is_the_benchmarks_and_the_nli_head_is_a_switch():
    task = make_task("retrieve", L=12, vocab=50, classes=2)
    torch.manual_seed(0)
    lra = build("transformer", task).eval()
    assert lra.cls is None and lra.head[0].in_features == 2 * TINY["d_model"]  # [e1, e2], no CLS vector
    x = tokens((3, 2, 12), vocab=50, n_pad=4)
    first = [lra.encode(x[:, i])[0][:, 0] for i in (0, 1)]  # each document's own first token
    torch.testing.assert_close(lra({"x": x}), lra.head(torch.cat(first, -1)))
    nli = build("transformer", task, retrieval_combine="nli", pool="cls")
    assert nli.cls is not None and nli.head[0].in_features == 4 * TINY["d_model"]


def test_flops_count_the_attention_width():
    L, V, C_ = 24, 11, 3
    task = make_task("classify", L=L, vocab=V, classes=C_, pad_id=None)
    d, q, ff, layers = TINY["d_model"], 8, TINY["d_ff"], TINY["n_layers"]
    model = build("transformer", task, qkv_dim=q)
    T = L + 1  # CLS
    per_layer = 2 * T * d * 3 * q + 2 * T * q * d + 2 * T * d * ff * 2 + 4 * T * T * q  # qkv, out, MLP, attention
    head = 2 * d * ff + 2 * ff * C_
    assert count(model, task)["flops_per_example"] == layers * per_layer + head


def test_wavspa_masks_its_internal_padding_when_the_task_has_none():
    """Image with CLS: 1025 positions padded to 1032 inside the mixer; here 21 + CLS = 22 -> 24."""
    torch.manual_seed(0)
    model = build("wavspa", make_task("classify", L=21, pad_id=None)).eval()
    mixer = model.blocks[0].mixer
    h = torch.randn(2, 22, TINY["d_model"])
    out = mixer(h, None)
    torch.testing.assert_close(out, mixer(h, torch.ones(2, 22, dtype=torch.bool)))
    zero_padded = mixer(torch.cat([h, torch.zeros(2, 2, TINY["d_model"])], 1), None)[:, :22]  # padding as data
    assert not torch.allclose(out, zero_padded, atol=1e-4)


# ----------------------------------------------------------------------------- pad invariance, registry-wide


def test_pad_invariant_is_false_unless_declared():
    from lra_wavelet.models.backbone import SequenceModel

    class Undeclared(SequenceModel):
        pass

    assert not SequenceModel.pad_invariant and not Undeclared(make_task("classify"), ModelConfigT()).pad_invariant


def ModelConfigT():
    from lra_wavelet.config import ModelConfig

    return ModelConfig(**TINY)


PAD_CASES = [(n, kind, pool) for n in MODELS.names() for kind, pool in
             (("classify", None), ("classify", "mean"), ("classify", "last"), ("retrieve", None))]


@pytest.mark.parametrize("name,kind,pool", PAD_CASES, ids=["-".join(map(str, c)) for c in PAD_CASES])
def test_every_model_declaring_pad_invariance_is_pad_invariant(name, kind, pool):
    """At the trainer's trim (train.trim_padding): logits of a batch with extra all-padding columns equal the
    trimmed batch's. Models that do not declare it are checked to be caught by the same comparison."""
    import numpy as np

    from lra_wavelet.train import trim_padding

    cls = MODELS.get(name)
    task = make_task(kind, L=200)
    torch.manual_seed(0)
    try:
        model = cls(task, cls.Config(name=name, **TINY, pool=pool, mean_pool="valid")).eval()
    except ValueError:  # e.g. a causal model cannot pool a CLS vector
        pytest.skip(f"{name} does not take pool {pool}")
    shape = (3, 2, 200) if kind == "retrieve" else (3, 200)
    x = tokens(shape, vocab=11).numpy()
    lengths = np.array([90, 40, 7])
    x = np.where(np.arange(200) >= lengths.reshape((3,) + (1,) * (x.ndim - 1)), 0, x)
    trimmed = trim_padding({"x": x}, 0)["x"]
    assert trimmed.shape[-1] == 128
    full, cut = (model({"x": torch.from_numpy(a)}) for a in (x, trimmed))
    if model.pad_invariant:
        torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-5)
    elif name in ("fnet", "wavelet-noncausal") and kind == "classify" and pool is None:  # the check sees them
        assert (cut - full).abs().max() > 1e-3 * full.abs().max()


def test_heads_are_padded_by_default_only_where_a_key_mask_leaves_the_math_kernel():
    """train.attn_pad_heads auto (None): 8 on CUDA for masked attention narrower than 8 (Pathfinder's 4-wide heads
    with pixel 0 as padding), never otherwise; an int is used as given; never narrower than the heads."""
    from lra_wavelet.models.backbone import padded_head_width as w

    assert [w(4, None, True, True), w(4, None, False, True), w(4, None, True, False), w(8, None, True, True),
            w(16, None, True, True)] == [8, 4, 4, 8, 16]
    assert [w(4, 0, True, True), w(4, 16, False, False), w(32, 8, True, True)] == [4, 16, 32]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: auto padding pads on CUDA alone")
def test_on_cuda_auto_padded_masked_heads_equal_the_unpadded_math_path():
    """On the GPU (run there: `python -m pytest -q tests/test_models.py -k cuda`): the default, auto, pads masked
    4-wide heads to 8 and SDPA takes another kernel; outputs and gradients equal those unpadded (math kernel)."""
    from lra_wavelet import config as C
    from lra_wavelet import train as T

    outs = []
    for pad in (0, None):
        cfg = C.resolve("pathfinder", "transformer", sets=("model.dropout=0.0", "model.attn_dropout=0.0",
                                                           f"train.attn_pad_heads={'null' if pad is None else pad}"))
        p = T.build(cfg, torch.device("cuda"), splits={})
        x = torch.randint(0, 4, (8, 1024), generator=torch.Generator().manual_seed(1)).cuda()  # many black pixels
        torch.manual_seed(2)
        loss = p.model({"x": x}).float().square().sum()
        loss.backward()
        outs.append((loss.detach(), [q.grad.clone() for q in p.model.parameters() if q.grad is not None]))
    (l0, g0), (l1, g1) = outs
    torch.testing.assert_close(l1, l0, rtol=1e-4, atol=1e-5)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)


def test_zero_padded_heads_give_the_same_attention_and_gradients():
    """train.attn_pad_heads (speed only): heads of width 4 padded to 8 compute the same outputs and gradients,
    with a padding mask (encoder) and causally (decoder), and with attention dropout from the same seed (on the
    CPU's kernel; on CUDA another kernel may draw its masks differently: the same in distribution)."""
    import torch

    from lra_wavelet import config as C
    from lra_wavelet import train as T

    for model, drop in (("transformer", 0.0), ("gpt", 0.0), ("transformer", 0.3)):
        outs = []
        for pad in (0, 8):
            cfg = C.resolve("listops", model, sets=("model.n_layers=1", "model.d_model=16", "model.n_heads=4",
                                                    "model.qkv_dim=16", "model.d_ff=16", "model.dropout=0.0",
                                                    f"model.attn_dropout={drop}", f"train.attn_pad_heads={pad}"))
            p = T.build(cfg, splits={})
            x = torch.randint(1, p.task.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))
            x[1, 15:] = p.task.pad_id
            torch.manual_seed(2)
            loss = p.model({"x": x}).square().sum()
            loss.backward()
            outs.append((loss.detach(), [q.grad.clone() for q in p.model.parameters() if q.grad is not None]))
        (l0, g0), (l1, g1) = outs
        torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
        for a, b in zip(g0, g1):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)  # float rounding of another kernel order


def test_varlen_attention_is_masked_attention_at_every_valid_position():
    """train.attn_varlen's attention (the batch's valid positions gathered to the front, each row one segment)
    against SDPA with the key mask: the same outputs and gradients at valid queries, zeros at padded ones, for any
    mask (not only right padding); zero-padded heads the same."""
    import torch.nn.functional as F

    from lra_wavelet.models.backbone import varlen_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 12, 8, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.arange(12)[None] < torch.tensor([12, 7, 1])[:, None]
    mask[0, 3] = False  # any mask, not only right padding
    qkv = lambda: torch.stack([t.transpose(1, 2) for t in (q, k, v)], 2).reshape(3, 12, 48)  # noqa: E731
    outs = []
    for f in (lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :]),
              lambda: varlen_attention(qkv(), mask, 2, 0.0).transpose(1, 2),
              lambda: varlen_attention(qkv(), mask, 2, 0.0, width=16).transpose(1, 2)):
        y = f()
        (y * mask[:, None, :, None]).square().sum().backward()
        outs.append((y.detach(), [t.grad.clone() for t in (q, k, v)]))
        for t in (q, k, v):
            t.grad = None
    valid = mask[:, None, :, None].expand_as(outs[0][0])
    for y1, g1 in outs[1:]:
        torch.testing.assert_close(y1[valid], outs[0][0][valid], rtol=1e-5, atol=1e-6)
        assert not y1[~valid].any()
        for a, b in zip(outs[0][1], g1):  # (a row of one valid key: dq is 0, where the masked kernel rounds to ~1e-6)
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    # causal, padding trailing only: causal attention without a mask at every valid position
    right = torch.arange(12)[None] < torch.tensor([12, 7, 1])[:, None]
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    y = varlen_attention(qkv(), right, 2, 0.0, causal=True)
    torch.testing.assert_close(y[right], ref[right], rtol=1e-5, atol=1e-6)
    assert not y[~right].any()


def test_varlen_attention_keeps_the_kernels_unwritten_rows_out_of_outputs_and_gradients(monkeypatch):
    """Flash's variable-length kernel leaves the rows past the last segment (the padded positions) unwritten, in
    its output and in its input gradients: here they are NaN, and neither the output nor any gradient of qkv
    sees them."""
    from lra_wavelet.models import backbone

    real = backbone.segment_attention

    class Unwritten(torch.autograd.Function):  # identity, whose gradient is NaN past the segments
        @staticmethod
        def forward(ctx, t, n):
            ctx.n = n
            return t.clone()

        @staticmethod
        def backward(ctx, grad):
            grad = grad.clone()
            grad[ctx.n:] = float("nan")
            return grad, None

    def leaky(q, k, v, cu, *rest):
        n = int(cu[-1])
        y = real(*(Unwritten.apply(t, n) for t in (q, k, v)), cu, *rest).clone()
        y[n:] = float("nan")
        return y

    g = torch.Generator().manual_seed(3)
    mask = torch.rand(2, 10, generator=g) < 0.6
    mask[:, 0] = True
    grads = []
    for f in (real, leaky):
        monkeypatch.setattr(backbone, "segment_attention", f)
        qkv = torch.randn(2, 10, 3 * 2 * 4, generator=torch.Generator().manual_seed(4), requires_grad=True)
        y = backbone.varlen_attention(qkv, mask, 2, 0.0)
        assert torch.isfinite(y).all() and not y[~mask].any()
        y.square().sum().backward()
        assert torch.isfinite(qkv.grad).all()
        grads.append((y.detach(), qkv.grad))
    torch.testing.assert_close(grads[1], grads[0])


@pytest.mark.filterwarnings("ignore:.*an autograd kernel was not registered:UserWarning")  # (meta tensors only)
def test_varlen_attention_calls_flash_with_the_kernels_shapes_and_bounds(monkeypatch):
    """The CUDA path's call, checked on the CPU through torch's meta kernels (shapes, dtypes, the argument list of
    this torch's aten._flash_attention_forward, forward and backward, and torch.compile tracing it in one graph)
    and a recording stand-in (the segment bounds, head width padded to a multiple of 8)."""
    from lra_wavelet.models import backbone

    monkeypatch.setattr(backbone, "flash_varlen_ok", lambda t: True)
    mask = torch.arange(16)[None] < torch.tensor([16, 5, 9])[:, None]
    qkv = torch.randn(3, 16, 3 * 2 * 4, dtype=torch.bfloat16, device="meta", requires_grad=True)
    y = backbone.varlen_attention(qkv, mask.to("meta"), 2, 0.1)
    assert y.shape == (3, 16, 2, 4) and y.dtype == torch.bfloat16
    y.sum().backward()
    assert qkv.grad.shape == qkv.shape
    # traced whole by torch.compile (fullgraph: a graph break fails), the flash call and its backward included
    compiled = torch.compile(backbone.varlen_attention, fullgraph=True, dynamic=False, backend="aot_eager")
    assert compiled(qkv, mask.to("meta"), 2, 0.1).shape == (3, 16, 2, 4)

    seen = []
    real = torch.ops.aten._flash_attention_forward

    class Recorder:  # the arguments, checked by the meta kernel too; its output stands in as zeros on the CPU
        def __call__(self, q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, causal, debug, scale):
            seen.append((q.shape, cu_q.tolist(), cu_k.tolist(), max_q, max_k, dropout_p, causal, scale))
            out = real(*(t.to("meta") for t in (q, k, v, cu_q, cu_k)), max_q, max_k, dropout_p, causal, debug,
                       scale=scale)[0]
            return (torch.zeros(out.shape, dtype=out.dtype),)

    monkeypatch.setattr(torch.ops.aten, "_flash_attention_forward", Recorder())
    y = backbone.varlen_attention(torch.randn(3, 16, 3 * 2 * 4, dtype=torch.bfloat16), mask, 2, 0.1)
    assert y.shape == (3, 16, 2, 4) and not y.any()
    assert seen == [(torch.Size([48, 2, 8]), [0, 16, 21, 30], [0, 16, 21, 30], 16, 16, 0.1, False, 0.5)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: flash's variable-length kernel")
def test_on_cuda_varlen_attention_equals_masked_attention():
    """On the GPU (`python -m pytest -q tests/test_models.py -k cuda`): train.attn_varlen's flash kernel against
    SDPA with the key mask in bfloat16, outputs and gradients, ListOps' head width and Pathfinder's 4-wide heads
    (zero-padded to 8), scattered masks too, and causal on right-padded rows against causal SDPA without a mask;
    compiled without a graph break, with attention dropout; float32 on CUDA (the per-segment loop, the function
    itself) the same."""
    import torch.nn.functional as F

    from lra_wavelet.models.backbone import probe_flash_varlen, varlen_attention

    assert probe_flash_varlen(torch.device("cuda")) is None  # what build asks before a varlen run's first step
    g = torch.Generator(device="cuda").manual_seed(0)
    mask = torch.arange(300, device="cuda")[None] < torch.tensor([300, 171, 5, 64], device="cuda")[:, None]
    scattered = torch.rand(4, 300, device="cuda", generator=g) < 0.3
    scattered[:, 0] = True
    for m, nh, hs, dtype, tol, causal in ((mask, 8, 64, torch.bfloat16, 2e-2, False),
                                          (scattered, 4, 4, torch.bfloat16, 2e-2, False),
                                          (mask, 8, 64, torch.float32, 1e-5, False),
                                          (mask, 4, 32, torch.bfloat16, 2e-2, True)):  # a decoder's, right padding
        qkv = torch.randn(4, 300, 3 * nh * hs, device="cuda", dtype=dtype, generator=g, requires_grad=True)
        q, k, v = qkv.view(4, 300, 3, nh, hs).permute(2, 0, 3, 1, 4)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=None if causal else m[:, None, None, :],
                                             is_causal=causal).transpose(1, 2)
        (ref * m[:, :, None, None]).float().square().sum().backward()
        ref_grad, qkv.grad = qkv.grad, None
        y = varlen_attention(qkv, m, nh, 0.0, causal=causal)
        torch.testing.assert_close(y[m], ref[m], rtol=tol, atol=tol)
        assert not y[~m].any()
        y.float().square().sum().backward()
        torch.testing.assert_close(qkv.grad, ref_grad, rtol=5 * tol, atol=5 * tol)
    qkv = torch.randn(4, 300, 3 * 8 * 64, device="cuda", dtype=torch.bfloat16, generator=g)
    compiled = torch.compile(varlen_attention, fullgraph=True, dynamic=False)  # fullgraph: a graph break fails
    torch.testing.assert_close(compiled(qkv, mask, 8, 0.0), varlen_attention(qkv, mask, 8, 0.0), rtol=2e-2,
                               atol=2e-2)
    dropped = compiled(qkv, mask, 8, 0.1)
    assert torch.isfinite(dropped).all() and not dropped[~mask].any()


def test_attn_varlen_changes_no_logit_and_is_taken_only_where_padding_stays_unseen(monkeypatch):
    """The same logits and gradients with train.attn_varlen: the encoders with a CLS readout (ListOps) and with
    the benchmark's mean over every position, padded ones attending uniformly (Pathfinder: pixel 0 is padding),
    wavspa too; the causal decoders on right-padded rows (their last valid position read). Not taken by a model
    whose mixing carries padding to valid positions (wavelet-noncausal's centred windows)."""
    from lra_wavelet import config as C
    from lra_wavelet import train as T
    from lra_wavelet.models import backbone

    for task, model, vocab in (("listops", "transformer", None), ("pathfinder", "transformer", 4),
                               ("pathfinder", "wavspa", 4), ("listops", "gpt", None), ("listops", "wavelet", None)):
        outs = []
        for varlen in (False, True):
            cfg = C.resolve(task, model, sets=("model.n_layers=2", "model.d_model=16", "model.n_heads=2",
                                               "model.qkv_dim=16", "model.d_ff=16", "model.dropout=0.0",
                                               "model.attn_dropout=0.0", f"train.attn_varlen={varlen}"))
            p = T.build(cfg, splits={})
            assert all(m.varlen == varlen for m in p.model.modules() if isinstance(m, backbone.Attention))
            assert p.attn_varlen == ("per-segment SDPA" if varlen else False)  # env.json's record
            x = torch.randint(1, vocab or p.task.vocab_size, (3, 20), generator=torch.Generator().manual_seed(1))
            x[1, 9:], x[2, 2:] = p.task.pad_id, p.task.pad_id
            if p.task.padding_leads:
                x[0, :3] = p.task.pad_id
            logits = p.model({"x": x})
            logits.square().sum().backward()
            outs.append((logits.detach(), [q.grad.clone() for q in p.model.parameters() if q.grad is not None]))
        (l0, g0), (l1, g1) = outs
        torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
        for a, b in zip(g0, g1):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)

    called, real = [], backbone.varlen_attention
    monkeypatch.setattr(backbone, "varlen_attention", lambda *a, **k: called.append(1) or real(*a, **k))
    for task, model in (("listops", "wavelet-noncausal"), ("listops", "gpt"), ("pathfinder", "transformer")):
        cfg = C.resolve(task, model, sets=("model.n_layers=1", "model.d_model=16", "model.n_heads=2",
                                           "model.qkv_dim=16", "model.d_ff=16", "train.attn_varlen=true"))
        p = T.build(cfg, splits={})
        x = torch.randint(1, min(p.task.vocab_size, 4), (2, 16))
        x[1, 8:] = p.task.pad_id
        p.model.eval()(({"x": x}))
        called.append(task + "/" + model)
        assert p.attn_varlen == (False if model == "wavelet-noncausal" else "per-segment SDPA")
    assert called == ["listops/wavelet-noncausal", 1, "listops/gpt", 1, "pathfinder/transformer"]  # one layer each

    import dataclasses

    from lra_wavelet.errors import UserError
    from lra_wavelet.stacked import check_stackable

    on = C.resolve("listops", "transformer", sets=("train.attn_varlen=true",))
    assert on.hash == C.resolve("listops", "transformer").hash  # speed only: the same run
    assert backbone.probe_flash_varlen(torch.device("cpu")) is None  # (the per-segment path, here)
    # a GPU whose flash kernel fails is told before any step (one line), not as a sweep of failed cells
    monkeypatch.setattr(T, "varlen_kernel", lambda device, half: "flash varlen")
    monkeypatch.setattr(T, "probe_flash_varlen", lambda device: "CUDA error: no kernel image is available")
    with pytest.raises(UserError, match=r"train.attn_varlen: flash's variable-length kernel fails on this GPU .*"
                                        r"\(CUDA error: no kernel image is available\); leave it off"):
        T.build(on, device=torch.device("cuda"), splits={})
    with pytest.raises(UserError, match="train.attn_varlen: not with stacked seeds"):
        check_stackable([dataclasses.replace(on, seed=s) for s in (0, 1)])


def _bag_of_tokens(n, L, vocab, seed):
    """Label y in {0, 1}; token 1 + y is sprinkled at L // 32 random positions among random tokens 3..vocab-1:
    a signal anywhere in the sequence, as sentiment is in a review."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randint(3, vocab, (n, L), generator=g), torch.randint(0, 2, (n,), generator=g)
    pos = torch.rand(n, L, generator=g).argsort(1)[:, : L // 32]
    x.scatter_(1, pos, (1 + y)[:, None].expand_as(pos))
    return x, y


@pytest.mark.parametrize("name", ["gpt", "wavelet"])
def test_decoders_at_the_lra_tasks_conventions_learn_a_signal_anywhere_in_the_sequence(name):
    """The decoders with Text's configuration (the benchmark's initialisation: the task YAML's model: block)
    find a label token anywhere in 32 positions within 80 steps. With the GPT-style defaults and the sinusoidal
    positions of the LRA tasks they stay at chance here (and stayed there on the Text stand-in on the H200):
    results/lra/diagnostics/decoder-init-cpu/."""
    import dataclasses

    from lra_wavelet import config as C

    cfg = dataclasses.replace(C.resolve("text", name).model, n_layers=2, d_model=32, n_heads=4, d_ff=64, head_dim=64,
                              dropout=0.0, attn_dropout=0.0)
    assert (cfg.init, cfg.pos) == ("lra", "sinusoidal")
    torch.manual_seed(0)
    model = MODELS.get(name)(make_task("classify", L=32, vocab=64, classes=2), cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    (x, y), (xv, yv) = _bag_of_tokens(1024, 32, 64, 1), _bag_of_tokens(256, 32, 64, 2)
    for step in range(80):
        i = torch.randint(0, len(x), (32,), generator=torch.Generator().manual_seed(step))
        loss = torch.nn.functional.cross_entropy(model({"x": x[i]}), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert (model({"x": xv}).argmax(-1) == yv).float().mean() > 0.9
