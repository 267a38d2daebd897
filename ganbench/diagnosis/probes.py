"""Sample statistics of a fixed batch of samples: the evidence of mode collapse that losses do not show.

The diversity of a fixed batch (mean pairwise distance in a feature space, as in the "diversity" score of
Karras et al. 2018 and the MS-SSIM diversity of Odena et al. 2017), the entropy of the classes a domain
classifier predicts for it (the class-histogram test of Srivastava et al. 2017, VEEGAN), and, for
datasets whose modes are known, the number of modes it covers (PacGAN's count, Lin et al. 2018).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch

from ganbench.core.errors import GanbenchError
from ganbench.data import get_dataset
from ganbench.extractors import domain
from ganbench.extractors.domain import has_domain_classifier
from ganbench.metrics.modes import classify_channels, mixture_modes, mode_of

FEATURE_SPACES = ("auto", "pixels", "domain")


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean Euclidean distance over all distinct pairs of rows."""
    f = features.double().flatten(1)
    n = len(f)
    if n < 2:
        return float("nan")
    d = torch.cdist(f, f)
    return float(d.sum() / (n * (n - 1)))


def class_entropy(logits: torch.Tensor) -> float:
    """Entropy (nats) of the histogram of predicted classes: ln(10) for a uniform 10-class batch, 0 for one class."""
    counts = torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum()) + 0.0  # + 0.0: no "-0.0" for a single class


@dataclass
class FeatureSpace:
    """How samples are measured: ``features(x) -> N x D``, optional ``logits(x) -> N x K``."""

    name: str
    features: Callable[[torch.Tensor], torch.Tensor]
    logits: Callable[[torch.Tensor], torch.Tensor] | None = None
    modes: Callable[[torch.Tensor], int] | None = None  # modes covered by a batch (protocols with known modes)


def mode_counter(dataset: str, device: torch.device | str = "cpu") -> Callable[[torch.Tensor], int] | None:
    """Modes covered by a batch, for datasets whose modes are known: the 2D mixtures (PacGAN's rule) and
    stacked MNIST (the distinct modes the MNIST classifier reads on the batch's channels); None elsewhere.

    A probe batch is small (128 samples over stacked MNIST's 1000 modes): it counts distinct modes, ~120 for
    real data and a handful for a collapsed G. The confusion-corrected count of the evaluation needs tens of
    samples per mode to tell a mode from a misread digit; on 128 real samples it read 2 to 19 modes from
    batch to batch, which the collapse rule took for collapses."""
    ds = get_dataset(dataset)
    if ds.mixture is not None:
        mix = ds.mixture
        return lambda points: int(mixture_modes(points, mix.centers, mix.sigma)["modes"])
    if ds.stacked_from:
        clf = domain.domain_classifier(ds.stacked_from, device=device)
        return lambda images: int(torch.unique(mode_of(classify_channels(images, clf)[0])).numel())
    return None


def pixel_space() -> FeatureSpace:
    """Pixels in [0, 1] (uint8 images) or raw coordinates (2D points); no class predictions."""
    return FeatureSpace("pixels", lambda x: (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()).flatten(1))


def feature_space(dataset: str, choice: str = "auto", device: torch.device | str = "cpu") -> FeatureSpace:
    """``pixels``; ``domain`` (the dataset's domain classifier: penultimate features + class predictions);
    ``auto``: domain when that classifier's weights are there (shipped with ganbench for MNIST and
    Fashion-MNIST, or the user's), else pixels (the diagnosis records which space it used)."""
    if choice not in FEATURE_SPACES:
        raise GanbenchError(f"feature space must be auto, pixels or domain, got {choice!r}")
    if choice == "domain" and not has_domain_classifier(dataset):
        raise GanbenchError(f"no domain classifier for {dataset!r}; use --features pixels")
    if choice == "pixels" or (choice == "auto" and not domain.classifier_available(dataset)):
        return dataclasses.replace(pixel_space(), modes=mode_counter(dataset, device))
    clf = domain.domain_classifier(dataset, device=device)
    return FeatureSpace(f"domain-{dataset}", clf.features, clf.logits, mode_counter(dataset, device))


def sample_statistics(images: torch.Tensor, space: FeatureSpace) -> dict[str, float]:
    """Diversity (mean pairwise feature distance) and, with a classifier, class entropy of a batch."""
    stats = {"diversity": mean_pairwise_distance(space.features(images))}
    stats["class_entropy"] = class_entropy(space.logits(images)) if space.logits else float("nan")
    if space.modes is not None:
        stats["modes_covered"] = float(space.modes(images))
    return stats
