import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lra_wavelet import config as C
from lra_wavelet.data import pathfinder as pf
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
    assert t.source == "official" and {k: len(v) for k, v in s.items()} == {"train": 800, "val": 100, "test": 100}
    x = np.concatenate([np.asarray(s[k].x) for k in s])
    y = np.concatenate([s[k].y for k in s])
    assert x.shape == (1000, 1024) and x.dtype == np.uint8 and set(np.unique(y)) == {0, 1}
    first = np.asarray(Image.open(REF / "imgs/0/sample_0.png")).reshape(-1)
    row = next(i for i in range(1000) if (x[i] == first).all())  # pixels are the token ids, row-major
    assert y[row] == int((REF / "metadata/0.npy").read_text().split()[3])  # with their own label
    assert t.n_skipped == 0


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
    meta.write_text("imgs/0 sample_0.png 0 1\nimgs/0 sample_1.png\n")
    with pytest.raises(UserError, match="0.npy:2: expected at least 4"):
        read_official(tmp_path / "pf2", 32, progress=False)
    with pytest.raises(UserError, match="expected 128x128"):
        write_layout(tmp_path / "pf3", [1])
        read_official(tmp_path / "pf3", 128, progress=False)


def test_task_counts_skipped_files_and_caches_the_pixels(tmp_path, monkeypatch, capsys):
    root = write_layout(tmp_path / "lra_release" / "pathfinder32" / "curv_contour_length_14", [0, 1] * 10)
    (root / "imgs/0/sample_5.png").write_bytes(b"")
    t = task("pathfinder", f"task.data_dir={tmp_path}")
    s = t.splits()
    assert t.source == "official" and t.n_skipped == 1 and sum(len(v) for v in s.values()) == 19
    assert "skipped 1 empty PNG" in capsys.readouterr().err
    monkeypatch.setattr(pf, "read_official", lambda *a, **k: pytest.fail("pixels were decoded twice"))
    t2 = task("pathfinder", f"task.data_dir={tmp_path}", "task.split_seed=1")  # another split, same cache
    s2 = t2.splits()
    assert sorted(np.concatenate([v.y for v in s2.values()])) == sorted(np.concatenate([v.y for v in s.values()]))
    assert not np.array_equal(s2["test"].y, s["test"].y) or not np.array_equal(np.asarray(s2["test"].x),
                                                                                np.asarray(s["test"].x))


def test_missing_tree_is_explained(tmp_path):
    with pytest.raises(UserError, match="pathfinder32/curv_contour_length_14"):
        task("pathfinder", f"task.data_dir={tmp_path}").splits()


def test_pixel0_switch_and_variants():
    assert task("pathfinder").pad_id is None
    assert task("pathfinder", "task.pixel0_is_pad=true").pad_id == 0
    assert task("pathx").seq_len == 16384 and task("pathfinder-easy").folder.endswith("curv_baseline")
    assert task("pathx-intermediate").folder == "pathfinder128/curv_contour_length_9"
    t = task("pathfinder")
    assert (t.kind, t.n_classes, t.vocab_size, t.chance, t.seq_len) == ("classify", 2, 256, 0.5, 1024)


def test_generator_settings_follow_the_benchmark():
    p32, p128 = snakes.lra_params(32), snakes.lra_params(128)
    assert (p32.distractor_length, p32.n_distractors) == (4, 5)  # 14 // 3, 20 // 4 (Python 2 division)
    assert (p128.distractor_length, p128.n_distractors, p128.margins) == (4, 8, (2, 3))  # 35 // 4
    assert snakes.lra_params(32, 9).n_distractors == 6 and p32.total_paddles(1) == 756


def test_generator_is_seeded_worker_independent_and_balanced():
    p = snakes.lra_params(32)
    a = snakes.render_many(p, 7, range(240), workers=1)
    b = snakes.render_many(p, 7, range(150, 240), workers=2)  # other workers, other grouping
    assert all((s.image == t.image).all() and s.label == t.label for s, t in zip(a[150:], b))
    # alone, each image is what it is in a group of 16 (most distractor seeds fail: every try counts)
    assert all((a[i].image == snakes.render(p, 7, i).image).all() for i in (0, 1, 2, 3, 4, 5, 17, 200))
    c = snakes.render_many(p, 8, range(4), workers=1)
    assert all((s.image != t.image).any() for s, t in zip(a, c))
    assert 0.42 < np.mean([s.label for s in a]) < 0.58  # labels are fair coin flips
    assert all(s.image.shape == (32, 32) and s.image.max() == 255 and s.image.min() == 0 for s in a)


def test_validator_agrees_with_labels_and_catches_a_wrong_one():
    p = snakes.lra_params(32)
    samples = snakes.render_group(p, 7, range(40), keep_layers=True)
    problems = [snakes.validate(s) for s in samples]
    assert all(all(q.startswith("touching:") for q in pr) for pr in problems), problems
    assert sum(bool(pr) for pr in problems) <= 1
    s = samples[0]
    s.label = 1 - s.label  # a wrong label must not pass
    assert any(not q.startswith("touching:") for q in snakes.validate(s))


def test_generated_task_writes_the_official_layout(capsys):
    t = task("pathfinder", "task.gen_total=40", "task.gen_workers=1")
    s = t.splits()
    assert "generating pathfinder" not in capsys.readouterr().err  # progress bars only on a terminal, not in logs
    assert t.source == "generated" and sum(len(v) for v in s.values()) == 40
    root = next(p for p in Path(os.environ["LRA_WAVELET_CACHE"]).rglob("curv_contour_length_14") if p.is_dir())
    x, y, _ = read_official(root, 32, progress=False)  # any LRA loader reads it: the same reader
    assert x.shape == (40, 1024)
    lines = (root / "metadata/0.npy").read_text().splitlines()
    assert len(lines) == 40 and all(len(line.split()) == 11 for line in lines)
    assert lines[0].split()[:2] == ["imgs/0", "sample_0.png"] and lines[0].split()[4:] == "1.0 14 4 2 0.5 1 1".split()
    assert [int(line.split()[3]) for line in lines] == list(y)


def test_pixel_cache_notices_changed_corrupt_and_missing_images(tmp_path):
    root = write_layout(tmp_path / "pathfinder32" / "curv_contour_length_14", [0, 1] * 10)

    def pixels():
        splits = task("pathfinder", f"task.data_dir={tmp_path}").splits()
        return np.concatenate([np.asarray(v.x) for v in splits.values()])

    assert not (pixels() == 77).any()
    img = root / "imgs/0/sample_4.png"
    Image.fromarray(np.full((32, 32), 77, np.uint8), "L").save(img)  # changed after the first load
    assert (pixels() == 77).all(1).sum() == 1
    img.write_bytes(img.read_bytes()[:40])  # truncated
    with pytest.raises(UserError, match=r"sample_4.png: not a readable PNG .*0.npy:5$"):
        pixels()
    img.unlink()
    with pytest.raises(UserError, match=r"0.npy:5: image .*sample_4.png not found$"):
        pixels()


def test_pixel_cache_keyed_on_generator_settings_and_version_not_on_split_or_padding(monkeypatch):
    written = []

    def write_dataset(root, p, total, seed=0, workers=0):  # stands in for the generator: records each run
        written.append(root)
        return write_layout(root, [0, 1] * (total // 2))

    monkeypatch.setattr(snakes, "write_dataset", write_dataset)

    def load(*sets):
        t = task("pathfinder", "task.gen_total=10", *sets)
        t.splits()
        return t.source

    assert load() == "generated" and len(written) == 1
    assert load("task.split_seed=3", "task.pixel0_is_pad=true", "task.gen_workers=2") == "generated"
    assert len(written) == 1  # applied on load: same pixels
    load("task.gen_seed=1")
    monkeypatch.setattr(pf.Pathfinder, "version", 1)
    load()  # caches of another version are never reused
    monkeypatch.setattr(pf.Pathfinder, "version", 2)
    lra_params = snakes.lra_params
    monkeypatch.setattr(snakes, "lra_params", lambda *a: replace(lra_params(*a), single_paddles=True))
    load()  # what version 1 generated: other settings, other images
    assert len(written) == 4 == len(set(written))
    assert pf.Pathfinder.version == 2 and task("pathx").version == 2


def test_which_source_answers_without_building(tmp_path):
    cache = Path(os.environ["LRA_WAVELET_CACHE"])
    before = set(cache.rglob("*"))
    assert task("pathfinder").which_source() == "generated"
    write_layout(tmp_path / "pathfinder" / "pathfinder32" / "curv_contour_length_14", [0, 1])
    assert task("pathfinder", f"task.data_dir={tmp_path}").which_source() == "official"
    assert set(cache.rglob("*")) == before
    with pytest.raises(UserError, match=r"^[^\n]*no pathfinder128/curv_contour_length_14/metadata[^\n]*$"):
        task("pathx", f"task.data_dir={tmp_path}").which_source()


def test_no_single_paddles_by_default_as_the_benchmark_wrapper():
    assert not snakes.SnakeParams().single_paddles
    assert not any(snakes.lra_params(n).single_paddles for n in (32, 64, 128))
    p = snakes.lra_params(32)
    plain, more = (snakes.render(q, 3, 0, keep_layers=True) for q in (p, replace(p, single_paddles=True)))
    assert (more.rest > 0).sum() > 4 * (plain.rest > 0).sum()  # single paddles fill the canvas


def _dilate_with_neg_inf_border(occupied: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """out[q] = max over offsets o of occupied[q + o], -inf where q + o leaves the image."""
    n = occupied.shape[0]
    big = np.full((3 * n, 3 * n), -np.inf)
    big[n:2 * n, n:2 * n] = occupied
    return np.max([big[n + dy:2 * n + dy, n + dx:2 * n + dx] for dy, dx in offsets], axis=0)


def test_seed_test_gives_up_where_the_dilation_reaches_outside():
    """The reference's seed test finds no place when its dilated mask (border: the most negative
    float) is negative anywhere; `_usable` must say exactly that for every orientation."""
    kit = snakes._kit(snakes.lra_params(32), 1)
    ring = np.zeros((32, 32))
    ring[0] = ring[-1] = ring[:, 0] = ring[:, -1] = 1
    for t in range(360):
        off = kit._dydx(kit.fps[kit.fp_id[t]])
        assert kit.usable_tags[t] == (_dilate_with_neg_inf_border(ring, off).min() >= 0), t
    assert kit.usable_tags.sum() == 30  # as OpenCV's float dilation gives with these kernels
    assert set(np.flatnonzero(kit.usable_tags) - 180) == set(range(-150, -120))  # up-left
    rng = np.random.default_rng(0)
    canvas = snakes._Canvas(kit, kit.base_mask.copy(), snakes._Uniforms(rng), rng)
    assert all(canvas.free_tail(t) is None for t in np.flatnonzero(~kit.usable_tags)[:20])
    assert canvas.free_tail(int(kit.usable_list[0])) is not None
    assert kit.band_count[~kit.usable_tags].max() == 0 < kit.band_count[kit.usable_tags].min()


@pytest.mark.skipif(not REF.is_dir(), reason="shared reference files not present")
def test_generated_images_have_the_reference_generators_statistics():
    ref = np.stack([np.asarray(Image.open(REF / f"imgs/0/sample_{k}.png")) for k in range(1000)]).astype(float)
    gen = snakes.render_many(snakes.lra_params(32), 11, range(240))
    ours = np.stack([s.image for s in gen]).astype(float)
    assert abs(ours.mean() - ref.mean()) < 1.5
    assert abs((ours > 0).mean() - (ref > 0).mean()) < 0.02
    assert abs((ours == 255).sum((1, 2)).mean() - (ref == 255).sum((1, 2)).mean()) < 0.4
    assert abs((ours > 128).mean() - (ref > 128).mean()) < 0.01
    # the benchmark's generator draws ~1.2 of its 5 distractor snakes per image at 32x32
    assert 0.9 < np.mean([s.distractors for s in gen]) < 1.5


def test_a_generator_count_below_one_image_is_named_when_the_config_is_built():
    for n in (0, -3):
        with pytest.raises(UserError, match=rf"^task: gen_total must be positive, got {n}$"):
            C.resolve("pathfinder", "gpt", sets=(f"task.gen_total={n}",))


def test_the_data_digest_names_the_examples_read_wherever_they_came_from(tmp_path):
    """env.json's data.arrays_sha256 is of the splits a run reads: a run from the cache and one from an export of
    it (another layout: the split arrays, not the cached pool) record the same digest; another split_seed (applied
    on load, the same cache) or a cap records another."""
    def digest(*sets):
        t = task("pathfinder", "task.gen_total=40", "task.gen_workers=1", *sets)
        t.splits()
        return t, t.provenance()["arrays_sha256"]

    t, cached = digest()
    t.export(tmp_path / "prep")
    assert digest(f"task.prepared={tmp_path / 'prep'}")[1] == cached
    assert digest("task.split_seed=1")[1] != cached
    assert digest("task.n_train=10")[1] != cached
    assert len(cached) == 16
