"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial
kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets (mean ± std), by torch-fidelity."""

from __future__ import annotations

from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from ganbench.metrics import MetricResult, count_name, register_metric

SUBSETS = 100  # torch-fidelity's and Bińkowski et al.'s defaults
SUBSET_SIZE = 1000
RNG_SEED = 2020


def kernel_inception_distance(features_1, features_2, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
                              rng_seed: int = RNG_SEED) -> tuple[float, float]:
    """(mean, std) of MMD^2 over ``subsets`` random subsets of min(subset_size, n) features of each set."""
    size = min(subset_size, len(features_1), len(features_2))
    out = kid_features_to_metric(features_1, features_2, kid_subsets=subsets, kid_subset_size=size,
                                 rng_seed=rng_seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


@register_metric("kid", higher_is_better=False)
def kid(ctx, extractor: str) -> list[MetricResult]:
    def compute(side: dict, ref: dict) -> dict:
        return {"": kernel_inception_distance(side["features"], ref["features"])}

    return ctx.results(f"kid{count_name(ctx.num_samples)}_{ctx.reference_split}", extractor, False, compute)
