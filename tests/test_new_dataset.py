"""A new dataset is one registered definition in one file: ``squares16`` below is defined here, in the test,
and nothing in the package knows it; a protocol on it trains a zoo model, evaluates it with the domain-free
metrics (FID, KID, precision/recall, density/coverage on Inception features) and lands on the leaderboard
through the same functions ``ganbench run`` and ``ganbench report`` call.

The definition is applied in a fixture and removed afterwards, so the rest of the test session never sees it
(test modules are imported before any test runs: a module-level registration would leak into every registry
listing of the session)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import independent

from ganbench.core.assets import cache_root
from ganbench.core.errors import GanbenchError
from ganbench.core.registry import DATASETS
from ganbench.core.track import Tracker
from ganbench.data import ImageSet, dataset, load_data
from ganbench.data.base import TEST_SEED_OFFSET
from ganbench.extractors import inception_source
from ganbench.pipeline.run import run_protocol
from ganbench.pipeline.use import load_generator_from_run
from ganbench.nets.sampling import generate
from ganbench.reporting.leaderboard import build_boards
from ganbench.reporting.render import fmt, write_report
from ganbench.spec.protocol import load_model, load_protocol, resolve
from ganbench.spec.seeds import fixed_z

SIDE, SQUARE = 16, 6  # image side; side of the class's square
CLASS_CORNERS = ((1, 1), (1, 9), (9, 1), (9, 9))  # each class draws its square in its own quadrant
CLASS_COLOURS = torch.tensor([[230, 40, 40], [40, 230, 40], [40, 40, 230], [230, 230, 40]], dtype=torch.float32)
BACKGROUND = 20.0  # grey level of the dark background
NOISE = 12.0  # pixel noise (grey levels) so that no two images are equal
NUM_SAMPLES = 20  # evaluated samples: Inception runs ~13 images/s on 2 CPU cores


def draw_squares16(split: str, n: int, gen: torch.Generator, data_root=None) -> ImageSet:
    """16 x 16 RGB: a dark background and a coloured 6 x 6 square whose quadrant and colour are the class
    (4 classes), shifted by up to 1 pixel, with Gaussian pixel noise; uint8 N x 3 x 16 x 16."""
    labels = torch.randint(len(CLASS_CORNERS), (n,), generator=gen)
    images = torch.full((n, 3, SIDE, SIDE), BACKGROUND)
    shifts = torch.randint(-1, 2, (n, 2), generator=gen)
    for i, (k, (dy, dx)) in enumerate(zip(labels.tolist(), shifts.tolist())):
        y, x = CLASS_CORNERS[k][0] + dy, CLASS_CORNERS[k][1] + dx
        images[i, :, y:y + SQUARE, x:x + SQUARE] = CLASS_COLOURS[k][:, None, None]
    images += NOISE * torch.randn(images.shape, generator=gen)
    return ImageSet(images.round().clamp(0, 255).to(torch.uint8), labels, len(CLASS_CORNERS))


PROTOCOL = """
description = "squares16: a dataset defined in a test file, end to end"
models = ["gan-mlp", "progan-lite"]
seeds = [0]

[data]
dataset = "squares16"
split = "train"
subset = {subset}
subset_seed = 3
image_size = 16
channels = {channels}

[train]
epochs = 1
batch_size = 32

[eval]
num_samples = {n}
reference_split = "test"
metrics = ["fid", "kid", "pr", "dc"]
extractor = "inception-v3-compat"
grid_size = 4
"""


@pytest.fixture
def squares16():
    """The whole definition of the new dataset: one decorated function (as ``ganbench/data/synthetic.py``
    defines its datasets), registered for this test only."""
    dataset("squares16", image_size=SIDE, channels=3, num_classes=len(CLASS_CORNERS))(draw_squares16)
    yield DATASETS["squares16"]
    del DATASETS["squares16"]


def write_protocol(folder, name: str, channels: int = 3, subset: int = 256, n: int = NUM_SAMPLES) -> str:
    path = folder / f"{name}.toml"
    path.write_text(PROTOCOL.format(channels=channels, subset=subset, n=n))
    return str(path)


def test_drawn_squares_have_their_class_structure(squares16, tmp_path):
    data = load_data(load_protocol(write_protocol(tmp_path, "squares16-data")).data, "train")
    assert data.images.shape == (256, 3, 16, 16) and data.images.dtype == torch.uint8
    for k, ((y, x), colour) in enumerate(zip(CLASS_CORNERS, CLASS_COLOURS)):
        centre = data.images[data.labels == k][:, :, y + 2:y + 4, x + 2:x + 4].float().mean((0, 2, 3))
        assert torch.allclose(centre, colour, atol=NOISE)  # the class's colour at its quadrant's centre


def test_a_protocol_whose_channels_disagree_with_the_entry_is_refused(squares16, tmp_path):
    with pytest.raises(GanbenchError, match=r"data\.channels: expected 3 \(the channels of squares16"):
        load_protocol(write_protocol(tmp_path, "squares16-gray", channels=1))


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Heusel et al. 2017: ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with S = X X^T for the centred
    features X (d x n, scaled by 1/sqrt(n - 1)). The nonzero eigenvalues of S_a S_b are those of
    (X_a^T X_b)(X_a^T X_b)^T, so Tr (S_a S_b)^(1/2) is the nuclear norm of the small n x n matrix X_a^T X_b:
    exact, and another route than the d x d matrix square root ganbench takes."""
    xa = (a - a.mean(0)).T / np.sqrt(len(a) - 1)
    xb = (b - b.mean(0)).T / np.sqrt(len(b) - 1)
    cross = np.linalg.svd(xa.T @ xb, compute_uv=False).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + (xa ** 2).sum() + (xb ** 2).sum() - 2 * cross)


def reference_drawn_directly(protocol, n: int) -> torch.Tensor:
    """The test split as the dataset's definition draws it (its own seed: data.subset_seed + TEST_SEED_OFFSET),
    then the protocol's reference_seed's pick of ``n``: independent of ganbench's reference code."""
    d = protocol.data
    test = draw_squares16("test", d.subset, torch.Generator().manual_seed(d.subset_seed + TEST_SEED_OFFSET)).images
    return test[torch.randperm(len(test), generator=torch.Generator().manual_seed(protocol.eval.reference_seed))[:n]]


@pytest.fixture
def own_refstats(tmp_path, monkeypatch):
    """A feature cache of this test's own (the reference features are computed, never read from an earlier
    run), sharing only the Inception weights of the real cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights").symlink_to(cache_root() / "weights")
    monkeypatch.setenv("GANBENCH_CACHE", str(cache))


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # torch-fidelity's sqrtm of singular S (n < d)
def test_train_evaluate_report_end_to_end(squares16, own_refstats, tmp_path):
    """Two shipped zoo models whose architectures take any shape: the MLPs (gan-mlp) and ProGAN-lite's
    convolutions (16 = 4 x 2^2); one epoch on 256 images, 20 evaluated samples."""
    path = write_protocol(tmp_path, "squares16-tiny")
    protocol = load_protocol(path)
    outcomes = run_protocol(path, device="cpu", progress=False, threads=1)
    assert [(o.model, o.status) for o in outcomes] == [("gan-mlp", "finished"), ("progan-lite", "finished")]
    source = inception_source(torch.device("cpu"))
    real = source.extract(reference_drawn_directly(protocol, NUM_SAMPLES), 50)["features"].double().numpy()
    for outcome in outcomes:
        check_run(outcome, protocol, source, real)
    check_leaderboard(path, protocol, outcomes, tmp_path / "reports")


def check_run(outcome, protocol, source, real: np.ndarray) -> None:
    """The run's generator draws the dataset's shape, and its logged metrics are those of its samples against
    the drawn test split, recomputed here independently."""
    m, n = outcome.metrics, NUM_SAMPLES
    spec, G = load_generator_from_run(outcome.run_id, ema=spec_has_ema(outcome))
    samples = generate(G, fixed_z(n, spec.model.z_dim, protocol.eval.z_seed))
    assert samples.shape == (n, 3, SIDE, SIDE) and samples.dtype == torch.uint8
    fake = source.extract(samples, 50)["features"].double().numpy()
    assert m[f"fid_{n}_test"] == pytest.approx(frechet(fake, real), rel=1e-3)
    assert m[f"kid_{n}_test"] == pytest.approx(independent.mmd2_unbiased(fake, real), rel=1e-3, abs=1e-6)
    precision, recall = independent.precision_recall(fake, real, k=3)
    assert (m[f"precision_k3_{n}_test"], m[f"recall_k3_{n}_test"]) == pytest.approx((precision, recall))
    for name in ("fid", "kid", "precision_k3", "recall_k3", "density_k5", "coverage_k5"):
        assert math.isfinite(m[f"{name}_{n}_test"]) and math.isfinite(m[f"{name}_{n}_test_floor"])
    # one epoch of 256 images is far from the data: worse than real-vs-real (train split vs test split)
    assert m[f"fid_{n}_test"] > m[f"fid_{n}_test_floor"] and m[f"kid_{n}_test"] > m[f"kid_{n}_test_floor"]


def spec_has_ema(outcome) -> bool:
    """ProGAN-lite is evaluated with its moving average of G (tricks.ema), as the trainer evaluates it."""
    return load_model(outcome.model).tricks.ema > 0


def check_leaderboard(path: str, protocol, outcomes, out) -> None:
    """One row per model under the run's identity, ranked by FID, in the rendered Markdown too."""
    n = NUM_SAMPLES
    report = write_report(path, out)
    (board,) = build_boards(Tracker().search(), "squares16-tiny")
    assert board.metrics[0] == (f"fid_{n}_test", False)
    fids = {o.model: o.metrics[f"fid_{n}_test"] for o in outcomes}
    assert [r.model for r in board.rows] == sorted(fids, key=fids.get)
    text = report.markdown.read_text()
    for rank, row in enumerate(board.rows, 1):
        expected = resolve(protocol, models=[row.model], seeds=[0])[0].identity
        assert (row.identity, row.seeds) == (expected.hash, [0])
        assert row.metrics[f"fid_{n}_test"].mean == fids[row.model]
        assert f"| {rank} | {row.model} | {fmt(fids[row.model])}" in text
