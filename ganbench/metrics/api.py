"""``evaluate``: the one entry point the trainer's evaluation and ``ganbench eval`` call."""

from __future__ import annotations

from functools import cached_property

import torch

from ganbench.errors import GanbenchError
from ganbench.metrics import METRICS, MetricResult
from ganbench.metrics.extractors import Weights, extract_features, inception_extractor, inception_weights
from ganbench.metrics.reference import cached_statistics, manifest, reference_images
from ganbench.protocol import Protocol


class EvalContext:
    """Lazily computed, shared inputs of the metrics of one evaluation."""

    def __init__(self, samples: torch.Tensor, protocol: Protocol, device: torch.device, data_root=None):
        self.samples = samples
        self.protocol = protocol
        self.device = device
        self.data_root = data_root
        self.num_samples = len(samples)
        self.reference_split = protocol.eval.reference_split
        self.reference_name = f"{protocol.data.dataset}/{protocol.eval.reference_split}"
        self.extractor_name = protocol.eval.extractor

    @cached_property
    def weights(self) -> Weights:
        return inception_weights()

    @cached_property
    def model(self) -> torch.nn.Module:
        return inception_extractor(self.weights, self.device)

    def features(self) -> torch.Tensor:
        return self._sample_features

    @cached_property
    def _sample_features(self) -> torch.Tensor:
        return extract_features(self.model, self.samples, self.protocol.eval.batch_size, self.device)

    def reference_statistics(self):
        from ganbench.metrics.fid import gaussian_statistics

        ev = self.protocol.eval
        man = manifest(self.protocol.data.dataset, ev.reference_split, ev, self.weights.features_sha256)

        def compute():
            imgs = reference_images(self.protocol.data.dataset, ev.reference_split, ev.num_samples,
                                    ev.reference_seed, self.data_root)
            return gaussian_statistics(extract_features(self.model, imgs, ev.batch_size, self.device))

        return cached_statistics(man, compute)


def check_samples(samples: torch.Tensor, protocol: Protocol) -> None:
    d = protocol.data
    expected = (d.channels, d.image_size, d.image_size)
    if not isinstance(samples, torch.Tensor) or samples.dim() != 4 or tuple(samples.shape[1:]) != expected:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise GanbenchError(f"samples must be N x {' x '.join(map(str, expected))} for protocol {protocol.name!r}, got {shape}")
    if samples.dtype != torch.uint8:
        raise GanbenchError(f"samples must be uint8 pixels in [0, 255], got {samples.dtype}")
    if len(samples) < protocol.eval.num_samples:
        raise GanbenchError(f"protocol {protocol.name!r} evaluates {protocol.eval.num_samples} samples, got {len(samples)}")


def evaluate(samples: torch.Tensor, protocol: Protocol, device: torch.device | str = "cpu",
             data_root=None) -> dict[str, MetricResult]:
    """Compute the protocol's metric list on ``samples`` (uint8 N x C x H x W; the first num_samples are used)."""
    check_samples(samples, protocol)
    ctx = EvalContext(samples[: protocol.eval.num_samples], protocol, torch.device(device), data_root)
    results: dict[str, MetricResult] = {}
    for name in protocol.eval.metrics:
        for r in METRICS.get_or_raise(name).compute(ctx):
            results[r.name] = r
    return results
