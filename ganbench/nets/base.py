"""What a registered architecture is: a plug-in that also names its default initialisation and the input it
takes, and the hook for constraints between a model's G and D. The architecture modules of this package import
from here (never from the package itself), so that the package can list them without an import cycle."""

from dataclasses import dataclass
from typing import Any, Callable

from ganbench.core.registry import INITS, NET_PAIR_CHECKS, NETS, Plugin

__all__ = ["NETS", "Architecture", "register_pair_check"]


@dataclass(frozen=True)
class Architecture(Plugin):
    """A registered architecture: a plug-in that also names its default initialisation (in ``INITS``) and, for a
    discriminator, whether it takes a flat vector (then a conditional model may append a label embedding to it)."""

    init: str
    flat_input: bool = False

    def __post_init__(self) -> None:
        assert self.init in INITS, f"architecture {self.name!r}: unknown initialisation {self.init!r}"


def register_pair_check(check: Callable[[str, Any, str, Any], None]) -> None:
    NET_PAIR_CHECKS.append(check)
