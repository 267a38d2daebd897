"""Datasets made by ganbench from a seed: 2D Gaussian mixtures and stacked MNIST.

- ``ring8``: 8 Gaussians evenly spaced on the unit circle, sigma = 0.01; ``grid25``: 25 Gaussians
  at {-4, -2, 0, 2, 4}^2, sigma = 0.05 — the synthetic set-ups of PacGAN (Lin et al. 2018, sec. 5.1,
  after Metz et al. 2017), so its Table 1 is comparable. Points are float32 N x 2, labels = mode.
- ``stacked-mnist``: three independently drawn MNIST digits as the R, G and B channels (28 x 28 x 3,
  1000 modes; Metz et al. 2017, Srivastava et al. 2017). Held as index triples into the MNIST
  array, gathered per batch, so 128k images cost 3 x 128k indices, not 300 MB of pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

import ganbench.data.idx  # noqa: F401  (stacked MNIST reads MNIST's stored files)
from ganbench.data.base import ImageSet, dataset, load_split


@dataclass(frozen=True)
class Mixture:
    name: str
    centers: torch.Tensor  # K x 2
    sigma: float

    def sample(self, n: int, gen: torch.Generator) -> ImageSet:
        labels = torch.randint(len(self.centers), (n,), generator=gen)
        points = self.centers[labels] + self.sigma * torch.randn(n, 2, generator=gen)
        return ImageSet(points.float(), labels, len(self.centers))


def ring8() -> Mixture:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return Mixture("ring8", torch.stack([angles.cos(), angles.sin()], 1).float(), 0.01)


def grid25() -> Mixture:
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    return Mixture("grid25", torch.cartesian_prod(axis, axis), 0.05)


@dataset("ring8", image_size=0, channels=2, num_classes=8, mixture=ring8())
def draw_ring8(split: str, n: int, gen: torch.Generator, data_root=None) -> ImageSet:
    return ring8().sample(n, gen)


@dataset("grid25", image_size=0, channels=2, num_classes=25, mixture=grid25())
def draw_grid25(split: str, n: int, gen: torch.Generator, data_root=None) -> ImageSet:
    return grid25().sample(n, gen)


class StackedView:
    """uint8 N x 3 x 28 x 28 images gathered on demand from MNIST and an N x 3 table of indices."""

    def __init__(self, base: torch.Tensor, triples: torch.Tensor):
        assert base.dim() == 4 and base.shape[1] == 1 and triples.dim() == 2 and triples.shape[1] == 3
        self.base, self.triples = base, triples
        self.dtype = base.dtype
        self.shape = (len(triples), 3, *base.shape[2:])

    def __len__(self) -> int:
        return len(self.triples)

    @property
    def device(self) -> torch.device:
        """Where the images are gathered (the trainer asks its data where it lives)."""
        return self.base.device

    def __getitem__(self, idx) -> torch.Tensor:
        t = self.triples[idx]
        if t.dim() == 1:
            return self.base[t].squeeze(1)
        return self.base[t.flatten()].view(len(t), 3, *self.base.shape[2:])

    def to(self, device) -> "StackedView":
        return StackedView(self.base.to(device), self.triples.to(device))

    def materialise(self) -> torch.Tensor:
        return self[torch.arange(len(self))]


def stacked_mnist(n: int, split: str, seed: int, data_root=None) -> ImageSet:
    """``n`` stacked images from an MNIST split; label = 100 * R digit + 10 * G digit + B digit."""
    return draw_stacked_mnist(split, n, torch.Generator().manual_seed(seed), data_root)


@dataset("stacked-mnist", image_size=28, channels=3, num_classes=1000, default_size=128_000, reads=("mnist",),
         stacked_from="mnist")
def draw_stacked_mnist(split: str, n: int, gen: torch.Generator, data_root=None) -> ImageSet:
    mnist = load_split("mnist", split, data_root)
    triples = torch.randint(len(mnist.images), (n, 3), generator=gen)
    digits = mnist.labels[triples]
    labels = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    return ImageSet(StackedView(mnist.images, triples), labels, 1000)  # type: ignore[arg-type]
