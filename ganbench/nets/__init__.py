"""Architectures only (no training logic), registered by name.

Each entry builds an ``nn.Module`` from its typed options and the protocol's image shape:
generators map z (N x z_dim) to images in [-1, 1]; discriminators map images to one raw score
per sample (a logit or a critic value: the loss plug-in decides what it means). Each entry also names
its weight initialisation (``ganbench.nets.inits``), which a zoo card may override.

This module is the list of the architecture modules: importing it registers their entries. They import
``ganbench.nets.base``, never this package, so the list makes no import cycle.
"""

from ganbench.core.registry import INITS, NETS, check_net_pair as check_pair  # noqa: F401
from ganbench.nets.base import Architecture, register_pair_check  # noqa: F401
from ganbench.nets.inits import initialise  # noqa: F401  (re-exported)
from ganbench.nets import dcgan28, dcgan64, mlp, progan, stylegan, translation  # noqa: F401  (registers their entries)
