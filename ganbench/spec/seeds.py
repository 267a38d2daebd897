"""Seeds and random draws: one ``torch.Generator`` per run (:class:`Generators`), so that each run draws the
same numbers in the same order whether it trains alone or with the other seeds of its model
(``ganbench.training.stack``); the fixed z and labels of grids and evaluation (:func:`fixed_z`,
:func:`fixed_labels`), since every draw of a latent vector in ganbench comes from an explicit seed; and the
spherical interpolation of z (:func:`slerp`).
"""

from __future__ import annotations

import torch
from torch import nn


class Generators:
    """The generators of S runs trained together. A draw's first dimension is the runs' parts stacked:
    run ``s`` draws its part from its own generator, in the same order as alone (S = 1 is a plain draw)."""

    def __init__(self, gens: list[torch.Generator]):
        self.gens = list(gens)

    def __len__(self) -> int:
        return len(self.gens)

    def _draw(self, fn, shape, **kw) -> torch.Tensor:
        shape = tuple(shape)
        if len(self.gens) == 1:
            return fn(shape, generator=self.gens[0], **kw)
        if shape[0] % len(self.gens):
            raise ValueError(f"a draw of {shape[0]} rows cannot be split between {len(self.gens)} runs")
        part = (shape[0] // len(self.gens),) + shape[1:]
        return torch.cat([fn(part, generator=g, **kw) for g in self.gens])

    def randn(self, *shape) -> torch.Tensor:
        return self._draw(torch.randn, _shape(shape))

    def rand(self, *shape) -> torch.Tensor:
        return self._draw(torch.rand, _shape(shape))

    def randint(self, high: int, shape) -> torch.Tensor:
        return self._draw(_randint, shape, high=high)

    def randperm(self, n: int) -> torch.Tensor:
        """One permutation of ``range(n)`` per run: S x n."""
        return torch.stack([torch.randperm(n, generator=g) for g in self.gens])


def fixed_z(n: int, z_dim: int, z_seed: int) -> torch.Tensor:
    """n latent vectors N(0, I) from ``torch.Generator().manual_seed(z_seed)``: with the protocol's ``eval.z_seed``,
    the fixed z of every run's grids and evaluation samples, so that they are comparable across runs."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(z_seed))


def fixed_labels(n: int, classes: int) -> torch.Tensor:
    """The labels that go with the fixed z of a conditional model: 0, 1, ..., classes - 1, 0, 1, ...
    (an 8x8 grid of a 10-class model shows every class in turn; evaluation samples are class-balanced)."""
    return torch.arange(n) % classes


def _randint(shape, generator: torch.Generator, high: int) -> torch.Tensor:
    return torch.randint(high, shape, generator=generator)


def _shape(shape) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else tuple(shape)


def rand(gen: "torch.Generator | Generators", shape) -> torch.Tensor:
    """Uniform [0, 1) draws from one generator or, per run, from the generators of runs trained together."""
    return gen.rand(shape) if isinstance(gen, Generators) else torch.rand(shape, generator=gen)


# --------------------------------------------------------------------------- interpolating z

SLERP_EPS = 1e-6  # below this sin(angle) the endpoints are (anti)parallel and slerp's weights are 0/0: use lerp


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation along the last dimension (Shoemake 1985, eq. for ``Slerp(q0, q1; u)``):
    ``sin((1-t)w)/sin(w) z0 + sin(t w)/sin(w) z1`` with ``w`` the angle between z0 and z1; broadcasts
    over leading dimensions. Near-(anti)parallel endpoints fall back to linear interpolation."""
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    cos = (nn.functional.normalize(z0, dim=-1) * nn.functional.normalize(z1, dim=-1)).sum(-1, keepdim=True)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    parallel = sin.abs() < SLERP_EPS
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    w0 = torch.where(parallel, 1.0 - t, torch.sin((1.0 - t) * omega) / safe)
    w1 = torch.where(parallel, t, torch.sin(t * omega) / safe)
    return w0 * z0 + w1 * z1
