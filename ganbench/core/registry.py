"""Validated registries of named plug-ins (architectures, losses, metrics, ...).

A registry rejects duplicate names and answers an unknown name with the list of what exists.
A plug-in with options declares them as a frozen dataclass: unknown keys and wrong types are
errors, and every default is written out when a spec is resolved.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from ganbench.core.errors import GanbenchError

T = TypeVar("T")


class Registry(dict, Generic[T]):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str, item: T) -> T:
        assert name not in self, f"{self.kind} {name!r} registered twice"
        self[name] = item
        return item

    def get_or_raise(self, name: str) -> T:
        if name not in self:
            raise GanbenchError(f"Unknown {self.kind} {name!r}. Available: {', '.join(sorted(self))}")
        return self[name]


@dataclass(frozen=True)
class Plugin:
    """A named factory with typed options: ``build(options_dataclass, **context)``."""

    name: str
    options_cls: type
    build: Callable[..., Any]

    def options(self, raw: dict[str, Any]) -> Any:
        from ganbench.spec.protocol import from_mapping

        return from_mapping(self.options_cls, raw, f"{self.name} options")

    def resolve_options(self, raw: dict[str, Any]) -> dict[str, Any]:
        return dataclasses.asdict(self.options(raw))
