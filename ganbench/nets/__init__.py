"""Architectures only (no training logic), registered by name.

Each entry builds an ``nn.Module`` from its typed options and the protocol's image shape:
generators map z (N x z_dim) to images in [-1, 1]; discriminators map images to one raw score
per sample (a logit or a critic value: the loss plug-in decides what it means). Each entry also names
its weight initialisation (``ganbench.nets.inits``), which a zoo card may override.
"""

from dataclasses import dataclass
from typing import Any, Callable

from ganbench.core.registry import Plugin, Registry
from ganbench.nets.inits import INITS, initialise  # noqa: F401  (initialise: re-exported)


@dataclass(frozen=True)
class Architecture(Plugin):
    """A registered architecture: a plug-in that also names its default initialisation (in ``INITS``)."""

    init: str

    def __post_init__(self) -> None:
        assert self.init in INITS, f"architecture {self.name!r}: unknown initialisation {self.init!r}"


NETS: Registry[Architecture] = Registry("architecture")
# (g_arch, g_options, d_arch, d_options) -> None, raising GanbenchError when a G/D pair does not fit together
PAIR_CHECKS: list[Callable[[str, Any, str, Any], None]] = []


def register_pair_check(check: Callable[[str, Any, str, Any], None]) -> None:
    PAIR_CHECKS.append(check)


def check_pair(g_arch: str, g_options: Any, d_arch: str, d_options: Any) -> None:
    """Constraints between a model's G and D options (e.g. progan's shared growing schedule)."""
    for check in PAIR_CHECKS:
        check(g_arch, g_options, d_arch, d_options)


from ganbench.nets import dcgan28, dcgan64, mlp, progan, stylegan  # noqa: E402,F401  (registers their entries)

FLAT_INPUT = ("mlp-d", "mlp2d-d")  # D architectures that take a flat vector (conditional d_input "embedding")
