"""The ``ns-r1`` loss (ganbench/losses.py): the lazy R1 term against its closed form on a tiny D, applied
on every k-th D step only, with weight k * gamma / 2, counted from images_seen (so resume repeats it)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ganbench.losses import NSR1Loss, NSR1Options, build_loss


class Quadratic(torch.nn.Module):
    """D(x) = c/2 ||x||^2 + b: grad_x D = c x, so E||grad D(x)||^2 = c^2 E||x||^2."""

    def __init__(self):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor(0.7))
        self.b = torch.nn.Parameter(torch.tensor(-0.3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c / 2 * x.square().flatten(1).sum(1) + self.b


def _batch(bs: int = 8):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(bs, 1, 4, 4, generator=gen), torch.randn(bs, 1, 4, 4, generator=gen), gen


def test_r1_closed_form_weight_and_gradient():
    D, (real, fake, gen) = Quadratic(), _batch()
    gamma, k = 0.5, 4
    loss = NSR1Loss(NSR1Options(gamma=gamma, interval=k))
    ns = F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean()
    sq = real.square().flatten(1).sum(1).mean()
    loss.set_progress(3 * k * len(real))  # D step 12: a multiple of k
    total, stats = loss.d_loss(D, real, fake, gen)
    torch.testing.assert_close(stats["r1"], D.c.detach() ** 2 * sq)
    torch.testing.assert_close(total, ns + k * gamma / 2 * D.c ** 2 * sq)
    (g_total,) = torch.autograd.grad(total, D.c)  # the penalty is differentiated through (double backward)
    (g_ns,) = torch.autograd.grad(ns, D.c)
    torch.testing.assert_close(g_total, g_ns + k * gamma * D.c.detach() * sq)
    loss.set_progress((3 * k + 1) * len(real))  # the next D step: no penalty
    plain, stats = loss.d_loss(D, real, fake, gen)
    torch.testing.assert_close(plain, ns)
    assert math.isnan(float(stats["r1"]))


def test_r1_applies_every_kth_d_step_from_images_seen():
    loss = build_loss("ns-r1", {"gamma": 1.0, "interval": 16})
    bs = 8
    applied = []
    for step in range(40):
        loss.set_progress(step * bs)
        applied.append(loss.regularises(bs))
    assert [i for i, a in enumerate(applied) if a] == [0, 16, 32]
    assert not build_loss("ns-r1", {"gamma": 0.0}).regularises(bs)


def test_g_loss_is_non_saturating():
    D, (real, fake, gen) = Quadratic(), _batch()
    g, _ = NSR1Loss(NSR1Options()).g_loss(D, fake)
    torch.testing.assert_close(g, -F.logsigmoid(D(fake)).mean())
