"""Loss plug-ins of the one trainer, registered by name (``ganbench.core.registry.LOSSES``).

``adversarial``: the losses of G(z) against real samples (bce, wgan, wgan-gp, ls, hinge, ns-r1);
``translation``: the image-to-image losses (pix2pix, cyclegan) of G(source) against targets, with
``history``, the pool of generated images CycleGAN's discriminators see.
"""

from ganbench.core.registry import LOSSES
from ganbench.losses.adversarial import (BCELoss, BCEOptions, HingeLoss, HingeOptions, Loss, LSLoss,  # noqa: F401
                                         LSOptions, NSR1Loss, NSR1Options, Stats, Targets, WGANGPLoss, WGANGPOptions,
                                         WGANLoss, WGANOptions, gradient_penalty)
from ganbench.losses import translation  # noqa: E402,F401  (registers the image-to-image losses)


def build_loss(name: str, options: dict, tricks=None) -> Loss:
    """The loss plug-in ``name`` with its options; ``tricks`` (a TricksSpec) gives the target tricks."""
    plugin = LOSSES.get_or_raise(name)
    return plugin.build(plugin.options(options), tricks)
