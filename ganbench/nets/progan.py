"""ProGAN-lite: progressive growing of GANs (Karras, Aila, Laine & Lehtinen 2018, arXiv:1710.10196).

Growing (sec. 3, Fig. 2): training starts at 4x4 and adds one block per doubling of the resolution up
to the protocol's image size. A new block is faded in over ``phase_images`` images, alpha going linearly
from 0 to 1, then trained for ``phase_images`` more (stabilisation); 4x4 has the stabilisation only:

    [0, P): 4x4;  level l >= 1: fade-in [(2l - 1) P, 2l P), stable [2l P, (2l + 1) P);  the last level: to the end.

G's image at level l is (1 - alpha) * upsample(toRGB_{l-1}(h_{l-1})) + alpha * toRGB_l(block_l(h_{l-1}))
and D mirrors it: (1 - alpha) * fromRGB_{l-1}(downsample(x)) + alpha * block_l(fromRGB_l(x)) (Fig. 2b).
Below the full size, G's image is nearest-upsampled to it and D average-pools its input down to the
current resolution, so the loss, the grids and the metrics always see full-size images.

The phase and alpha are a function of the images seen alone (:func:`schedule`), which the trainer sets
before every D step (``set_progress``), so a resumed run is exactly where it stopped; the nets also keep
the count in a buffer, so a loaded state dict restores the resolution and alpha (``ganbench sample``).

Layers (Table 2, at lite width): equalised learning rate everywhere, pixel-wise feature normalisation
of z and after every G convolution, minibatch standard deviation before D's last block (sec. 3, 4.1,
4.2; ``karras.py``). G: dense z -> 4x4 (the paper's 4x4 convolution of a 1x1 input), conv 3x3; per
doubling: nearest upsample, two 3x3 convs; toRGB 1x1 with a linear output (clamped to [-1, 1] in eval
mode, as the uint8 conversion would). D: fromRGB 1x1; per halving: two 3x3 convs, 2x2 average pool;
last block: minibatch std, conv 3x3, conv 4x4 (valid), dense -> 1 (``features``/``head``).
Deviation: Karras et al. reset Adam's moments at each new resolution; the one trainer keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.nets.base import NETS, Architecture, register_pair_check
from ganbench.nets.karras import SQRT2, EqualConv2d, EqualLinear, check_size, lrelu, minibatch_std_map, pixel_norm


@dataclass(frozen=True)
class ProGANOptions:
    width: int = 128  # most feature maps per layer (Karras et al.: 512)
    channel_base: int = 1024  # maps at resolution r: min(width, channel_base // r) (Karras et al.: 8192)
    phase_images: int = 20000  # images per fade-in and per stabilisation phase (Karras et al.: 600k-800k), as D's


@dataclass(frozen=True)
class Phase:
    level: int  # 0 = 4x4, l = 4 * 2^l
    alpha: float  # fade-in of level l's block, 0 -> 1; 1 once it is stable

    @property
    def resolution(self) -> int:
        return 4 * 2 ** self.level


def schedule(images_seen: int, phase_images: int, max_level: int) -> Phase:
    """The level and fade-in alpha after ``images_seen`` images (see the module docstring)."""
    k = images_seen // phase_images  # half-phases completed
    level = (k + 1) // 2
    if level > max_level:
        return Phase(max_level, 1.0)
    if k % 2 == 1:  # fading in
        return Phase(level, (images_seen - k * phase_images) / phase_images)
    return Phase(level, 1.0)


class Progressive(nn.Module):
    """The training progress as a buffer (saved with the state dict) and the phase derived from it."""

    def __init__(self, phase_images: int, max_level: int, image_size: int):
        super().__init__()
        self.phase_images, self.max_level, self.image_size = phase_images, max_level, image_size
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.int64))
        self._seen: int | None = 0  # host copy of the buffer: no device sync per forward
        self.register_load_state_dict_post_hook(_forget_host_copy)

    def set_progress(self, images_seen: int) -> None:
        self.images_seen.fill_(images_seen)
        self._seen = images_seen

    def phase(self) -> Phase:
        if self._seen is None:
            self._seen = int(self.images_seen)
        return schedule(self._seen, self.phase_images, self.max_level)

    def phase_index(self, images_seen: int) -> int:
        """The half-phase ``images_seen`` falls in: 0 = 4x4 stable, 1 = 8x8 fading in, 2 = 8x8 stable, ...,
        2 * max_level = fully grown (the trainer reports the end of each one: ``on_phase``)."""
        return min(images_seen // self.phase_images, 2 * self.max_level)

    def progress_info(self, images_seen: int | None = None) -> dict[str, float]:
        """The resolution and fade-in alpha (after ``images_seen``, default: now), for per-epoch logs."""
        ph = self.phase() if images_seen is None else schedule(images_seen, self.phase_images, self.max_level)
        return {"resolution": float(ph.resolution), "fade_alpha": ph.alpha}


def _forget_host_copy(module: Progressive, incompatible_keys) -> None:
    module._seen = None  # read the loaded buffer at the next forward


def feature_maps(opts: ProGANOptions, max_level: int) -> list[int]:
    """Feature maps per level: min(width, channel_base // resolution) (Karras et al.'s nf(stage))."""
    return [max(1, min(opts.width, opts.channel_base // (4 * 2 ** level))) for level in range(max_level + 1)]


class ProGenerator(Progressive):
    def __init__(self, z_dim: int, channels: int, image_size: int, opts: ProGANOptions, max_level: int):
        super().__init__(opts.phase_images, max_level, image_size)
        m = feature_maps(opts, max_level)
        self.width = m[0]
        self.dense = EqualLinear(z_dim, m[0] * 16, gain=SQRT2 / 4)  # Karras et al.'s code: gain sqrt(2)/4 here
        self.conv4 = EqualConv2d(m[0], m[0], 3)
        self.grow = nn.ModuleList(nn.ModuleList([EqualConv2d(m[i - 1], m[i], 3), EqualConv2d(m[i], m[i], 3)])
                                  for i in range(1, max_level + 1))
        self.to_rgb = nn.ModuleList(EqualConv2d(c, channels, 1, gain=1.0) for c in m)

    def _block(self, level: int, h: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        for conv in self.grow[level - 1]:
            h = pixel_norm(lrelu(conv(h)))
        return h

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        ph = self.phase()
        h = pixel_norm(lrelu(self.dense(pixel_norm(z)).view(-1, self.width, 4, 4)))
        h = pixel_norm(lrelu(self.conv4(h)))
        prev = h
        for level in range(1, ph.level + 1):
            prev, h = h, self._block(level, h)
        img = self.to_rgb[ph.level](h)
        if ph.alpha < 1.0:  # fade-in: level >= 1
            old = F.interpolate(self.to_rgb[ph.level - 1](prev), scale_factor=2, mode="nearest")
            img = torch.lerp(old, img, ph.alpha)
        if ph.resolution < self.image_size:
            img = F.interpolate(img, scale_factor=self.image_size // ph.resolution, mode="nearest")
        return img if self.training else img.clamp(-1.0, 1.0)


class ProDiscriminator(Progressive):
    def __init__(self, channels: int, image_size: int, opts: ProGANOptions, max_level: int):
        super().__init__(opts.phase_images, max_level, image_size)
        m = feature_maps(opts, max_level)
        self.from_rgb = nn.ModuleList(EqualConv2d(channels, c, 1) for c in m)
        self.shrink = nn.ModuleList(nn.ModuleList([EqualConv2d(m[i], m[i], 3), EqualConv2d(m[i], m[i - 1], 3)])
                                    for i in range(1, max_level + 1))
        self.conv4 = EqualConv2d(m[0] + 1, m[0], 3)
        self.dense4 = EqualConv2d(m[0], m[0], 4, padding=0)  # the 4x4 'dense' layer of Table 2
        self.out = EqualLinear(m[0], 1, gain=1.0)
        self.feature_dim = m[0]

    @property
    def head(self) -> nn.Module:
        return self.out

    def _block(self, level: int, h: torch.Tensor) -> torch.Tensor:
        for conv in self.shrink[level - 1]:
            h = lrelu(conv(h))
        return F.avg_pool2d(h, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): the 4x4 block's output (width features) before the final dense layer."""
        ph = self.phase()
        if ph.resolution < self.image_size:
            x = F.avg_pool2d(x, self.image_size // ph.resolution)
        h = lrelu(self.from_rgb[ph.level](x))
        if ph.level > 0:
            h = self._block(ph.level, h)
            if ph.alpha < 1.0:
                old = lrelu(self.from_rgb[ph.level - 1](F.avg_pool2d(x, 2)))
                h = torch.lerp(old, h, ph.alpha)
        for level in range(ph.level - 1, 0, -1):
            h = self._block(level, h)
        h = lrelu(self.conv4(minibatch_std_map(h)))
        return lrelu(self.dense4(h)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).squeeze(1)


def _check(opts: ProGANOptions, image_size: int, channels: int, arch: str) -> int:
    if min(opts.width, opts.channel_base, opts.phase_images) < 1:
        raise GanbenchError(f"{arch}: width, channel_base and phase_images must be positive, got {opts}")
    return check_size(arch, image_size, channels)


def build_g(opts: ProGANOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    levels = _check(opts, image_size, channels, "progan-g")
    return ProGenerator(z_dim, channels, image_size, opts, levels)


def build_d(opts: ProGANOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    levels = _check(opts, image_size, channels, "progan-d")
    return ProDiscriminator(channels, image_size, opts, levels)


def check_pair(g_arch: str, g_opts, d_arch: str, d_opts) -> None:
    """G and D grow together: both progressive, with the same schedule."""
    progressive = (g_arch == "progan-g", d_arch == "progan-d")
    if any(progressive) and not all(progressive):
        raise GanbenchError(f"progressive growing needs progan-g with progan-d (they grow together), got G {g_arch} "
                            f"and D {d_arch}")
    if all(progressive) and g_opts.phase_images != d_opts.phase_images:
        raise GanbenchError(f"progan-g and progan-d must share the growing schedule: phase_images "
                            f"{g_opts.phase_images} (generator) != {d_opts.phase_images} (discriminator)")


# the equalised layers draw their own N(0, 1) weights (ganbench.nets.inits); "dcgan" reaches only the plain
# layers a card adds around them (conditioning, minibatch std): exactly what these models were trained with
NETS.register("progan-g", Architecture("progan-g", ProGANOptions, build_g, init="dcgan"))
NETS.register("progan-d", Architecture("progan-d", ProGANOptions, build_d, init="dcgan"))
register_pair_check(check_pair)
