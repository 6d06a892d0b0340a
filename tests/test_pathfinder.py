import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lra_wavelet import config as C
from lra_wavelet.data import snakes
from lra_wavelet.data.pathfinder import read_official
from lra_wavelet.errors import UserError
from lra_wavelet.registry import TASKS

from conftest import SHARED_REFERENCE

REF = SHARED_REFERENCE / "pathfinder32" / "curv_contour_length_14"


def task(name="pathfinder", *sets):
    return TASKS.get(name)(C.resolve(name, "gpt", sets=sets).task)


@pytest.mark.skipif(not REF.is_dir(), reason="shared reference files not present")
def test_reads_the_reference_files_made_by_the_benchmark_generator():
    t = task("pathfinder", f"task.data_dir={SHARED_REFERENCE}")
    s = t.splits()
    assert t.source == "official" and {k: len(v) for k, v in s.items()} == {"train": 128, "val": 16, "test": 16}
    x = np.concatenate([s[k].x for k in s])
    y = np.concatenate([s[k].y for k in s])
    assert x.shape == (160, 1024) and x.dtype == np.uint8 and set(np.unique(y)) == {0, 1}
    first = np.asarray(Image.open(REF / "imgs/0/sample_0.png")).reshape(-1)
    assert any((row == first).all() for row in x)  # pixels are the token ids, row-major


def write_layout(root, labels, size=32):
    (root / "imgs/0").mkdir(parents=True)
    (root / "metadata").mkdir()
    lines = []
    for k, lab in enumerate(labels):
        Image.fromarray(np.full((size, size), k * 10, np.uint8), "L").save(root / f"imgs/0/sample_{k}.png")
        lines.append(f"imgs/0 sample_{k}.png {k} {lab} 1.0 14 4 2 0.5 1 1")
    (root / "metadata/0.npy").write_text("\n".join(lines) + "\n")
    return root


def test_official_layout_zero_byte_skipped_and_errors_name_file_and_line(tmp_path):
    root = write_layout(tmp_path / "pf", [0, 1, 1, 0, 1])
    (root / "imgs/0/sample_2.png").write_bytes(b"")  # skipped and counted, as the benchmark does
    x, y, skipped = read_official(root, 32, progress=False)
    assert len(x) == 4 and list(y) == [0, 1, 0, 1] and len(skipped) == 1 and (x[1] == 10).all()

    (root / "imgs/0/sample_3.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="sample_3.png: not a readable PNG.*0.npy:4"):
        read_official(root, 32, progress=False)
    write_layout(tmp_path / "pf2", [0, 1])
    meta = tmp_path / "pf2/metadata/0.npy"
    meta.write_text(meta.read_text() + "imgs/0 sample_9.png 9 1 1.0\n")
    with pytest.raises(UserError, match="0.npy:3: image .*sample_9.png not found"):
        read_official(tmp_path / "pf2", 32, progress=False)
    meta.write_text("imgs/0 sample_0.png 0 7\n")
    with pytest.raises(UserError, match="0.npy:1: label '7' is not 0 or 1"):
        read_official(tmp_path / "pf2", 32, progress=False)
    with pytest.raises(UserError, match="expected 128x128"):
        write_layout(tmp_path / "pf3", [1])
        read_official(tmp_path / "pf3", 128, progress=False)


def test_missing_tree_is_explained(tmp_path):
    with pytest.raises(UserError, match="pathfinder32/curv_contour_length_14"):
        task("pathfinder", f"task.data_dir={tmp_path}").splits()


def test_pixel0_switch_and_variants():
    assert task("pathfinder").pad_id is None
    assert task("pathfinder", "task.pixel0_is_pad=true").pad_id == 0
    assert task("pathx").seq_len == 16384 and task("pathfinder-easy").folder.endswith("curv_baseline")


def test_generator_is_seeded_worker_independent_and_valid():
    p = snakes.lra_params(32)
    a = snakes.render_many(p, 7, range(24), workers=1)
    b = snakes.render_many(p, 7, range(24), workers=2)
    assert all((s.image == t.image).all() and s.label == t.label for s, t in zip(a, b))
    c = snakes.render_many(p, 8, range(4), workers=1)
    assert any((s.image != t.image).any() for s, t in zip(a, c))
    labels = [s.label for s in a]
    assert 0 < sum(labels) < len(labels)
    for i in range(12):  # label 1 <=> the markers are on one contour, checked on the generator's layers
        assert snakes.validate(snakes.render(p, 7, i, keep_layers=True)) == []


def test_generated_task_writes_the_official_layout(tmp_path):
    t = task("pathfinder", "task.gen_total=40", "task.gen_workers=1")
    s = t.splits()
    assert t.source == "generated" and sum(len(v) for v in s.values()) == 40
    root = next(p for p in Path(os.environ["LRA_WAVELET_CACHE"]).rglob("curv_contour_length_14") if p.is_dir())
    x, y, _ = read_official(root, 32, progress=False)  # any LRA loader reads it: the same reader
    assert x.shape == (40, 1024)
