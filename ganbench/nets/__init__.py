"""Architectures only (no training logic), registered by name.

Each entry builds an ``nn.Module`` from its typed options and the protocol's image shape:
generators map z (N x z_dim) to images in [-1, 1]; discriminators map images to one raw score
per sample (a logit or a critic value: the loss plug-in decides what it means).
"""

from ganbench.registry import Plugin, Registry

NETS: Registry[Plugin] = Registry("architecture")

from ganbench.nets import dcgan28, dcgan64, mlp  # noqa: E402,F401  (registers their entries)

FLAT_INPUT = ("mlp-d", "mlp2d-d")  # D architectures that take a flat vector (conditional d_input "embedding")
