"""A name -> class registry filled by decorators; TASKS and MODELS are its two instances."""

from .errors import UserError, closest


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, type] = {}

    def register(self, name: str):
        """Class decorator: `@TASKS.register("listops")`. A name may be registered once."""

        def add(obj):
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered by {self._items[name]!r}")
            obj.registered_name = name
            self._items[name] = obj
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

    def names(self) -> list[str]:
        load_all()
        return sorted(self._items)

    def __contains__(self, name) -> bool:
        load_all()
        return name in self._items

    def __iter__(self):
        return iter(self.names())


def load_all() -> None:
    """Import the data and models packages, whose modules fill the registries as a side effect."""
    from . import data, models  # noqa: F401


TASKS = Registry("task")
MODELS = Registry("model")
