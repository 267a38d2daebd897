"""Image-to-image tasks with a known answer, built deterministically from the datasets ganbench has.

- Paired ``edges2fashion``: input = a fixed edge operator applied to a Fashion-MNIST image, target = the
  image, as pix2pix's edges2shoes/edges2handbags (Isola et al. 2017, sec. 4), with the edge detector fixed
  here so that the task is reproducible bit for bit.
- Unpaired ``mnist-a2b``: MNIST's training digits split into disjoint halves A and B by a seeded permutation;
  B holds T(digit) for its half, where T is a fixed transform (:func:`a2b_transform`: strokes thickened by a
  3x3 maximum filter, then the grey levels inverted). A model never sees a pair (x, T(x)) in training, as in
  CycleGAN's unpaired setting (Zhu et al. 2017, sec. 1), yet the true translation T(x) of every test digit
  is known, so translations can be scored against the truth.

Everything here is a pure function of its inputs: uint8 NCHW tensors in, uint8 NCHW tensors out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from ganbench.core.errors import GanbenchError
from ganbench.data.base import DrawnDataset, ImageSet, load_split, register_dataset
import ganbench.data.idx  # noqa: F401  (the tasks read MNIST's and Fashion-MNIST's stored files)

# Sobel & Feldman 1968 (see Gonzalez & Woods, Digital Image Processing, sec. 10.2): a central difference
# across the edge, smoothed by [1, 2, 1] along it.
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
# The smoothing weights sum to 4, so an ideal step of h grey levels gives a Sobel magnitude of 4h beside it.
# An edge is where the magnitude reaches that of a step of 64 grey levels (a quarter of the uint8 range):
# Fashion-MNIST's garments stand out from the black background by far more, their inner folds and prints
# mostly by less, so the map keeps outlines and strong inner contours, as an edge sketch does.
EDGE_STEP = 64
EDGE_THRESHOLD = 4.0 * EDGE_STEP
EDGE_ON, EDGE_OFF = 255, 0  # white lines on black, the convention of MNIST-like data
DILATION = 3  # T's maximum filter: 3x3, a 1-pixel stroke becomes 3 pixels wide
UINT8_MAX = 255


def _check_uint8_nchw(images: torch.Tensor, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {tuple(getattr(images, 'shape', ()))}"
        raise GanbenchError(f"{what} needs uint8 images as an N x C x H x W torch tensor, got {got}")


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """sqrt(Gx^2 + Gy^2) of the channel mean, float32 N x 1 x H x W. The border is replicated, so a constant
    image, borders included, has no edges (zero padding would draw a frame around any non-black image)."""
    _check_uint8_nchw(images, "sobel_magnitude")
    grey = images.float().mean(1, keepdim=True)
    kernels = torch.stack([SOBEL_X, SOBEL_X.T]).unsqueeze(1)  # [2, 1, 3, 3]: d/dx, d/dy
    grads = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    return grads.pow(2).sum(1, keepdim=True).sqrt()


def edges(images: torch.Tensor) -> torch.Tensor:
    """The fixed edge operator of ``edges2fashion``: Sobel magnitude >= :data:`EDGE_THRESHOLD`, as a binary
    uint8 map (255 on edges, 0 elsewhere), N x 1 x H x W.

    Thresholded rather than kept as a magnitude: pix2pix's edge inputs are binary sketches (Isola et al.
    sec. 4, HED edges post-processed to lines), and the magnitude would keep the local contrast of every
    fold, from which the image is nearly recoverable by integration; a binary map leaves the shading to the
    generator, which is the translation being measured."""
    return torch.where(sobel_magnitude(images) >= EDGE_THRESHOLD, EDGE_ON, EDGE_OFF).to(torch.uint8)


def edges2fashion_pairs(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of the paired task: (edges(images), images)."""
    return edges(images), images


def a2b_transform(images: torch.Tensor) -> torch.Tensor:
    """T of ``mnist-a2b``: thicken the strokes with a 3x3 maximum filter (grey-level dilation, Serra 1982),
    then invert the grey levels (255 - x). Its output has the input's shape; pixels beyond the border do not
    count in the maximum."""
    _check_uint8_nchw(images, "a2b_transform")
    # max_pool2d pads with -inf, so the border does not widen anything; float keeps the kernel portable.
    dilated = F.max_pool2d(images.float(), DILATION, stride=1, padding=DILATION // 2)
    return (UINT8_MAX - dilated).to(torch.uint8)


@dataclass(frozen=True)
class A2BSplit:
    """Two unpaired domains: ``a`` holds untouched digits, ``b`` holds T(digit) of other digits. ``a_index``
    and ``b_index`` are the digits' rows in the training set (disjoint); labels come along for class checks."""

    a: torch.Tensor
    a_labels: torch.Tensor
    a_index: torch.Tensor
    b: torch.Tensor
    b_labels: torch.Tensor
    b_index: torch.Tensor

    @staticmethod
    def true_translation(images: torch.Tensor) -> torch.Tensor:
        """The ground truth A -> B of any digit (e.g. of the test split): :func:`a2b_transform`."""
        return a2b_transform(images)


def mnist_a2b(images_train: torch.Tensor, labels_train: torch.Tensor, seed: int) -> A2BSplit:
    """Split the training digits into halves A (the first n // 2 of a seeded permutation) and B (the rest),
    and transform B's digits by T. The same seed gives the same bytes; the permutation draws from its own
    ``torch.Generator`` so nothing global is touched."""
    _check_uint8_nchw(images_train, "mnist_a2b")
    if len(labels_train) != len(images_train):
        raise GanbenchError(f"mnist_a2b got {len(images_train)} images but {len(labels_train)} labels")
    order = torch.randperm(len(images_train), generator=torch.Generator().manual_seed(seed))
    a_index, b_index = order[: len(order) // 2], order[len(order) // 2:]
    return A2BSplit(a=images_train[a_index], a_labels=labels_train[a_index], a_index=a_index,
                    b=a2b_transform(images_train[b_index]), b_labels=labels_train[b_index], b_index=b_index)


# --------------------------------------------------------------------------- the registered tasks
# A translation dataset's examples are (source, target) pairs: ``images`` are the targets (domain B), ``inputs``
# the sources (domain A), ``labels`` the sources' classes. Training: paired row by row (edges2fashion) or two
# unpaired domains (mnist-a2b). Test: every test image in its stored order with its true translation, so that
# evaluation scores the translations of the first n test sources against the truth.


@dataclass(frozen=True)
class TranslationSet(ImageSet):
    inputs: torch.Tensor = None  # type: ignore[assignment]  # uint8 sources, one per target


@dataclass(frozen=True)
class TranslationDataset(DrawnDataset):
    """A drawn dataset of (source, target) pairs; ``source_channels``: the sources' channels. ``classifier``:
    the dataset whose domain classifier reads the targets' classes, and ``classifier_view`` what it is shown
    of a target image (the identity, or T undone where the target domain is inverted)."""

    source_channels: int = 1
    classifier: str = ""
    classifier_view: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda x: x, repr=False)


def _subset(n: int, total: int, gen: torch.Generator) -> torch.Tensor:
    if n > total:
        raise GanbenchError(f"data.subset = {n} but the task has {total} training pairs")
    return torch.randperm(total, generator=gen)[:n]


def draw_edges2fashion(split: str, n: int, gen: torch.Generator, data_root=None) -> TranslationSet:
    fashion = load_split("fashion-mnist", split, data_root)
    images, labels = fashion.images, fashion.labels
    if split == "train":
        idx = _subset(min(n, len(images)), len(images), gen)
        images, labels = images[idx], labels[idx]
    return TranslationSet(images, labels, fashion.num_classes, inputs=edges(images))


def draw_mnist_a2b(split: str, n: int, gen: torch.Generator, data_root=None) -> TranslationSet:
    mnist = load_split("mnist", split, data_root)
    if split != "train":  # every test digit with its true translation
        return TranslationSet(a2b_transform(mnist.images), mnist.labels, mnist.num_classes, inputs=mnist.images)
    halves = mnist_a2b(mnist.images, mnist.labels, int(torch.randint(SEED_HIGH, (), generator=gen)))
    k = min(n, len(halves.a), len(halves.b))
    return TranslationSet(halves.b[:k], halves.a_labels[:k], mnist.num_classes, inputs=halves.a[:k])


def invert(images: torch.Tensor) -> torch.Tensor:
    """255 - x: T's inversion undone (the thickened strokes remain), what an MNIST classifier can read."""
    return 255 - images


SEED_HIGH = 2 ** 62  # mnist-a2b's halves: the permutation's seed is one draw from the protocol's data generator
register_dataset(TranslationDataset("edges2fashion", image_size=28, channels=1, num_classes=10, draw=draw_edges2fashion,
                                    default_size=60_000, reads=("fashion-mnist",), source_channels=1,
                                    classifier="fashion-mnist"))
register_dataset(TranslationDataset("mnist-a2b", image_size=28, channels=1, num_classes=10, draw=draw_mnist_a2b,
                                    default_size=30_000, reads=("mnist",), source_channels=1, classifier="mnist",
                                    classifier_view=invert))
