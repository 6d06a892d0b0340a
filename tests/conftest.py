import os
import sys
from pathlib import Path

import pytest

# One intra-op thread, set before torch is imported here or in any process a test starts: the models are tiny,
# so a second thread only adds a hand-off per op, which on a shared 2-core machine (CI) waits for a free core
# and made the suite several times slower and erratic under load; the DDP test already ran its ranks this way.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference" / "lra_release"

# A ListOps task small enough for a CPU test: generated data, short expressions, a tiny model.
TINY_LISTOPS = [
    "task.gen_train=96", "task.gen_val=24", "task.gen_test=24", "task.gen_min_length=10",
    "task.gen_max_length=60", "task.max_len=64", "task.gen_workers=1",
    "model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.head_dim=16",
    "model.dropout=0.0", "model.attn_dropout=0.0",
    "train.batch_size=8", "train.max_steps=12", "train.eval_every=4", "train.log_every=2",
    "train.checkpoint_every=4", "train.warmup_steps=2", "train.lr=3e-3",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets the same session-wide cache dir (generated data is reused), never ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("LRA_WAVELET_CACHE", str(cache))
    monkeypatch.delenv("LRA_DATA", raising=False)


def cli(*args, env=None, check=True):
    """Run `python -m lra_wavelet ...` in a subprocess; returns CompletedProcess."""
    import subprocess

    e = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    out = subprocess.run([sys.executable, "-m", "lra_wavelet", *args], capture_output=True, text=True, env=e,
                         cwd=REPO, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}")
    return out
