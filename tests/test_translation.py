"""Image-to-image models (pix2pix, CycleGAN) in the one trainer and metrics layer: the tasks' true mappings,
the losses against their formulas, the metrics against closed forms, resume, and a smoke run of each model."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import ganbench
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.data import load_data
from ganbench.data.translation import a2b_transform, edges
from ganbench.losses import build_loss
from ganbench.metrics import evaluate
from ganbench.metrics.api import Sampler
from ganbench.metrics.translation import task_split
from ganbench.nets.translation import CycleTranslator
from ganbench.pipeline.run import run_protocol, training_images
from ganbench.pipeline.use import sample
from ganbench.spec.protocol import DataSpec, load_protocol, resolve
from ganbench.spec.seeds import Generators
from ganbench.training import checkpoint_path, train


def data_spec(name: str, subset: int = 64, seed: int = 0) -> DataSpec:
    return DataSpec(dataset=name, subset=subset, subset_seed=seed, image_size=28, channels=1)


# --------------------------------------------------------------------------- the tasks


def test_tasks_are_deterministic_and_their_truth_is_the_documented_mapping():
    for name in ("edges2fashion", "mnist-a2b"):
        a, b = load_data(data_spec(name), "train"), load_data(data_spec(name), "train")
        assert torch.equal(a.images, b.images) and torch.equal(a.inputs, b.inputs)
        other = load_data(data_spec(name, seed=1), "train")
        assert not torch.equal(a.inputs, other.inputs)
    e2f = load_data(data_spec("edges2fashion"), "test")
    assert torch.equal(e2f.inputs, edges(e2f.images))  # paired: the source is the target's edge map
    a2b = load_data(data_spec("mnist-a2b"), "test")
    assert torch.equal(a2b.images, a2b_transform(a2b.inputs))  # every test digit with its true translation
    # unpaired training: the B side holds T of other digits than the A side
    train = load_data(data_spec("mnist-a2b", subset=2000), "train")
    transformed = a2b_transform(train.inputs[:200])
    assert not any(torch.equal(transformed[i], train.images[i]) for i in range(200))


# --------------------------------------------------------------------------- the losses


class PatchMean(nn.Module):
    """A fixed 'PatchGAN': the logit map is w * mean over channels of (image [+ source])."""

    def __init__(self, w: float):
        super().__init__()
        self.w = w

    def forward(self, image, source=None):
        x = image if source is None else image + source
        return self.w * x.mean(1, keepdim=True)


def test_pix2pix_loss_is_the_halved_cgan_loss_plus_lambda_l1():
    torch.manual_seed(0)
    a, b, fb = torch.rand(4, 1, 8, 8) * 2 - 1, torch.rand(4, 1, 8, 8) * 2 - 1, torch.rand(4, 1, 8, 8) * 2 - 1
    loss, D = build_loss("pix2pix", {"l1_weight": 100.0}), PatchMean(0.7)
    d, _ = loss.d_loss(D, {"a": a, "b": b}, {"b": fb}, None)
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731  -log sigmoid(-x) = softplus(x)
    lr, lf = (0.7 * (b + a)).numpy(), (0.7 * (fb + a)).numpy()
    assert float(d) == pytest.approx(0.5 * (sp(-lr).mean() + sp(lf).mean()), rel=1e-6)
    g, stats = loss.g_loss(D, {"b": fb}, {"a": a, "b": b})
    assert float(g) == pytest.approx(sp(-lf).mean() + 100 * np.abs(fb.numpy() - b.numpy()).mean(), rel=1e-6)
    assert float(stats["l1"]) == pytest.approx(np.abs(fb.numpy() - b.numpy()).mean(), rel=1e-6)


class Critics(nn.Module):
    def __init__(self):
        super().__init__()
        self.d_a, self.d_b = PatchMean(0.3), PatchMean(-0.5)


def test_cyclegan_loss_is_least_squares_plus_cycle_and_identity_terms():
    torch.manual_seed(1)
    t = lambda: torch.rand(3, 1, 6, 6) * 2 - 1  # noqa: E731
    real = {"a": t(), "b": t()}
    fake = {k: t() for k in ("a", "b", "rec_a", "rec_b", "id_a", "id_b")}
    loss = build_loss("cyclegan", {"cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 0})
    g, stats = loss.g_loss(Critics(), fake, real)
    n = lambda x: x.numpy()  # noqa: E731
    adv = ((0.3 * n(fake["a"]).mean(1) - 1) ** 2).mean() + ((-0.5 * n(fake["b"]).mean(1) - 1) ** 2).mean()
    cyc = np.abs(n(fake["rec_a"]) - n(real["a"])).mean() + np.abs(n(fake["rec_b"]) - n(real["b"])).mean()
    idt = np.abs(n(fake["id_b"]) - n(real["b"])).mean() + np.abs(n(fake["id_a"]) - n(real["a"])).mean()
    assert float(g) == pytest.approx(adv + 10 * cyc + 5 * idt, rel=1e-6)
    assert float(stats["cycle"]) == pytest.approx(cyc, rel=1e-6)
    d, _ = loss.d_loss(Critics(), real, fake, Generators([torch.Generator().manual_seed(0)]))
    d_b = 0.5 * (((-0.5 * n(real["b"]).mean(1) - 1) ** 2).mean() + ((-0.5 * n(fake["b"]).mean(1)) ** 2).mean())
    d_a = 0.5 * (((0.3 * n(real["a"]).mean(1) - 1) ** 2).mean() + ((0.3 * n(fake["a"]).mean(1)) ** 2).mean())
    assert float(d) == pytest.approx(d_a + d_b, rel=1e-6)


# --------------------------------------------------------------------------- the metrics


def smoke(name: str, n: int = 200):
    """The shipped smoke protocol, evaluating n samples."""
    proto = load_protocol(name)
    return dataclasses.replace(proto, eval=dataclasses.replace(proto.eval, num_samples=n))


class Invert(nn.Module):
    """A hand-made translator: x -> -x in [-1, 1] (255 - x in grey levels), its own inverse."""

    def forward(self, x):
        return -x


def test_translation_metrics_meet_their_closed_forms(tmp_path):
    proto = smoke("mnist-a2b-smoke")
    test = task_split(proto.data, "test")
    truth, sources = test.images[:200], test.inputs[:200]
    res = evaluate(truth, proto)  # perfect translations
    assert res["l1_200_test"].value == 0 and res["ssim_200_test"].value == pytest.approx(1.0)
    assert res["domain_class_kept_200_test"].value == res["domain_class_kept_200_test"].floor
    assert res["domain_fid_200_test"].value == pytest.approx(0.0, abs=1e-6)
    ident = evaluate(sources, proto)  # the identity mapping scores its own floor
    for q in ("l1", "psnr", "ssim"):
        r = ident[f"{q}_200_test"]
        assert r.value == pytest.approx(r.floor) and r.floor_reference.startswith("identity mapping")
    assert ident["l1_200_test"].floor == pytest.approx(float((sources.double() - truth.double()).abs().mean()))
    inverted = 255 - sources  # inversion without the thicker strokes: an independent computation of the scores
    G = CycleTranslator(Invert(), Invert())
    r = evaluate(inverted, proto, generator=Sampler(G, 1))
    assert r["l1_200_test"].value == pytest.approx(float((inverted.double() - truth.double()).abs().mean()))
    mse = ((inverted.double() - truth.double()) ** 2).flatten(1).mean(1)
    assert r["psnr_200_test"].value == pytest.approx(float((10 * torch.log10(255.0 ** 2 / mse)).mean()))
    assert r["cycle_aba_200_test"].value == 0 and r["cycle_bab_200_test"].value == 0  # an exact round trip


# --------------------------------------------------------------------------- training and resume


def tiny(name: str, model: str, epochs: int = 1, subset: int = 96):
    """The smoke protocol with a smaller budget: its RunSpec for one model and the protocol."""
    base = load_protocol(name)
    proto = dataclasses.replace(base, data=dataclasses.replace(base.data, subset=subset),
                                train=dataclasses.replace(base.train, epochs=epochs, batch_size=16))
    return resolve(proto, "0" * 64, [model], [0])[0], proto


@pytest.mark.parametrize("model", ["pix2pix-lite", "cyclegan-lite"])
def test_resume_after_epoch_1_equals_uninterrupted_2_epochs(tmp_path, model):
    spec2, proto = tiny("mnist-a2b-smoke", model, epochs=2)
    spec1, _ = tiny("mnist-a2b-smoke", model, epochs=1)
    data = training_images(proto)
    full = train(spec2, data.images, tmp_path / "full", progress=False, sources=data.inputs)
    train(spec1, data.images, tmp_path / "part", progress=False, sources=data.inputs)
    ck = torch.load(checkpoint_path(tmp_path / "part"), weights_only=True)
    ck["run_key"] = [spec2.protocol_hash, spec2.model.name, spec2.seed]  # continue it under the 2-epoch budget
    torch.save(ck, checkpoint_path(tmp_path / "part"))
    resumed = train(spec2, data.images, tmp_path / "part", progress=False, sources=data.inputs, resume=True)
    pd.testing.assert_frame_equal(full.records, resumed.records, check_exact=True)
    if model == "cyclegan-lite":
        assert "loss_state" in ck  # the history pools travel with the checkpoint


def test_a_translation_model_needs_its_sources(tmp_path):
    spec, proto = tiny("edges2fashion-smoke", "pix2pix-lite")
    with pytest.raises(GanbenchError, match="translates source images"):
        train(spec, training_images(proto).images, tmp_path, progress=False)


@pytest.mark.parametrize("protocol", ["edges2fashion-smoke", "mnist-a2b-smoke"])
def test_smoke_run_of_each_model_trains_evaluates_and_draws_triplets(tmp_path, protocol):
    outcomes = run_protocol(protocol, device="cpu", progress=False)
    assert sorted(o.model for o in outcomes) == ["cyclegan-lite", "pix2pix-lite"]
    for o in outcomes:
        assert o.status == "finished", o.message
        for q in ("l1", "psnr", "ssim", "domain_class_kept", "domain_fid"):
            assert np.isfinite(o.metrics[f"{q}_500_test"]) and np.isfinite(o.metrics[f"{q}_500_test_floor"])
        assert (o.metrics.get("cycle_aba_500_test") is not None) == (o.model == "cyclegan-lite")
        grid = o.run_dir / "grids" / "epoch_001.png"
        assert grid.is_file()
        with Image.open(grid) as im:  # 6 columns (two triplets) x 8 rows of 28 px with 2 px padding
            assert im.size == (6 * 30 + 2, 8 * 30 + 2)
        shown = sample(str(o.run_dir), n=4, out=tmp_path / f"{o.model}.png")  # `ganbench sample RUN`
        test = task_split(load_protocol(protocol).data, "test")
        assert shown.images.shape == (12, 1, 28, 28)
        assert torch.equal(shown.images[0::3], test.inputs[:4])  # source | translation | target or reconstruction
        if o.model == "pix2pix-lite":
            assert torch.equal(shown.images[2::3], test.images[:4])
    board = ganbench.report(protocol, out=tmp_path / "reports")  # the leaderboard: new metrics beside their floors
    md = (tmp_path / "reports" / protocol / "README.md").read_text()
    assert "floor: identity mapping" in md and "l1_500_test" in md and "grid_pix2pix-lite_seed0.png" in md
    rows = board.to_frame()
    assert set(rows["model"]) == {"pix2pix-lite", "cyclegan-lite"}
