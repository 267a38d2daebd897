"""Conditional metrics on real images: right labels score like the real data, wrong labels are caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ganbench.data import load_split
from ganbench.metrics import evaluate
from ganbench.metrics.conditional import intra_class_fid, label_accuracy
from ganbench.metrics.fid import frechet_distance
from ganbench.metrics.reference import gaussian_statistics, reference_images, reference_labels
from ganbench.protocol import load_protocol

N = 1000


def protocol():
    p = load_protocol("fashion-zoo-smoke")
    return dataclasses.replace(p, eval=dataclasses.replace(p.eval, num_samples=N, metrics=("label_acc", "intra_fid")))


def test_closed_forms():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    assert label_accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 3, generator=gen), torch.randn(400, 3, generator=gen) + 1
    la, lb = torch.arange(400) % 2, torch.arange(400) % 2
    expected = np.mean([frechet_distance(gaussian_statistics(a[la == c]), gaussian_statistics(b[lb == c])) for c in (0, 1)])
    assert abs(intra_class_fid(a, la, b, lb) - expected) < 1e-9


def test_real_images_with_their_labels_versus_shuffled_labels():
    p = protocol()
    train = load_split("fashion-mnist", "train")
    images, labels = train.images[:N], train.labels[:N]
    right = evaluate(images, p, labels=labels)
    acc, ifid = right[f"domain_label_acc1k"], right["domain_intra_fid1k_test"]
    # the floor is the classifier on the real images of the other split (train, seeded permutation)
    floor_imgs = reference_images("fashion-mnist", "train", N, 0)
    assert acc.value > 0.9 and acc.floor > 0.9 and acc.higher_is_better
    assert ifid.value < 5 * ifid.floor + 1 and not ifid.higher_is_better
    assert len(floor_imgs) == N and torch.equal(reference_labels("fashion-mnist", "test", 10_000, 0),
                                                load_split("fashion-mnist", "test").labels)
    wrong = evaluate(images, p, labels=(labels + 1) % 10)  # good images of the wrong class
    assert wrong["domain_label_acc1k"].value < 0.1
    assert wrong["domain_intra_fid1k_test"].value > 5 * ifid.value


def test_unconditional_samples_are_reported_unavailable():
    p = protocol()
    out = evaluate(load_split("fashion-mnist", "train").images[:N], p)
    for r in out.values():
        assert r.value is None and "no labels" in r.unavailable
