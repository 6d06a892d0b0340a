"""Variants outside the package: the README's worked example through --include, entry points, clashes."""

import re
import sys

import pandas as pd
import pytest

from lra_wavelet import registry
from lra_wavelet.cli import main
from lra_wavelet.errors import UserError
from lra_wavelet.registry import MODELS, TASKS

from conftest import REPO, TINY_LISTOPS

TINY = [a for s in TINY_LISTOPS for a in ("--set", s)]


@pytest.fixture(autouse=True)
def _restore_registries(monkeypatch):
    """What a test registers, imports or puts on sys.path is gone afterwards (the model tests iterate MODELS)."""
    registry.load_all()
    for r in (MODELS, TASKS):
        monkeypatch.setattr(r, "_items", dict(r._items))
        monkeypatch.setattr(r, "_origins", dict(r._origins))
    monkeypatch.setattr(registry, "_included", set())
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [f.stem for f in registry._included] + ["lra_ep_demo"]:  # the user modules a test imported
        sys.modules.pop(name, None)


def readme_example(tmp_path):
    """The README's `my_variants.py` and `my_variant.yaml` blocks, written as a user would save them."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    section = REPO.joinpath("README.md").read_text().split("## Your own models and tasks")[1].split("\n## ")[0]
    (tmp_path / "my_variants.py").write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    (tmp_path / "my_variant.yaml").write_text(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    return tmp_path / "my_variants.py", tmp_path / "my_variant.yaml"


def test_the_readme_encoder_variant_is_listed_and_runs(tmp_path, capsys):
    module, yaml_block = readme_example(tmp_path)
    assert main(["list", "models", "--task", "image", "--include", str(module)]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("wavelet-encoder-quarter "))
    assert "Wavelet encoder with a quarter of the coordinates modified" in row and "n/a" not in row
    out = tmp_path / "runs"
    assert main(["run", "--include", str(module), "--config", str(yaml_block), "--task", "listops", "--max-steps",
                 "2", "--device", "cpu", "--out", str(out), "--no-progress", *TINY]) == 0
    (result,) = out.rglob("result.csv")
    rows = pd.read_csv(result)
    assert set(rows.model) == {"wavelet-encoder-quarter"} and set(rows.status) == {"ok"}
    saved = (result.parent / "config.yaml").read_text()
    assert "mod_frac: 0.25" in saved and "coords: interleaved" in saved and "pool: mean" in saved
    assert not MODELS.get("wavelet-encoder-quarter").causal  # an encoder


def test_a_name_clash_names_both_origins(tmp_path):
    f = tmp_path / "clash.py"
    f.write_text("from lra_wavelet.registry import MODELS\n\n\n@MODELS.register('wavelet')\nclass Mine:\n    pass\n")
    with pytest.raises(UserError) as e:
        registry.include(f)
    msg = str(e.value)
    assert "model 'wavelet' is registered twice" in msg
    assert "lra_wavelet.models.gpt.WaveletGPT (" in msg and f"clash.Mine ({f}" in msg
    with pytest.raises(UserError, match="expected a .py file or a folder of them"):
        registry.include(tmp_path / "nope.txt")
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\nraise RuntimeError('oops')\n")
    with pytest.raises(UserError, match=r"broken.py:2: RuntimeError: oops"):
        registry.include(broken)


def test_installed_packages_register_through_entry_points(tmp_path, monkeypatch):
    (tmp_path / "lra_ep_demo.py").write_text(
        "from lra_wavelet.registry import MODELS\n\nGPT = MODELS.get('gpt')\n\n\n"
        "@MODELS.register('ep-decorated')\nclass Decorated(GPT):\n    'Registered by its decorator.'\n\n\n"
        "class Plain(GPT):\n    'Registered under its entry point name.'\n")
    info = tmp_path / "lra_ep_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lra-ep-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lra_wavelet.models]\nep-module = lra_ep_demo\nep-plain = lra_ep_demo:Plain\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", False)
    assert {"ep-decorated", "ep-plain", "gpt"} <= set(MODELS.names())
    assert MODELS.get("ep-plain").__name__ == "Plain"
    assert "entry point 'ep-module' in lra_wavelet.models of lra-ep-demo 0.1" in MODELS.origin("ep-decorated")
