from collections import Counter
import numpy as np
import pytest
import scipy.stats

from lra_wavelet.data.listops import (OOV_ID, VOCAB, ListOps, ListOpsConfig, encode, generate, read_tsv,
                                      write_tsv)
from lra_wavelet.errors import UserError

from conftest import SHARED_REFERENCE

REF = SHARED_REFERENCE / "listops-1000"


def evaluate(source: str) -> int:
    """An independent evaluator of a ListOps source string (parentheses dropped, ] closes)."""
    toks = source.replace("(", " ").replace(")", " ").split()
    stack = [[]]
    for t in toks:
        if t.startswith("["):
            stack.append([t])
        elif t == "]":
            op, *args = stack.pop()
            v = {"[MIN": min, "[MAX": max, "[MED": lambda a: int(np.median(a)), "[SM": lambda a: sum(a) % 10}[op](args)
            stack[-1].append(v)
        else:
            stack[-1].append(int(t))
    return stack[0][0]


@pytest.mark.skipif(not REF.is_dir(), reason="shared reference files not present")
def test_reads_the_reference_files_made_by_the_benchmark_generator():
    task = ListOps(ListOpsConfig(name="listops", data_dir=str(REF.parent)))
    splits = task.splits()
    assert task.source == "official"
    assert {k: len(v) for k, v in splits.items()} == {"train": 200, "val": 50, "test": 50}
    x, y = splits["train"].x, splits["train"].y
    assert x.shape == (200, 2000) and set(np.unique(y)) <= set(range(10))
    assert OOV_ID not in np.unique(x)  # every token of the benchmark's files is in our fixed map
    # the first row, tokenised by hand from the file
    src = (REF / "basic_train.tsv").read_text().splitlines()[1].split("\t")[0]
    ids = encode(src, 2000)
    assert list(x[0, : len(ids)]) == ids and (x[0, len(ids):] == 0).all()
    assert ids[0] == VOCAB["[SM"] and VOCAB["X"] in ids
    for line in (REF / "basic_val.tsv").read_text().splitlines()[1:20]:  # labels are the expressions' values
        s, t = line.split("\t")
        assert evaluate(s) == int(t)


def test_generator_matches_the_benchmark_procedure(tmp_path):
    cfg = ListOpsConfig(gen_train=600, gen_val=0, gen_test=0, gen_workers=1, gen_seed=1)
    rows = generate(cfg, progress=False)["train"]
    assert len({s for s, _ in rows}) == 600  # deduplicated
    lengths = [len(encode(s, 10_000)) for s, _ in rows]
    assert 500 < min(lengths) and max(lengths) < 2000
    if REF.is_dir():  # the lengths of the benchmark's own generator's 300 rows: one distribution
        ref = [len(encode(ln.split("\t")[0], 10_000)) for f in ("basic_train", "basic_val", "basic_test")
               for ln in (REF / f"{f}.tsv").read_text().splitlines()[1:]]
        assert scipy.stats.ks_2samp(lengths, ref).pvalue > 0.05
    assert all(evaluate(s) == v for s, v in rows[:100])
    labels = Counter(v for _, v in rows)
    assert 0.12 < labels[0] / 600 < 0.23 and 0.12 < labels[9] / 600 < 0.23  # about 17% each
    for d in range(1, 9):
        assert labels[d] / 600 < 0.13
    write_tsv(tmp_path / "basic_train.tsv", rows)  # the official format, read back by the reader
    split = read_tsv(tmp_path / "basic_train.tsv", 2000)
    assert list(split.y) == [v for _, v in rows]


def test_generator_is_seeded_and_independent_of_workers():
    base = dict(gen_train=40, gen_val=5, gen_test=5, gen_min_length=10, gen_max_length=80)
    a = generate(ListOpsConfig(**base, gen_workers=1), progress=False)
    b = generate(ListOpsConfig(**base, gen_workers=2), progress=False)
    c = generate(ListOpsConfig(**base, gen_workers=1, gen_seed=5), progress=False)
    assert a == b and a != c
    assert not set(s for s, _ in a["train"]) & set(s for s, _ in a["test"])


@pytest.mark.parametrize("content,match", [
    ("Source\tTarget\n( [MAX 1 2 ] )\n", "basic_train.tsv:2: expected 2 tab-separated columns"),
    ("Source\tLabel\n1\t2\n", "basic_train.tsv:1: header .*; expected the two columns 'Source<TAB>Target'"),
    ("Source\tTarget\n1\t3\n( [MAX 1 2 ] )\t2\textra\n", "basic_train.tsv:3: expected 2 tab-separated columns .* got 3"),
    ("Source\tTarget\tNote\n1\t3\tx\n", "basic_train.tsv:1: header .*; expected the two columns"),
    ("Source\tTarget\n( [MAX 1 \x00 2 ] )\t2\n", "basic_train.tsv:2: NUL byte in the Source"),
    ("Source\tTarget\n( [MAX 1 2 ] )\t\u0663\n", "basic_train.tsv:2: Target '\u0663' is not an integer label"),
    ("Source\tTarget\n1\t3\n( [MAX caf\u00e9 ] )\t3\n".encode("latin-1"), "basic_train.tsv:3: not UTF-8 text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "basic_train.tsv:1: not UTF-8 text"),
    ("Source\tTarget\n( ( [MAX 1 ) 2 ] )\tseven\n", "basic_train.tsv:2: Target 'seven' is not an integer"),
    ("Source\tTarget\n1\t3\n1\t12\n", "basic_train.tsv:3: Target 12 is outside 0-9"),
    ("", "empty file"),
])
def test_malformed_tsv_names_file_and_line(tmp_path, content, match):
    f = tmp_path / "basic_train.tsv"
    f.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(UserError, match=match):
        read_tsv(tmp_path / "basic_train.tsv", 2000)


def test_missing_files_show_the_expected_tree(tmp_path):
    task = ListOps(ListOpsConfig(name="listops", data_dir=str(tmp_path)))
    with pytest.raises(UserError, match="listops-1000/basic_"):
        task.splits()
