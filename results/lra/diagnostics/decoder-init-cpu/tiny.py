"""The bag-of-tokens check behind tests/test_models.py::test_decoders_at_the_lra_tasks_conventions_learn_...:
label token 1 + y at L // 32 random positions of L = 128 random tokens, 2 layers, d_model 32, 150 Adam steps
(lr 1e-3, batch 32), validation accuracy on 512 held-out sequences, seeds 0 and 1, per model x init x positions.
    PYTHONPATH=. python results/lra/diagnostics/decoder-init-cpu/tiny.py
"""
import time
import types

import torch
import torch.nn.functional as F

import lra_wavelet.models  # noqa: F401
from lra_wavelet.registry import MODELS


def data(n, L, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randint(3, vocab, (n, L), generator=g), torch.randint(0, 2, (n,), generator=g)
    pos = torch.rand(n, L, generator=g).argsort(1)[:, : L // 32]
    x.scatter_(1, pos, (1 + y)[:, None].expand_as(pos))
    return x, y


def run(name, init, pos, seed, L=128, vocab=64, steps=150, d=32):
    torch.manual_seed(seed)
    cls = MODELS.get(name)
    task = types.SimpleNamespace(kind="classify", seq_len=L, vocab_size=vocab, n_classes=2, pad_id=0)
    model = cls(task, cls.Config(name=name, n_layers=2, d_model=d, n_heads=4, d_ff=2 * d, head_dim=2 * d, dropout=0.0,
                                 attn_dropout=0.0, pos=pos, init=init))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    (x, y), (xv, yv) = data(4096, L, vocab, 1), data(512, L, vocab, 2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(0, len(x), (32,), generator=g)
        loss = F.cross_entropy(model({"x": x[i]}), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (model({"x": xv}).argmax(-1) == yv).float().mean().item()


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("| model | init | positions | validation accuracy, seeds 0 / 1 | seconds |\n|---|---|---|---|---|")
    for name in ("gpt", "wavelet", "transformer"):
        for init, pos in (("gpt", "sinusoidal"), ("gpt", "learned"), ("gpt", "none"), ("lra", "sinusoidal")):
            t = time.time()
            acc = [run(name, init, pos, s) for s in (0, 1)]
            print(f"| {name} | {init} | {pos} | {' / '.join(f'{100 * a:.1f}%' for a in acc)} | {time.time() - t:.0f} |",
                  flush=True)
