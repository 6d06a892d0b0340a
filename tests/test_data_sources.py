"""The one data layer: which source is picked, Hugging Face copies and ids, export, a safe and honest cache."""

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from lra_wavelet.cli import main
from lra_wavelet.data import text8
from lra_wavelet.data._common import ids_to_bytes
from lra_wavelet.data.image import ImageConfig, ImageTask, grayscale
from lra_wavelet.data.listops import ListOps, ListOpsConfig, encode, write_tsv
from lra_wavelet.data.retrieval import Retrieval, RetrievalConfig
from lra_wavelet.data.text import Text, TextConfig
from lra_wavelet.errors import UserError

datasets = pytest.importorskip("datasets")

LISTOPS_ROWS = {"train": [("( ( [MAX 2 9 ) 4 ] )", 9), ("( ( [MIN 3 5 ) 1 ] )", 1), ("( ( [SM 2 3 ) 4 ] )", 9)],
                "val": [("( ( [MED 1 2 ) 3 ] )", 2)], "test": [("( ( [MAX 0 1 ) 7 ] )", 7)]}
TINY_GEN = dict(gen_train=30, gen_val=6, gen_test=6, gen_min_length=5, gen_max_length=40, max_len=48, gen_workers=1)


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path, monkeypatch):
    """A private, empty Hugging Face cache; the network is never used."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def listops_dict():
    return datasets.DatasetDict({("validation" if k == "val" else k): datasets.Dataset.from_dict(
        {"Source": [s for s, _ in rows], "Target": [str(v) for _, v in rows]}) for k, rows in LISTOPS_ROWS.items()})


def test_save_to_disk_copies_with_the_hub_schema_are_official(tmp_path):
    # ListOps (Source, Target; train/validation/test): the same arrays as the official TSVs
    listops_dict().save_to_disk(str(tmp_path / "hub" / "listops"))
    for split, rows in LISTOPS_ROWS.items():
        (tmp_path / "tsv" / "listops-1000").mkdir(parents=True, exist_ok=True)
        write_tsv(tmp_path / "tsv" / "listops-1000" / f"basic_{split}.tsv", rows)
    hub = ListOps(ListOpsConfig(name="listops", data_dir=str(tmp_path / "hub"), max_len=16))
    tsv = ListOps(ListOpsConfig(name="listops", data_dir=str(tmp_path / "tsv"), max_len=16))
    assert hub.which_source() == "official"
    for k, s in hub.splits().items():
        assert np.array_equal(s.x, tsv.splits()[k].x) and np.array_equal(s.y, tsv.splits()[k].y)
    ids = encode(LISTOPS_ROWS["train"][0][0], 16)
    assert hub.source == "official" and list(hub.splits()["train"].x[0, :len(ids)]) == ids

    # IMDb (text, label; train/test/unsupervised): the unsupervised split is not read
    imdb = datasets.DatasetDict({k: datasets.Dataset.from_dict({"text": t, "label": y}) for k, t, y in (
        ("train", [" good film ", "bad \u00e9"], [1, 0]), ("test", ["meh", "wow"], [0, 1]),
        ("unsupervised", ["no label"], [-1]))})
    imdb.save_to_disk(str(tmp_path / "hub" / "imdb"))
    t = Text(TextConfig(name="text", data_dir=str(tmp_path / "hub"), max_len=8))
    s = t.splits()
    assert t.source == "official" and {ids_to_bytes(r): int(v) for r, v in zip(s["train"].x, s["train"].y)} == \
        {b"good fil": 1, "bad \u00e9".encode(): 0} and len(s["val"]) == len(s["test"]) == 2

    # CIFAR-10 (img as an Image feature, label as a ClassLabel): pixels as the pickles give them
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    cifar = datasets.DatasetDict({k: datasets.Dataset.from_dict(
        {"img": [Image.fromarray(a) for a in rgb], "label": list(range(10))}, features=features)
        for k in ("train", "test")})
    cifar.save_to_disk(str(tmp_path / "hub" / "cifar10"))
    im = ImageTask(ImageConfig(name="image", data_dir=str(tmp_path / "hub")))
    s = im.splits()
    assert im.source == "official" and [len(s[k]) for k in ("train", "val", "test")] == [9, 1, 10]
    assert np.array_equal(s["test"].x, grayscale(rgb.transpose(0, 3, 1, 2).reshape(10, -1)))

    # AAN pairs (label, text1, text2; train/validation/test)
    aan = datasets.DatasetDict({k: datasets.Dataset.from_dict(
        {"label": [1, 0], "id1": ["a", "b"], "id2": ["c", "d"], "text1": ["cites", "x"], "text2": ["cited", "y"]})
        for k in ("train", "validation", "test")})
    aan.save_to_disk(str(tmp_path / "hub" / "aan"))
    r = Retrieval(RetrievalConfig(name="retrieval", data_dir=str(tmp_path / "hub"), max_len=6))
    s = r.splits()
    assert r.source == "official" and s["val"].x.shape == (2, 2, 6) and s["val"].y.tolist() == [1, 0]
    assert ids_to_bytes(s["val"].x[0, 0]) == b"cites" and ids_to_bytes(s["val"].x[0, 1]) == b"cited"


def test_a_hub_copy_with_a_missing_split_or_column_is_named(tmp_path):
    dd = listops_dict()
    del dd["validation"]
    dd.save_to_disk(str(tmp_path / "listops"))
    with pytest.raises(UserError, match=r"listops: a Hugging Face copy without a validation split"):
        ListOps(ListOpsConfig(name="listops", data_dir=str(tmp_path))).splits()
    datasets.DatasetDict({k: datasets.Dataset.from_dict({"Source": ["1"], "Label": ["\u0663"]})
                          for k in ("train", "validation", "test")}).save_to_disk(str(tmp_path / "l2" / "listops"))
    with pytest.raises(UserError, match=r"missing column 'Target'"):
        ListOps(ListOpsConfig(name="listops", data_dir=str(tmp_path / "l2"))).splits()


def test_a_hub_id_loads_through_the_cache_and_offline_without_it_says_how(tmp_path):
    repo = tmp_path / "imdb-repo" / "plain_text"  # a dataset repository as the Hub lays it out, read locally
    repo.mkdir(parents=True)
    for split, texts in (("train", ["yes", "no"]), ("test", ["fine", "poor"])):
        datasets.Dataset.from_dict({"text": texts, "label": [1, 0]}).to_parquet(str(repo / f"{split}-00000-of-00001.parquet"))
    t = Text(TextConfig(name="text", hf=str(tmp_path / "imdb-repo"), max_len=4))
    assert t.which_source() == "hf"
    (tmp_path / "lra").mkdir()  # a data dir (e.g. $LRA_DATA) without IMDb: the named Hub id is used
    assert Text(TextConfig(name="text", hf=str(tmp_path / "imdb-repo"), data_dir=str(tmp_path / "lra"))).which_source() == "hf"
    with pytest.raises(UserError, match="no IMDb data found"):  # never a silent fall-back to the stand-in
        Text(TextConfig(name="text", data_dir=str(tmp_path / "lra"))).which_source()
    s = t.splits()
    assert t.source == "hf" and {ids_to_bytes(r) for r in s["test"].x} == {b"fine", b"poor"}
    missing = Text(TextConfig(name="text", hf="nobody/no-such-dataset"))
    with pytest.raises(UserError, match=r"task.hf=nobody/no-such-dataset: not in the Hugging Face cache .*"
                                        r"--set task.allow_download=true"):
        missing.splits()


def test_export_hf_writes_the_ready_splits_as_a_dataset_dict(tmp_path, capsys):
    sets = [f"task.{k}={v}" for k, v in TINY_GEN.items()] + ["task.n_train=20"]
    args = ["prepare", "--task", "listops", *sum((["--set", s] for s in sets), []), "--export-hf", str(tmp_path / "hf")]
    assert main(args) == 0 and "load_from_disk" in capsys.readouterr().out
    dd = datasets.load_from_disk(str(tmp_path / "hf"))
    task = ListOps(ListOpsConfig(name="listops", **TINY_GEN, n_train=20))
    assert set(dd) == {"train", "validation", "test"} and len(dd["train"]) == 20
    assert np.array_equal(np.array(dd["validation"]["input_ids"]), task.splits()["val"].x)
    assert dd["test"]["label"] == task.splits()["test"].y.tolist() and '"data_source": "generated"' in \
        dd["train"].info.description
    assert main(args) == 2  # the folder is not empty now: refused before any work, nothing overwritten
    assert len(datasets.load_from_disk(str(tmp_path / "hf"))["train"]) == 20
    (tmp_path / "text8").write_text("the cat sat on the mat " * 40)  # an LM stream: chunks of seq_len tokens
    t8 = text8.Text8(text8.Text8Config(name="text8", data_dir=str(tmp_path), seq_len=16))
    dd = datasets.load_from_disk(str(t8.export_hf(tmp_path / "t8")))
    assert {len(r) for r in dd["train"]["input_ids"][:-1]} == {16}
    assert np.array_equal(np.concatenate(dd["test"]["input_ids"]), t8.splits()["test"].tokens)


def test_which_source_names_the_source_or_what_to_install_without_building(tmp_path, monkeypatch):
    cache = Path(os.environ["LRA_WAVELET_CACHE"]) / "which"
    monkeypatch.setenv("LRA_WAVELET_CACHE", str(cache))
    assert ListOps(ListOpsConfig(name="listops", **TINY_GEN)).which_source() == "generated"
    with pytest.raises(UserError, match=r"no data source is available: --data-dir with .*cifar-10-batches-py.*"
                                        r"task.hf=ID.*apt-get update && apt-get install dataset-fashion-mnist"):
        ImageTask(ImageConfig(name="image", sub_dir=None)).which_source() if not Path(
            "/usr/share/datasets/fashion-mnist").is_dir() else pytest.skip("Fashion-MNIST is installed here")
    assert not cache.exists()  # nothing was built


def test_missing_val_file_is_named(tmp_path):
    d = tmp_path / "listops-1000"
    d.mkdir()
    for split in ("train", "test"):
        write_tsv(d / f"basic_{split}.tsv", LISTOPS_ROWS["train"])
    with pytest.raises(UserError, match=r"basic_val.tsv: file not found"):
        ListOps(ListOpsConfig(name="listops", data_dir=str(tmp_path))).which_source()


def test_a_changed_input_file_is_never_served_from_a_stale_cache(tmp_path):
    d = tmp_path / "listops-1000"
    d.mkdir()
    for split, rows in LISTOPS_ROWS.items():
        write_tsv(d / f"basic_{split}.tsv", rows)

    def labels():
        return ListOps(ListOpsConfig(name="listops", data_dir=str(tmp_path), max_len=16)).splits()["test"].y.tolist()

    assert labels() == [7]
    st = (d / "basic_test.tsv").stat()
    write_tsv(d / "basic_test.tsv", [("( ( [MAX 0 1 ) 8 ] )", 8)])  # same size, new content
    os.utime(d / "basic_test.tsv", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert labels() == [8]


def _prepare(_):
    task = ListOps(ListOpsConfig(name="listops", **TINY_GEN, gen_seed=7))
    s = task.splits()
    return task.source, np.asarray(s["train"].x).tobytes()


def test_concurrent_preparation_on_a_cold_cache_is_safe(tmp_path, monkeypatch):
    monkeypatch.setenv("LRA_WAVELET_CACHE", str(tmp_path / "cold"))
    with multiprocessing.get_context("fork").Pool(3) as pool:
        got = pool.map(_prepare, range(3))
    assert len(set(got)) == 1 and got[0][0] == "generated"
    leftovers = [p.name for p in (tmp_path / "cold" / "listops").iterdir() if ".tmp" in p.name]
    assert not leftovers
