"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"):
the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3.

**Value**: as torch-fidelity computes it (and the literature reports it): the mean of the MMD^2 over
``SUBSETS`` random subsets of min(``SUBSET_SIZE``, n) features of each set. When neither set has more than
``SUBSET_SIZE`` features every subset is the whole set, so the mean is the full-set MMD^2, computed once
here (in float64; torch-fidelity's float32 loop gives the same number to ~1e-6 relative, 100 times over).

**Spread** (``kid*_std``): the standard error of that value, i.e. an estimate of how much it would move
with another draw of the samples and reference images. The std over the subsets, which torch-fidelity
reports, is not that: with n <= ``SUBSET_SIZE`` every subset is the whole set and it is ~1e-7 whatever the
true spread. By the law of total variance, Var(value) = Var(E[value | data]) + E[Var(value | data)]:

- E[value | data] is the full-set MMD^2 U (Gretton et al. 2012, eq. 3, with the cross term averaged over all
  m*n pairs, as torch-fidelity's "unbiased" estimator): each subset term is an unbiased estimate of the same
  average over the full sets. Its variance is estimated by the delete-one jackknife of a two-sample
  U-statistic (Arvesen 1969, "Jackknifing U-statistics", Ann. Math. Statist. 40(6)):
  Var(U) ~= (m-1)/m sum_i (U_{-x_i} - mean)^2 + (n-1)/n sum_j (U_{-y_j} - mean)^2, with U_{-x_i} the MMD^2
  without x_i. Each U_{-x_i} follows in O(1) from the kernel sums, the row sums of K_XX and of K_XY, so the
  whole jackknife costs three chunked passes over the kernel matrices (no n x n matrix is held).
- Var(value | data) is the subsets' own spread divided by their count.

So ``std = sqrt(var_jackknife + std_subsets^2 / subsets)``. The second term is 0 up to n = ``SUBSET_SIZE``
and grows as about (n / SUBSET_SIZE - 1) / SUBSETS of the first (~10% of the variance at n = 10k).
"""

from __future__ import annotations

import math

import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from ganbench.metrics.base import MetricResult, register_metric

SUBSETS = 100  # torch-fidelity's and Bińkowski et al.'s defaults
SUBSET_SIZE = 1000
RNG_SEED = 2020
KERNEL_DEGREE, KERNEL_COEF0 = 3, 1.0  # KID's cubic kernel (Bińkowski et al. 2018; gamma = 1 / d), as torch-fidelity
CHUNK = 1024  # kernel rows held at once (float64): memory O(CHUNK x n), ~80 MB at n = 10k


def kernel_row_sums(a: torch.Tensor, b: torch.Tensor, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """(row sums, column sums) of K = (a b^T / d + 1)^3, float64, computed ``chunk`` rows at a time.
    The Gram products run in the features' precision (float32: the matmul is the cost); the kernel and
    every sum in float64, so the sums of n^2 terms keep their digits."""
    d, rows = a.shape[1], []
    cols = torch.zeros(len(b), dtype=torch.float64, device=b.device)
    gram = torch.empty(min(chunk, len(a)), len(b), dtype=a.dtype, device=a.device)  # reused: no page faults per chunk
    kernel = torch.empty(gram.shape, dtype=torch.float64, device=a.device)
    for part in a.split(chunk):
        g, k = gram[: len(part)], kernel[: len(part)]
        torch.matmul(part, b.T, out=g)
        k.copy_(g).div_(d).add_(KERNEL_COEF0).pow_(KERNEL_DEGREE)
        rows.append(k.sum(1))
        cols += k.sum(0)
    return torch.cat(rows), cols


def self_kernel_diagonal(a: torch.Tensor) -> torch.Tensor:
    """k(a_i, a_i) in the same arithmetic as :func:`kernel_row_sums` (float Gram entry, float64 kernel)."""
    return ((a * a).sum(1).double() / a.shape[1] + KERNEL_COEF0) ** KERNEL_DEGREE


def mmd2_jackknife(x: torch.Tensor, y: torch.Tensor, chunk: int = CHUNK) -> tuple[float, float | None]:
    """(full-set unbiased MMD^2 U, jackknife variance of U) for features x (m x d) and y (n x d), m, n >= 2; see
    the module docstring. With A = sum_{i!=j} K_XX, B = sum_{i!=j} K_YY, C = sum K_XY:
    U = A / (m(m-1)) + B / (n(n-1)) - 2 C / (m n). The variance is None below 3 features a set (deleting
    one leaves no pair to average)."""
    m, n = len(x), len(y)
    assert m >= 2 and n >= 2, "the unbiased MMD^2 needs two features per set (protocols evaluate at least 2)"
    r_x = kernel_row_sums(x, x, chunk)[0] - self_kernel_diagonal(x)  # off-diagonal row sums of K_XX
    r_y = kernel_row_sums(y, y, chunk)[0] - self_kernel_diagonal(y)
    c_row, c_col = kernel_row_sums(x, y, chunk)  # K_XY summed over y (per x_i) and over x (per y_j)
    a, b, c = r_x.sum(), r_y.sum(), c_row.sum()
    u = a / (m * (m - 1)) + b / (n * (n - 1)) - 2 * c / (m * n)
    if min(m, n) < 3:
        return float(u), None
    # without x_i: A loses its row and column i (2 r_x[i]), C loses row i; likewise for y_j
    u_x = (a - 2 * r_x) / ((m - 1) * (m - 2)) + b / (n * (n - 1)) - 2 * (c - c_row) / ((m - 1) * n)
    u_y = a / (m * (m - 1)) + (b - 2 * r_y) / ((n - 1) * (n - 2)) - 2 * (c - c_col) / (m * (n - 1))
    var = (m - 1) / m * (u_x - u_x.mean()).square().sum() + (n - 1) / n * (u_y - u_y.mean()).square().sum()
    return float(u), float(var)


def kernel_inception_distance(features_1: torch.Tensor, features_2: torch.Tensor, subsets: int = SUBSETS,
                              subset_size: int = SUBSET_SIZE, rng_seed: int = RNG_SEED) -> tuple[float, float | None]:
    """(value, standard error): the mean MMD^2 over ``subsets`` random subsets of min(subset_size, n)
    features of each set (torch-fidelity), and the standard error of that mean over draws of the two sets
    (jackknife plus subset term, see the module docstring; None with fewer than 3 features a set)."""
    u_full, var_full = mmd2_jackknife(features_1, features_2)
    if var_full is None:
        return u_full, None
    if len(features_1) <= subset_size and len(features_2) <= subset_size:
        return u_full, math.sqrt(var_full)  # every subset is the whole set: the mean is U itself (in float64)
    size = min(subset_size, len(features_1), len(features_2))
    out = kid_features_to_metric(features_1, features_2, kid_subsets=subsets, kid_subset_size=size,
                                 rng_seed=rng_seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], math.sqrt(var_full + out[KEY_METRIC_KID_STD] ** 2 / subsets)


@register_metric("kid", higher_is_better=False, curve=True)
def kid(ctx, extractor: str) -> list[MetricResult]:
    def compute(side: dict, ref: dict) -> dict:
        return {"kid": kernel_inception_distance(side["features"], ref["features"])}

    return ctx.results(extractor, False, compute, ("kid",), reference=ctx.reference_split)
