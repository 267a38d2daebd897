"""Reference implementations the metric tests compare ganbench with: direct numpy transcriptions of each
paper's definition, written without ganbench's or torch-fidelity's code (no chunking, no algebraic shortcuts)."""

from __future__ import annotations

import numpy as np


def cubic_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KID's kernel (Bińkowski et al. 2018): k(x, y) = (x.y / d + 1)^3."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_from_kernels(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3), the cross term averaged over all m*n pairs as in
    torch-fidelity's "unbiased" estimator."""
    m, n = len(kxx), len(kyy)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    return mmd2_from_kernels(cubic_kernel(x, x), cubic_kernel(y, y), cubic_kernel(x, y))


def jackknife_variance(x: np.ndarray, y: np.ndarray) -> float:
    """Arvesen 1969's two-sample delete-one jackknife of the MMD^2: each U without x_i (or y_j) recomputed
    from the kernel matrices with that row and column deleted."""
    kxx, kyy, kxy = cubic_kernel(x, x), cubic_kernel(y, y), cubic_kernel(x, y)
    m, n = len(x), len(y)
    ux = np.array([mmd2_from_kernels(np.delete(np.delete(kxx, i, 0), i, 1), kyy, np.delete(kxy, i, 0))
                   for i in range(m)])
    uy = np.array([mmd2_from_kernels(kxx, np.delete(np.delete(kyy, j, 0), j, 1), np.delete(kxy, j, 1))
                   for j in range(n)])
    return float((m - 1) / m * ((ux - ux.mean()) ** 2).sum() + (n - 1) / n * ((uy - uy.mean()) ** 2).sum())


def inception_score(logits: np.ndarray) -> float:
    """Salimans et al. 2016: exp(E_x KL(p(y|x) || p(y))), p(y) the mean of p(y|x) over the set."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    marginal = p.mean(0)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(1).mean()))


def inception_score_splits(logits: np.ndarray, splits: int, seed: int) -> tuple[float, float]:
    """(mean, population std) of the score over ``splits`` consecutive parts of a seeded shuffle (the recipe of
    Salimans et al.'s code, shuffled by numpy's RandomState as torch-fidelity's ``samples_shuffle``)."""
    x = logits[np.random.RandomState(seed).permutation(len(logits))]
    n = len(x)
    scores = [inception_score(x[i * n // splits:(i + 1) * n // splits]) for i in range(splits)]
    return float(np.mean(scores)), float(np.std(scores))


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each point to its k-th nearest other point."""
    return np.sort(distances(x, x), axis=1)[:, k]  # column 0 is the point itself


def precision_recall(fake: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019, improved precision and recall (balls closed, as in their code)."""
    precision = (distances(fake, real) <= kth_neighbour_radii(real, k)[None, :]).any(1).mean()
    recall = (distances(real, fake) <= kth_neighbour_radii(fake, k)[None, :]).any(1).mean()
    return float(precision), float(recall)


def density_coverage(fake: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    """Naeem et al. 2020, eqs. 3-4 (balls open, as in their prdc package)."""
    inside = distances(fake, real) < kth_neighbour_radii(real, k)[None, :]  # fake j in the ball of real i
    return float(inside.sum() / (k * len(fake))), float(inside.any(0).mean())
