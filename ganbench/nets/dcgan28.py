"""The 28x28 DCGAN of the course homework (Radford et al. 2016, arXiv:1511.06434, scaled to 28x28).

G: Dense(z -> 7*7*128) -> reshape -> three transposed convolutions 7x7 -> 7x7 -> 14x14 -> 28x28,
batch norm and ReLU between them, tanh out. D: three strided convolutions 28 -> 14 -> 7 -> 4 with
LeakyReLU(0.2), then Dense(1). The critic variant for WGAN-GP drops batch norm (Gulrajani et al.
2017, sec. 4: the penalty is per sample, batch norm couples samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.nets.base import NETS, Architecture
from ganbench.nets.layers import SequentialCritic


@dataclass(frozen=True)
class GOptions:
    width: int = 128  # channels of the 7x7 feature map after the dense layer


@dataclass(frozen=True)
class DOptions:
    width: int = 64  # channels of the first convolution (doubling after each stride)
    norm: str = "batch"  # "batch" | "none" | "layer"
    dropout: float = 0.0


class Generator28(nn.Module):
    def __init__(self, z_dim: int, channels: int, width: int):
        super().__init__()
        self.width = width
        self.fc = nn.Sequential(nn.Linear(z_dim, 7 * 7 * width, bias=False), nn.BatchNorm1d(7 * 7 * width), nn.ReLU(True))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 5, 1, 2, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True),
            nn.ConvTranspose2d(width // 2, width // 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 4), nn.ReLU(True),
            nn.ConvTranspose2d(width // 4, channels, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, self.width, 7, 7))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class Discriminator28(SequentialCritic):
    def __init__(self, channels: int, width: int, norm: str, dropout: float):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout(dropout),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=norm == "none"), _norm(norm, 2 * w), nn.LeakyReLU(0.2, True), nn.Dropout(dropout),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1, bias=norm == "none"), _norm(norm, 4 * w), nn.LeakyReLU(0.2, True), nn.Dropout(dropout),
            nn.Flatten(), nn.Linear(4 * w * 4 * 4, 1),
        )
        self.feature_dim = 4 * w * 4 * 4



def _check_shape(image_size: int) -> None:
    if image_size != 28:
        raise GanbenchError(f"the dcgan28 architectures need 28x28 images, the protocol has {image_size}x{image_size}")


def build_g(opts: GOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    _check_shape(image_size)
    if opts.width % 4:
        raise GanbenchError(f"dcgan28-g width must be a multiple of 4, got {opts.width}")
    return Generator28(z_dim, channels, opts.width)


def check_d_options(arch: str, opts) -> None:
    """The norm/dropout options the DCGAN discriminators share."""
    if opts.norm not in ("batch", "none", "layer"):
        raise GanbenchError(f"{arch} norm must be 'batch', 'none' or 'layer', got {opts.norm!r}")
    if not 0.0 <= opts.dropout < 1.0:
        raise GanbenchError(f"{arch} dropout must be in [0, 1), got {opts.dropout}")


def build_d(opts: DOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    _check_shape(image_size)
    check_d_options("dcgan28-d", opts)
    return Discriminator28(channels, opts.width, opts.norm, opts.dropout)


NETS.register("dcgan28-g", Architecture("dcgan28-g", GOptions, build_g, init="dcgan"))
NETS.register("dcgan28-d", Architecture("dcgan28-d", DOptions, build_d, init="dcgan"))
