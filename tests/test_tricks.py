"""Every stabilisation trick changes what it should, and nothing else (tricks off: the same run as before)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from ganbench.core.errors import GanbenchError
from ganbench.losses import BCELoss, BCEOptions, Targets
from ganbench.nets.layers import minibatch_std
from ganbench.spec.protocol import (TricksSpec, apply_overrides, identity, load_model, load_protocol, parse_overrides,
                               resolve)
from ganbench.pipeline.run import training_images
from ganbench.training import build_models, train
from ganbench.training.steps import ema_decay, ema_update, feature_matching, instance_noise_sigma

W = "0" * 64


def spec_with(tiny_protocol, model="dcgan", subset=64, **tricks):
    proto = load_protocol(tiny_protocol(models=[model], subset=subset))
    spec = resolve(proto, W, overrides={f"tricks.{k}": v for k, v in tricks.items()})[0]
    return spec, training_images(proto)


def run(spec, data, path):
    return train(spec, data.images, path, progress=False, labels=data.labels)


def test_tricks_off_keep_the_protocol_hash_and_on_change_it():
    proto = load_protocol("fashion-50ep")
    dcgan, assets = load_model("dcgan"), {"weights/inception-v3-compat": W}
    base = identity(proto, dcgan, assets).hash
    assert identity(proto, apply_overrides(dcgan, {"tricks.ema": 0.0}), assets).hash == base
    assert identity(proto, apply_overrides(dcgan, {"tricks.ema": 0.999}), assets).hash != base


def test_overrides_are_validated():
    assert parse_overrides(["tricks.ema=0.999", "n_critic=5", "loss.name=hinge"]) == \
        {"tricks.ema": 0.999, "n_critic": 5, "loss.name": "hinge"}
    m = load_model("dcgan")
    with pytest.raises(GanbenchError, match="unknown key 'emma'"):
        apply_overrides(m, {"tricks.emma": 0.9})
    with pytest.raises(GanbenchError, match="tricks.ema: expected a decay"):
        apply_overrides(m, {"tricks.ema": 1.5})
    with pytest.raises(GanbenchError, match="bce or ls"):
        apply_overrides(load_model("wgan-gp"), {"tricks.label_flip": 0.1})
    with pytest.raises(GanbenchError, match="KEY=VALUE"):
        parse_overrides(["tricks.ema"])


def test_label_noise_and_flipping_change_d_targets():
    gen = torch.Generator().manual_seed(0)
    like = torch.zeros(20_000)
    r, f = Targets(0.9, 0.0).sample(like, like, gen)
    assert torch.all(r == 0.9) and torch.all(f == 0.0)  # one-sided smoothing only: constants
    r, f = Targets(1.0, 0.0, noise=0.2).sample(like, like, gen)
    assert r.min() >= 0.8 and r.max() <= 1.0 and f.min() >= 0.0 and f.max() <= 0.2
    assert abs(float(r.mean()) - 0.9) < 0.005 and abs(float(f.mean()) - 0.1) < 0.005  # uniform spread
    r, f = Targets(1.0, 0.0, flip=0.1).sample(like, like, gen)
    assert abs(float((r == 0.0).float().mean()) - 0.1) < 0.01 and abs(float((f == 1.0).float().mean()) - 0.1) < 0.01
    # the loss uses them: a flipped target changes D's loss
    net = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    x = torch.randn(64, 4, generator=gen)
    plain, _ = BCELoss(BCEOptions()).d_loss(net, x, x, torch.Generator().manual_seed(1))
    flipped, _ = BCELoss(BCEOptions(), TricksSpec(label_flip=0.3)).d_loss(net, x, x, torch.Generator().manual_seed(1))
    assert not torch.allclose(plain, flipped)


def test_instance_noise_anneals_to_zero_and_changes_training(tmp_path, tiny_protocol):
    spec, data = spec_with(tiny_protocol, instance_noise=0.5)
    assert instance_noise_sigma(spec, 0, 10) == 0.5 and instance_noise_sigma(spec, 5, 10) == 0.25
    assert instance_noise_sigma(spec, 10, 10) == 0.0 and instance_noise_sigma(spec, 20, 10) == 0.0
    res = run(spec, data, tmp_path / "noise")
    sig = res.records["instance_noise"].tolist()
    assert sig[0] == 0.5 and all(a > b for a, b in zip(sig, sig[1:]))
    plain, _ = spec_with(tiny_protocol)
    base = run(plain, data, tmp_path / "plain")
    assert res.records["d_loss"].iloc[0] != base.records["d_loss"].iloc[0]


def test_ema_converges_to_a_constant_model_and_differs_while_training(tmp_path, tiny_protocol):
    model, ema = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    gap0 = (ema.weight - model.weight).abs().max()
    for _ in range(10):
        ema_update(ema, model, 0.9)
    assert torch.allclose((ema.weight - model.weight).abs().max(), gap0 * 0.9 ** 10, rtol=1e-4)
    spec, data = spec_with(tiny_protocol, ema=0.9)
    res = run(spec, data, tmp_path)
    raw, avg = res.G.state_dict(), res.G_ema.state_dict()
    assert res.G_eval is res.G_ema
    assert any(not torch.equal(raw[k], avg[k]) for k in raw if raw[k].is_floating_point())
    ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(ck["G_ema"][k], avg[k]) for k in avg)


def test_ema_rampup_caps_the_half_life_at_a_fraction_of_the_images_seen():

    assert ema_decay(0.999, 0.0, 10_000, 64) == 0.999  # no ramp-up: the card's decay
    assert ema_decay(0.999, 0.05, 0, 64) == 0.0  # nothing seen yet: the average is G itself
    # 64k images seen, ramp 0.05: half-life 3.2k images = 50 steps of 64, so 50 steps halve the gap
    assert math.isclose(ema_decay(0.999, 0.05, 64_000, 64) ** 50, 0.5, rel_tol=1e-9)
    # late in training the card's decay (half-life ln 0.5 / ln 0.999 = 693 steps) takes over again
    assert math.isclose(ema_decay(0.999, 0.05, 10**9, 64), 0.999, rel_tol=1e-12)


def test_ema_rampup_lets_the_average_follow_g_early(tmp_path, tiny_protocol):
    """1 epoch of 4 steps: with decay 0.999 alone the EMA is still ~the initial G; with the ramp-up it is ~G."""
    proto = load_protocol(tiny_protocol(models=["dcgan"], subset=128))
    data = training_images(proto)
    init, _ = build_models(resolve(proto, W)[0], torch.device("cpu"), torch.Generator().manual_seed(0))
    gaps = {}
    for ramp in (0.0, 0.05):
        spec = resolve(proto, W, overrides={"tricks.ema": 0.999, "tricks.ema_rampup": ramp})[0]
        res = train(spec, data.images, tmp_path / str(ramp), progress=False)
        w, w_ema, w0 = (net.fc[0].weight.detach() for net in (res.G, res.G_ema, init))
        gaps[ramp] = float((w_ema - w0).norm() / (w - w0).norm())  # how far the EMA has moved with G
    assert gaps[0.0] < 0.01 and gaps[0.05] > 0.5, gaps


def test_ema_resume_matches_an_uninterrupted_run(tmp_path, tiny_protocol):
    proto = load_protocol(tiny_protocol(models=["dcgan"], epochs=2, subset=64))
    spec = resolve(proto, W, overrides={"tricks.ema": 0.9})[0]
    data = training_images(proto)
    full = train(spec, data.images, tmp_path / "full", progress=False)
    one = dataclasses.replace(spec, protocol=dataclasses.replace(spec.protocol, train=dataclasses.replace(spec.protocol.train, epochs=1)))
    train(one, data.images, tmp_path / "cut", progress=False)
    resumed = train(spec, data.images, tmp_path / "cut", progress=False, resume=True)
    for a, b in ((full.G_ema, resumed.G_ema), (full.D, resumed.D)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_minibatch_std_closed_form_and_batch_dependence(tiny_protocol):
    h = torch.arange(16.0).reshape(8, 2)  # groups of 4: sample i in group i % 2
    s = minibatch_std(h)
    grp0 = h[[0, 2, 4, 6]]
    expected = grp0.var(0, unbiased=False).add(1e-8).sqrt().mean()
    assert torch.allclose(s[0], expected) and torch.allclose(s, s[[1, 0, 3, 2, 5, 4, 7, 6]][[1, 0, 3, 2, 5, 4, 7, 6]])
    spec, _ = spec_with(tiny_protocol, minibatch_std=True)
    _, D = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    torch.nn.init.constant_(D.mbstd.weight, 1.0)
    D.eval()
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    y = x.clone()
    y[2] = -y[2]  # same group as sample 0
    assert not torch.allclose(D(x)[0], D(y)[0])
    plain, _ = spec_with(tiny_protocol)
    _, D0 = build_models(plain, torch.device("cpu"), torch.Generator().manual_seed(0))
    D0.eval()
    assert torch.allclose(D0(x)[0], D0(y)[0])  # without the trick, one sample's score ignores the others


def test_spectral_norm_bounds_every_d_layer(tiny_protocol):
    spec, _ = spec_with(tiny_protocol, spectral_norm=True)
    torch.manual_seed(0)  # spectral_norm draws its first u, v from the global generator (the trainer seeds it)
    _, D = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    x = torch.randn(16, 1, 28, 28)
    for _ in range(100):  # power iterations run in training mode (30 left one layer 2% off for some u, v)
        D(x)
    for m in D.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert abs(float(sigma) - 1.0) < 0.02, (m, float(sigma))


def test_feature_matching_closed_form_and_in_the_g_loss(tmp_path, tiny_protocol):
    spec, data = spec_with(tiny_protocol, feature_matching=1.0)
    _, D = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    a, b = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    expected = ((D.features(a).mean(0) - D.features(b).mean(0)) ** 2).sum()
    assert torch.allclose(feature_matching(D, a, b, None, None), expected)
    res = run(spec, data, tmp_path)
    assert (res.records["feature_matching"] > 0).all()


def test_unrolled_steps_change_g_but_restore_d(tmp_path, tiny_protocol):
    proto = load_protocol(tiny_protocol(models=["dcgan"], subset=32))  # one batch: one critic step, one G step
    data = training_images(proto)
    plain = train(resolve(proto, W)[0], data.images, tmp_path / "a", progress=False)
    unrolled = train(resolve(proto, W, overrides={"tricks.unrolled_steps": 3})[0], data.images, tmp_path / "b",
                     progress=False)
    assert plain.steps == unrolled.steps == 1
    # D's weights are those of its own critic step (its batch-norm running statistics, unused in training,
    # miss the G step's forward pass, which ran on the unrolled copy)
    assert all(torch.equal(a, b) for a, b in zip(plain.D.parameters(), unrolled.D.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(plain.G.state_dict().values(), unrolled.G.state_dict().values()))


def test_ttur_and_n_critic_from_the_command_line(tmp_path, tiny_protocol):
    proto = load_protocol(tiny_protocol(models=["dcgan"], subset=96))
    spec = resolve(proto, W, overrides={"optim_d.lr": 4e-4, "optim_g.lr": 1e-4, "n_critic": 3})[0]
    res = train(spec, training_images(proto).images, tmp_path, progress=False)
    ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ck["opt_d"]["param_groups"][0]["lr"] == 4e-4 and ck["opt_g"]["param_groups"][0]["lr"] == 1e-4
    assert res.steps == 1 and res.images_seen == 3 * 32  # 3 batches: 3 critic steps, one G step
    assert spec.protocol_hash != resolve(proto, W)[0].protocol_hash
