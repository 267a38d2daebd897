"""Memorisation checks against an independent reference (torch.cdist) and induced copying."""

import dataclasses

import pytest
import torch

from ganbench.data import load_split
from ganbench.metrics.memorisation import (THRESHOLDS, ct_statistic, mann_whitney_z, memorisation_report, nearest_l1,
                                           nearest_l1_cdist, pair_grid)


@pytest.fixture(scope="module")
def fashion():
    train = load_split("fashion-mnist", "train").images
    test = load_split("fashion-mnist", "test").images
    return train[:12000], test


def test_nearest_l1_matches_cdist_exactly_on_real_and_random_images(fashion):
    train, test = fashion
    d, i = nearest_l1(test[:300], train, chunk=128)
    rd, ri = nearest_l1_cdist(test[:300], train)
    assert torch.equal(i, ri) and torch.allclose(d, rd, rtol=0, atol=1e-7)
    gen = torch.Generator().manual_seed(0)
    rand_q = torch.randint(0, 256, (50, 1, 6, 6), dtype=torch.uint8, generator=gen)
    rand_t = torch.randint(0, 4, (500, 1, 6, 6), dtype=torch.uint8, generator=gen)  # many exact ties
    d, i = nearest_l1(rand_q, rand_t, chunk=7, k=3)
    rd, ri = nearest_l1_cdist(rand_q, rand_t)
    assert torch.equal(i, ri) and torch.equal(d, rd)


def test_distance_units_are_mean_abs_difference_on_minus1_1():
    a = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    b = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
    d, _ = nearest_l1(a, b)
    assert d.item() == pytest.approx(2.0)  # -1 vs +1 everywhere


def test_mann_whitney_z_matches_scipy():
    from scipy.stats import mannwhitneyu

    gen = torch.Generator().manual_seed(1)
    q, p = torch.rand(40, generator=gen).numpy(), (torch.rand(55, generator=gen) + 0.2).numpy()
    res = mannwhitneyu(q, p, alternative="two-sided", use_continuity=False, method="asymptotic")
    m, n = len(q), len(p)
    z_ref = (res.statistic - m * n / 2) / (m * n * (m + n + 1) / 12) ** 0.5
    assert mann_whitney_z(q, p) == pytest.approx(z_ref, rel=1e-12)
    assert mann_whitney_z(q, p) < 0  # q is stochastically smaller


def test_verbatim_copies_flagged_test_images_not_noisy_copies_flagged(fashion):
    train, test = fashion
    holdout, baseline = test[:500], test[5000:7000]
    copies = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(3))[:500]]
    gen = torch.Generator().manual_seed(4)
    noise = torch.randint(-8, 9, copies.shape, generator=gen)
    noisy = (copies.int() + noise).clamp(0, 255).to(torch.uint8)

    rep_copy = memorisation_report(copies, train, baseline, plant_shares=())
    rep_test = memorisation_report(holdout, train, baseline, plant_shares=(0.0, 0.01, 0.05, 0.10, 0.5))
    rep_noisy = memorisation_report(noisy, train, baseline, plant_shares=())
    assert rep_copy.suspected_copies == 1.0 and rep_copy.ct < THRESHOLDS["ct_copying_z"]
    assert rep_test.suspected_copies <= 0.03 and abs(rep_test.test_below_threshold - 0.01) < 0.005
    assert rep_test.ct > THRESHOLDS["ct_copying_z"]
    assert rep_noisy.suspected_copies > 0.9 and rep_noisy.ct < THRESHOLDS["ct_copying_z"]
    # The planted check on honest samples: 10% verbatim copies must be detected by the copies statistic.
    by_share = {p["share"]: p for p in rep_test.planted}
    assert by_share[0.10]["copies_detected"] and by_share[0.10]["suspected_copies"] >= 0.10
    assert by_share[0.01]["suspected_copies"] >= 0.01
    # C_T (a rank test per cell) needs a larger share at 500 samples: half the samples copied must be detected,
    # and the control (nothing planted: the honest test images) must not be.
    assert by_share[0.5]["ct_detected"] is True and by_share[0.5]["ct"] < THRESHOLDS["ct_copying_z"]
    assert by_share[0.0]["ct_detected"] is False and by_share[0.0]["ct"] == pytest.approx(rep_test.ct)
    assert by_share[0.0]["copies_detected"] is False and by_share[0.0]["suspected_copies"] == rep_test.suspected_copies
    grid = pair_grid(copies, train, rep_copy, n_pairs=4)
    assert grid.shape == (8, 1, 28, 28) and torch.equal(grid[0], grid[1])


def test_ct_is_nan_without_populated_cells():
    d = torch.rand(5)
    ct, cells = ct_statistic(d, d, torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long), 3)
    assert cells == 0 and ct != ct


def test_memorisation_metric_through_the_metric_api(tiny_protocol):
    from ganbench.data import load_data
    from ganbench.metrics import evaluate
    from ganbench.spec.protocol import load_protocol

    path = tiny_protocol(subset=1024, num_samples=100)
    proto = load_protocol(path)
    proto = dataclasses.replace(proto, eval=dataclasses.replace(proto.eval, metrics=("memorisation",)))
    train = load_data(proto.data, "train").images
    holder = {}
    assert proto.eval.reference_split == "test" and proto.data.split == "train"  # calibrated on held-out images
    res = evaluate(train[:100], proto, context=holder)  # a "generator" that returns its training images
    assert set(res) == {"copies_l1_100_train", "domain_copies_100_train", "copying_ct_100_train", "nn_l1_100_train"}
    assert res["copies_l1_100_train"].value == 1.0 and res["copying_ct_100_train"].value < THRESHOLDS["ct_copying_z"]
    assert res["domain_copies_100_train"].value == 1.0  # nearest neighbours in the domain classifier's features too
    assert res["nn_l1_100_train"].value == 0.0
    for r in res.values():  # each statistic with its real-vs-real floor, far from the copier's value
        assert r.floor is not None and "calibrated on the other half" in r.floor_reference
    assert res["copies_l1_100_train"].floor < 0.05 and res["nn_l1_100_train"].floor > 0.05
    assert holder["ctx"].extras["memorisation_pairs"].shape == (64, 1, 28, 28)
    honest = load_data(proto.data, "test").images[5000:5100]
    res = evaluate(honest, proto)
    assert res["copies_l1_100_train"].value <= 0.05 and res["domain_copies_100_train"].value <= 0.05
    faded = (train[:100].float() * 0.8).round().to(torch.uint8)  # copies at 80% contrast: far in L1, near in features
    res = evaluate(faded, proto)
    assert res["domain_copies_100_train"].value > 0.5 > res["copies_l1_100_train"].value


def test_calibrating_on_the_searched_split_is_rejected_naming_the_key(tiny_protocol):
    """Calibrated on the training images themselves, the copy threshold is 0 and every copy goes unseen."""
    from pathlib import Path

    from ganbench.core.errors import GanbenchError
    from ganbench.metrics import evaluate
    from ganbench.spec.protocol import load_protocol

    path = Path(tiny_protocol(subset=1024, num_samples=100))
    path.write_text(path.read_text().replace('metrics = ["fid"]', 'metrics = ["fid", "memorisation"]\nreference_split = "train"'))
    with pytest.raises(GanbenchError, match=r"eval\.reference_split: expected a split other than data\.split"):
        load_protocol(str(path))
    path.write_text(path.read_text().replace('"fid", "memorisation"', '"fid"'))
    proto = load_protocol(str(path))  # other metrics may compare with the training split
    assert proto.eval.reference_split == "train"
    searched_too = dataclasses.replace(proto, eval=dataclasses.replace(proto.eval, metrics=("memorisation",)))
    train = load_split("fashion-mnist", "train").images
    with pytest.raises(GanbenchError, match=r"eval\.reference_split = 'train' is the split searched for copies"):
        evaluate(train[:100], searched_too)  # a protocol built in code is refused by the metric itself


def test_floor_is_what_held_out_images_score(fashion):
    """The real-vs-real floor: half of the held-out images play the samples, the other half calibrates. Checked
    against distances computed here by torch.cdist and a percentile of our own, and against a fresh set of
    held-out images scored as samples (an honest model scores about its floor)."""
    import numpy as np

    from ganbench.metrics.memorisation import held_out_halves

    train, test = fashion
    baseline, honest = test[:2000], test[5000:6000]
    rep = memorisation_report(honest, train, baseline, plant_shares=())
    dist, _ = nearest_l1_cdist(baseline, train)
    calib, as_samples = held_out_halves(len(baseline), 0)
    assert len(set(calib.tolist()) & set(as_samples.tolist())) == 0 and len(calib) + len(as_samples) == 2000
    threshold = np.percentile(dist[calib].numpy(), 1.0)
    assert rep.floor["copies"] == pytest.approx(float((dist[as_samples] < threshold).float().mean()))
    assert rep.floor["nn_l1"] == pytest.approx(float(dist[as_samples].mean()), rel=1e-6)
    assert 0.0 <= rep.floor["copies"] <= 0.03  # ~1% by construction, up to binomial noise at 1000 images
    assert abs(rep.floor["ct"]) < 3.0  # real vs real: no significant copying or underfitting
    assert abs(rep.suspected_copies - rep.floor["copies"]) < 0.03
    assert rep.gen_dist.mean() == pytest.approx(rep.floor["nn_l1"], rel=0.05)
    copies = memorisation_report(train[:1000], train, baseline, plant_shares=())
    assert copies.floor == rep.floor  # the floor depends on the held-out images only
