"""What a feature extractor is to ganbench: a registry entry that gives metrics a :class:`FeatureSource`.

A feature source is what a metric sees of an extractor: one pass over uint8 images gives the features
(for FID/KID/PR/DC) and, when the extractor has them, the class logits (for IS). An entry also says which
weights it reads (their hash is an identity part) and, when it has files of its own, the name
``ganbench data fetch`` / ``verify`` knows them by. A new extractor is one :func:`register_extractor` call
in one module of this package (``inception.py`` and ``domain.py`` are the two there are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ganbench.core.assets import FileCheck
from ganbench.core.errors import GanbenchError
from ganbench.core.registry import EXTRACTORS


@dataclass(frozen=True)
class FeatureSource:
    name: str  # the torch-fidelity feature-extractor name, e.g. inception-v3-compat, ganbench-domain-mnist
    space: str | None  # metric_name's space: None for the standard Inception, "domain" for the domain classifier
    weights_sha256: str
    resize: str  # how images reach the network (part of the cache key)
    layer: str  # which features, e.g. "2048" (pool3) or "penultimate"
    extract: Callable[[torch.Tensor, int], dict[str, torch.Tensor]]  # (uint8 images, batch) -> {"features", "logits"?}
    logits_unavailable: str | None = None  # why there are no logits (IS), or None


@dataclass(frozen=True)
class Extractor:
    """A feature extractor entry: the features of uint8 images (``source``) and the hash of the weights
    it reads (``weights_sha256``, an identity part named ``weights_part``). ``per_dataset``: one network
    per dataset (the domain classifiers) rather than one for all (Inception). ``files``: the name of its
    weight files for ``ganbench data fetch``/``verify`` (None: it has none), with ``fetch`` (get or build what
    is missing; lines saying what is in use) and ``verify`` (check every cached file against its pin, reads only)."""

    name: str
    source: Callable[[str, torch.device], FeatureSource]  # (dataset, device) -> FeatureSource
    weights_sha256: Callable[[str], str]  # (dataset) -> SHA-256 of the weights in use
    per_dataset: bool
    files: str | None = None
    fetch: Callable[[], list[str]] | None = None
    verify: Callable[[], list[FileCheck]] | None = None
    ready: Callable[[str], object] | None = None  # (dataset) -> open and check the weights a run will read (fetched
    # when missing), so that a run fails before training, not after it; None: nothing to open

    def check_ready(self, dataset: str) -> None:
        if self.ready is not None:
            self.ready(dataset)

    def weights_part(self, dataset: str) -> str:
        return f"weights/{self.name}-{dataset}" if self.per_dataset else f"weights/{self.name}"


def register_extractor(entry: Extractor) -> Extractor:
    assert entry.files is None or (entry.fetch and entry.verify), f"{entry.name}: files without fetch and verify"
    return EXTRACTORS.register(entry.name, entry)


def feature_source(extractor: str, dataset: str, device: torch.device) -> FeatureSource:
    return EXTRACTORS.get_or_raise(extractor).source(dataset, device)


def extractors_with_files() -> dict[str, Extractor]:
    """``ganbench data`` name -> the extractor whose weight files it names, in registration order."""
    return {e.files: e for e in EXTRACTORS.values() if e.files}


@torch.no_grad()
def extract_layers(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 100,
                   device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """A torch-fidelity extractor's requested layers (float32, CPU) for uint8 N x 1|3 x H x W images, in
    batches; grayscale is repeated to RGB."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise GanbenchError(f"expected uint8 images of shape N x 1|3 x H x W, got {images.dtype} {tuple(images.shape)}")
    device = device or next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {name: [] for name in model.features_list}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        for name, feat in zip(model.features_list, model(batch.contiguous(memory_format=torch.channels_last))):
            out[name].append(feat.to("cpu", torch.float32))
    return {name: torch.cat(parts) for name, parts in out.items()}
