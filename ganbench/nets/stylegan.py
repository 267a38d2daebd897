"""StyleGAN-lite: a style-based generator (Karras, Laine & Aila 2019, arXiv:1812.04948) in its StyleGAN2
form (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila 2020, arXiv:1912.04958), and StyleGAN2's
residual discriminator, at 32x32 (any power-of-two size >= 8).

- Mapping network f: z -> w (2019, sec. 2): z normalised (pixel norm), then ``mapping_layers`` dense
  layers with leaky ReLU, equalised learning rate and a 100x lower learning rate (appendix C).
- Synthesis network g: a learned constant 4x4 input (sec. 2), then per doubling of the resolution two
  3x3 convolutions (the first after a bilinear 2x upsample), each with its own style; a toRGB per
  resolution, summed over resolutions (StyleGAN2's skip generator, Fig. 7). ``num_ws`` styles in all:
  2 log2(size) - 2 (8 at 32x32), indexed as in StyleGAN2 (a toRGB shares the next conv's style).
- Style injection by modulated, demodulated convolution (StyleGAN2 sec. 2.2, eq. 1-3) rather than AdaIN
  (2019, eq. 1). Why: AdaIN normalises the mean and variance of each feature map on the actual activations,
  which destroys the relative magnitudes between maps; the generator learns to smuggle them past it in a
  strong, localised spike, the "droplet" artefacts (StyleGAN2 sec. 2, Fig. 1). Demodulation scales the
  weights by the style, w'_ijk = s_i w_ijk (eq. 1), and divides by the expected output std,
  w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps) (eq. 3): the same per-layer control by the style,
  normalised statistically instead of per map, without the artefacts, and one grouped convolution per layer.
- Per-layer noise (2019, sec. 3.2): an N(0, 1) single-channel image per layer and sample, scaled by a
  learned per-layer strength (initially 0), added after each convolution. In eval mode every sample gets
  the same fixed noise buffers (StyleGAN2's ``noise_mode="const"``), so a sample depends on z alone.
- Style mixing regularisation (2019, sec. 3.1): in training, with probability ``mixing_prob`` a second
  z2 is drawn and the styles from a uniformly drawn crossover layer on come from w2 = f(z2).
- Truncation trick (2019, sec. 2 and appendix B): w' = w_avg + psi (w - w_avg), with w_avg the running mean
  of w tracked in training (decay ``w_avg_beta``, as the official code); :func:`set_truncation` sets psi
  for sampling (1 = off, 0 = every z gives the image of w_avg).
- Discriminator (StyleGAN2 Fig. 7c): fromRGB, residual blocks (two 3x3 convs, 2x2 average pool, a 1x1
  skip, summed and scaled by 1/sqrt(2)), then minibatch std (group 4), conv 3x3, dense (``features``) and
  the output dense (``head``).
- Loss: non-saturating with lazy R1 regularisation (``ns-r1`` in ``ganbench/losses.py``).

Lite deviations: narrower layers (``width``, ``channel_base``, ``w_dim``), bilinear resampling instead of
the [1, 3, 3, 1] FIR filters, no path length regularisation (StyleGAN2 sec. 3.2; StyleGAN2-ADA turns
it off for CIFAR-10 too), and the R1 term folded into every 16th D step instead of a separate step.
Randomness: the training-time noise and mixing draws come from generators on the model's device seeded
by one draw each from torch's global CPU generator, which the trainer seeds and checkpoints (so runs
repeat and resume exactly, with no host-to-device copy per draw); eval mode draws nothing.
Images are the linear toRGB sum, clamped to [-1, 1] in eval mode (as the uint8 conversion would).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.nets.base import NETS, Architecture
from ganbench.nets.karras import SQRT2, EqualConv2d, EqualLinear, check_size, lrelu, minibatch_std_map, pixel_norm

NOISE_CONST_SEED = 0  # the fixed eval-mode noise: the same for every run of an architecture


@dataclass(frozen=True)
class StyleGOptions:
    width: int = 128  # most feature maps per layer (StyleGAN2: 512)
    channel_base: int = 1024  # maps at resolution r: min(width, channel_base // r) (StyleGAN2: 32768)
    w_dim: int = 128  # dimension of w (StyleGAN: 512)
    mapping_layers: int = 8  # StyleGAN 2019, sec. 2 (StyleGAN2-ADA's CIFAR-10 config: 2)
    mapping_lr_mul: float = 0.01  # StyleGAN 2019, appendix C
    mixing_prob: float = 0.9  # share of training batches with mixed styles (2019, sec. 3.1: 90%)
    w_avg_beta: float = 0.995  # decay of the tracked mean of w (official code)


@dataclass(frozen=True)
class StyleDOptions:
    width: int = 128
    channel_base: int = 1024


def _maps(width: int, base: int, res: int) -> int:
    return max(1, min(width, base // res))


def _draw_generator(device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from torch's global CPU generator (see the module docstring)."""
    return torch.Generator(device=device).manual_seed(int(torch.randint(0, 2 ** 62, ())))


class ConstInput(nn.Module):
    """The learned constant 4x4 input of the synthesis network, N(0, 1) initially."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, size, size))

    def init_weights(self, gen: torch.Generator) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.randn(self.weight.shape, generator=gen))

    def forward(self, n: int) -> torch.Tensor:
        return self.weight.unsqueeze(0).expand(n, -1, -1, -1)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 eq. 1-3: weights modulated per sample by the style s = A(w), optionally demodulated."""

    def __init__(self, c_in: int, c_out: int, kernel: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.scale = 1.0 / math.sqrt(c_in * kernel * kernel)
        self.affine = EqualLinear(w_dim, c_in, gain=1.0, bias_init=1.0)  # styles start at 1 (official code)
        self.demodulate = demodulate

    def init_weights(self, gen: torch.Generator) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.randn(self.weight.shape, generator=gen))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """conv(x, w''): written as conv(x * s, c W) * d, the same numbers as eq. 1-3 with one weight shared
        by the batch (StyleGAN2's non-fused path; a grouped convolution per sample is slower on CPU)."""
        s = self.affine(w)  # N x c_in, eq. 1's s_i
        weight = self.weight * self.scale
        out = F.conv2d(x * s[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demodulate:  # eq. 3: d_j = 1 / sqrt(sum_{i,k} (s_i w_ijk)^2 + eps)
            d = torch.rsqrt(s.square() @ weight.square().sum((2, 3)).t() + 1e-8)  # N x c_out
            out = out * d[:, :, None, None]
        return out


class StyleLayer(nn.Module):
    """Modulated conv 3x3 (after a 2x upsample when ``up``), per-layer noise, bias, leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, up: bool, noise_gen: torch.Generator):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, w_dim)
        self.up = up
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.register_buffer("noise_const", torch.randn(resolution, resolution, generator=noise_gen))

    def forward(self, x: torch.Tensor, w: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x, w)
        if self.training:
            noise = torch.randn((x.shape[0], 1, *x.shape[2:]), generator=gen, device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        x = x + self.noise_strength * noise + self.bias.view(1, -1, 1, 1)
        return lrelu(x) * SQRT2


class ToRGB(nn.Module):
    def __init__(self, c_in: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims, dims[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, channels: int, image_size: int, width: int, channel_base: int):
        super().__init__()
        levels = check_size("stylegan-g", image_size, channels)
        res = [4 * 2 ** i for i in range(levels + 1)]
        maps = [_maps(width, channel_base, r) for r in res]
        noise = torch.Generator().manual_seed(NOISE_CONST_SEED)
        self.const = ConstInput(maps[0])
        self.convs = nn.ModuleList([StyleLayer(maps[0], maps[0], w_dim, 4, False, noise)])
        for i in range(1, levels + 1):
            self.convs.append(StyleLayer(maps[i - 1], maps[i], w_dim, res[i], True, noise))
            self.convs.append(StyleLayer(maps[i], maps[i], w_dim, res[i], False, noise))
        self.to_rgb = nn.ModuleList(ToRGB(m, channels, w_dim) for m in maps)
        self.num_ws = 2 * levels + 2
        self.coarse_ws = 3  # styles of the layers up to 8x8 (2019, sec. 3.1: 'coarse' styles; 4x4 and 8x8 layers)

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        """ws: N x num_ws x w_dim (one style per layer) or N x w_dim (the same w for every layer)."""
        if ws.dim() == 2:
            ws = ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        gen = _draw_generator(ws.device) if self.training else None  # the layers' noise
        x = self.convs[0](self.const(ws.shape[0]), ws[:, 0], gen)
        img = self.to_rgb[0](x, ws[:, 1])
        for i in range(1, len(self.to_rgb)):
            x = self.convs[2 * i - 1](x, ws[:, 2 * i - 1], gen)
            x = self.convs[2 * i](x, ws[:, 2 * i], gen)
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            img = img + self.to_rgb[i](x, ws[:, 2 * i + 1])
        return img if self.training else img.clamp(-1.0, 1.0)


class StyleGenerator(nn.Module):
    """G(z) = g(truncate(mix(f(z)))): ``mapping`` (z -> w) and ``synthesis`` (w or ws -> image) are exposed
    for style mixing grids and the path length metric."""

    def __init__(self, z_dim: int, channels: int, image_size: int, opts: StyleGOptions):
        super().__init__()
        self.z_dim = z_dim
        self.mapping = MappingNetwork(z_dim, opts.w_dim, opts.mapping_layers, opts.mapping_lr_mul)
        self.synthesis = SynthesisNetwork(opts.w_dim, channels, image_size, opts.width, opts.channel_base)
        self.num_ws = self.synthesis.num_ws
        self.mixing_prob, self.w_avg_beta = opts.mixing_prob, opts.w_avg_beta
        self.truncation_psi = 1.0  # a sampling setting (set_truncation), not a weight

    def styles(self, z: torch.Tensor) -> torch.Tensor:
        """ws (N x num_ws x w_dim): f(z) per layer, mixed in training, truncated when psi != 1."""
        w = self.mapping(z)
        if self.training:
            with torch.no_grad():
                self.mapping.w_avg.copy_(w.detach().mean(0).lerp(self.mapping.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if self.training and self.mixing_prob > 0:
            u, cutoff = float(torch.rand(())), int(torch.randint(1, self.num_ws, ()))
            if u < self.mixing_prob:
                z2 = torch.randn(z.shape, generator=_draw_generator(z.device), device=z.device, dtype=z.dtype)
                ws[:, cutoff:] = self.mapping(z2).unsqueeze(1)
        if self.truncation_psi != 1.0:
            ws = truncate(ws, self.mapping.w_avg, self.truncation_psi)
        return ws

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.styles(z))


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float) -> torch.Tensor:
    """w_avg + psi (w - w_avg) (Karras et al. 2019, appendix B)."""
    return torch.lerp(w_avg.to(w.dtype), w, psi)


def set_truncation(G: nn.Module, psi: float) -> nn.Module:
    """Sample ``G`` with the truncation trick at ``psi`` (1 = off); style-based generators only."""
    if not isinstance(G, StyleGenerator):
        raise GanbenchError(f"truncation={psi}: the truncation trick needs a style-based generator with a mapping "
                            f"network (stylegan-g); this generator is a {type(G).__name__}")
    if not math.isfinite(psi):
        raise GanbenchError(f"truncation={psi}: expected a finite psi")
    G.truncation_psi = float(psi)
    return G


@torch.no_grad()
def style_mix_ws(G: StyleGenerator, w_rows: torch.Tensor, w_cols: torch.Tensor, cutoff: int) -> torch.Tensor:
    """ws of a style-mixing grid (2019, Fig. 3), row-major: cell (i, j) takes the styles of layers
    [0, cutoff) ('coarse') from w_rows[i] and [cutoff, num_ws) ('fine') from w_cols[j]."""
    if not 0 < cutoff < G.num_ws:
        raise GanbenchError(f"cutoff={cutoff}: expected 1..{G.num_ws - 1} "
                            f"(the generator has {G.num_ws} style inputs)")
    r, c = len(w_rows), len(w_cols)
    ws = w_cols.unsqueeze(0).unsqueeze(2).expand(r, c, G.num_ws, -1).clone()
    ws[:, :, :cutoff] = w_rows[:, None, None, :]
    return ws.reshape(r * c, G.num_ws, -1)


class StyleDiscriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int, channel_base: int):
        super().__init__()
        levels = check_size("stylegan-d", image_size, channels)
        res = [image_size // 2 ** i for i in range(levels + 1)]  # image_size ... 4
        maps = [_maps(width, channel_base, r) for r in res]
        self.from_rgb = EqualConv2d(channels, maps[0], 1)
        self.blocks = nn.ModuleList(nn.ModuleList([EqualConv2d(a, a, 3), EqualConv2d(a, b, 3),
                                                   EqualConv2d(a, b, 1, gain=1.0, bias=False)])
                                    for a, b in zip(maps, maps[1:]))
        c = maps[-1]
        self.conv4 = EqualConv2d(c + 1, c, 3)
        self.dense = EqualLinear(c * 16, c)
        self.out = EqualLinear(c, 1, gain=1.0)
        self.feature_dim = c

    @property
    def head(self) -> nn.Module:
        return self.out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = lrelu(self.from_rgb(x))
        for conv0, conv1, skip in self.blocks:
            y = F.avg_pool2d(lrelu(conv1(lrelu(conv0(h)))), 2)
            h = (y + skip(F.avg_pool2d(h, 2))) / SQRT2
        h = lrelu(self.conv4(minibatch_std_map(h)))
        return lrelu(self.dense(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).squeeze(1)


def _positive(arch: str, **values: float) -> None:
    bad = {k: v for k, v in values.items() if not v > 0}
    if bad:
        raise GanbenchError(f"{arch}: {', '.join(bad)} must be positive, got {bad}")


def build_g(opts: StyleGOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    _positive("stylegan-g", width=opts.width, channel_base=opts.channel_base, w_dim=opts.w_dim,
              mapping_layers=opts.mapping_layers, mapping_lr_mul=opts.mapping_lr_mul)
    if not (0.0 <= opts.mixing_prob <= 1.0 and 0.0 <= opts.w_avg_beta < 1.0):
        raise GanbenchError(f"stylegan-g: mixing_prob must be in [0, 1] and w_avg_beta in [0, 1), got "
                            f"{opts.mixing_prob} and {opts.w_avg_beta}")
    return StyleGenerator(z_dim, channels, image_size, opts)


def build_d(opts: StyleDOptions, *, z_dim: int, channels: int, image_size: int) -> nn.Module:
    _positive("stylegan-d", width=opts.width, channel_base=opts.channel_base)
    return StyleDiscriminator(channels, image_size, opts.width, opts.channel_base)


# the equalised layers draw their own N(0, 1) weights (ganbench.nets.inits); "dcgan" reaches only the plain
# layers a card adds around them (conditioning, minibatch std): exactly what these models were trained with
NETS.register("stylegan-g", Architecture("stylegan-g", StyleGOptions, build_g, init="dcgan"))
NETS.register("stylegan-d", Architecture("stylegan-d", StyleDOptions, build_d, init="dcgan"))
