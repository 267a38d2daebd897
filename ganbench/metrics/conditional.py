"""Metrics of class-conditional generators, measured with the dataset's domain classifier.

- ``label_acc``: the share of samples the domain classifier assigns to the class they were generated
  for (the "classification accuracy" of conditional GAN papers, e.g. Odena et al. 2017 sec. 4.1 with
  their Inception network; here the classifier trained on the dataset). Its floor is the
  classifier's accuracy on the real images of the other split: a perfect generator scores about that.
- ``intra_fid``: FID within each class (domain features of the samples of class c against the real
  images of class c), averaged over classes (Miyato & Koyama 2018, sec. 5.1). It sees what overall
  FID cannot: a generator that draws good images of the wrong class.
"""

from __future__ import annotations

import numpy as np
import torch

from ganbench.metrics import MetricResult, count_name, reads_domain, register_metric
from ganbench.metrics.fid import frechet_distance
from ganbench.metrics.reference import gaussian_statistics, reference_labels

UNCONDITIONAL = "the samples carry no labels (an unconditional generator): conditional metrics need a conditional model"


def _result(ctx, name: str, value: float | None, higher: bool, floor: float | None, floor_ref: str,
            unavailable: str | None = None) -> MetricResult:
    src = ctx.source("domain")
    return MetricResult(f"{src.prefix}{name}", value, higher_is_better=higher, num_samples=ctx.num_samples,
                        extractor=src.name, weights_sha256=src.weights_sha256, reference=ctx.reference_name,
                        floor=floor, floor_reference=floor_ref, unavailable=unavailable)


def _labels_of(ctx, which: str) -> torch.Tensor:
    split = ctx.reference_split if which == "reference" else ctx.floor_split
    return reference_labels(ctx.dataset, split, ctx.num_samples, ctx.protocol.eval.reference_seed, ctx.data_root)


def label_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())


def intra_class_fid(features: torch.Tensor, labels: torch.Tensor, ref_features: torch.Tensor,
                    ref_labels: torch.Tensor) -> float:
    """Mean over classes of the FID between the class's features on each side (classes present on both)."""
    values = []
    for c in torch.unique(ref_labels).tolist():
        a, b = features[labels == c], ref_features[ref_labels == c]
        if len(a) > 1 and len(b) > 1:
            values.append(frechet_distance(gaussian_statistics(a), gaussian_statistics(b)))
    return float(np.mean(values))


@register_metric("label_acc", higher_is_better=True, reads=reads_domain)
def label_acc(ctx, extractor: str) -> list[MetricResult]:
    name = f"label_acc{count_name(ctx.num_samples)}"
    if ctx.labels is None:
        return [_result(ctx, name, None, True, None, "", UNCONDITIONAL)]
    value = label_accuracy(ctx.side("domain", "samples")["logits"], ctx.labels)
    floor_side, floor, floor_ref = ctx.side("domain", "floor"), None, ""
    if floor_side is not None:
        floor = label_accuracy(floor_side["logits"], _labels_of(ctx, "floor"))
        floor_ref = f"{ctx.dataset}/{ctx.floor_split} real images with their labels"
    return [_result(ctx, name, value, True, floor, floor_ref)]


@register_metric("intra_fid", higher_is_better=False, reads=reads_domain)
def intra_fid(ctx, extractor: str) -> list[MetricResult]:
    name = f"intra_fid{count_name(ctx.num_samples)}_{ctx.reference_split}"
    if ctx.labels is None:
        return [_result(ctx, name, None, False, None, "", UNCONDITIONAL)]
    ref, ref_labels = ctx.side("domain", "reference"), _labels_of(ctx, "reference")
    value = intra_class_fid(ctx.side("domain", "samples")["features"], ctx.labels, ref["features"], ref_labels)
    floor_side, floor, floor_ref = ctx.side("domain", "floor"), None, ""
    if floor_side is not None:
        floor = intra_class_fid(floor_side["features"], _labels_of(ctx, "floor"), ref["features"], ref_labels)
        floor_ref = f"{ctx.dataset}/{ctx.floor_split} vs {ctx.reference_name}, per class"
    return [_result(ctx, name, value, False, floor, floor_ref)]
