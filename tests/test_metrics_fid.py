"""Fréchet distance: closed forms, scipy's sqrtm route, singular covariances, and FID's behaviour on real data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from ganbench.metrics.fid import frechet_distance, gaussian_statistics


def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def test_closed_form_for_commuting_covariances():
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute, so Tr((S1 S2)^1/2) = sum sqrt(a b) and
    # FID = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    rng = np.random.default_rng(0)
    d = 64
    q = _random_rotation(d, rng)
    a, b = rng.uniform(0.1, 5.0, d), rng.uniform(0.1, 5.0, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2})
    assert got == pytest.approx(expected, rel=1e-6)


def test_closed_form_isotropic_and_identical():
    d = 10
    mu = np.arange(d, dtype=np.float64)
    # N(mu, 4 I) vs N(0, I): |mu|^2 + d (2 - 1)^2
    got = frechet_distance({"mu": mu, "sigma": 4 * np.eye(d)}, {"mu": np.zeros(d), "sigma": np.eye(d)})
    assert got == pytest.approx(np.sum(mu ** 2) + d, rel=1e-6)
    s = np.cov(np.random.default_rng(1).standard_normal((200, d)), rowvar=False)
    assert abs(frechet_distance({"mu": mu, "sigma": s}, {"mu": mu, "sigma": s})) < 1e-9


def _fid_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """The TTUR/pytorch-fid route: scipy.linalg.sqrtm of S1 S2."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_matches_scipy_sqrtm_on_random_features():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 32)) @ rng.standard_normal((32, 32))
    y = rng.standard_normal((400, 32)) @ rng.standard_normal((32, 32)) + 0.5
    got = frechet_distance(gaussian_statistics(torch.from_numpy(x)), gaussian_statistics(torch.from_numpy(y)))
    assert got == pytest.approx(_fid_scipy(x, y), rel=1e-6)


def test_stable_with_singular_covariances():
    # 20 samples in 64 dimensions: both covariances have rank <= 19. The value must be finite, >= 0,
    # agree with scipy's sqrtm route, and equal the closed form when the two sets are the same up to a shift.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 64))
    y = rng.standard_normal((20, 64)) * 2
    sx, sy = gaussian_statistics(torch.from_numpy(x)), gaussian_statistics(torch.from_numpy(y))
    assert np.linalg.matrix_rank(sx["sigma"]) < 64
    got = frechet_distance(sx, sy)
    assert np.isfinite(got) and got > 0
    assert got == pytest.approx(_fid_scipy(x, y), rel=1e-4)
    shifted = gaussian_statistics(torch.from_numpy(x + 3.0))
    assert frechet_distance(sx, shifted) == pytest.approx(64 * 9.0, rel=1e-6)


# ----------------------------------------------------------------------------- behaviour on real data


@pytest.fixture(scope="module")
def fashion():
    from ganbench.extractors.domain import domain_classifier
    from ganbench.metrics.reference import reference_images

    clf = domain_classifier("fashion-mnist")
    test = reference_images("fashion-mnist", "test", 2000, 0)
    train = reference_images("fashion-mnist", "train", 2000, 0)
    return clf, test, train


def _fid(clf, a: torch.Tensor, b: torch.Tensor) -> float:
    return frechet_distance(gaussian_statistics(clf.features(a)), gaussian_statistics(clf.features(b)))


def test_fid_real_vs_real_small_real_vs_noise_huge(fashion):
    clf, test, train = fashion
    noise = torch.randint(0, 256, test.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    real = _fid(clf, test, train)
    fake = _fid(clf, test, noise)
    assert real < 0.02 * fake, (real, fake)
    assert fake > 100 * real


def test_fid_grows_monotonically_with_repeated_image_fraction(fashion):
    clf, test, train = fashion
    # The classifier is per-image in eval mode, so the features of a partly collapsed set are the test
    # features with rows replaced by those of the repeated image (checked on one set below).
    f_test, ref = clf.features(test), gaussian_statistics(clf.features(train))
    values = []
    for frac in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        k = int(frac * len(test))
        feats = f_test.clone()
        feats[:k] = f_test[0]
        values.append(frechet_distance(gaussian_statistics(feats), ref))
    collapsed = test.clone()
    collapsed[:800] = test[0]
    assert torch.allclose(clf.features(collapsed[:1000]), torch.cat([f_test[:1].expand(800, -1), f_test[800:1000]]),
                          atol=1e-5)
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert values[-1] > 20 * values[0], values
