"""``evaluate``: the one entry point the trainer's evaluation and ``ganbench eval`` call.

An :class:`EvalContext` holds what the metrics of one evaluation share, each computed once and
only when a metric asks: per extractor, the samples' features, the reference split's features
(from the cache) and the real-vs-real floor features (another split at the same sample count,
also cached). Metrics are pure functions of (side, reference); the context runs each on the
samples and on the floor side and wraps both in :class:`MetricResult`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.data import get_dataset, is_points, resize_images
from ganbench.extractors import FeatureSource, feature_source
from ganbench.metrics.base import MetricResult, metric_name, parse_metric
from ganbench.metrics.reference import (cached_features, check_comparable, gaussian_statistics, manifest,
                                        reference_images)
from ganbench.spec.protocol import Protocol

OTHER_SPLIT = {"test": "train", "train": "test"}  # where the real-vs-real floor's images come from


@dataclass(frozen=True)
class Sampler:
    """A generator as evaluation may use it beyond its samples: ``G`` maps z ~ N(0, I) (N x ``z_dim``) to
    images in [-1, 1]; a style-based G also exposes ``mapping`` (z -> w) and ``synthesis`` (w -> images).
    Only the metrics that walk the latent space (``ppl``) use it."""

    G: nn.Module
    z_dim: int


class _SplitTooSmall(Exception):
    """The floor's split has fewer images than the sample count: no floor (not an error)."""

class EvalContext:
    """Lazily computed, shared inputs of the metrics of one evaluation."""
    def __init__(self, samples: torch.Tensor, protocol: Protocol, device: torch.device, data_root=None,
                 labels: torch.Tensor | None = None, generator: Sampler | None = None):
        self.samples = samples
        self.labels = labels  # the classes a conditional generator was asked for (None: unconditional)
        self.generator = generator  # the generator behind the samples, when the caller has it (None: samples only)
        self.protocol = protocol
        self.device = device
        self.data_root = data_root
        self.num_samples = len(samples)
        self.dataset = protocol.data.dataset
        self.reference_split = protocol.eval.reference_split
        self.reference_name = f"{self.dataset}/{self.reference_split}"
        self.floor_split = OTHER_SPLIT[self.reference_split]

        native = get_dataset(self.dataset).image_size  # 0 for 2D points
        self.resize_to = protocol.data.image_size if native and protocol.data.image_size != native else None
        self._sources: dict[str, FeatureSource] = {}
        self._sides: dict[tuple[str, str], dict] = {}
        self.cache_hits: dict[str, bool] = {}  # "<extractor>/<split>" -> whether the real features came from the cache
        self.extras: dict = {}  # non-scalar by-products of metrics (histograms, image pairs) for artifacts

    def source(self, extractor: str) -> FeatureSource:
        if extractor not in self._sources:
            self._sources[extractor] = feature_source(extractor, self.dataset, self.device)
        return self._sources[extractor]

    def _manifest(self, extractor: str, split: str) -> dict:
        man = manifest(self.dataset, split, self.num_samples, self.protocol.eval.reference_seed, self.source(extractor))
        if self.resize_to is not None:  # only resized protocols carry the key: native cache entries keep their names
            man["image_size"] = self.resize_to
        # a drawn dataset's draw (stored ones add nothing: their entries keep their names too)
        man.update(get_dataset(self.dataset).provenance(self.protocol.data))
        return man

    def side(self, extractor: str, which: str) -> dict | None:
        """Features of "samples", "reference" or "floor" (None when the floor split is too small)."""
        key = (extractor, which)
        if key not in self._sides:
            self._sides[key] = self._compute_side(extractor, which)
        return self._sides[key]

    def _compute_side(self, extractor: str, which: str) -> dict | None:
        src, bs = self.source(extractor), self.protocol.eval.batch_size
        if which == "samples":
            out = src.extract(self.samples, bs)
            return {"features": out["features"], "logits": out.get("logits"),
                    "manifest": self._manifest(extractor, "samples")}
        split = self.reference_split if which == "reference" else self.floor_split
        man = self._manifest(extractor, split)

        def compute() -> dict:
            if which == "floor" and self.num_samples > self.split_size(split):
                raise _SplitTooSmall
            imgs = reference_images(self.protocol.data, split, self.num_samples, self.protocol.eval.reference_seed,
                                    self.data_root)
            if self.resize_to is not None:
                imgs = resize_images(imgs, self.resize_to)
            return src.extract(imgs, bs)

        if which == "floor" and not self.protocol.eval.floor:
            return None
        try:
            side = cached_features(man, compute)  # a cache hit reads no images at all
        except _SplitTooSmall:
            return None
        self.cache_hits[f"{extractor}/{split}"] = side["cache_hit"]
        return {**side, "manifest": man}

    def split_size(self, split: str) -> int:
        return get_dataset(self.dataset).split_size(self.protocol.data, split, self.data_root)

    @staticmethod
    def statistics(side: dict) -> dict[str, np.ndarray]:
        return side if "mu" in side else {**gaussian_statistics(side["features"])}

    def results(self, extractor: str, higher_is_better: bool,
                compute: Callable[[dict, dict], dict[str, tuple[float, float | None]]], quantities: tuple[str, ...],
                reference: str | None = None, k: int | None = None,
                unavailable: str | None = None) -> list[MetricResult]:
        """Run ``compute(side, reference)`` on the samples and on the floor side; it returns
        ``{quantity: (value, std)}`` for each of ``quantities``, and each becomes one result named by
        :func:`~ganbench.metrics.metric_name` (the extractor's space, ``k``, the sample count, ``reference``:
        the split compared with, or None for metrics that compare with none, such as IS)."""
        src = self.source(extractor)

        def name(quantity: str) -> str:
            return metric_name(quantity, self.num_samples, reference, k, src.space)

        common = dict(higher_is_better=higher_is_better, num_samples=self.num_samples, extractor=src.name,
                      weights_sha256=src.weights_sha256, reference=self.reference_name)
        if unavailable:
            return [MetricResult(name(q), None, unavailable=unavailable, **common) for q in quantities]
        ref = self.side(extractor, "reference")
        samples = self.side(extractor, "samples")
        check_comparable(samples["manifest"], ref["manifest"])
        values = compute(samples, ref)
        assert set(values) == set(quantities), f"{sorted(values)} computed, {sorted(quantities)} declared"
        floor_side = self.side(extractor, "floor")
        floors, floor_ref = {}, ""
        if floor_side is not None:
            check_comparable(floor_side["manifest"], ref["manifest"])
            floors = compute(floor_side, ref)
            floor_ref = f"{self.dataset}/{self.floor_split} vs {self.reference_name}"
        out = []
        for quantity in quantities:
            value, std = values[quantity]
            floor = floors.get(quantity, (None, None))[0]
            out.append(MetricResult(name(quantity), float(value), std=None if std is None else float(std),
                                    floor=None if floor is None else float(floor), floor_reference=floor_ref, **common))
        return out


def check_samples(samples: torch.Tensor, protocol: Protocol, num_samples: int | None = None) -> None:

    d = protocol.data
    n = protocol.eval.num_samples if num_samples is None else num_samples
    if is_points(d.dataset):  # 2D mixtures: float N x 2 points
        if not isinstance(samples, torch.Tensor) or samples.dim() != 2 or samples.shape[1] != 2 \
                or not samples.is_floating_point() or not torch.isfinite(samples).all():
            shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
            raise GanbenchError(f"samples of {d.dataset} must be finite float points N x 2, got {shape}")
        if len(samples) < n:
            raise GanbenchError(f"protocol {protocol.name!r} evaluates {n} samples, got {len(samples)}")
        return
    expected = (d.channels, d.image_size, d.image_size)
    if not isinstance(samples, torch.Tensor) or samples.dim() != 4 or tuple(samples.shape[1:]) != expected:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise GanbenchError(f"samples must be N x {' x '.join(map(str, expected))} for protocol {protocol.name!r}, got {shape}")
    if samples.dtype != torch.uint8:
        raise GanbenchError(f"samples must be uint8 pixels in [0, 255], got {samples.dtype}")
    if len(samples) < n:
        raise GanbenchError(f"protocol {protocol.name!r} evaluates {n} samples, got {len(samples)}; "
                            f"generate at least {n}")


def evaluate(samples: torch.Tensor, protocol: Protocol, device: torch.device | str = "cpu",
             data_root=None, context: dict | None = None, labels: torch.Tensor | None = None,
             generator: Sampler | None = None) -> dict[str, MetricResult]:
    """Compute the protocol's metric list on ``samples`` (uint8 N x C x H x W; the first num_samples are used).
    ``labels`` are the classes a conditional generator was asked for (the conditional metrics need them).
    ``generator``, the generator behind the samples, is needed only by the latent-space metrics (``ppl``).
    ``context``, when given, receives the :class:`EvalContext` under "ctx" (cache hits, sources)."""
    check_samples(samples, protocol)
    n = protocol.eval.num_samples
    if labels is not None and len(labels) < n:
        raise GanbenchError(f"{len(labels)} labels for {n} evaluated samples: give one label per sample")
    ctx = EvalContext(samples[:n], protocol, torch.device(device), data_root, None if labels is None else labels[:n],
                      generator)
    if context is not None:
        context["ctx"] = ctx
    results: dict[str, MetricResult] = {}
    with full_fp32():
        for spec in protocol.eval.metrics:
            metric, extractor = parse_metric(spec, protocol.eval.extractor)
            for r in metric.compute(ctx, extractor):
                results[r.name] = r
    return results


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Metrics in IEEE float32 on a GPU too. PyTorch lets cuDNN's convolutions use TF32 (a 10-bit mantissa)
    by default, which moves the features, and FID with them, by an amount nobody has measured for our
    extractors; a faster precision is adopted only once benchmarks/bench_fid_precision.py shows FID moving
    by less than 0.1. The flags are restored afterwards (training keeps PyTorch's defaults)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
