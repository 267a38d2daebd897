"""Layers shared by the Karras et al. architectures (``progan.py``, ``stylegan.py``).

- Equalised learning rate (Karras et al. 2018, arXiv:1710.10196, sec. 4.1): a weight is stored as
  N(0, 1) and multiplied at run time by the He constant c = gain / sqrt(fan_in) (gain sqrt(2) before a
  leaky ReLU, 1 for linear outputs), so Adam's scale-free updates move every layer at the same relative
  speed. A learning-rate multiplier ``lr_mul`` (StyleGAN's mapping network uses 0.01, Karras et al. 2019,
  arXiv:1812.04948, appendix C) stores N(0, 1 / lr_mul^2) weights and multiplies c by lr_mul.
- Pixel-wise feature normalisation (2018, sec. 4.2, eq. 1): b = a / sqrt(mean_j a_j^2 + 1e-8) over channels.
- Minibatch standard deviation (2018, sec. 3) as one extra feature map: the std of every feature over a
  group of 4 samples, averaged to one number per group (``ganbench.nets.layers.minibatch_std``).

These layers are not ``nn.Linear``/``nn.Conv2d`` subclasses, so no initialisation of
``ganbench.nets.inits`` rescales them; every one calls their ``init_weights(gen)`` instead, which draws
the N(0, 1) weights from the run's generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.nets.layers import minibatch_std

SQRT2 = math.sqrt(2.0)  # He et al. 2015 gain for (leaky) ReLU
LRELU_SLOPE = 0.2  # Karras et al. 2018, sec. A.1


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Karras et al. 2018, eq. 1: each pixel's feature vector scaled to unit mean square."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


def minibatch_std_map(x: torch.Tensor) -> torch.Tensor:
    """x (N x C x H x W) with one more channel: the group's mean feature std, constant over the map."""
    s = minibatch_std(x.flatten(1))
    return torch.cat([x, s.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:]).to(x.dtype)], 1)


class EqualLinear(nn.Module):
    """y = (c * lr_mul) W x + lr_mul * b with W stored N(0, 1 / lr_mul^2), c = gain / sqrt(in_features)."""

    def __init__(self, in_features: int, out_features: int, gain: float = SQRT2, lr_mul: float = 1.0,
                 bias_init: float = 0.0):
        super().__init__()
        self.lr_mul = lr_mul
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul))
        self.scale = gain / math.sqrt(in_features) * lr_mul

    def init_weights(self, gen: torch.Generator) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.randn(self.weight.shape, generator=gen) / self.lr_mul)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """A 'same'-padded convolution with weight W stored N(0, 1) and applied as c W, c = gain / sqrt(c_in k^2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, gain: float = SQRT2, bias: bool = True,
                 padding: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale = gain / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2 if padding is None else padding

    def init_weights(self, gen: torch.Generator) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.randn(self.weight.shape, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def check_size(arch: str, image_size: int, channels: int) -> int:
    """The number of doublings from 4x4 to ``image_size`` (a power of two >= 8)."""
    if image_size < 8 or image_size & (image_size - 1):
        raise GanbenchError(f"{arch} grows from 4x4 by doubling: the protocol's image_size must be a power of two "
                            f">= 8 (e.g. 32, a fashion32 protocol), got {image_size}")
    if channels < 1:
        raise GanbenchError(f"{arch} needs image channels >= 1, got {channels}")
    return int(math.log2(image_size)) - 2
