"""ganbench/nets/stylegan.py and ganbench/stylemix.py: mapping and style-mixing shapes, modulated
convolution against its grouped-convolution definition, truncation (psi = 0: one image for every z),
the tracked mean of w, lazy R1 in the trainer, determinism and resume, and the `sample --truncation` /
`style-mix` commands on a tiny run. Tiny: 32x32 Fashion-MNIST subsets of <= 64 images, batch 8-16."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganbench.cli import main
from ganbench.core.errors import GanbenchError
from ganbench.nets.stylegan import ModulatedConv2d, StyleGenerator, set_truncation, style_mix_ws
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.pipeline.run import training_images
from ganbench.nets.sampling import generate
from ganbench.training import build_models, train

W = "0" * 64


def tiny(model: str = "stylegan-lite", subset: int = 32, epochs: int = 1, batch: int = 8, overrides=None):
    proto = load_protocol("fashion32-smoke")
    proto = dataclasses.replace(proto, data=dataclasses.replace(proto.data, subset=subset),
                                train=dataclasses.replace(proto.train, epochs=epochs, batch_size=batch, check_every=2))
    spec = resolve(proto, W, models=[model], seeds=[0], overrides=overrides or {})[0]
    return spec, training_images(proto).images


def generator(**options) -> StyleGenerator:
    spec, _ = tiny(overrides={f"generator.options.{k}": v for k, v in options.items()})
    G, _ = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    return G


def test_mapping_and_style_mixing_shapes():
    G = generator(mixing_prob=1.0)
    z = torch.randn(5, 128, generator=torch.Generator().manual_seed(1))
    assert G.num_ws == 8 and G.mapping(z).shape == (5, 128) and len(G.mapping.layers) == 4
    with torch.random.fork_rng():
        torch.manual_seed(3)
        ws = G.styles(z)  # train mode, mixing always on
    w = G.mapping(z)
    assert ws.shape == (5, 8, 128)
    same = [bool(torch.allclose(ws[:, i], w)) for i in range(8)]
    cutoff = same.index(False)
    assert cutoff >= 1 and all(same[:cutoff]) and not any(same[cutoff:])  # w before the crossover, w2 after
    assert all(torch.equal(ws[:, i], ws[:, cutoff]) for i in range(cutoff, 8))
    G.eval()
    assert torch.equal(G.styles(z), w.unsqueeze(1).expand(-1, 8, -1))  # no mixing at sampling time
    out = G(z)
    assert out.shape == (5, 1, 32, 32) and out.abs().max() <= 1
    rows, cols = w[:2], w[2:]
    grid = style_mix_ws(G, rows, cols, cutoff=3)
    assert grid.shape == (6, 8, 128)
    cell = grid[1 * 3 + 2]  # row 1, column 2
    assert torch.equal(cell[:3], rows[1].expand(3, -1)) and torch.equal(cell[3:], cols[2].expand(5, -1))


def test_modulated_conv_equals_its_per_sample_definition():
    conv = ModulatedConv2d(6, 5, 3, w_dim=4)
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 4)
    s = conv.affine(w)
    weight = conv.weight[None] * conv.scale * s[:, None, :, None, None]  # StyleGAN2 eq. 1
    weight = weight * torch.rsqrt(weight.square().sum((2, 3, 4), keepdim=True) + 1e-8)  # eq. 3
    expected = torch.stack([F.conv2d(x[i:i + 1], weight[i], padding=1)[0] for i in range(3)])
    torch.testing.assert_close(conv(x, w), expected, rtol=1e-4, atol=1e-5)
    assert torch.allclose(expected.square().mean((0, 2, 3)).sqrt(), torch.ones(5), atol=0.5)  # demodulated: ~unit std


def test_truncation_psi_zero_gives_one_image_for_every_z():
    G = generator()
    z = torch.randn(6, 128, generator=torch.Generator().manual_seed(2))
    with torch.random.fork_rng():
        G(z)  # train mode: tracks the mean of w (and draws noise from the global generator)
    assert torch.allclose(G.mapping.w_avg, (1 - 0.995) * G.mapping(z).mean(0), atol=1e-5)
    G.mapping.w_avg.copy_(torch.randn(128))  # any tracked mean
    plain = generate(G, z, as_uint8=False)
    assert not torch.allclose(plain[0], plain[1])
    set_truncation(G, 0.0)
    out = generate(G, z, as_uint8=False)
    # every z -> the image of w_avg (fixed eval-mode noise), up to the rounding of batched kernels: rows of one
    # batch can take different vector paths (1e-7 seen on an AMD EPYC), while distinct z differ by ~1e-1
    assert (out - out[:1]).abs().max() < 1e-5 < (plain - plain[:1]).abs().max()
    set_truncation(G, 1.0)
    assert torch.equal(generate(G, z, as_uint8=False), plain)
    progan, _ = build_models(tiny("progan-lite")[0], torch.device("cpu"), torch.Generator().manual_seed(0))
    with pytest.raises(GanbenchError, match="style-based generator"):
        set_truncation(progan, 0.7)


def test_trainer_applies_r1_every_kth_d_step_and_repeats_itself(tmp_path):
    spec, images = tiny(subset=64, overrides={"loss.options.interval": 3})
    a = train(spec, images, tmp_path / "a", progress=False)
    steps = a.records.loc[a.records["r1"].notna(), "step"].tolist()
    assert steps == [1, 4, 7]  # D steps 0, 3, 6 (n_critic = 1)
    assert (a.records.loc[a.records["r1"].notna(), "r1"] > 0).all()
    b = train(spec, images, tmp_path / "b", progress=False)  # noise and style mixing draw from the seeded RNG
    pd.testing.assert_frame_equal(a.records, b.records, check_exact=True)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    spec2, images = tiny(subset=32, epochs=2)
    full = train(spec2, images, tmp_path / "full", progress=False)
    spec1 = dataclasses.replace(spec2, protocol=dataclasses.replace(
        spec2.protocol, train=dataclasses.replace(spec2.protocol.train, epochs=1)))
    train(spec1, images, tmp_path / "part", progress=False)
    resumed = train(spec2, images, tmp_path / "part", resume=True, progress=False)
    for a, b in ((full.G, resumed.G), (full.D, resumed.D), (full.G_ema, resumed.G_ema)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    pd.testing.assert_frame_equal(full.records, resumed.records, check_exact=True)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished tiny stylegan-lite run folder (spec.json + checkpoint), as `ganbench run` leaves it."""
    folder = tmp_path_factory.mktemp("stylegan-run")
    spec, images = tiny(subset=16)
    train(spec, images, folder, progress=False)
    (folder / "spec.json").write_text(json.dumps(spec.to_dict()))
    return folder


def test_sample_with_truncation_and_style_mix_grid(run_folder, tmp_path, capsys):
    out = tmp_path / "psi0.png"
    assert main(["sample", str(run_folder), "--n", "4", "--truncation", "0", "--ema", "--out", str(out)]) == 0
    assert out.is_file() and min(Image.open(out).size) >= 64  # a 2 x 2 grid of 32 x 32 samples
    from ganbench.pipeline.use import sample

    s = sample(str(run_folder), n=4, seed=1, ema=True, truncation=0.0)
    assert s.png.name == "sample_seed1_ema_psi0.png" and torch.equal(s.images, s.images[:1].expand_as(s.images))
    mix = tmp_path / "mix.png"
    assert main(["style-mix", str(run_folder), "--rows", "2", "--cols", "3", "--out", str(mix)]) == 0
    from ganbench.pipeline.stylemix import style_mix

    grid = style_mix(str(run_folder), rows=2, cols=3, ema=True).images
    assert grid.shape == (12, 1, 32, 32) and (grid[0] == 255).all()  # (2 + 1) x (3 + 1), blank corner
    assert not torch.equal(grid[5], grid[6])  # one row's coarse styles with two columns' fine styles


def test_style_mix_and_truncation_refuse_other_generators(tmp_path, capsys):
    spec, images = tiny("progan-lite", subset=16)
    train(spec, images, tmp_path, progress=False)
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict()))
    assert main(["style-mix", str(tmp_path)]) == 2 and "style-based generator" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "--truncation", "0.7"]) == 2 and "truncation" in capsys.readouterr().err
