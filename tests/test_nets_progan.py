"""ganbench/nets/progan.py (and the equalised layers of karras.py): the growing schedule and its fade-in
arithmetic, equalised learning rate, the G/D schedule check, a phase change inside the trainer and an
exact resume in the middle of a fade-in. Tiny: 32x32 Fashion-MNIST subsets of <= 96 images, batch 16."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ganbench.core.errors import GanbenchError
from ganbench.nets.karras import EqualConv2d, EqualLinear
from ganbench.nets.progan import Phase, ProDiscriminator, ProGenerator, schedule
from ganbench.spec.protocol import apply_overrides, load_model, load_protocol, resolve
from ganbench.pipeline.run import training_images
from ganbench.training import build_models, checkpoint_path, train

W = "0" * 64
P = 48  # images per phase in these tests (the card: 20k)


def tiny(model: str = "progan-lite", subset: int = 64, epochs: int = 1, phase_images: int = P, batch: int = 16):
    proto = load_protocol("fashion32-smoke")
    proto = dataclasses.replace(proto, data=dataclasses.replace(proto.data, subset=subset),
                                train=dataclasses.replace(proto.train, epochs=epochs, batch_size=batch, check_every=2))
    overrides = {"generator.options.phase_images": phase_images, "discriminator.options.phase_images": phase_images} \
        if model == "progan-lite" else {}
    spec = resolve(proto, W, models=[model], seeds=[0], overrides=overrides)[0]
    return spec, training_images(proto).images


def nets(phase_images: int = P):
    spec, _ = tiny(phase_images=phase_images)
    return build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))


def test_schedule_stabilise_fade_stabilise():
    levels = 3  # 4x4 -> 32x32
    assert schedule(0, 100, levels) == Phase(0, 1.0) and schedule(99, 100, levels) == Phase(0, 1.0)
    assert schedule(100, 100, levels) == Phase(1, 0.0)  # the 8x8 block starts fading in
    assert schedule(125, 100, levels) == Phase(1, 0.25)
    assert schedule(199, 100, levels) == Phase(1, 0.99)
    assert schedule(200, 100, levels) == Phase(1, 1.0) and schedule(299, 100, levels) == Phase(1, 1.0)
    assert schedule(350, 100, levels) == Phase(2, 0.5)
    assert schedule(550, 100, levels) == Phase(3, 0.5) and schedule(550, 100, levels).resolution == 32
    assert schedule(600, 100, levels) == Phase(3, 1.0) and schedule(10 ** 9, 100, levels) == Phase(3, 1.0)


def test_fade_in_mixes_the_two_branches_linearly_and_starts_where_the_last_phase_ended():
    G, D = nets()  # train mode: the raw linear output (eval mode clamps it to [-1, 1]); nothing random in ProGAN
    z = torch.randn(4, 128, generator=torch.Generator().manual_seed(1))

    def g_at(seen: int) -> torch.Tensor:
        G.set_progress(seen)
        return G(z)

    old, start, quarter, new = g_at(P - 1), g_at(P), g_at(P + P // 4), g_at(2 * P)
    assert old.shape == (4, 1, 32, 32)
    assert torch.allclose(start, old, atol=1e-6)  # alpha = 0: the 8x8 block does not show yet
    torch.testing.assert_close(quarter, torch.lerp(start, new, 0.25), atol=1e-6, rtol=0)  # G eq.: (1-a) old + a new
    assert not torch.allclose(new, old)
    # G's image below full size is its current-resolution image, nearest-upsampled: 8x8 blocks of 4x4 pixels
    assert torch.equal(new, F.interpolate(new[:, :, ::4, ::4], scale_factor=4, mode="nearest"))
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    D.set_progress(P - 1)
    d_old = D(x)
    D.set_progress(P)
    torch.testing.assert_close(D(x), d_old, atol=1e-5, rtol=1e-5)  # D mirrors it: fromRGB_prev(downsample(x))


def test_equalised_lr_weights_are_n01_and_scaled_at_run_time():
    G, D = nets()
    layers = [m for net in (G, D) for m in net.modules() if isinstance(m, (EqualConv2d, EqualLinear))]
    assert layers and not any(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for net in (G, D) for m in net.modules())
    weights = torch.cat([m.weight.detach().flatten() for m in layers])
    assert abs(float(weights.mean())) < 0.01 and abs(float(weights.std()) - 1.0) < 0.01  # not DCGAN's N(0, 0.02)
    conv = G.conv4  # 3x3, 128 -> 128, followed by a leaky ReLU: c = sqrt(2 / fan_in)
    assert conv.scale == pytest.approx(math.sqrt(2 / (128 * 9)))
    x = torch.randn(2, 128, 4, 4)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * math.sqrt(2 / (128 * 9)), conv.bias, padding=1))
    lin = EqualLinear(10, 3, lr_mul=0.01)  # StyleGAN's mapping layers: stored N(0, 1/lr_mul^2), c * lr_mul
    lin.init_weights(torch.Generator().manual_seed(0))
    torch.testing.assert_close(lin(x.new_ones(1, 10)), F.linear(x.new_ones(1, 10), lin.weight * 0.01 * math.sqrt(2 / 10)))
    G2, _ = nets()
    assert all(torch.equal(a, b) for a, b in zip(G.parameters(), G2.parameters()))  # drawn from the run's generator
    spec, _ = tiny()
    G3, _ = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert not torch.equal(G.conv4.weight, G3.conv4.weight)


def test_g_and_d_must_share_the_schedule():
    card = load_model("progan-lite")
    with pytest.raises(GanbenchError, match="phase_images 100 .generator. != 20000"):
        apply_overrides(card, {"generator.options.phase_images": 100})
    with pytest.raises(GanbenchError, match="progan-g with progan-d"):
        apply_overrides(card, {"discriminator.arch": "stylegan-d", "discriminator.options": {}})


def test_a_loaded_state_dict_restores_the_phase():
    G, _ = nets()
    G.set_progress(P + P // 2)
    fresh, _ = nets()
    assert fresh.phase() == Phase(0, 1.0)
    fresh.load_state_dict(G.state_dict())
    assert fresh.phase() == Phase(1, 0.5) and fresh.progress_info() == {"resolution": 8.0, "fade_alpha": 0.5}


def test_training_passes_phase_changes(tmp_path):
    spec, images = tiny(subset=64, phase_images=32)  # D steps at 0, 16 (4x4), 32, 48 (8x8 fading in: alpha 0, 0.5)
    G0, _ = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(spec.seed))
    res = train(spec, images, tmp_path, progress=False)
    assert res.status == "finished" and res.records["d_loss"].map(math.isfinite).all()
    assert isinstance(res.G, ProGenerator) and isinstance(res.D, ProDiscriminator)
    assert res.G.phase() == Phase(1, 0.5) and res.G_ema.phase() == Phase(1, 0.5)  # the last D step saw 48 images
    assert res.G.progress_info(res.images_seen) == {"resolution": 8.0, "fade_alpha": 1.0}  # 64: 8x8 stable
    changed = {n for (n, a), b in zip(G0.named_parameters(), res.G.parameters()) if not torch.equal(a, b)}
    assert "to_rgb.0.weight" in changed and "to_rgb.1.weight" in changed  # the 8x8 branch trained in its fade-in
    assert not any(n.startswith(("to_rgb.2", "to_rgb.3", "grow.1", "grow.2")) for n in changed)  # not grown yet


def test_resume_in_the_middle_of_a_fade_in_equals_an_uninterrupted_run(tmp_path):
    spec2, images = tiny(subset=64, epochs=2)  # epoch 1 ends at 64 images, a third into the 8x8 fade-in (48-96)
    full = train(spec2, images, tmp_path / "full", progress=False)
    spec1 = dataclasses.replace(spec2, protocol=dataclasses.replace(
        spec2.protocol, train=dataclasses.replace(spec2.protocol.train, epochs=1)))
    part = tmp_path / "part"
    train(spec1, images, part, progress=False)
    ck = torch.load(checkpoint_path(part), weights_only=True)
    assert schedule(ck["images_seen"], P, 3) == Phase(1, 16 / P)
    resumed = train(spec2, images, part, resume=True, progress=False)
    assert resumed.G.phase() == full.G.phase() == Phase(1, 1.0)  # the last D step saw 112 images: 8x8 stable
    for a, b in ((full.G, resumed.G), (full.D, resumed.D), (full.G_ema, resumed.G_ema)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    pd.testing.assert_frame_equal(full.records, resumed.records, check_exact=True)
