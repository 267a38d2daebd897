"""Weight initialisations, registered by name: each architecture names its default at registration
(``Architecture.init``) and a zoo card may override it (``[generator] init = "he"``).

Every initialisation draws from the run's ``torch.Generator`` so that the initial weights are a function
of the seed. Layers that define ``init_weights(gen)`` (the equalised-learning-rate layers of
``ganbench.nets.karras``, stored N(0, 1) and scaled at run time) always draw their own: their stored scale
is part of what the layer computes, not a choice of initialisation.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ganbench.core.registry import INITS
from ganbench.core.hooks import OwnInit

Init = Callable[[nn.Module, torch.Generator], None]

DCGAN_STD = 0.02  # Radford et al. 2016, sec. 4: "zero-centered Normal distribution with standard deviation 0.02"
WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)


def register_init(name: str) -> Callable[[Init], Init]:
    def add(fn: Init) -> Init:
        return INITS.register(name, fn)
    return add


def _own_or(module: nn.Module, gen: torch.Generator, plain: Init) -> None:
    """``plain`` for every layer, except those with their own ``init_weights`` (see the module docstring)."""
    for m in module.modules():
        if isinstance(m, OwnInit):
            m.init_weights(gen)
        else:
            plain(m, gen)


def _dcgan_layer(m: nn.Module, gen: torch.Generator) -> None:
    if isinstance(m, WEIGHTED):
        nn.init.normal_(m.weight, 0.0, DCGAN_STD, generator=gen)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, NORMS) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, DCGAN_STD, generator=gen)
        nn.init.zeros_(m.bias)


def _he_layer(m: nn.Module, gen: torch.Generator) -> None:
    if isinstance(m, WEIGHTED):
        # std = sqrt(2 / fan_in), fan_in as torch computes it (dim 1 x kernel; for a transposed convolution
        # that is its output channels)
        nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in", nonlinearity="relu", generator=gen)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, NORMS) and m.weight is not None:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


@register_init("dcgan")
def init_dcgan(module: nn.Module, gen: torch.Generator) -> None:
    """N(0, 0.02) convolution and linear weights, N(1, 0.02) norm gains, zero biases (Radford et al. 2016, sec. 4)."""
    _own_or(module, gen, _dcgan_layer)


@register_init("he")
def init_he(module: nn.Module, gen: torch.Generator) -> None:
    """N(0, 2 / fan_in) convolution and linear weights (He et al. 2015, arXiv:1502.01852, eq. 10), unit norm
    gains, zero biases."""
    _own_or(module, gen, _he_layer)


def initialise(module: nn.Module, name: str, gen: torch.Generator) -> None:
    """Draw ``module``'s weights with the initialisation ``name`` from ``gen``."""
    INITS.get_or_raise(name)(module, gen)
