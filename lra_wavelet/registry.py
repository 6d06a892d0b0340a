"""A name -> class registry filled by decorators; TASKS and MODELS are its two instances.

Names come from three places, loaded in this order:
    the package's own modules (lra_wavelet/data, lra_wavelet/models), imported by `load_all`;
    installed packages, through entry points in the groups `lra_wavelet.tasks` and `lra_wavelet.models`
        (a module, whose decorators register, or a class, registered under the entry point's name);
    the user's own files, `--include PATH` (a .py file or a folder of them), imported by `include`.
A name taken twice is an error that names both origins.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from .errors import UserError, closest

GROUPS = {"tasks": "lra_wavelet.tasks", "models": "lra_wavelet.models"}
_notes: list[str] = []  # where the classes being registered now come from (an entry point), for clash messages


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, type] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str):
        """Class decorator: `@TASKS.register("listops")`. A name may be registered once."""

        def add(obj):
            if name in self._items and self._items[name] is not obj:
                raise UserError(f"{self.kind} '{name}' is registered twice: by {self._origins[name]} "
                                f"and by {origin(obj)}; rename one of them")
            obj.registered_name = name
            self._items[name] = obj
            self._origins[name] = origin(obj)
            return obj

        return add

    def get(self, name: str):
        load_all()
        if name not in self._items:
            raise UserError(
                f"unknown {self.kind} '{name}'{closest(name, self._items)}; "
                f"known: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def origin(self, name: str) -> str:
        return self._origins[name]

    def names(self) -> list[str]:
        load_all()
        return sorted(self._items)

    def __contains__(self, name) -> bool:
        load_all()
        return name in self._items

    def __iter__(self):
        return iter(self.names())


def origin(obj) -> str:
    """'module.Class (file[, entry point ...])': enough to find the definition of a registered class."""
    where = getattr(sys.modules.get(obj.__module__), "__file__", None) or "unknown file"
    return f"{obj.__module__}.{obj.__qualname__} ({where}{''.join(', ' + n for n in _notes)})"


_loaded = False


def load_all() -> None:
    """Import the data and models packages, whose modules fill the registries as a side effect, then the
    entry points of installed packages."""
    global _loaded
    if _loaded:
        return
    from . import data, models  # noqa: F401

    _loaded = True  # before the entry points: their modules may look names up while they load
    for kind, group in GROUPS.items():
        registry = TASKS if kind == "tasks" else MODELS
        for ep in entry_points(group=group):
            dist = f"{ep.dist.name} {ep.dist.version}" if getattr(ep, "dist", None) else "an installed package"
            with _noting(f"entry point '{ep.name}' in {group} of {dist}"):
                try:
                    obj = ep.load()
                except UserError:
                    raise
                except Exception as e:
                    raise UserError(f"entry point '{ep.name}' ({ep.value}) in {group} of {dist} failed to load: "
                                    f"{type(e).__name__}: {e}") from None
                if isinstance(obj, type) and obj not in registry._items.values():
                    registry.register(ep.name)(obj)


@contextlib.contextmanager
def _noting(note: str):
    _notes.append(note)
    try:
        yield
    finally:
        _notes.pop()


_included: set[Path] = set()


def include(*paths) -> None:
    """Import the user's files (`--include PATH`: a .py file, or every .py file of a folder not starting with
    '_', in name order), whose `@TASKS.register` / `@MODELS.register` decorators add their names. Each file is
    imported once, under its own name, with its folder on sys.path (so files of one folder can import each
    other). A broken file is a one-line error naming the file and line."""
    load_all()  # the package's names first, so that a clash with a built-in names the built-in
    for p in paths:
        path = Path(p).expanduser().resolve()
        if path.is_dir():
            files = sorted(f for f in path.glob("*.py") if not f.name.startswith("_"))
            if not files:
                raise UserError(f"--include {p}: no .py files in this folder")
        elif path.is_file() and path.suffix == ".py":
            files = [path]
        else:
            raise UserError(f"--include {p}: expected a .py file or a folder of them")
        for f in files:
            _import_file(f)


def _import_file(f: Path) -> None:
    if f in _included:
        return
    name = f.stem
    known = sys.modules.get(name)
    if known is not None:
        raise UserError(f"--include {f}: a module named '{name}' is already imported "
                        f"({getattr(known, '__file__', None) or 'built in'}); rename the file")
    if str(f.parent) not in sys.path:
        sys.path.append(str(f.parent))
    spec = importlib.util.spec_from_file_location(name, f)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(mod)
    except UserError:
        del sys.modules[name]
        raise
    except Exception as e:
        del sys.modules[name]
        frames = traceback.extract_tb(e.__traceback__)
        line = next((fr.lineno for fr in reversed(frames) if fr.filename == str(f)), None)
        raise UserError(f"{f}{f':{line}' if line else ''}: {type(e).__name__}: {e}") from None
    _included.add(f)


TASKS = Registry("task")
MODELS = Registry("model")
