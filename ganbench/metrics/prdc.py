"""Manifold metrics on k-nearest-neighbour balls around feature vectors.

- Improved precision & recall (Kynkäänniemi et al. 2019, k = 3): precision is the fraction of
  generated samples inside some real sample's k-NN ball, recall the fraction of real samples
  inside some generated sample's k-NN ball. Computed by torch-fidelity (``metric_prc``).
- Density & coverage (Naeem et al. 2020, k = 5, eqs. 3-4 and their reference code):
  density = 1/(kM) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))], coverage = 1/N sum_i 1[exists j:
  Y_j in B(X_i, NND_k(X_i))], with X the N real and Y the M generated features; only real balls are
  used, so they are robust to outliers among the generated samples. Ball membership is strict
  (``<``) as in the authors' ``prdc`` package.
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

from ganbench.metrics.base import SHARE_HIGHER, Kind, MetricResult, register_metric

PR_K = 3
DC_K = 5
CHUNK = 2048  # rows of the distance matrix held at once: memory stays O(CHUNK x N)


def precision_recall(generated: torch.Tensor, real: torch.Tensor, k: int = PR_K) -> tuple[float, float]:
    out = prc_features_to_metric(generated, real, prc_neighborhood=k, prc_batch_size=CHUNK, save_cpu_ram=True,
                                 verbose=False)
    return out[KEY_METRIC_PRECISION], out[KEY_METRIC_RECALL]


def knn_radii(x: torch.Tensor, k: int, chunk: int = CHUNK) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row (the row itself is the 0-th)."""
    return torch.cat([torch.cdist(part, x).kthvalue(k + 1, dim=1).values for part in x.split(chunk)])


def density_coverage(generated: torch.Tensor, real: torch.Tensor, k: int = DC_K,
                     chunk: int = CHUNK) -> tuple[float, float]:
    """(density, coverage) of generated features against real ones (both N x D, any device)."""
    radii = knn_radii(real, k, chunk)
    inside = torch.zeros((), dtype=torch.float64, device=real.device)
    nearest = torch.full((len(real),), float("inf"), dtype=real.dtype, device=real.device)
    for part in generated.split(chunk):
        d = torch.cdist(part, real)  # chunk x N
        inside += (d < radii).sum(dtype=torch.float64)
        nearest = torch.minimum(nearest, d.min(dim=0).values)
    density = float(inside) / (k * len(generated))
    coverage = float((nearest < radii).double().mean())
    return density, coverage


@register_metric("pr", higher_is_better=True, quantities={"precision": True, "recall": True},
                 kinds={"precision": SHARE_HIGHER, "recall": SHARE_HIGHER})
def pr(ctx, extractor: str) -> list[MetricResult]:
    def compute(side: dict, ref: dict) -> dict:
        p, r = precision_recall(side["features"], ref["features"])
        return {"precision": (p, None), "recall": (r, None)}

    return ctx.results(extractor, True, compute, ("precision", "recall"), reference=ctx.reference_split, k=PR_K)


@register_metric("dc", higher_is_better=True, quantities={"density": True, "coverage": True},
                 kinds={"density": Kind("target", 1.0, "best at 1 (real vs real); above 1 is not better (Naeem et al. "
                                        "2020)"), "coverage": SHARE_HIGHER})
def dc(ctx, extractor: str) -> list[MetricResult]:
    def compute(side: dict, ref: dict) -> dict:
        d, c = density_coverage(side["features"], ref["features"])
        return {"density": (d, None), "coverage": (c, None)}

    return ctx.results(extractor, True, compute, ("density", "coverage"), reference=ctx.reference_split, k=DC_K)
