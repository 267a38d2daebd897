"""Fréchet Inception Distance (Heusel et al. 2017, eq. 6):

    FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})

The trace of the matrix square root is computed by torch-fidelity (sum of the square roots of the
eigenvalues of S_r S_g), the same routine as its ``calculate_metrics``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric, KEY_METRIC_FID

from ganbench.metrics import MetricResult, count_name, register_metric


def gaussian_statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    """Mean and unbiased covariance of N x D features, in float64."""
    x = features.to(torch.float64).numpy()
    return {"mu": x.mean(axis=0), "sigma": np.cov(x, rowvar=False)}


def frechet_distance(stat_1: dict[str, np.ndarray], stat_2: dict[str, np.ndarray]) -> float:
    return float(fid_statistics_to_metric(stat_1, stat_2, verbose=False)[KEY_METRIC_FID])


@register_metric("fid", higher_is_better=False)
def fid(ctx) -> list[MetricResult]:
    ref = ctx.reference_statistics()
    value = frechet_distance(gaussian_statistics(ctx.features()), ref)
    n = ctx.num_samples
    return [MetricResult(f"fid{count_name(n)}_{ctx.reference_split}", value, False, n,
                         ctx.extractor_name, ctx.weights.features_sha256, ctx.reference_name)]
