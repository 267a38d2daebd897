"""Mode-coverage metrics against closed forms and induced collapse."""

import math

import numpy as np
import pytest
import torch

from ganbench.data import DATASETS, get_dataset, load_data, load_split
from ganbench.data.synthetic import StackedView, grid25, ring8, stacked_mnist
from ganbench.metrics.modes import (NUM_MODES, THRESHOLDS, confusion_explained, em_mode_counts, excess_p_values,
                                    kl_to_uniform, mixture_modes, mode_of, mode_statistics, triple_confusion)
from ganbench.spec.protocol import DataSpec

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
    assert {n for n, ds in DATASETS.items() if ds.mixture is not None} == {"ring8", "grid25"}
    assert torch.equal(get_dataset("grid25").mixture.centers, grid25().centers) and get_dataset("stacked-mnist").stacked_from == "mnist"


@pytest.mark.slow
def test_stacked_mnist_sanity_with_the_mnist_classifier():
    from ganbench.extractors.domain import domain_classifier
    from ganbench.metrics.modes import stacked_modes

    clf = domain_classifier("mnist")  # the full-recipe classifier (>= 99% test accuracy), cached after first use
    real = stacked_mnist(26000, "test", seed=0).images.materialise()
    m = stacked_modes(real, clf)
    assert m["modes_pacgan"] >= 990 and m["modes_corrected"] >= 990 and m["kl"] < 0.05, (m["modes_pacgan"], m["kl"])
    assert m["confident_channel_share"] > 0.95
    one = real[:1].repeat(5000, 1, 1, 1)  # a generator that always outputs one image
    m1 = stacked_modes(one, clf)
    assert m1["modes_pacgan"] == m1["modes_corrected"] == 1 and m1["kl"] == pytest.approx(math.log(1000))


def independent_ring8_metrics(out, protocol_path: str) -> dict[str, float]:
    """PacGAN's ring8 numbers of a finished run recomputed outside the metric code: its final G sampled at the
    evaluation's fixed z, centres (cos 2 pi k / 8, sin 2 pi k / 8), sigma 0.01, a sample of high quality within
    3 sigma of its nearest centre, modes = centres with one such sample, reverse KL of their histogram to uniform."""
    from ganbench.nets.sampling import generate
    from ganbench.spec.protocol import load_protocol, resolve
    from ganbench.spec.seeds import fixed_z
    from ganbench.training import build_models

    (spec,) = resolve(load_protocol(protocol_path), "0" * 64, [out.model], [0])
    G, _ = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    G.load_state_dict(torch.load(out.run_dir / "final.pt", weights_only=True)["G"])
    points = generate(G, fixed_z(500, spec.model.z_dim, spec.protocol.eval.z_seed), as_uint8=False).double().numpy()
    angles = 2 * np.pi * np.arange(8) / 8
    centres = np.stack([np.cos(angles), np.sin(angles)], 1)
    d = np.sqrt(((points[:, None, :] - centres[None]) ** 2).sum(-1))
    hq = d.min(1) <= 3 * 0.01
    counts = np.bincount(d.argmin(1)[hq], minlength=8)
    p = counts[counts > 0] / max(counts.sum(), 1)
    kl = float((p * np.log(p * 8)).sum()) if counts.sum() else math.inf
    return {"modes": int((counts > 0).sum()), "hq": float(hq.mean()), "kl": kl}


@pytest.mark.slow
def test_ring8_protocol_end_to_end_logs_mode_metrics_and_scatter(tmp_path):
    from mlflow.tracking import MlflowClient

    from ganbench.pipeline.run import run_protocol
    from ganbench.core.track import tracking_uri

    path = tmp_path / "ring8-tiny.toml"
    path.write_text(
        'models = ["gan-mlp2d", "wgan-gp-mlp2d"]\nseeds = [0]\n[data]\ndataset = "ring8"\nsubset = 5120\n'
        'image_size = 0\nchannels = 2\n[train]\nepochs = 2\nbatch_size = 256\ncheck_every = 10\n'
        '[eval]\nnum_samples = 500\nmetrics = ["modes2d"]\n')
    outcomes = run_protocol(str(path), progress=False)
    assert sorted(o.model for o in outcomes) == ["gan-mlp2d", "wgan-gp-mlp2d"]
    client = MlflowClient(tracking_uri())
    for out in outcomes:
        assert out.status == "finished"
        m = client.get_run(out.run_id).data.metrics
        expected = independent_ring8_metrics(out, str(path))  # the final G's 500 samples at the fixed z, by hand
        assert m["modes_hq_500"] == expected["modes"] and m["hq_share_500"] == pytest.approx(expected["hq"], abs=1e-9)
        assert m["reverse_kl_500"] == pytest.approx(expected["kl"], rel=1e-9)
        arts = {f.path for f in client.list_artifacts(out.run_id, "scatter")}
        assert arts == {"scatter/epoch_001.png", "scatter/epoch_002.png"}
        assert [f.path for f in client.list_artifacts(out.run_id, "eval")] == ["eval/mode_histogram.json"]


# ----------------------------------------------------------------------------- the corrected stacked-MNIST count

STACKED_N = 26000  # the stacked-mnist protocol's sample count (VEEGAN/PacGAN)


@pytest.fixture(scope="module")
def held_out_digits():
    """The MNIST classifier's confusion counts on the calibration half of the test split, and its predictions
    on the other half: digits it was neither trained nor calibrated on."""
    from ganbench.extractors.domain import calibration_split, domain_classifier, held_out_confusion

    clf = domain_classifier("mnist")
    test = load_split("mnist", "test")
    _, rest = calibration_split(len(test.images))
    probs = torch.softmax(clf.logits(test.images[rest]).double(), 1)
    conf, pred = probs.max(1)
    return {"clf": clf, "confusion": held_out_confusion(clf), "images": test.images[rest], "labels": test.labels[rest],
            "pred": pred, "conf": conf}


def k_mode_generator(labels: torch.Tensor, k: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A generator covering exactly ``k`` of the 1000 modes, equally often: ``n`` samples, each three real
    digits (indices into ``labels``) of a mode drawn from k random modes. Returns (N x 3 indices, the modes)."""
    gen = torch.Generator().manual_seed(seed)
    modes = torch.randperm(NUM_MODES, generator=gen)[:k]
    digits = torch.stack([d for d in (modes // 100, modes // 10 % 10, modes % 10)], 1)[torch.randint(k, (n,), generator=gen)]
    index = torch.empty_like(digits)
    for d in range(10):
        pool = (labels == d).nonzero().squeeze(1)
        where = digits == d
        index[where] = pool[torch.randint(len(pool), (int(where.sum()),), generator=gen)]
    return index, modes


@pytest.mark.parametrize("k", [10, 100, 1000])
def test_corrected_count_reads_k_for_a_generator_of_exactly_k_modes(held_out_digits, k):
    h = held_out_digits
    index, modes = k_mode_generator(h["labels"], k, STACKED_N, seed=k)
    assert len(torch.unique(mode_of(h["labels"][index]))) == k  # the construction covers exactly k modes
    m = mode_statistics(h["pred"][index], h["conf"][index], h["confusion"])
    tolerance = max(0.05 * k, 1.0)
    assert abs(m["modes_corrected"] - k) <= tolerance, (k, m["modes_corrected"], m["modes_pacgan"], m["modes_confident"])
    if k == 1000:
        assert m["modes_corrected"] >= 990
    else:  # PacGAN's count (every misread digit a mode) and the confident count are far off: why the correction exists
        assert m["modes_pacgan"] > 2 * k and m["modes_confident"] > k + tolerance
    assert m["modes_pacgan"] == len(torch.unique(mode_of(h["pred"][index])))
    assert m["estimated_histogram"].sum() == pytest.approx(STACKED_N)  # EM keeps the sample count


def test_stacked_images_give_the_statistics_of_their_channels_predictions(held_out_digits):
    """The image path (classify every channel of stacked images) equals the digits path the tests above use."""
    from ganbench.data.synthetic import StackedView
    from ganbench.metrics.modes import stacked_modes

    h = held_out_digits
    index, _ = k_mode_generator(h["labels"], 10, 1500, seed=7)
    images = StackedView(h["images"], index).materialise()
    via_images = stacked_modes(images, h["clf"])
    via_digits = mode_statistics(h["pred"][index], h["conf"][index], h["confusion"])
    for key in ("modes_pacgan", "modes_confident", "modes_corrected"):
        assert via_images[key] == via_digits[key]
    assert torch.equal(via_images["histogram"], via_digits["histogram"])
    assert via_images["modes_corrected"] == 10
    from ganbench.diagnosis import mode_counter

    assert mode_counter("stacked-mnist")(images) == via_images["modes_pacgan"]  # the probes count distinct modes


def test_the_probe_count_of_real_stacked_batches_never_reads_as_a_collapse(held_out_digits):
    """The health monitor probes 128 samples; over 20 real batches its mode count must stay put (the
    confusion-corrected count read 2 to 19 there), and a G of 10 modes must read far below it."""
    import pandas as pd

    from ganbench.data.synthetic import StackedView
    from ganbench.diagnosis import PROBE_SAMPLES, diagnose, mode_counter

    h, count = held_out_digits, mode_counter("stacked-mnist")
    n = len(h["labels"])
    gen = torch.Generator().manual_seed(3)
    real = [count(StackedView(h["images"], torch.randint(n, (PROBE_SAMPLES, 3), generator=gen)).materialise())
            for _ in range(20)]
    assert min(real) > 0.85 * PROBE_SAMPLES, real  # ~1000 modes: nearly every sample its own
    index, _ = k_mode_generator(h["labels"], 10, PROBE_SAMPLES, seed=4)
    collapsed = count(StackedView(h["images"], index).materialise())
    assert 10 <= collapsed < 0.3 * min(real), collapsed  # a misread digit may add a mode, never 60 of them

    def collapses(modes, diversity=17.0):
        trace = pd.DataFrame({"step": [50 * (i + 1) for i in range(len(modes))], "modes_covered": modes,
                              "diversity": diversity, "real_diversity": 17.7, "real_modes_covered": real[0]})
        records = pd.DataFrame({"step": range(1, 1001), "d_loss": 0.6, "g_loss": 1.0})
        return [f for f in diagnose(records, trace).findings if f.name == "mode-collapse"]

    assert not collapses(real) and collapses(real[:10] + [collapsed] * 3)
    # an untrained G's blobs read as 1 to 3 modes (a WGAN-GP's first probes: 3, 1, 1, 1): not a collapse from anything
    assert not collapses([3, 1, 1, 1] + real[:5], diversity=[2.3, 1.4, 1.3, 2.7] + [17.0] * 5)


def test_em_recovers_true_counts_from_noise_free_hits():
    gen = torch.Generator().manual_seed(0)
    c = torch.eye(10, dtype=torch.float64) * 0.95 + torch.rand(10, 10, generator=gen, dtype=torch.float64) * 0.01
    c = c / c.sum(1, keepdim=True)
    m = triple_confusion(c)
    assert torch.allclose(m.sum(1), torch.ones(NUM_MODES, dtype=torch.float64))
    assert m[123, 456] == pytest.approx(float(c[1, 4] * c[2, 5] * c[3, 6]))
    truth = torch.zeros(NUM_MODES, dtype=torch.float64)
    present = torch.randperm(NUM_MODES, generator=gen)[:50]
    truth[present] = 50 + 100 * torch.rand(50, generator=gen, dtype=torch.float64)
    estimate = em_mode_counts(m.T @ truth, m)  # the hits the truth produces on average
    assert (estimate - truth).abs().max() < 0.5  # within half a sample (EM stops at em_tol per step)
    assert torch.equal(em_mode_counts(torch.tensor([3.0, 0.0, 5.0]), torch.eye(3, dtype=torch.float64)),
                       torch.tensor([3.0, 0.0, 5.0], dtype=torch.float64))  # no confusion: the hits themselves


def test_confusion_variance_matches_monte_carlo_over_the_dirichlet_posterior():
    gen = torch.Generator().manual_seed(1)
    alpha = torch.eye(10, dtype=torch.float64) * 490 + torch.randint(0, 4, (10, 10), generator=gen).double() + 0.5
    counts = torch.zeros(NUM_MODES, dtype=torch.float64)
    counts[torch.randperm(NUM_MODES, generator=gen)[:50]] = 100.0
    lam, var = confusion_explained(counts, alpha)
    torch.manual_seed(2)
    draws = []
    for _ in range(600):
        m = triple_confusion(torch.distributions.Dirichlet(alpha).sample())
        draws.append(m.T @ counts - counts * m.diagonal())
    draws = torch.stack(draws)
    standard_error = draws.std(0) / len(draws) ** 0.5
    assert ((lam - draws.mean(0)).abs() <= 4 * standard_error + 1e-6).all()  # the posterior mean's lambda
    big = lam > 0.1  # modes one confusion away from a present one: the delta method's first-order terms
    ratio = var[big] / draws.var(0)[big]
    # 600 draws estimate a variance to ~6% (more for the skewed small entries): the bulk within 25%, centred on 1
    low, mid, high = ratio.quantile(torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)).tolist()
    assert big.sum() > 500 and mid == pytest.approx(1.0, abs=0.04) and 0.75 < low and high < 1.25, (low, mid, high)


def test_excess_p_values_are_tails_of_a_count_with_the_given_mean_and_variance():
    from scipy.stats import poisson

    lam, var = torch.tensor([2.0, 2.0, 0.5]), torch.tensor([0.0, 6.0, 1.0])
    ks = torch.arange(0, 400)
    tails = np.stack([excess_p_values(torch.full((3,), float(k)), lam, var) for k in ks.tolist()])  # P(X >= k)
    assert np.allclose(tails[:, 0], poisson.sf(ks.numpy() - 1, 2.0))
    mean = tails[1:].sum(0)  # E[X] = sum_{k >= 1} P(X >= k)
    second = ((2 * ks[1:, None].numpy() - 1) * tails[1:]).sum(0)  # E[X^2] = sum_{k >= 1} (2k - 1) P(X >= k)
    assert np.allclose(mean, lam.numpy()) and np.allclose(second - mean ** 2, (lam + var).numpy())


def test_held_out_confusion_is_measured_on_digits_the_classifier_never_saw_and_cached(held_out_digits):
    from ganbench.extractors import domain

    h = held_out_digits
    calib, rest = domain.calibration_split(10000)
    assert len(calib) == domain.CALIBRATION["size"] and len(set(calib.tolist()) | set(rest.tolist())) == 10000
    assert not set(calib.tolist()) & set(rest.tolist())
    counts = h["confusion"]
    test = load_split("mnist", "test")
    pred = h["clf"].logits(test.images[calib]).argmax(1)
    direct = torch.zeros(10, 10, dtype=torch.int64)
    for t, p in zip(test.labels[calib].tolist(), pred.tolist()):
        direct[t, p] += 1
    assert torch.equal(counts, direct)
    errors = int(counts.sum() - counts.trace())
    assert 0 < errors < 0.02 * len(calib)  # a >= 98%-accurate classifier, yet not perfect on held-out digits
    path = domain.confusion_path(h["clf"])
    assert path.is_file()
    path.write_text("{not json")  # a corrupt entry is measured again, not trusted
    domain._CONFUSIONS.clear()
    assert torch.equal(domain.held_out_confusion(h["clf"]), counts) and path.read_text().startswith("{\n")


def test_mode_coverage_metric_names_and_values_through_the_metric_api(held_out_digits):
    from ganbench.data.synthetic import StackedView
    from ganbench.metrics import evaluate
    from ganbench.spec.protocol import load_protocol

    import dataclasses

    p = load_protocol("stacked-mnist")
    p = dataclasses.replace(p, eval=dataclasses.replace(p.eval, num_samples=1500))
    h = held_out_digits
    index, _ = k_mode_generator(h["labels"], 10, 1500, seed=11)
    holder = {}
    res = evaluate(StackedView(h["images"], index).materialise(), p, context=holder)
    assert set(res) == {"modes_pacgan_1500", "modes_confident_1500", "modes_corrected_1500", "mode_kl_1500",
                        "confident_channels_1500"}
    assert res["modes_corrected_1500"].value == 10 and res["modes_pacgan_1500"].value > 10
    assert res["modes_corrected_1500"].higher_is_better and not res["mode_kl_1500"].higher_is_better
    extras = holder["ctx"].extras
    assert sum(extras["mode_histogram"]) == 1500 and sum(extras["mode_histogram_corrected"]) == pytest.approx(1500, abs=0.5)


def test_2d_mixture_metrics_carry_the_true_mixtures_floor():
    """ring8 and grid25 publish a real-data floor: the true mixture's own points through the same metrics. Within
    PacGAN's 3-sigma radius lie 1 - exp(-9/2) = 98.9% of a 2D Gaussian's points (closed form): the floor's
    high-quality share is that, within binomial noise, with every mode present."""
    from ganbench.metrics import evaluate, metric_name
    from ganbench.spec.protocol import load_protocol

    for name, modes in (("ring8", 8), ("grid25", 25)):
        proto = load_protocol(name)
        n = proto.eval.num_samples
        fake = get_dataset(name).mixture.sample(n, torch.Generator().manual_seed(1)).images * 0.5  # a shrunken mixture
        res = {r.name: r for r in evaluate(fake, proto, torch.device("cpu")).values()}
        hq, count = res[metric_name("hq_share", n)], res[metric_name("modes_hq", n)]
        expected = 1 - math.exp(-4.5)
        assert abs(hq.floor - expected) < 4 * math.sqrt(expected * (1 - expected) / n)
        assert count.floor == modes and "true" in hq.floor_reference
        assert hq.value < 0.5 * hq.floor  # the shrunken points mostly miss the modes: well below the floor
