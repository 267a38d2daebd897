"""Conditional metrics on real images: right labels score like the real data, wrong labels are caught.
Values are checked against a direct computation: the domain classifier called on the images, and a
per-class Fréchet distance written out here (trace of the square root through a symmetric eigen-decomposition)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ganbench.data import load_split
from ganbench.metrics import evaluate
from ganbench.metrics.conditional import intra_class_fid, label_accuracy
from ganbench.extractors.domain import domain_classifier
from ganbench.metrics.fid import frechet_distance
from ganbench.metrics.reference import gaussian_statistics, reference_images, reference_labels
from ganbench.spec.protocol import load_protocol

N = 1000  # accuracies agree to 1e-6 (float32 means) where one sample in N moves them by 1e-3


def protocol(reference_split: str = "test"):
    p = load_protocol("fashion-zoo-smoke")
    return dataclasses.replace(p, eval=dataclasses.replace(p.eval, num_samples=N, metrics=("label_acc", "intra_fid"),
                                                           reference_split=reference_split))


def direct_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^1/2 S_b S_a^1/2)^1/2) (Heusel et al. 2017, eq. 6)."""
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ sb @ root_a)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.clip(cross, 0, None)).sum())


def direct_intra_fid(images, labels, ref_images, ref_labels) -> float:
    clf = domain_classifier("fashion-mnist")
    fa, fb = clf.features(images).double().numpy(), clf.features(ref_images).double().numpy()
    return float(np.mean([direct_frechet(fa[(labels == c).numpy()], fb[(ref_labels == c).numpy()]) for c in range(10)]))


def direct_accuracy(images, labels) -> float:
    return float((domain_classifier("fashion-mnist").logits(images).argmax(1) == labels).double().mean())


def test_closed_forms():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    assert label_accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 3, generator=gen), torch.randn(400, 3, generator=gen) + 1
    la, lb = torch.arange(400) % 2, torch.arange(400) % 2
    expected = np.mean([direct_frechet(a[la == c].double().numpy(), b[lb == c].double().numpy()) for c in (0, 1)])
    assert intra_class_fid(a, la, b, lb) == pytest.approx(expected, rel=1e-6)
    assert direct_frechet(a.double().numpy(), a.double().numpy()) == pytest.approx(0.0, abs=1e-9)
    # two 3-d isotropic Gaussians with unit covariance and means 1 apart per axis: FID -> 3 (sample noise aside)
    assert frechet_distance(gaussian_statistics(a), gaussian_statistics(b)) == pytest.approx(3.0, abs=0.4)


def test_real_images_with_their_labels_versus_shuffled_labels():
    p = protocol()
    train = load_split("fashion-mnist", "train")
    images, labels = train.images[:N], train.labels[:N]
    right = evaluate(images, p, labels=labels)
    assert set(right) == {"domain_label_acc_1k", "domain_intra_fid_1k_test"}
    acc, ifid = right["domain_label_acc_1k"], right["domain_intra_fid_1k_test"]
    assert acc.higher_is_better and not ifid.higher_is_better
    held_out = reference_images("fashion-mnist", "test", N, 0), reference_labels("fashion-mnist", "test", N, 0)
    floor_split = reference_images("fashion-mnist", "train", N, 0), reference_labels("fashion-mnist", "train", N, 0)
    # label accuracy: the classifier on the samples; its floor on real images it never saw (the test split),
    # which the classifier finds harder than its own training images
    assert acc.value == pytest.approx(direct_accuracy(images, labels), abs=1e-6)
    assert acc.floor == pytest.approx(direct_accuracy(*held_out), abs=1e-6)
    assert acc.floor < direct_accuracy(*floor_split) - 0.01 and "held out" in acc.floor_reference
    # intra-FID: per-class Fréchet distances of the domain features, against the test split's classes
    assert ifid.value == pytest.approx(direct_intra_fid(images, labels, *held_out), rel=1e-4)
    assert ifid.floor == pytest.approx(direct_intra_fid(*floor_split, *held_out), rel=1e-4)
    wrong_labels = (labels + 1) % 10
    wrong = evaluate(images, p, labels=wrong_labels)  # good images of the wrong class
    assert wrong["domain_label_acc_1k"].value == pytest.approx(direct_accuracy(images, wrong_labels), abs=1e-6)
    assert wrong["domain_label_acc_1k"].value < 0.1
    assert wrong["domain_intra_fid_1k_test"].value == pytest.approx(direct_intra_fid(images, wrong_labels, *held_out), rel=1e-4)
    assert wrong["domain_intra_fid_1k_test"].value > 5 * ifid.value


def test_label_accuracy_floor_is_held_out_whichever_split_is_the_reference():
    """With the training split as reference, the floor side is the test split: still held out."""
    test = load_split("fashion-mnist", "test")
    images, labels = test.images[:N], test.labels[:N]
    res = evaluate(images, protocol("train"), labels=labels)
    acc = res["domain_label_acc_1k"]
    assert acc.floor == pytest.approx(direct_accuracy(reference_images("fashion-mnist", "test", N, 0),
                                                      reference_labels("fashion-mnist", "test", N, 0)), abs=1e-6)
    assert "domain_intra_fid_1k_train" in res
    off = evaluate(images, dataclasses.replace(protocol(), eval=dataclasses.replace(protocol().eval, floor=False)),
                   labels=labels)
    assert off["domain_label_acc_1k"].floor is None  # floors switched off: none, not a made-up one


def test_unconditional_samples_are_reported_unavailable():
    p = protocol()
    out = evaluate(load_split("fashion-mnist", "train").images[:N], p)
    assert set(out) == {"domain_label_acc_1k", "domain_intra_fid_1k_test"}
    for r in out.values():
        assert r.value is None and "no labels" in r.unavailable
