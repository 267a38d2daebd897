"""Fréchet Inception Distance (Heusel et al. 2017, eq. 6):

    FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})

The trace of the matrix square root is computed by torch-fidelity (sum of the square roots of the
eigenvalues of S_r S_g), the same routine as its ``calculate_metrics``. The eigenvalues of S_r S_g
are those of the PSD matrix S_r^{1/2} S_g S_r^{1/2}, so they are real and >= 0 up to rounding;
with singular covariances (fewer samples than dimensions) the tiny negative or complex ones that
rounding leaves are mapped to 0 by taking the real part of the complex square root.
"""

from __future__ import annotations

import numpy as np
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

from ganbench.metrics.base import MetricResult, register_metric
from ganbench.metrics.reference import gaussian_statistics  # noqa: F401  (re-exported: the FID statistics)


def frechet_distance(stat_1: dict[str, np.ndarray], stat_2: dict[str, np.ndarray]) -> float:
    return float(fid_statistics_to_metric({"mu": stat_1["mu"], "sigma": stat_1["sigma"]},
                                          {"mu": stat_2["mu"], "sigma": stat_2["sigma"]}, verbose=False)[KEY_METRIC_FID])


@register_metric("fid", higher_is_better=False, curve=True)
def fid(ctx, extractor: str) -> list[MetricResult]:
    def compute(side: dict, ref: dict) -> dict:
        return {"fid": (frechet_distance(ctx.statistics(side), ctx.statistics(ref)), None)}

    return ctx.results(extractor, False, compute, ("fid",), reference=ctx.reference_split)
