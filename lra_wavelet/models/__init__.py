"""Every module in this package that defines models registers them in MODELS on import; all are imported here."""

import importlib
import pkgutil

HELPERS = {"backbone", "ops", "triton_ops"}  # building blocks that register nothing
MODULES = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in HELPERS and not m.name.startswith("_")]
for _m in MODULES:
    importlib.import_module(f"{__name__}.{_m}")
