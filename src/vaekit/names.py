"""Things found by name: the models, the samplers and the data loaders each keep one table (a leaf module)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .errors import VaekitError

T = TypeVar("T")


class Registry(dict[str, Any]):
    """name -> class (or function).  `@table.register("name")` adds one (and sets its `name`); `table.find(name)`
    returns it, or raises a one-line error listing the known names."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} name {name!r} registered twice")
            target: Any = cls  # a class or a function: either takes a `name`
            target.name = name
            self[name] = cls
            return cls

        return deco

    def find(self, name: object) -> Any:
        if not isinstance(name, str) or name not in self:
            raise VaekitError(f"unknown {self.kind} {name!r:.60}; known {self.kind}s: {', '.join(sorted(self))}")
        return self[name]
