import importlib
import pkgutil

import pytest

import lra_wavelet.data
import lra_wavelet.models
from lra_wavelet.errors import UserError
from lra_wavelet.registry import MODELS, TASKS, Registry


def test_duplicate_name_is_an_error_naming_both_origins():
    r = Registry("thing")
    r.register("a")(type("A", (), {"__module__": __name__}))
    with pytest.raises(UserError) as e:
        r.register("a")(type("B", (), {"__module__": __name__}))
    msg = str(e.value)
    assert "'a' is registered twice" in msg and "test_registry.A (" in msg and "test_registry.B (" in msg
    assert __file__ in msg


def test_unknown_name_lists_known_names_and_closest():
    with pytest.raises(UserError) as e:
        MODELS.get("wavlet")
    msg = str(e.value)
    assert "did you mean 'wavelet'" in msg and "gpt" in msg and "transformer" in msg
    with pytest.raises(UserError, match="did you mean 'listops'"):
        TASKS.get("listop")


@pytest.mark.parametrize("pkg,registry,helpers", [
    (lra_wavelet.data, TASKS, getattr(lra_wavelet.data, "HELPERS", set()) | {"base"}),
    (lra_wavelet.models, MODELS, lra_wavelet.models.HELPERS),
])
def test_every_module_registers_something(pkg, registry, helpers):
    """A module in data/ or models/ that registers nothing was forgotten (or belongs in HELPERS)."""
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in helpers or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        owned = [n for n in registry.names() if registry.get(n).__module__ == mod.__name__]
        assert owned, f"{mod.__name__} registers nothing in {registry.kind}s"


def test_the_vertical_slice_is_registered():
    assert {"listops"} <= set(TASKS.names())
    assert {"gpt", "wavelet", "transformer"} <= set(MODELS.names())
