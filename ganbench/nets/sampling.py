"""Samples of a generator: the one path by which training grids, evaluation and ``ganbench sample`` turn
latent vectors (and, for a conditional model, class labels) into images.

Generators output floats in [-1, 1] (tanh); images travel as uint8 [0, 255] (see DESIGN.md, conventions).
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.core.hooks import RoundTrip, Translator
from ganbench.spec.seeds import fixed_labels

SAMPLE_BATCH = 500  # samples per forward pass: bounds memory for 10k-sample evaluations, no effect on values


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (rounded, clamped)."""
    return ((x.detach().float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def generator_classes(G: nn.Module) -> int:
    """The classes a conditional generator takes (``num_classes``; 0: unconditional)."""
    return int(getattr(G, "num_classes", 0) or 0)


def sample_labels(G: nn.Module, n: int, labels: torch.Tensor | None = None) -> torch.Tensor | None:
    """The labels ``n`` samples of G are drawn with: ``labels`` as given (checked), the class-balanced
    :func:`~ganbench.spec.seeds.fixed_labels` for a conditional G without them, None for an unconditional G."""
    classes = generator_classes(G)
    if not classes:
        if labels is not None:
            raise GanbenchError("class labels were given for an unconditional generator; it takes z only")
        return None
    if labels is None:
        return fixed_labels(n, classes)
    if len(labels) != n:
        raise GanbenchError(f"{len(labels)} class labels for {n} latent vectors: expected one label per sample")
    return labels


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, *, batch_size: int = SAMPLE_BATCH,
             as_uint8: bool = True) -> torch.Tensor:
    """Samples of G in eval mode (batch-norm statistics frozen) for the given z, on the CPU: uint8 images,
    or with ``as_uint8=False`` the raw float outputs (images in [-1, 1], or 2D points). A conditional G
    gets ``labels`` (default: :func:`~ganbench.spec.seeds.fixed_labels`); G's training mode is restored after."""
    labels = sample_labels(G, len(z), labels)
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        out = []
        for i in range(0, len(z), batch_size):
            args = (z[i:i + batch_size].to(device),)
            if labels is not None:
                args += (labels[i:i + batch_size].to(device),)
            x = G(*args)
            out.append((to_uint8(x) if as_uint8 else x.float()).cpu())
        return torch.cat(out)
    finally:
        G.train(was_training)


def is_translator(G: nn.Module) -> bool:
    """An image-to-image generator (``ganbench.nets.translation``): it takes source images, not z."""
    return isinstance(G, Translator)


@torch.no_grad()
def translate(G: nn.Module, sources: torch.Tensor, *, seed: int = 0, batch_size: int = SAMPLE_BATCH,
              cycle: str | None = None, noise: float = 0.0) -> torch.Tensor:
    """uint8 translations of uint8 ``sources`` by an image-to-image generator in eval mode, on the CPU; with
    ``cycle`` a CycleGAN's round trips instead: "a" gives F(G(a)) of sources (with ``noise``: Gaussian noise of
    that std, in the model's [-1, 1] range, added to G(a) before F), "b" G(F(b)) of target-domain images (in
    float between the two halves, as in training). pix2pix keeps dropout on at test time (Isola et al. sec.
    3.2); its masks and the noise come from the global generator, seeded here with ``seed`` inside a forked RNG
    state, so the same sources give the same translations and the caller's random state is left alone."""
    if not is_translator(G):
        raise GanbenchError("this generator maps z to images; translations need an image-to-image model")
    if cycle is not None and not isinstance(G, RoundTrip):
        raise GanbenchError("round trips need a model with both directions (CycleGAN); this one translates A -> B only")
    device = next(G.parameters(), torch.empty(0)).device  # a model without weights runs on the CPU
    was_training = G.training
    G.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            return torch.cat([to_uint8(_translate_batch(G, to_model_range(sources[i:i + batch_size].to(device)),
                                                        cycle, noise)).cpu()
                              for i in range(0, len(sources), batch_size)])
    finally:
        G.train(was_training)


def _translate_batch(G: nn.Module, x: torch.Tensor, cycle: str | None, noise: float) -> torch.Tensor:
    if cycle == "a":
        return G.reconstruct(x, noise * torch.randn_like(x) if noise else None)
    return G.reconstruct_target(x) if cycle == "b" else G.translate(x)


TRIPLETS_PER_ROW = 2  # a grid row shows two (source | translation | target) triplets


def triplets(G: nn.Module, sources: torch.Tensor, targets: torch.Tensor, *, seed: int = 0) -> tuple[torch.Tensor, int]:
    """An image-to-image model's grid: per example source | translation | target (a CycleGAN shows
    source | translation | reconstruction F(G(a)) instead, the round trip it is trained on), interleaved,
    with the number of columns to lay them out in."""
    out = translate(G, sources, seed=seed)
    third = translate(G, sources, seed=seed, cycle="a") if isinstance(G, RoundTrip) else targets
    images = torch.stack([sources, out, third], 1).flatten(0, 1)
    return images, 3 * TRIPLETS_PER_ROW
