"""Metrics of class-conditional generators, measured with the dataset's domain classifier.

- ``label_acc``: the share of samples the domain classifier assigns to the class they were generated
  for (the "classification accuracy" of conditional GAN papers, e.g. Odena et al. 2017 sec. 4.1 with
  their Inception network; here the classifier trained on the dataset). Its floor is the
  classifier's accuracy on real images it never saw (``domain.HELD_OUT_SPLIT``, the test split, at the
  sample count): a perfect generator scores about that. On its own training split the classifier is
  flattered (Fashion-MNIST: 0.943 there against 0.923 held out, 10k images of each split).
- ``intra_fid``: FID within each class (domain features of the samples of class c against the real
  images of class c), averaged over classes (Miyato & Koyama 2018, sec. 5.1). It sees what overall
  FID cannot: a generator that draws good images of the wrong class.
"""

from __future__ import annotations

import numpy as np
import torch

from ganbench.extractors.domain import HELD_OUT_SPLIT
from ganbench.metrics.base import SHARE_HIGHER, MetricResult, metric_name, reads_domain, register_metric
from ganbench.metrics.fid import frechet_distance
from ganbench.metrics.reference import gaussian_statistics, reference_labels

UNCONDITIONAL = "the samples carry no labels (an unconditional generator): conditional metrics need a conditional model"


def _result(ctx, quantity: str, reference: str | None, value: float | None, higher: bool, floor: float | None,
            floor_ref: str, unavailable: str | None = None) -> MetricResult:
    src = ctx.source("domain")
    name = metric_name(quantity, ctx.num_samples, reference, space=src.space)
    return MetricResult(name, value, higher_is_better=higher, num_samples=ctx.num_samples,
                        extractor=src.name, weights_sha256=src.weights_sha256, reference=ctx.reference_name,
                        floor=floor, floor_reference=floor_ref, unavailable=unavailable)


def _labels_of(ctx, which: str) -> torch.Tensor:
    split = ctx.reference_split if which == "reference" else ctx.floor_split
    return reference_labels(ctx.protocol.data, split, ctx.num_samples, ctx.protocol.eval.reference_seed, ctx.data_root)


def _held_out_side(ctx) -> tuple[dict, torch.Tensor] | None:
    """Domain features and labels of real images the classifier never saw, at the sample count: the reference
    side or the floor side, whichever is the held-out split (None when the floor is off or the split too small)."""
    if not ctx.protocol.eval.floor:
        return None
    which = "reference" if ctx.reference_split == HELD_OUT_SPLIT else "floor" if ctx.floor_split == HELD_OUT_SPLIT else None
    side = None if which is None else ctx.side("domain", which)
    return None if side is None else (side, _labels_of(ctx, which))


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


@register_metric("label_acc", higher_is_better=True, reads=reads_domain, quantities={"label_acc": True},
                 kinds={"label_acc": SHARE_HIGHER})
def label_acc(ctx, extractor: str) -> list[MetricResult]:
    if ctx.labels is None:
        return [_result(ctx, "label_acc", None, None, True, None, "", UNCONDITIONAL)]
    value = label_accuracy(ctx.side("domain", "samples")["logits"], ctx.labels)
    held_out, floor, floor_ref = _held_out_side(ctx), None, ""
    if held_out is not None:
        floor = label_accuracy(held_out[0]["logits"], held_out[1])
        floor_ref = f"{ctx.dataset}/{HELD_OUT_SPLIT} real images with their labels (held out from the classifier)"
    return [_result(ctx, "label_acc", None, value, True, floor, floor_ref)]


@register_metric("intra_fid", higher_is_better=False, reads=reads_domain, quantities={"intra_fid": False})
def intra_fid(ctx, extractor: str) -> list[MetricResult]:
    if ctx.labels is None:
        return [_result(ctx, "intra_fid", ctx.reference_split, None, False, None, "", UNCONDITIONAL)]
    ref, ref_labels = ctx.side("domain", "reference"), _labels_of(ctx, "reference")
    value = intra_class_fid(ctx.side("domain", "samples")["features"], ctx.labels, ref["features"], ref_labels)
    floor_side, floor, floor_ref = ctx.side("domain", "floor"), None, ""
    if floor_side is not None:
        floor = intra_class_fid(floor_side["features"], _labels_of(ctx, "floor"), ref["features"], ref_labels)
        floor_ref = f"{ctx.dataset}/{ctx.floor_split} vs {ctx.reference_name}, per class"
    return [_result(ctx, "intra_fid", ctx.reference_split, value, False, floor, floor_ref)]
