"""Precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020): O(n^2)
reference implementations, identical sets, a set collapsed to one real image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganbench.metrics.prdc import density_coverage, precision_recall


def _kth_nn(x: np.ndarray, k: int) -> np.ndarray:
    """Distance to the k-th nearest other point, by sorting every row (the point itself is first)."""
    out = []
    for i in range(len(x)):
        d = sorted(float(np.sqrt(np.sum((x[i] - x[j]) ** 2))) for j in range(len(x)))
        out.append(d[k])
    return np.array(out)


def _dist(a, b) -> float:
    return float(np.sqrt(np.sum((a - b) ** 2)))


def reference_pr(fake: np.ndarray, real: np.ndarray, k: int = 3) -> tuple[float, float]:
    r_real, r_fake = _kth_nn(real, k), _kth_nn(fake, k)
    precision = np.mean([any(_dist(f, real[i]) <= r_real[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(_dist(r, fake[j]) <= r_fake[j] for j in range(len(fake))) for r in real])
    return float(precision), float(recall)


def reference_dc(fake: np.ndarray, real: np.ndarray, k: int = 5) -> tuple[float, float]:
    r_real = _kth_nn(real, k)
    density = sum(_dist(f, real[i]) < r_real[i] for f in fake for i in range(len(real))) / (k * len(fake))
    coverage = np.mean([min(_dist(real[i], f) for f in fake) < r_real[i] for i in range(len(real))])
    return float(density), float(coverage)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_on2_reference_exactly(seed):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((60, 8))
    fake = rng.standard_normal((45, 8)) * 1.3 + 0.4
    p, r = precision_recall(torch.from_numpy(fake), torch.from_numpy(real))
    # torch-fidelity returns float32 fractions: equal counts means equal to within 1e-6 (a count step is 1/60)
    assert (p, r) == pytest.approx(reference_pr(fake, real), abs=1e-6)
    d, c = density_coverage(torch.from_numpy(fake), torch.from_numpy(real), chunk=16)  # several chunks
    assert (d, c) == pytest.approx(reference_dc(fake, real), abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1 and 0 < c < 1  # a case where all four counts matter


def test_identical_sets_score_one():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    p, r = precision_recall(x, x)
    d, c = density_coverage(x, x)
    assert p == 1.0 and r == 1.0 and c == 1.0
    assert d == pytest.approx(1.0, abs=0.05)  # each real point is inside its own ball and ~k-1 others' (strict <)


def test_collapse_to_one_real_image():
    real = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    collapsed = real[7].expand(300, -1).clone()
    p, r = precision_recall(collapsed, real)
    d, c = density_coverage(collapsed, real)
    assert p == 1.0  # every sample is a real image
    assert r <= 2 / 300  # but almost no real image is covered (k-NN balls of identical points have radius 0)
    assert c <= 10 / 300
    assert d > 0


def test_chunking_does_not_change_density_coverage():
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(500, 12, generator=g), torch.randn(400, 12, generator=g) + 0.3
    assert density_coverage(fake, real, chunk=37) == pytest.approx(density_coverage(fake, real, chunk=5000), abs=1e-12)
