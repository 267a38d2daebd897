"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), mean ± std over 10 splits,
by torch-fidelity. On Inception it needs the 1008-way logits of the official weights (otherwise it is
reported as unavailable, with the reason); with the domain classifier it is the classifier-based
score used for MNIST-like data (at most 10, the number of classes)."""

from __future__ import annotations

from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

from ganbench.metrics.base import MetricResult, register_metric

SPLITS = 10
RNG_SEED = 2020  # torch-fidelity's default shuffle seed


def inception_score(logits, splits: int = SPLITS) -> tuple[float, float]:
    out = isc_features_to_metric(logits, splits=min(splits, len(logits)), shuffle=True, rng_seed=RNG_SEED)
    return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]


@register_metric("is", higher_is_better=True)
def isc(ctx, extractor: str) -> list[MetricResult]:
    def compute(side: dict, ref: dict) -> dict:
        return {"is": inception_score(side["logits"])}

    unavailable = ctx.source(extractor).logits_unavailable
    return ctx.results(extractor, True, compute, ("is",), unavailable=unavailable)
