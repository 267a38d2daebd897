"""Architectures only (no training logic), registered by name.

Each entry builds an ``nn.Module`` from its typed options and the protocol's image shape:
generators map z (N x z_dim) to images in [-1, 1]; discriminators map images to one raw score
per sample (a logit or a critic value: the loss plug-in decides what it means). Each entry also names
its weight initialisation (``ganbench.nets.inits``), which a zoo card may override.
"""

from dataclasses import dataclass
from typing import Any, Callable

from ganbench.core.registry import INITS, NET_PAIR_CHECKS, NETS, Plugin, check_net_pair as check_pair  # noqa: F401
from ganbench.nets.inits import initialise  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Architecture(Plugin):
    """A registered architecture: a plug-in that also names its default initialisation (in ``INITS``)."""

    init: str

    def __post_init__(self) -> None:
        assert self.init in INITS, f"architecture {self.name!r}: unknown initialisation {self.init!r}"


def register_pair_check(check: Callable[[str, Any, str, Any], None]) -> None:
    NET_PAIR_CHECKS.append(check)


from ganbench.nets import dcgan28, dcgan64, mlp, progan, stylegan, translation  # noqa: E402,F401  (registers their entries)

FLAT_INPUT = ("mlp-d", "mlp2d-d")  # D architectures that take a flat vector (conditional d_input "embedding")
