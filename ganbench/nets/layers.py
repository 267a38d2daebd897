"""What a model spec adds around any architecture: class conditioning, minibatch standard deviation,
spectral normalisation.

Discriminator architectures expose ``features(x)`` (the penultimate, flattened features phi(x)),
``head`` (the final linear layer) and ``feature_dim``; the wrappers here only use that contract, so
every trick works with every D architecture that follows it.

- Conditioning of G: y joins z as a one-hot vector (cDCGAN) or a learned embedding (Mirza & Osindero 2014).
- Conditioning of D: one-hot label planes concatenated to the input channels ("planes"), a learned
  embedding concatenated to the flattened input ("embedding", Mirza & Osindero 2014), or the
  projection discriminator, D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3).
- Minibatch standard deviation (Karras et al. 2018, sec. 3): the standard deviation of phi over groups
  of 4 samples, averaged to one number per group, joins phi as one more input of the final linear
  layer (written as head(phi) + w * s, which is the same linear map).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import CONDITIONAL_INPUTS

# How a conditional model feeds its labels: to G as a one-hot code or a learnt embedding appended to z; to D as
# label planes appended to the image channels, an embedding appended to a flat input, or a projection (Miyato &
# Koyama 2018). Validation of a card's [conditional] table reads them from the registry.
CONDITIONAL_INPUTS.update(g_input=("onehot", "embedding"), d_input=("planes", "embedding", "projection"))


class SequentialCritic(nn.Module):
    """A discriminator whose ``net`` is a Sequential ending in its final linear layer: ``features`` is
    everything before that layer (phi(x)), ``head`` the layer itself. Subclasses set ``net`` and ``feature_dim``."""

    net: nn.Sequential
    feature_dim: int

    @property
    def head(self) -> nn.Module:
        return self.net[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[:-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


MBSTD_GROUP = 4  # Karras et al. 2018 (progressive_growing_of_gans, networks.py: group_size=4)


def minibatch_std(h: torch.Tensor, group: int = MBSTD_GROUP) -> torch.Tensor:
    """One value per sample: the mean over features of the standard deviation across its group.
    Sample i belongs to group i % (N // g), as in Karras et al.'s reshape."""
    n = h.shape[0]
    g = min(group, n)
    while n % g:
        g -= 1
    y = h.reshape(g, n // g, -1).float()
    s = (y.var(0, unbiased=False) + 1e-8).sqrt().mean(1)  # [N // g]
    return s.repeat(g).to(h.dtype)


class ConditionalGenerator(nn.Module):
    """G(z, y) = inner(cat(z, e(y))): ``inner`` was built for z_dim + num_classes inputs."""

    def __init__(self, inner: nn.Module, num_classes: int, g_input: str):
        super().__init__()
        self.inner, self.num_classes = inner, num_classes
        self.embed = nn.Embedding(num_classes, num_classes) if g_input == "embedding" else None

    def label_code(self, y: torch.Tensor) -> torch.Tensor:
        return self.embed(y) if self.embed is not None else F.one_hot(y, self.num_classes).float()

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.cat([z, self.label_code(y).to(z.dtype)], 1))

    def init_embeddings(self, gen: torch.Generator) -> None:
        if self.embed is not None:  # the same scale as z ~ N(0, I)
            with torch.no_grad():
                self.embed.weight.copy_(torch.randn(self.embed.weight.shape, generator=gen))


class WrappedDiscriminator(nn.Module):
    """D(x[, y]) around an architecture with ``features``/``head``/``feature_dim``."""

    def __init__(self, inner: nn.Module, num_classes: int = 0, d_input: str | None = None, minibatch_std: bool = False):
        super().__init__()
        self.inner, self.num_classes, self.d_input = inner, num_classes, d_input
        self.embed = None
        if d_input == "embedding":
            self.embed = nn.Embedding(num_classes, num_classes)
        elif d_input == "projection":
            self.embed = nn.Embedding(num_classes, inner.feature_dim)
        self.mbstd = nn.Linear(1, 1, bias=False) if minibatch_std else None

    def _input(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.d_input is None or self.d_input == "projection":
            return x
        if y is None:
            raise ValueError("a conditional discriminator needs labels y")
        if self.d_input == "planes":
            planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            return torch.cat([x, planes], 1)
        return torch.cat([x.flatten(1), self.embed(y).to(x.dtype)], 1)  # "embedding"

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner.features(self._input(x, y))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x, y)
        out = self.inner.head(h).squeeze(1)
        if self.mbstd is not None:
            out = out + self.mbstd(minibatch_std(h)[:, None]).squeeze(1)
        if self.d_input == "projection":
            if y is None:
                raise ValueError("a projection discriminator needs labels y")
            out = out + (self.embed(y) * h).sum(1)
        return out

    def init_embeddings(self, gen: torch.Generator) -> None:
        if self.embed is not None:
            with torch.no_grad():
                scale = 1.0 if self.d_input == "embedding" else 0.02  # projection: like the other D weights
                self.embed.weight.copy_(torch.randn(self.embed.weight.shape, generator=gen) * scale)


def apply_spectral_norm(D: nn.Module) -> nn.Module:
    """Spectral normalisation of every convolution, linear layer and embedding of D (Miyato et al. 2018)."""
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    if not layers:
        raise GanbenchError(f"tricks.spectral_norm: {type(D).__name__} has no Conv2d/Linear/Embedding layer to normalise "
                            "(equalised-learning-rate layers scale their weights themselves)")
    for module in layers:
        spectral_norm(module)
    return D
