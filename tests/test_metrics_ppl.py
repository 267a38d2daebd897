"""ganbench/metrics/ppl.py: path length against closed forms (a generator that ignores z: 0; a linear
generator: ||A (w2 - w1)||^2 in W, ||A d slerp/dt||^2 in Z), the percentile filter, and the ``ppl``
metric through ``evaluate`` (with the generator: a number; without: unavailable, with the reason)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from ganbench.metrics import Sampler, evaluate
from ganbench.metrics.ppl import EPSILON, filtered_mean, path_distances, path_length, slerp
from ganbench.spec.protocol import load_protocol

D_Z, D_X = 6, 10
IDENTITY = nn.Flatten()  # features = pixels: the distances have closed forms


class Linear(nn.Module):
    """x = A z as a 1 x 1 x D_X image (float64); ``style`` adds an identity mapping network (W = Z)."""

    def __init__(self, style: bool, ignore_z: bool = False):
        super().__init__()
        self.A = nn.Parameter(torch.randn(D_X, D_Z, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
        self.ignore_z = ignore_z
        if style:
            self.mapping, self.synthesis = nn.Identity(), self._Synth(self)

    class _Synth(nn.Module):
        def __init__(self, outer):
            super().__init__()
            self.outer = [outer]

        def forward(self, w):
            return self.outer[0].image(w)

    def image(self, z: torch.Tensor) -> torch.Tensor:
        z = torch.zeros_like(z) + 1.0 if self.ignore_z else z
        return (z @ self.A.t()).view(-1, 1, 1, D_X)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.image(z)


@pytest.mark.parametrize("style", [True, False])
def test_a_generator_that_ignores_z_has_path_length_zero(style):
    value, space, d = path_length(Linear(style, ignore_z=True), D_Z, IDENTITY, 50, torch.Generator().manual_seed(0))
    assert space == ("w" if style else "z") and value == 0.0 and torch.all(d == 0)


def test_linear_generator_in_w_closed_form():
    G = Linear(style=True)
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 400, D_Z, generator=gen, dtype=torch.float64)
    t = torch.rand(400, 1, generator=gen, dtype=torch.float64)
    d = path_distances(G.synthesis, IDENTITY, a, b, t)
    exact = ((b - a) @ G.A.detach().t()).square().sum(1)  # lerp: the step is eps (b - a), whatever t
    torch.testing.assert_close(d, exact, rtol=1e-6, atol=0)
    value, space, all_d = path_length(G, D_Z, IDENTITY, 20000, torch.Generator().manual_seed(2), batch_size=5000)
    # unfiltered mean: E||A (w2 - w1)||^2 = 2 tr(A^T A); the filter trims the tails, the bulk stays
    assert space == "w" and float(all_d.mean()) == pytest.approx(2 * float(G.A.detach().square().sum()), rel=0.03)
    assert value == pytest.approx(filtered_mean(all_d)) and value < float(all_d.mean())


def test_linear_generator_in_z_closed_form():
    G = Linear(style=False)
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 50, D_Z, generator=gen, dtype=torch.float64)
    t = torch.rand(50, 1, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    d = path_distances(G, IDENTITY, a, b, t, slerp)
    # d/dt slerp(a, b; t) = omega / sin(omega) * (-cos((1 - t) omega) a + cos(t omega) b)
    omega = torch.arccos((nn.functional.normalize(a, dim=1) * nn.functional.normalize(b, dim=1)).sum(1, keepdim=True))
    velocity = omega / torch.sin(omega) * (-torch.cos((1 - t) * omega) * a + torch.cos(t * omega) * b)
    torch.testing.assert_close(d, (velocity @ G.A.detach().t()).square().sum(1), rtol=10 * EPSILON, atol=0)


def test_filtered_mean_drops_the_outer_percentiles():
    d = torch.tensor([0.0] + [1.0] * 198 + [1000.0])
    assert filtered_mean(d) == 1.0
    x = torch.rand(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lo, hi = np.percentile(x.numpy(), 1, method="lower"), np.percentile(x.numpy(), 99, method="higher")
    assert filtered_mean(x) == pytest.approx(float(x[(x >= lo) & (x <= hi)].mean()))


def _protocol():
    proto = load_protocol("fashion32-smoke")
    return dataclasses.replace(proto, eval=dataclasses.replace(proto.eval, num_samples=64, metrics=("ppl",), batch_size=32))


def test_ppl_metric_through_evaluate():
    from ganbench.nets.stylegan import StyleGenerator, StyleGOptions

    proto = _protocol()
    samples = torch.zeros(64, 1, 32, 32, dtype=torch.uint8)
    (r,) = evaluate(samples, proto).values()
    assert r.name == "domain_ppl_z_64" and r.value is None and "needs the generator" in r.unavailable

    class Constant(nn.Module):  # ignores z
        def __init__(self):
            super().__init__()
            self.x = nn.Parameter(torch.linspace(-1, 1, 32 * 32).view(1, 1, 32, 32))

        def forward(self, z):
            return self.x.expand(len(z), -1, -1, -1)

    (r,) = evaluate(samples, proto, generator=Sampler(Constant(), 16)).values()
    assert r.name == "domain_ppl_z_64" and r.value == 0.0 and not r.higher_is_better
    assert r.extractor == "ganbench-domain-fashion-mnist" and len(r.weights_sha256) == 64
    G = StyleGenerator(16, 1, 32, StyleGOptions(width=16, channel_base=128, w_dim=16, mapping_layers=2))
    (r,) = evaluate(samples, proto, generator=Sampler(G, 16)).values()
    assert r.name == "domain_ppl_w_64" and math.isfinite(r.value) and r.value > 0
    assert G.training  # evaluation restores the mode it found
