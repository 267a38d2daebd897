"""Image-to-image architectures: the U-Net generator and PatchGAN discriminator of pix2pix, and CycleGAN's
ResNet generator, sized for small images (28x28 and any size divisible by 4, one or more channels).

- ``unet-g``: a U-Net (Ronneberger et al. 2015) as pix2pix builds it (Isola et al. 2017, sec. 3.2.1 and
  appendix 6.1.1): an encoder of stride-2 4x4 convolutions with LeakyReLU(0.2) and batch norm (none on the
  first layer), a decoder of stride-2 4x4 transposed convolutions with ReLU whose every layer takes the
  concatenation of the decoder's features and the encoder's features of the same resolution (the skip
  connections), tanh out. The paper's U-Net halves 256 -> 1; 28x28 halves only twice (28 -> 14 -> 7, 7 is
  odd), so the innermost block (a 3x3 convolution and its transpose) stays at the lowest resolution. Noise
  comes only from dropout 0.5 in the first decoder layers, "applied at both training and test time"
  (Isola et al. sec. 3.2); ``test_dropout = false`` makes the generator deterministic in eval mode.
- ``patchgan-d``: the PatchGAN (Isola et al. sec. 3.2.2, appendix 6.1.2; pix2pix's ``NLayerDiscriminator``):
  ``n_layers`` stride-2 4x4 convolutions (batch norm except the first, LeakyReLU 0.2), one stride-1 4x4
  convolution, and a stride-1 4x4 convolution to one logit per patch: the output is N x 1 x P x P, each
  logit seeing a square of :func:`patch_size` pixels. The paper's 70x70 patches on 256x256 images are
  n_layers = 3; on 28x28 images that would cover the whole image, so the default is n_layers = 1
  (16x16 patches, 12x12 logits on 28x28 images).
- ``resnet-g``: CycleGAN's generator (Johnson et al. 2016; Zhu et al. 2017, appendix 7.2):
  c7s1-k, d2k, d4k, ``blocks`` x R4k, u2k, uk, c7s1-C with instance norm, ReLU, reflection padding, tanh.
  The paper uses k = 64 and 6 blocks at 128x128; the defaults are smaller so that it trains on a CPU.

Build context (keyword arguments of every builder here; ``ganbench.training.models.build_models`` passes
them):

- ``channels``: channels of the images the model is scored on: the generator's output (the translation)
  and the image the discriminator judges;
- ``image_size``: their height and width (square images);
- ``z_dim``: accepted and ignored: these generators take a source image, not a z (dropout is the noise);
- ``source_channels``: channels of the source image. Generators: the input's channels (``None``: the same
  as ``channels``). Discriminators: 0 judges the image alone (CycleGAN); > 0 judges the concatenation
  cat(source, image) along channels, the conditional discriminator of pix2pix (Isola et al. eq. 1).

The discriminator's forward is ``D(image, source=None)``: it concatenates the source itself, so a
conditional D refuses a call without one. Its output is a map of patch logits, not one score per sample:
a loss plug-in for these models averages over the patches (Isola et al. sec. 3.2.2), and the wrappers of
``ganbench.nets.layers`` (conditioning, minibatch std) do not apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import NETS
from ganbench.nets.base import Architecture

LRELU_SLOPE = 0.2  # Isola et al. appendix 6.1.1; Zhu et al. appendix 7.2 (discriminator)
MAX_WIDTH_FACTOR = 8  # widths double per level up to 8x the first (pix2pix's C64-...-C512)
KERNEL = 4  # 4x4 strided convolutions (Isola et al. appendix 6.1: "All convolutions are 4x4 spatial filters")
INNER_KERNEL = 3  # the innermost U-Net block at the lowest resolution (3x3, padding 1: size-preserving)
RESNET_OUTER_KERNEL = 7  # c7s1-k (Zhu et al. appendix 7.2)
RESNET_DOWNSAMPLINGS = 2  # d2k, d4k


@dataclass(frozen=True)
class UNetOptions:
    width: int = 64  # channels of the first encoder layer (pix2pix: 64), doubling per level up to 8x
    depth: int = 2  # stride-2 levels: 28 -> 14 -> 7; the image size must be divisible by 2**depth
    dropout: float = 0.5  # Isola et al. appendix 6.1.1
    dropout_layers: int = 3  # the first decoder layers that get dropout (the paper: the first three)
    test_dropout: bool = True  # keep dropout on in eval mode, as pix2pix does at test time (sec. 3.2)


@dataclass(frozen=True)
class PatchGANOptions:
    width: int = 64  # channels of the first convolution (pix2pix: 64), doubling per layer up to 8x
    n_layers: int = 1  # stride-2 convolutions: 1 -> 16x16 patches, 2 -> 34x34, 3 -> 70x70 (the paper's)
    norm: str = "batch"  # "batch" (pix2pix) | "instance" (CycleGAN) | "none"


@dataclass(frozen=True)
class ResNetGOptions:
    width: int = 32  # k of c7s1-k (CycleGAN: 64)
    blocks: int = 3  # residual blocks (CycleGAN: 6 at 128x128, 9 at 256x256)


def _level_width(width: int, level: int) -> int:
    return width * min(2 ** level, MAX_WIDTH_FACTOR)


class Dropout(nn.Module):
    """Dropout that can stay on in eval mode (pix2pix's test-time noise). Like ``nn.Dropout`` it draws from
    torch's generator of the input's device, which the trainer seeds."""

    draws_global_rng = True  # the trainer's step checks (seeds together, CUDA graphs) see it

    def __init__(self, p: float, at_test: bool):
        super().__init__()
        self.p, self.at_test = p, at_test

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=self.training or self.at_test)


def _down(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    """Encoder level: [LeakyReLU] -> 4x4 stride-2 conv -> [batch norm]; the first level has neither."""
    act = [nn.LeakyReLU(LRELU_SLOPE)] if norm else []  # not in place: the skip keeps the raw encoder output
    bn = [nn.BatchNorm2d(c_out)] if norm else []
    return nn.Sequential(*act, nn.Conv2d(c_in, c_out, KERNEL, 2, 1, bias=not norm), *bn)


def _up(c_in: int, c_out: int, dropout: Dropout | None) -> nn.Sequential:
    """Decoder level: ReLU -> 4x4 stride-2 transposed conv -> batch norm -> [dropout]."""
    drop = [dropout] if dropout is not None else []
    return nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(c_in, c_out, KERNEL, 2, 1, bias=False),
                         nn.BatchNorm2d(c_out), *drop)


def _inner(c: int) -> nn.Sequential:
    """The innermost U-Net block (pix2pix's ``innermost`` block, size-preserving here): LeakyReLU -> conv
    -> ReLU -> transposed conv -> batch norm."""
    return nn.Sequential(nn.LeakyReLU(LRELU_SLOPE), nn.Conv2d(c, c, INNER_KERNEL, 1, 1),
                         nn.ReLU(True), nn.ConvTranspose2d(c, c, INNER_KERNEL, 1, 1, bias=False), nn.BatchNorm2d(c))


class UNetGenerator(nn.Module):
    """G(source) -> translation in [-1, 1]. ``down[i]`` maps to 1/2**(i+1) of the size; ``up[i - 1]`` reads the
    concatenation of the decoder's features and ``down[i]``'s output (the skip) and doubles the size; ``out``
    does the same with ``down[0]``'s output and maps to the image."""

    def __init__(self, source_channels: int, channels: int, opts: UNetOptions):
        super().__init__()
        w = [_level_width(opts.width, i) for i in range(opts.depth)]
        self.down = nn.ModuleList([_down(source_channels, w[0], norm=False)]
                                  + [_down(w[i - 1], w[i], norm=True) for i in range(1, opts.depth)])
        self.inner = _inner(w[-1])
        self.up = nn.ModuleList(self._decoder_layer(i, w, opts) for i in range(1, opts.depth))
        self.out = nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(2 * w[0], channels, KERNEL, 2, 1), nn.Tanh())

    @staticmethod
    def _decoder_layer(i: int, w: list[int], opts: UNetOptions) -> nn.Sequential:
        """The decoder layer of level i >= 1: 2 * w[i] channels (decoder + skip) in, w[i - 1] out; dropout on the first
        ``dropout_layers`` decoder layers counted from the innermost, as in the paper's CD512-CD1024-CD1024."""
        order = len(w) - 1 - i  # 0 for the innermost decoder layer
        drop = Dropout(opts.dropout, opts.test_dropout) if order < opts.dropout_layers and opts.dropout > 0 else None
        return _up(2 * w[i], w[i - 1], drop)

    def skips(self, source: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's outputs, finest first: what the decoder concatenates at each level."""
        feats, h = [], source
        for layer in self.down:
            h = layer(h)
            feats.append(h)
        return feats

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        feats = self.skips(source)
        h = self.inner(feats[-1])
        for i in range(len(feats) - 1, 0, -1):
            h = self.up[i - 1](torch.cat([h, feats[i]], 1))
        return self.out(torch.cat([h, feats[0]], 1))


def patch_size(n_layers: int) -> int:
    """Receptive field (pixels per side) of one PatchGAN logit: r <- r * stride + (kernel - stride) from the
    logit back to the image, through two stride-1 and ``n_layers`` stride-2 4x4 convolutions."""
    r = 1
    for stride in [1, 1] + [2] * n_layers:
        r = r * stride + (KERNEL - stride)
    return r


def _patch_norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "instance":
        return nn.InstanceNorm2d(c)  # affine=False, as CycleGAN's code
    return nn.Identity()


class PatchDiscriminator(nn.Module):
    """D(image, source=None) -> N x 1 x P x P patch logits; a conditional D (source_channels > 0) judges
    cat(source, image) (Isola et al. eq. 1)."""

    def __init__(self, channels: int, source_channels: int, opts: PatchGANOptions):
        super().__init__()
        self.source_channels = source_channels
        w = [_level_width(opts.width, i) for i in range(opts.n_layers + 1)]
        layers = [nn.Conv2d(channels + source_channels, w[0], KERNEL, 2, 1), nn.LeakyReLU(LRELU_SLOPE, True)]
        for i in range(1, opts.n_layers + 1):
            stride = 2 if i < opts.n_layers else 1  # the last of these is the stride-1 convolution
            layers += [nn.Conv2d(w[i - 1], w[i], KERNEL, stride, 1, bias=opts.norm == "none"),
                       _patch_norm(opts.norm, w[i]), nn.LeakyReLU(LRELU_SLOPE, True)]
        self.net = nn.Sequential(*layers, nn.Conv2d(w[-1], 1, KERNEL, 1, 1))

    def forward(self, image: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        if self.source_channels and source is None:
            raise GanbenchError("this patchgan-d is conditional (source_channels > 0): call it as D(image, source)")
        if not self.source_channels and source is not None:
            raise GanbenchError("this patchgan-d is unconditional (source_channels = 0): call it as D(image)")
        return self.net(image if source is None else torch.cat([source, image], 1))


class ResidualBlock(nn.Module):
    """R-k (Zhu et al. appendix 7.2, after Johnson et al. 2016): x + [pad, conv3, IN, ReLU, pad, conv3, IN](x)."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _resnet_layers(source_channels: int, channels: int, k: int, blocks: int) -> list[nn.Module]:
    """c7s1-k, d2k, d4k, blocks x R4k, u2k, uk, c7s1-C, tanh."""
    pad = RESNET_OUTER_KERNEL // 2
    layers = [nn.ReflectionPad2d(pad), nn.Conv2d(source_channels, k, RESNET_OUTER_KERNEL), nn.InstanceNorm2d(k),
              nn.ReLU(True)]
    for i in range(RESNET_DOWNSAMPLINGS):
        c = k * 2 ** i
        layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
    top = k * 2 ** RESNET_DOWNSAMPLINGS
    layers += [ResidualBlock(top) for _ in range(blocks)]
    for i in range(RESNET_DOWNSAMPLINGS, 0, -1):
        c = k * 2 ** i
        layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
    return layers + [nn.ReflectionPad2d(pad), nn.Conv2d(k, channels, RESNET_OUTER_KERNEL), nn.Tanh()]


class ResNetGenerator(nn.Module):
    def __init__(self, source_channels: int, channels: int, opts: ResNetGOptions):
        super().__init__()
        self.net = nn.Sequential(*_resnet_layers(source_channels, channels, opts.width, opts.blocks))

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.net(source)


def _check_positive(arch: str, **values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise GanbenchError(f"{arch} {key} must be at least 1, got {value}")


def _check_divisible(arch: str, image_size: int, levels: int) -> None:
    if image_size < 2 ** levels or image_size % 2 ** levels:
        raise GanbenchError(f"{arch} halves the image {levels} times: the image size must be a multiple of "
                            f"{2 ** levels}, the protocol has {image_size}x{image_size}")


def build_unet(opts: UNetOptions, *, channels: int, image_size: int, source_channels: int | None = None,
               z_dim: int = 0) -> nn.Module:
    _check_positive("unet-g", width=opts.width, depth=opts.depth)
    _check_divisible("unet-g", image_size, opts.depth)
    if not 0.0 <= opts.dropout < 1.0:
        raise GanbenchError(f"unet-g dropout must be in [0, 1), got {opts.dropout}")
    return UNetGenerator(source_channels or channels, channels, opts)


def build_patchgan(opts: PatchGANOptions, *, channels: int, image_size: int, source_channels: int = 0,
                   z_dim: int = 0) -> nn.Module:
    _check_positive("patchgan-d", width=opts.width, n_layers=opts.n_layers)
    if opts.norm not in ("batch", "instance", "none"):
        raise GanbenchError(f"patchgan-d norm must be 'batch', 'instance' or 'none', got {opts.norm!r}")
    if image_size < 2 ** opts.n_layers * KERNEL:
        raise GanbenchError(f"patchgan-d with n_layers = {opts.n_layers} needs images of at least "
                            f"{2 ** opts.n_layers * KERNEL} pixels, the protocol has {image_size}: lower n_layers")
    return PatchDiscriminator(channels, source_channels, opts)


def build_resnet(opts: ResNetGOptions, *, channels: int, image_size: int, source_channels: int | None = None,
                 z_dim: int = 0) -> nn.Module:
    _check_positive("resnet-g", width=opts.width)
    if opts.blocks < 0:
        raise GanbenchError(f"resnet-g blocks must be at least 0, got {opts.blocks}")
    _check_divisible("resnet-g", image_size, RESNET_DOWNSAMPLINGS)
    return ResNetGenerator(source_channels or channels, channels, opts)


# pix2pix and CycleGAN both draw every weight from N(0, 0.02) (Isola et al. sec. 6.2; Zhu et al. sec. 7.1)
NETS.register("unet-g", Architecture("unet-g", UNetOptions, build_unet, init="dcgan"))
NETS.register("patchgan-d", Architecture("patchgan-d", PatchGANOptions, build_patchgan, init="dcgan"))
NETS.register("resnet-g", Architecture("resnet-g", ResNetGOptions, build_resnet, init="dcgan"))


# --------------------------------------------------------------------------- the models as the trainer sees them
# The trainer hands a translator the batch {"a": sources, "b": targets} (in [-1, 1]) and gives its outputs
# to the loss plug-in (``ganbench.losses.translation``); ``translate`` is what sampling and evaluation call.


class PairedTranslator(nn.Module):
    """pix2pix's G: {"a": sources} -> {"b": G(a)}."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, torch.Tensor], full: bool = False) -> dict[str, torch.Tensor]:
        return {"b": self.net(batch["a"])}

    def translate(self, sources: torch.Tensor) -> torch.Tensor:
        return self.net(sources)


class CycleTranslator(nn.Module):
    """CycleGAN's G: A -> B and F: B -> A. The D phase needs both translations; the G phase (``full``) also the
    reconstructions F(G(a)), G(F(b)) and the identity images G(b), F(a) (Zhu et al. eq. 2 and sec. 5.2)."""

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module):
        super().__init__()
        self.g_ab, self.g_ba = g_ab, g_ba

    def forward(self, batch: dict[str, torch.Tensor], full: bool = False) -> dict[str, torch.Tensor]:
        a, b = batch["a"], batch["b"]
        out = {"b": self.g_ab(a), "a": self.g_ba(b)}
        if full:
            out.update(rec_a=self.g_ba(out["b"]), rec_b=self.g_ab(out["a"]), id_b=self.g_ab(b), id_a=self.g_ba(a))
        return out

    def translate(self, sources: torch.Tensor) -> torch.Tensor:
        return self.g_ab(sources)

    def reconstruct(self, sources: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """F(G(a)): what the cycle brings a source back to; ``noise`` is added to G(a) on the way (a probe of
        information hidden in low-amplitude patterns, Chu et al. 2017)."""
        translated = self.g_ab(sources)
        return self.g_ba(translated if noise is None else translated + noise)

    def reconstruct_target(self, images: torch.Tensor) -> torch.Tensor:
        """G(F(b)): the backward cycle of a target-domain image."""
        return self.g_ab(self.g_ba(images))


class CycleCritics(nn.Module):
    """CycleGAN's two discriminators, one per domain."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module):
        super().__init__()
        self.d_a, self.d_b = d_a, d_b
