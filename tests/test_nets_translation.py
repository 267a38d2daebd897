"""ganbench/nets/translation.py: output shapes (28x28x1, 32x32x3), the U-Net's skip concatenations, the
PatchGAN's receptive field, pix2pix's test-time dropout, parameter counts, and the build context."""

from __future__ import annotations

import pytest
import torch

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import NETS
from ganbench.nets import initialise
from ganbench.nets import translation  # noqa: F401  (registers unet-g, patchgan-d, resnet-g)
from ganbench.nets.translation import UNetGenerator, patch_size

SHAPES = [(1, 28), (3, 32)]


def build(arch: str, channels: int = 1, image_size: int = 28, options: dict | None = None, **context) -> torch.nn.Module:
    plugin = NETS.get_or_raise(arch)
    net = plugin.build(plugin.options(options or {}), z_dim=64, channels=channels, image_size=image_size, **context)
    initialise(net, "dcgan", torch.Generator().manual_seed(0))  # what the trainer's build_models does
    return net


def images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("channels,size", SHAPES)
@pytest.mark.parametrize("arch", ["unet-g", "resnet-g"])
def test_generators_map_a_source_to_an_image_of_its_shape(arch, channels, size):
    G = build(arch, channels, size)
    out = G(images(3, channels, size))
    assert out.shape == (3, channels, size, size)
    assert out.abs().max() <= 1.0  # tanh


def test_generator_source_channels_may_differ_from_the_target_channels():
    G = build("unet-g", channels=3, image_size=28, source_channels=1)  # e.g. grey edges -> colour images
    assert G(images(2, 1, 28)).shape == (2, 3, 28, 28)
    R = build("resnet-g", channels=1, image_size=32, source_channels=3)
    assert R(images(2, 3, 32)).shape == (2, 1, 32, 32)


@pytest.mark.parametrize("channels,size", SHAPES)
def test_patchgan_gives_a_map_of_patch_logits(channels, size):
    # Conv arithmetic by hand: 4x4 stride 2 pad 1 halves S; each 4x4 stride 1 pad 1 removes one pixel.
    expected = size // 2 - 2  # 12 for 28x28, 14 for 32x32
    D = build("patchgan-d", channels, size)
    assert D(images(2, channels, size)).shape == (2, 1, expected, expected)
    Dc = build("patchgan-d", channels, size, source_channels=1)
    assert Dc(images(2, channels, size), images(2, 1, size, seed=1)).shape == (2, 1, expected, expected)


def test_conditional_patchgan_reads_the_source_and_refuses_calls_without_one():
    D = build("patchgan-d", 1, 28, source_channels=1).eval()
    x = images(2, 1, 28)
    assert not torch.allclose(D(x, images(2, 1, 28, seed=1)), D(x, images(2, 1, 28, seed=2)))
    with pytest.raises(GanbenchError, match="conditional"):
        D(x)
    with pytest.raises(GanbenchError, match="unconditional"):
        build("patchgan-d", 1, 28)(x, x)


def test_unet_concatenates_each_encoder_output_into_the_decoder():
    G = build("unet-g", options={"test_dropout": False}).eval()
    seen = {}
    G.out[1].register_forward_hook(lambda m, inp, out: seen.__setitem__("out", inp[0]))
    G.up[0][1].register_forward_hook(lambda m, inp, out: seen.__setitem__("up", inp[0]))
    x = images(2, 1, 28)
    G(x)
    skips = G.skips(x)
    assert [tuple(s.shape) for s in skips] == [(2, 64, 14, 14), (2, 128, 7, 7)]
    # the decoder layer at 7x7 reads [decoder features | encoder 7x7], the output layer [decoder | encoder 14x14]
    assert seen["up"].shape == (2, 256, 7, 7) and torch.equal(seen["up"][:, 128:], torch.relu(skips[1]))
    assert seen["out"].shape == (2, 128, 14, 14) and torch.equal(seen["out"][:, 64:], torch.relu(skips[0]))


def test_unet_output_depends_on_the_input_more_near_a_change_than_far_from_it():
    """A fully convolutional translator: a change in one corner moves the output there far more than opposite it
    (a generator with a global bottleneck, like dcgan28-g's dense layer, would spread it)."""
    G = build("unet-g", options={"test_dropout": False}).eval()
    x = images(1, 1, 28)
    y = x.clone()
    y[..., :4, :4] = -x[..., :4, :4]
    diff = (G(x) - G(y)).abs()[0, 0]
    assert diff[:6, :6].mean() > 10 * diff[-6:, -6:].mean()


def test_patchgan_logit_sees_a_16_pixel_patch_not_the_whole_image():
    # By hand: r <- r * stride + (4 - stride) from the logit back through 4x4 convs of stride 1, 1, 2: 1 -> 4 -> 7 -> 16.
    assert patch_size(1) == 16 and patch_size(3) == 70  # the paper's 70x70 PatchGAN (Isola et al. sec. 3.2.2)
    D = build("patchgan-d", 1, 28).eval()  # eval: batch norm by running statistics, a per-pixel affine map
    x = images(1, 1, 28).requires_grad_(True)
    D(x)[0, 0, 6, 6].backward()
    rows, cols = (x.grad[0, 0] != 0).nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == 16 and cols.max() - cols.min() + 1 == 16
    far = x.detach().clone()
    far[..., 27, 27] += 1.0  # outside the patch of logit (0, 0)
    near = x.detach().clone()
    near[..., 0, 0] += 1.0
    base = D(x.detach())[0, 0, 0, 0]
    assert D(far)[0, 0, 0, 0] == base
    assert D(near)[0, 0, 0, 0] != base


def test_unet_dropout_stays_on_at_test_time_unless_switched_off():
    x = images(2, 1, 28)
    paper = build("unet-g").eval()
    assert not torch.equal(paper(x), paper(x))  # Isola et al. sec. 3.2: dropout at test time too
    quiet = build("unet-g", options={"test_dropout": False}).eval()
    assert torch.equal(quiet(x), quiet(x))
    assert not torch.equal(quiet.train()(x), quiet(x))  # but on in training
    none = build("unet-g", options={"dropout": 0.0}).train()
    assert torch.equal(none(x), none(x))


def test_parameter_counts_are_small_enough_for_a_cpu():
    """28x28x1, default options: unet-g 692,033, resnet-g 1,073,281, patchgan-d 134,465 (conditional on a
    1-channel source 135,489); for scale, dcgan28-g has 652,225 and dcgan28-d 431,937."""
    def count(net: torch.nn.Module) -> int:
        return sum(p.numel() for p in net.parameters())

    assert count(build("unet-g")) < 750_000
    assert count(build("resnet-g")) < 1_100_000
    # conditional patchgan-d by hand: conv 2->64 (4x4 + bias), conv 64->128 (no bias), batch norm 128, conv 128->1
    assert count(build("patchgan-d", source_channels=1)) == (2 * 64 * 16 + 64) + 64 * 128 * 16 + 2 * 128 + (128 * 16 + 1)


@pytest.mark.parametrize("arch,size", [("unet-g", 30), ("resnet-g", 30), ("unet-g", 2)])
def test_sizes_the_generators_cannot_halve_are_refused(arch, size):
    with pytest.raises(GanbenchError, match="multiple of 4"):
        build(arch, image_size=size)


def test_bad_options_are_refused():
    with pytest.raises(GanbenchError, match="norm"):
        build("patchgan-d", options={"norm": "group"})
    with pytest.raises(GanbenchError, match="n_layers"):
        build("patchgan-d", options={"n_layers": 3})  # 70x70 patches do not fit 28x28 images
    with pytest.raises(GanbenchError, match="dropout"):
        build("unet-g", options={"dropout": 1.0})
    with pytest.raises(GanbenchError, match="unknown|Unknown|allowed"):
        build("resnet-g", options={"blockz": 2})


def test_unet_depth_three_for_32x32():
    G = build("unet-g", 3, 32, options={"depth": 3})
    assert isinstance(G, UNetGenerator) and len(G.up) == 2
    assert G(images(2, 3, 32)).shape == (2, 3, 32, 32)
