"""Architectures only (no training logic), registered by name.

Each entry builds an ``nn.Module`` from its typed options and the protocol's image shape:
generators map z (N x z_dim) to images in [-1, 1]; discriminators map images to one raw score
per sample (a logit or a critic value: the loss plug-in decides what it means).
"""

from ganbench.registry import Plugin, Registry

NETS: Registry[Plugin] = Registry("architecture")

from ganbench.nets import dcgan28, mlp  # noqa: E402,F401  (registers their entries)
