"""The LRA chart carries the table's cell marks; a Hub id's source is checked against the offline cache."""

import pytest

from lra_wavelet import plot, report
from lra_wavelet.data._common import ids_to_bytes
from lra_wavelet.data.text import Text, TextConfig
from lra_wavelet.errors import UserError

from test_report import make_run


def test_the_chart_labels_bars_with_the_table_marks(tmp_path):
    make_run(tmp_path, task="text", value=0.6, data_source="substitute")  # †
    make_run(tmp_path, model="wavelet", seed=0, sets=("model.d_model=32",), value=0.2)  # ‡: two configurations
    make_run(tmp_path, model="wavelet", seed=1, sets=("model.d_model=64",), value=0.3)
    make_run(tmp_path, preset="quick", value=0.15)  # *: below the reference budget, shown on request
    table, summary = report.lra_table(report.load_rows([tmp_path]), include_reduced=True)
    ax = plot.lra_chart(summary).axes[0]
    bar_marks = [t.get_text() for t in ax.texts if t.get_text()]
    cells = dict(zip(zip(table.Model, table.Setup), zip(table.ListOps, table.Text)))
    assert sorted(bar_marks) == sorted(["*", "‡", "†"])  # one labelled bar per marked cell, no more
    assert cells[("wavelet", "custom")][0].endswith("‡") and cells[("gpt", "reference")][1].endswith("†")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"† substitute data (hatched)", "‡ pools configurations or one seed twice",
            "* below the reference budget"} <= set(legend)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face home, for the libraries already imported too (they read it at import)."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(home / "hub"))
    return datasets


def test_which_source_checks_the_hub_cache_offline_with_the_loads_error(empty_hf_cache):
    for rev in (None, "v1.0"):
        task = Text(TextConfig(name="text", hf="nobody/not-cached", hf_revision=rev))
        with pytest.raises(UserError, match=r"task.hf=nobody/not-cached: not in the Hugging Face cache") as early:
            task.which_source()
        with pytest.raises(UserError) as late:
            task.splits()
        assert str(early.value) == str(late.value) and "\n" not in str(early.value)


def test_a_hub_revision_is_passed_to_datasets_and_keys_the_cache(empty_hf_cache, monkeypatch):
    datasets = empty_hf_cache
    asked = []

    def fake_load(dataset_id, revision=None):  # the Hub, as a cache holding two revisions of one id
        asked.append(revision)
        word = {None: "main", "v1": "old"}[revision]
        return datasets.DatasetDict({s: datasets.Dataset.from_dict({"text": [word, word], "label": [0, 1]})
                                     for s in ("train", "test")})

    monkeypatch.setattr(datasets, "load_dataset_builder", lambda dataset_id, revision=None: asked.append(revision))
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    words = {}
    for rev in (None, "v1"):
        s = Text(TextConfig(name="text", hf="someone/imdb", hf_revision=rev, max_len=4)).splits()
        words[rev] = {ids_to_bytes(r) for r in s["test"].x}
    assert words == {None: {b"main"}, "v1": {b"old"}}  # the second load is not the first one's cached arrays
    assert asked == [None, None, "v1", "v1"]  # checked (builder), then loaded, at the asked revision
