"""The optional interfaces a plug-in may implement, declared once: the engines ask ``isinstance(obj, Interface)``
(runtime-checkable Protocols, so a plug-in implements one by defining its methods; no base class to inherit).

Who implements each, and who calls it:

- :class:`ProgressAware`: schedules that depend on training progress (progressive growing's phase and fade-in,
  lazy regularisation); the trainer tells them the images seen before every step.
- :class:`Growing`: a generator that grows in phases (ProGAN, StyleGAN-lite); the trainer reports the end of each
  phase, the per-epoch logs and the live monitor read the resolution and fade-in.
- :class:`Translator` / :class:`RoundTrip`: image-to-image generators (pix2pix / CycleGAN); sampling,
  triplet grids, translation metrics and the monitor take sources instead of z.
- :class:`OwnInit`: a layer with its own initialisation (equalised learning rate, StyleGAN's mapping), which the
  registered initialisations leave to it; :class:`WithEmbeddings`: a conditional wrapper whose label embeddings
  are initialised from the run's generator.
- :class:`LazyImages`: a dataset split held as a view (stacked MNIST's index triples) that gathers its pixels on
  demand; :func:`materialised` gives the tensor.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class ProgressAware(Protocol):
    def set_progress(self, images_seen: int) -> None: ...


@runtime_checkable
class Growing(Protocol):
    def phase_index(self, images_seen: int) -> int: ...

    def progress_info(self, images_seen: int | None = None) -> dict[str, float]: ...


@runtime_checkable
class Translator(Protocol):
    def translate(self, sources: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class RoundTrip(Translator, Protocol):
    def reconstruct(self, sources: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor: ...

    def reconstruct_target(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class OwnInit(Protocol):
    def init_weights(self, gen: torch.Generator) -> None: ...


@runtime_checkable
class WithEmbeddings(Protocol):
    def init_embeddings(self, gen: torch.Generator) -> None: ...


@runtime_checkable
class LazyImages(Protocol):
    def materialise(self) -> torch.Tensor: ...


def materialised(images) -> torch.Tensor:
    """A split's images as one tensor (a :class:`LazyImages` view gathers its pixels)."""
    return images.materialise() if isinstance(images, LazyImages) else images
