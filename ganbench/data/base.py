"""What a dataset is to ganbench, the dataset registry's entries, and loading a protocol's data.

A dataset is one registered entry: its name, the shape of its examples (image side and channels, or
2D points), its label classes and how a split is obtained. Two kinds exist:

- stored datasets (:class:`StoredDataset`, e.g. the IDX files of MNIST and Fashion-MNIST): fixed
  splits read from pinned files; a protocol's ``data.subset`` takes a seeded random subset;
- drawn datasets (:func:`dataset`): examples drawn from a seed (2D mixtures, stacked MNIST); a protocol's
  ``data.subset`` is the number drawn.

Image size and channel count always come from the entry: a protocol's ``data.image_size`` asks for a
resize of the stored images, its ``data.channels`` must match the entry. Images are uint8 NCHW,
2D points float32 N x 2, labels int64.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ganbench.core.assets import FileCheck
from ganbench.core.errors import GanbenchError
from ganbench.core.registry import DATASETS

SPLITS = ("train", "test")
TEST_SEED_OFFSET = 1_000_003  # a drawn dataset's test split: drawn with data.subset_seed + this


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # uint8, N x C x H x W (2D points: float32 N x 2)
    labels: torch.Tensor  # int64, N
    num_classes: int


@dataclass(frozen=True)
class Dataset:
    """A registry entry. ``image_size`` 0 means 2D points (``channels`` is then their dimension, 2).

    What the metrics and probes read off a dataset, it says itself: ``mixture`` (a 2D Gaussian mixture: its modes'
    centres and spread, for PacGAN's mode counts) and ``stacked_from`` (stacked images: the dataset whose domain
    classifier reads each channel's mode)."""

    name: str
    image_size: int
    channels: int
    num_classes: int  # label classes; 0 for unlabelled data
    splits: tuple[str, ...] = SPLITS
    mixture: Any = field(default=None, repr=False)  # ganbench.data.synthetic.Mixture
    stacked_from: str = ""

    @property
    def points(self) -> bool:
        return self.image_size == 0

    def files(self) -> dict[str, str]:
        """"data/<dataset>/<file>" -> pinned SHA-256 of every file the dataset is made of (identity parts)."""
        return {}

    def load(self, split: str, n: int | None, seed: int, data_root=None) -> ImageSet:
        raise NotImplementedError

    def whole_split(self, spec, split: str, data_root=None) -> ImageSet:
        """The split a protocol (``spec``: its DataSpec) reads, before any training subset or resize: what
        evaluation takes its real images from."""
        raise NotImplementedError

    def split_size(self, spec, split: str, data_root=None) -> int:
        return len(self.whole_split(spec, split, data_root).images)

    def provenance(self, spec) -> dict:
        """What of a protocol's ``[data]`` table, beyond the dataset's name, decides the content of its splits
        (a key of the reference-feature cache)."""
        return {}


@dataclass(frozen=True)
class DrawnDataset(Dataset):
    """Examples drawn from a seed by ``draw(split, n, generator, data_root)``; ``reads``: stored datasets it is
    made of (their files are its identity parts)."""

    draw: Callable[..., ImageSet] = field(default=None, repr=False)  # type: ignore[assignment]
    default_size: int = 100_000
    reads: tuple[str, ...] = ()

    def files(self) -> dict[str, str]:
        return {k: v for name in self.reads for k, v in get_dataset(name).files().items()}

    def load(self, split: str, n: int | None, seed: int, data_root=None) -> ImageSet:
        return self.draw(split, n or self.default_size, torch.Generator().manual_seed(seed), data_root)

    def whole_split(self, spec, split: str, data_root=None) -> ImageSet:
        """``spec.subset`` examples (default: ``default_size``) drawn with the split's seed (:func:`split_seed`)."""
        return self.load(split, spec.subset, split_seed(spec, split), data_root)

    def split_size(self, spec, split: str, data_root=None) -> int:
        return spec.subset or self.default_size  # known without drawing

    def provenance(self, spec) -> dict:
        return {"subset": spec.subset or self.default_size, "subset_seed": spec.subset_seed}


class StoredDataset(Dataset):
    """Fixed splits read from files (subclasses say how); ``load`` ignores ``n`` and ``seed``. Its files are
    what ``ganbench data fetch``/``verify`` name by the dataset's name."""

    def fetch_files(self) -> Path:
        """Put the verified files into ganbench's cache (no-op when there); the folder that holds them."""
        raise NotImplementedError

    def verify_files(self, data_root=None) -> list[FileCheck]:
        """Re-check every file against its pin: one verdict per file, bad ones included; reads only."""
        raise NotImplementedError

    def whole_split(self, spec, split: str, data_root=None) -> ImageSet:
        """The stored split, whole (``data.subset`` picks training images only)."""
        return load_split(self.name, split, data_root)


def register_dataset(ds: Dataset) -> Dataset:
    return DATASETS.register(ds.name, ds)


def dataset(name: str, *, image_size: int, channels: int, num_classes: int = 0, default_size: int = 100_000,
            reads: tuple[str, ...] = (), mixture: Any = None, stacked_from: str = "") -> Callable:
    """Register a drawn dataset by decorating its ``draw(split, n, generator, data_root) -> ImageSet``."""

    def register(draw: Callable[..., ImageSet]) -> Callable[..., ImageSet]:
        register_dataset(DrawnDataset(name, image_size, channels, num_classes, mixture=mixture,
                                      stacked_from=stacked_from, draw=draw, default_size=default_size, reads=reads))
        return draw

    return register


def get_dataset(name: str) -> Dataset:
    return DATASETS.get_or_raise(name)


def is_points(name: str) -> bool:
    """2D-point datasets (float N x 2) rather than uint8 images."""
    return get_dataset(name).points


def dataset_classes(name: str) -> int:
    """How many classes a dataset's labels have (what a conditional model conditions on)."""
    ds = get_dataset(name)
    if ds.points or not ds.num_classes:
        labelled = [n for n, d in sorted(DATASETS.items()) if d.num_classes and not d.points]
        raise GanbenchError(f"conditional models need a labelled image dataset ({', '.join(labelled)}); got {name!r}")
    return ds.num_classes


def check_data_root(data_root: str | os.PathLike | None) -> Path | None:
    """The folder given by ``--data-root`` (else ``GANBENCH_DATA``), which must exist: a mistyped path
    must not fall back to the cache unnoticed."""
    root, what = (data_root, "--data-root") if data_root else (os.environ.get("GANBENCH_DATA"), "GANBENCH_DATA")
    if not root:
        return None
    if not Path(root).is_dir():
        raise GanbenchError(f"{what} {root}: no such folder; give the folder that holds the dataset files "
                            "(or leave it out to use the cache)")
    return Path(root)


def resize_images(images: torch.Tensor, size: int, chunk: int = 10_000) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x C x size x size: bilinear with antialiasing (as PIL's resize),
    rounded; the preprocessing of the fashion64/fashion32 protocols, for training and reference images alike."""
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float()
        out[i:i + chunk] = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                         align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    return out


def load_split(name: str, split: str, data_root: str | os.PathLike | None = None) -> ImageSet:
    """One whole split of a stored dataset, at its stored size."""
    ds = get_dataset(name)
    if split not in ds.splits:
        raise GanbenchError(f"Unknown split {split!r} for {name}. Available: {', '.join(ds.splits)}")
    if not isinstance(ds, StoredDataset):
        raise GanbenchError(f"{name} is drawn from a seed, not stored: load it through a protocol's [data] table")
    return ds.load(split, None, 0, data_root)


def load_data(spec, split: str, data_root=None) -> ImageSet:
    """The data a protocol's ``[data]`` table describes (``spec``: a DataSpec) for one split.

    Stored datasets: the whole split, or for training a seeded random subset of ``spec.subset`` images.
    Drawn ones: ``spec.subset`` examples drawn with ``spec.subset_seed`` (the test split with another seed).
    Images are resized to ``spec.image_size`` when it differs from the stored size.
    """
    ds = get_dataset(spec.dataset)
    full = ds.whole_split(spec, split, data_root)
    if isinstance(ds, StoredDataset) and spec.subset is not None and split == "train":
        full = _random_subset(full, spec.subset, spec.subset_seed, f"{spec.dataset}/{split}")
    if not ds.points and spec.image_size != full.images.shape[-1]:
        full = ImageSet(resize_images(full.images, spec.image_size), full.labels, full.num_classes)
    return full


def split_seed(spec, split: str) -> int:
    """The seed a drawn dataset's split is drawn with: ``data.subset_seed`` for training, another for the test split."""
    return spec.subset_seed if split == "train" else spec.subset_seed + TEST_SEED_OFFSET


def _random_subset(full: ImageSet, n: int, seed: int, where: str) -> ImageSet:
    if n > len(full.images):
        raise GanbenchError(f"data.subset = {n} but {where} has {len(full.images)} images")
    idx = torch.randperm(len(full.images), generator=torch.Generator().manual_seed(seed))[:n]
    return ImageSet(full.images[idx], full.labels[idx], full.num_classes)
