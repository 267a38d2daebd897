"""The 64x64 DCGAN of Radford et al. 2016 (arXiv:1511.06434, Fig. 1) as the course slides draw it.

G: z as a 1x1x100 map -> transposed convolutions (kernel 4) 4x4x512 -> 8x8x256 -> 16x16x128 ->
32x32x64 -> 64x64xC, batch norm and ReLU between them, tanh out. D: four strided convolutions
(kernel 4) 64 -> 128 -> 256 -> 512 channels down to 4x4, batch norm from the second on,
LeakyReLU(0.2), dropout 0.3 (the course's variant), then a final 4x4 valid convolution to one
score, written as the identical linear map on the flattened 4x4x512 features (so ``features``
gives phi(x) for the projection discriminator, feature matching and minibatch-std).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.nets.base import NETS, Architecture
from ganbench.nets.layers import SequentialCritic
from ganbench.nets.dcgan28 import _norm, check_d_options


@dataclass(frozen=True)
class G64Options:
    width: int = 64  # channels before the output layer (ngf); the 4x4 map has 8x that


@dataclass(frozen=True)
class D64Options:
    width: int = 64  # channels of the first convolution (ndf), doubling after each stride
    norm: str = "batch"  # "batch" | "none" | "layer"
    dropout: float = 0.3


class Generator64(nn.Module):
    def __init__(self, z_dim: int, channels: int, width: int):
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, 8 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU(True)]
        for c_in, c_out in ((8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator64(SequentialCritic):
    def __init__(self, channels: int, width: int, norm: str, dropout: float):
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout(dropout)]
        for c_in, c_out in ((w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm == "none"), _norm(norm, c_out),
                       nn.LeakyReLU(0.2, True), nn.Dropout(dropout)]
        layers += [nn.Flatten(), nn.Linear(8 * w * 4 * 4, 1)]  # == Conv2d(8w, 1, 4, 1, 0) on the 4x4 map
        self.net = nn.Sequential(*layers)
        self.feature_dim = 8 * w * 4 * 4



def _check_shape(image_size: int) -> None:
    if image_size != 64:
        raise GanbenchError(f"the dcgan64 architectures need 64x64 images, the protocol has {image_size}x{image_size} "
                            "(use a fashion64-* protocol)")


def build_g(opts: G64Options, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    _check_shape(image_size)
    return Generator64(z_dim, channels, opts.width)


def build_d(opts: D64Options, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    _check_shape(image_size)
    check_d_options("dcgan64-d", opts)
    return Discriminator64(channels, opts.width, opts.norm, opts.dropout)


NETS.register("dcgan64-g", Architecture("dcgan64-g", G64Options, build_g, init="dcgan"))
NETS.register("dcgan64-d", Architecture("dcgan64-d", D64Options, build_d, init="dcgan"))
