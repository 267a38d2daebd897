"""MLP generators and discriminators.

- ``mlp-g`` / ``mlp-d``: the original GAN with MLPs (Goodfellow et al. 2014) as the course draws it:
  G 256 -> 512 -> 1024 -> pixels with LeakyReLU(0.2) and batch norm, tanh; D 512 -> 256 -> 1 with LeakyReLU(0.2).
- ``mlp2d-g`` / ``mlp2d-d``: the 2D-mixture networks of PacGAN's synthetic experiments (Lin et al. 2018,
  App. D after Metz et al. 2017): G four hidden layers of 400 ReLU units with batch norm, linear output;
  D three hidden layers of 200 units (LeakyReLU instead of the paper's maxout: one dependency fewer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganbench.nets.base import NETS, Architecture
from ganbench.nets.layers import SequentialCritic


@dataclass(frozen=True)
class MLPGOptions:
    hidden: tuple[int, ...] = (256, 512, 1024)
    batch_norm: bool = True


@dataclass(frozen=True)
class MLPDOptions:
    hidden: tuple[int, ...] = (512, 256)
    dropout: float = 0.0


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, out_shape: tuple[int, ...], hidden: tuple[int, ...], batch_norm: bool,
                 act: nn.Module, tanh: bool):
        super().__init__()
        layers, width = [], z_dim
        for h in hidden:
            layers += [nn.Linear(width, h), *([nn.BatchNorm1d(h)] if batch_norm else []), act]
            width = h
        layers.append(nn.Linear(width, int(torch.tensor(out_shape).prod())))
        if tanh:
            layers.append(nn.Tanh())
        self.net, self.out_shape = nn.Sequential(*layers), out_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)


class MLPDiscriminator(SequentialCritic):
    def __init__(self, in_features: int, hidden: tuple[int, ...], dropout: float):
        super().__init__()
        layers, width = [nn.Flatten()], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net, self.feature_dim = nn.Sequential(*layers), width



def _shape(channels: int, image_size: int) -> tuple[int, ...]:
    return (channels,) if image_size == 0 else (channels, image_size, image_size)


def build_mlp_g(o: MLPGOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    return MLPGenerator(z_dim, _shape(channels, image_size), o.hidden, o.batch_norm, nn.LeakyReLU(0.2, True), tanh=True)


def build_mlp_d(o: MLPDOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    return MLPDiscriminator(int(torch.tensor(_shape(channels, image_size)).prod()), o.hidden, o.dropout)


@dataclass(frozen=True)
class MLP2DGOptions:
    hidden: tuple[int, ...] = (400, 400, 400, 400)
    batch_norm: bool = True


@dataclass(frozen=True)
class MLP2DDOptions:
    hidden: tuple[int, ...] = (200, 200, 200)
    dropout: float = 0.0


def build_mlp2d_g(o: MLP2DGOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    return MLPGenerator(z_dim, (channels,), o.hidden, o.batch_norm, nn.ReLU(True), tanh=False)


def build_mlp2d_d(o: MLP2DDOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    return MLPDiscriminator(channels, o.hidden, o.dropout)


NETS.register("mlp-g", Architecture("mlp-g", MLPGOptions, build_mlp_g, init="dcgan"))
NETS.register("mlp-d", Architecture("mlp-d", MLPDOptions, build_mlp_d, init="dcgan", flat_input=True))
NETS.register("mlp2d-g", Architecture("mlp2d-g", MLP2DGOptions, build_mlp2d_g, init="dcgan"))
NETS.register("mlp2d-d", Architecture("mlp2d-d", MLP2DDOptions, build_mlp2d_d, init="dcgan", flat_input=True))
