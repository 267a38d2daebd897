"""Perceptual path length, measured in the domain classifier's feature space (Karras et al. 2019,
arXiv:1812.04948, sec. 3.2):
    l_Z = E[ d(G(slerp(z1, z2; t)), G(slerp(z1, z2; t + eps))) ] / eps^2          (eq. 2)
    l_W = E[ d(g(lerp(f(z1), f(z2); t)), g(lerp(f(z1), f(z2); t + eps))) ] / eps^2  (eq. 3)

with z1, z2 ~ N(0, I), t ~ U(0, 1), eps = 1e-4 and d the squared distance between image features.
Karras et al. take d from VGG16 (LPIPS); here it is the squared Euclidean distance of the dataset's
domain-classifier features (the penultimate layer of ``domain.py``'s classifier), hence the names
``domain_ppl_w_<n>`` / ``domain_ppl_z_<n>`` (l_W / l_Z, no reference split): comparable between runs of one protocol, not with the paper.
The images reach the classifier as floats (resized to its 28x28 input like the protocol's images, but not
rounded to uint8, which would swamp a 1e-4 step). As the official code, the per-pair distances below the
1st or above the 99th percentile are dropped before the mean.

Style-based generators (exposing ``mapping`` z -> w and ``synthesis`` w -> image) are measured in W with
lerp, the others in Z with slerp. A metric only gets samples, so the generator reaches this one through
``evaluate(..., generator=Sampler(G, z_dim))``, which the trainer's evaluation passes; without it (samples
from files) the result is unavailable, with the reason.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.extractors import domain_extractor_name
from ganbench.extractors.domain import domain_classifier
from ganbench.metrics.base import MetricResult, metric_name, reads_domain, register_metric
from ganbench.spec.seeds import slerp  # Shoemake 1985, the interpolation `ganbench interpolate` draws

EPSILON = 1e-4  # Karras et al. 2019, sec. 3.2
PERCENTILES = (1.0, 99.0)  # the official code's outlier filter

Images = Callable[[torch.Tensor], torch.Tensor]


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * t


def path_distances(synthesize: Images, features: Images, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor,
                   interpolate: Callable = lerp, eps: float = EPSILON) -> torch.Tensor:
    """Per pair: ||phi(G(interp(a, b, t))) - phi(G(interp(a, b, t + eps)))||^2 / eps^2 (``t``: N x 1)."""
    x0, x1 = synthesize(interpolate(a, b, t)), synthesize(interpolate(a, b, t + eps))
    return (features(x0) - features(x1)).square().flatten(1).sum(1) / eps ** 2


def filtered_mean(distances: torch.Tensor) -> float:
    """The mean of the distances within the [1st, 99th] percentile range (official code: 'lower'/'higher')."""
    d = distances.double().cpu().numpy()
    lo = np.percentile(d, PERCENTILES[0], method="lower")
    hi = np.percentile(d, PERCENTILES[1], method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())


def is_style_based(G: nn.Module) -> bool:
    return isinstance(getattr(G, "mapping", None), nn.Module) and isinstance(getattr(G, "synthesis", None), nn.Module)


def _place(G: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where G's latents live: the device and float type of its first parameter (CPU float32 without any)."""
    p = next(G.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


@torch.no_grad()
def path_length(G: nn.Module, z_dim: int, features: Images, n: int, gen: torch.Generator,
                batch_size: int = 100) -> tuple[float, str, torch.Tensor]:
    """(filtered mean, latent space "w" or "z", per-pair distances) of ``n`` random pairs, G in eval mode."""
    device, dtype = _place(G)
    style = is_style_based(G)
    was_training = G.training
    G.eval()
    try:
        out = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = torch.randn(2, m, z_dim, generator=gen).to(device, dtype)
            t = torch.rand(m, 1, generator=gen).to(device, dtype)
            if style:
                d = path_distances(G.synthesis, features, G.mapping(z[0]), G.mapping(z[1]), t, lerp)
            else:
                d = path_distances(G, features, z[0], z[1], t, slerp)
            out.append(d.float().cpu())
    finally:
        G.train(was_training)
    distances = torch.cat(out)
    return filtered_mean(distances), "w" if style else "z", distances


def domain_float_features(dataset: str, device: torch.device) -> tuple[Images, str, str]:
    """(float images in [-1, 1] -> domain features, extractor name, weights hash)."""
    clf = domain_classifier(dataset, device)

    def features(x: torch.Tensor) -> torch.Tensor:
        x = x.to(clf.device, torch.float32)
        side = clf.input_size
        if x.shape[-1] != side:  # as the protocol resizes (bilinear, antialiased), without rounding to uint8
            x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        return clf.net(x)[0]

    return features, domain_extractor_name(dataset), clf.weights_sha256


def _why_not(ctx) -> str | None:
    sampler = getattr(ctx, "generator", None)
    if sampler is None:
        return ("path length walks the generator's latent space: it needs the generator, not only samples "
                "(the trainer's evaluation passes it; samples from files cannot be measured)")
    if getattr(sampler.G, "num_classes", 0):
        return "path length of class-conditional generators is not implemented"
    if ctx.protocol.data.channels != 1:
        return f"the domain classifier takes grayscale images; {ctx.dataset} has {ctx.protocol.data.channels} channels"
    return None


@register_metric("ppl", higher_is_better=False, reads=reads_domain, quantities={"ppl_w": False, "ppl_z": False})
def ppl(ctx, extractor: str) -> list[MetricResult]:
    """Always in the domain classifier's feature space, whatever ``extractor`` (see the module docstring)."""
    n = ctx.num_samples
    common = dict(higher_is_better=False, num_samples=n, reference=f"{ctx.dataset} domain-classifier features")
    why = _why_not(ctx)
    space = "w" if why is None and is_style_based(ctx.generator.G) else "z"
    name = metric_name(f"ppl_{space}", n, space="domain")
    if why is None:
        try:
            features, ext_name, sha = domain_float_features(ctx.dataset, _place(ctx.generator.G)[0])
        except GanbenchError as err:
            why = f"no domain classifier for {ctx.dataset}: {err}"
    if why is not None:
        return [MetricResult(name, None, extractor=domain_extractor_name(ctx.dataset), weights_sha256="",
                             unavailable=why, **common)]
    gen = torch.Generator().manual_seed(ctx.protocol.eval.z_seed)
    value, _, _ = path_length(ctx.generator.G, ctx.generator.z_dim, features, n, gen, ctx.protocol.eval.batch_size)
    return [MetricResult(name, value, extractor=ext_name, weights_sha256=sha, **common)]
