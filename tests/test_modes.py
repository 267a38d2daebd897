"""Mode-coverage metrics against closed forms and induced collapse."""

import math

import pytest
import torch

from ganbench.data import load_data
from ganbench.data.synthetic import MIXTURES, StackedView, grid25, ring8, stacked_mnist
from ganbench.metrics.modes import kl_to_uniform, mixture_modes
from ganbench.protocol import DataSpec

HQ_2D = 1 - math.exp(-9 / 2)  # P(||x - mu|| <= 3 sigma) for an isotropic 2D Gaussian (Rayleigh radius)


@pytest.mark.parametrize("make, k", [(ring8, 8), (grid25, 25)])
def test_real_mixture_samples_cover_every_mode(make, k):
    mix = make()
    data = mix.sample(20000, torch.Generator().manual_seed(0))
    m = mixture_modes(data.images, mix.centers, mix.sigma)
    assert m["modes"] == k
    assert m["hq_share"] == pytest.approx(HQ_2D, abs=0.003)
    assert m["reverse_kl"] < 0.01
    assert m["histogram"].sum() == round(m["hq_share"] * 20000)


def test_mixture_geometry_matches_pacgan():
    assert torch.allclose(ring8().centers.norm(dim=1), torch.ones(8))
    assert ring8().sigma == 0.01 and grid25().sigma == 0.05
    assert sorted(set(grid25().centers[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_collapsed_and_off_manifold_generators():
    mix = ring8()
    one = mix.centers[3].repeat(1000, 1) + 0.001
    m = mixture_modes(one, mix.centers, mix.sigma)
    assert m["modes"] == 1 and m["reverse_kl"] == pytest.approx(math.log(8)) and m["hq_share"] == 1.0
    between = torch.zeros(500, 2)  # every sample at the origin: far from every mode
    m = mixture_modes(between, mix.centers, mix.sigma)
    assert m["modes"] == 0 and m["hq_share"] == 0.0 and m["reverse_kl"] == math.inf


def test_kl_to_uniform_closed_form():
    assert kl_to_uniform(torch.tensor([5, 5, 5, 5])) == pytest.approx(0.0)
    assert kl_to_uniform(torch.tensor([1, 1, 0, 0])) == pytest.approx(math.log(2))


def test_stacked_mnist_is_a_view_of_index_triples():
    data = stacked_mnist(1000, "train", seed=0)
    view = data.images
    assert isinstance(view, StackedView) and len(view) == 1000 and view.shape == (1000, 3, 28, 28)
    batch = view[torch.tensor([0, 5])]
    assert batch.shape == (2, 3, 28, 28) and batch.dtype == torch.uint8
    mnist = load_data(DataSpec(dataset="mnist"), "train")
    r, g, b = view.triples[5]
    assert torch.equal(batch[1], torch.cat([mnist.images[r], mnist.images[g], mnist.images[b]]))
    digits = [int(mnist.labels[i]) for i in (r, g, b)]
    assert data.labels[5] == digits[0] * 100 + digits[1] * 10 + digits[2]
    again = stacked_mnist(1000, "train", seed=0)
    assert torch.equal(again.images.triples, view.triples)  # deterministic given the seed
    assert len(torch.unique(stacked_mnist(26000, "train", seed=1).labels)) == 1000


def test_mixture_protocols_load():
    d = load_data(DataSpec(dataset="ring8", subset=512, image_size=0, channels=2), "train")
    assert d.images.shape == (512, 2) and d.images.dtype == torch.float32 and set(d.labels.tolist()) <= set(range(8))
    assert set(MIXTURES) == {"ring8", "grid25"}


@pytest.mark.slow
def test_stacked_mnist_sanity_with_the_mnist_classifier():
    from ganbench.metrics.domain import domain_classifier
    from ganbench.metrics.modes import stacked_modes

    clf = domain_classifier("mnist")  # the full-recipe classifier (>= 99% test accuracy), cached after first use
    real = stacked_mnist(26000, "test", seed=0).images.materialise()
    m = stacked_modes(real, clf)
    assert m["modes"] >= 990 and m["kl"] < 0.05, (m["modes"], m["kl"])
    assert m["confident_channel_share"] > 0.95
    one = real[:1].repeat(5000, 1, 1, 1)  # a generator that always outputs one image
    m1 = stacked_modes(one, clf)
    assert m1["modes"] == 1 and m1["kl"] == pytest.approx(math.log(1000))


@pytest.mark.slow
def test_ring8_protocol_end_to_end_logs_mode_metrics_and_scatter(tmp_path):
    from mlflow.tracking import MlflowClient

    from ganbench.run import run_protocol
    from ganbench.track import tracking_uri

    path = tmp_path / "ring8-tiny.toml"
    path.write_text(
        'models = ["gan-mlp2d", "wgan-gp-mlp2d"]\nseeds = [0]\n[data]\ndataset = "ring8"\nsubset = 5120\n'
        'image_size = 0\nchannels = 2\n[train]\nepochs = 2\nbatch_size = 256\ncheck_every = 10\n'
        '[eval]\nnum_samples = 500\nmetrics = ["modes2d"]\n')
    outcomes = run_protocol(str(path), progress=False)
    client = MlflowClient(tracking_uri())
    for out in outcomes:
        assert out.status == "finished"
        m = client.get_run(out.run_id).data.metrics
        assert 0 <= m["modes500"] <= 8 and 0 <= m["hq_share500"] <= 1 and m["reverse_kl500"] >= 0
        arts = {f.path for f in client.list_artifacts(out.run_id, "scatter")}
        assert arts == {"scatter/epoch_001.png", "scatter/epoch_002.png"}
        assert [f.path for f in client.list_artifacts(out.run_id, "eval")] == ["eval/mode_histogram.json"]
