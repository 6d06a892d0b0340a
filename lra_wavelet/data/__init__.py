"""Every module in this package registers its tasks in TASKS on import; all are imported here."""

import importlib
import pkgutil

from .base import ArraySplit, StreamSplit, Task  # noqa: F401

HELPERS = {"base", "corpora", "music", "audio", "snakes", "standins"}  # building blocks that register nothing
MODULES = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in HELPERS and not m.name.startswith("_")]
for _m in MODULES:
    importlib.import_module(f"{__name__}.{_m}")
