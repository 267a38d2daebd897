"""Validated registries of named plug-ins, and the registries themselves.

A registry rejects duplicate names and answers an unknown name with the list of what exists.
A plug-in with options declares them as a frozen dataclass: unknown keys and wrong types are
errors, and every default is written out when a spec is resolved.

The registries live here, at the bottom of the layers, so that the spec layer can validate names and
ask a plug-in what it reads without importing the layers that define the plug-ins. Each entry joins its
registry by one decorated (or registered) definition in its own module: architectures in
``ganbench.nets``, losses in ``ganbench.losses``, datasets in ``ganbench.data``, feature extractors in
``ganbench.extractors``, metrics in ``ganbench.metrics``. Importing ``ganbench`` imports those
packages, so the registries are full whenever any ganbench module is in use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from ganbench.core.errors import GanbenchError
from ganbench.core.options import from_mapping

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
        return from_mapping(self.options_cls, raw, f"{self.name} options")

    def resolve_options(self, raw: dict[str, Any]) -> dict[str, Any]:
        return dataclasses.asdict(self.options(raw))


@dataclass(frozen=True)
class LossPlugin(Plugin):
    """A registered loss: ``targets`` when D regresses or classifies towards per-sample targets (real/fake labels),
    which the label tricks (label noise, label flipping) change."""

    targets: bool = False


NETS: Registry[Plugin] = Registry("architecture")  # entries: ganbench.nets.Architecture
INITS: Registry[Callable] = Registry("initialisation")  # (module, torch.Generator) -> None; ganbench.nets.inits
LOSSES: Registry[LossPlugin] = Registry("loss")
OPTIMIZERS: Registry[Callable] = Registry("optimizer")  # (params, OptimSpec) -> torch optimizer; ganbench.training.models
# "g_input" / "d_input" -> the ways a conditional model feeds labels to G / D (ganbench.nets.layers)
CONDITIONAL_INPUTS: dict[str, tuple[str, ...]] = {}
DATASETS: Registry[Any] = Registry("dataset")  # entries: ganbench.data.Dataset
EXTRACTORS: Registry[Any] = Registry("feature extractor")  # entries: ganbench.extractors.Extractor
METRICS: Registry[Any] = Registry("metric")  # entries: ganbench.metrics.MetricDef
# (g_arch, g_options, d_arch, d_options) -> None, raising GanbenchError when a G/D pair does not fit together
NET_PAIR_CHECKS: list[Callable[[str, Any, str, Any], None]] = []


def check_net_pair(g_arch: str, g_options: Any, d_arch: str, d_options: Any) -> None:
    """Constraints between a model's G and D options (e.g. progan's shared growing schedule)."""
    for check in NET_PAIR_CHECKS:
        check(g_arch, g_options, d_arch, d_options)
