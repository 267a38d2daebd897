"""Inception Score against its closed form on logit distributions whose score is known exactly, and against
a direct numpy transcription of Salimans et al. 2016 on random logits."""

from __future__ import annotations

import math

import independent
import numpy as np
import pytest
import torch

from ganbench.metrics.isc import RNG_SEED, SPLITS, inception_score


def confident_logits(labels: np.ndarray, num_classes: int, margin: float) -> torch.Tensor:
    """Logit ``margin`` on each sample's class, 0 elsewhere."""
    logits = np.zeros((len(labels), num_classes))
    logits[np.arange(len(labels)), labels] = margin
    return torch.from_numpy(logits)


def closed_form(num_classes: int, margin: float) -> float:
    """Every p(y|x) puts a = e^m / (e^m + C - 1) on its class and b = 1 / (e^m + C - 1) on each other one; with
    balanced classes p(y) is uniform, so KL(p(y|x) || p(y)) = a log(aC) + (C - 1) b log(bC) for every x."""
    c = num_classes
    a, b = math.exp(margin) / (math.exp(margin) + c - 1), 1 / (math.exp(margin) + c - 1)
    return math.exp(a * math.log(a * c) + (c - 1) * b * math.log(b * c))


@pytest.mark.parametrize("num_classes, margin", [(10, 0.0), (10, 2.0), (10, 30.0), (1000, 5.0)])
def test_one_split_matches_the_closed_form(num_classes, margin):
    labels = np.arange(3 * num_classes) % num_classes  # balanced
    value, std = inception_score(confident_logits(labels, num_classes, margin), splits=1)
    assert value == pytest.approx(closed_form(num_classes, margin), rel=1e-9) and std == 0.0
    assert 1.0 - 1e-12 <= value <= num_classes  # margin 0: 1 (no information); margin 30: ~C (certain, uniform)


def test_every_split_balanced_gives_the_closed_form_with_no_spread():
    """Ten splits of a seeded shuffle: the classes are laid out so that each split, after the shuffle, holds
    every class equally often; each split then scores the closed form and their spread is 0."""
    num_classes, per_split = 10, 50
    n = SPLITS * per_split
    shuffled_labels = np.arange(n) % num_classes  # each run of 50 consecutive samples: 5 of each class
    labels = np.empty(n, dtype=int)
    labels[np.random.RandomState(RNG_SEED).permutation(n)] = shuffled_labels  # the shuffle puts them in that order
    value, std = inception_score(confident_logits(labels, num_classes, 3.0))
    assert value == pytest.approx(closed_form(num_classes, 3.0), rel=1e-9) and std < 1e-9


def test_random_logits_match_the_direct_transcription():
    logits = np.random.default_rng(0).normal(scale=3.0, size=(997, 10))  # 997: splits of unequal size
    got = inception_score(torch.from_numpy(logits))
    assert got == pytest.approx(independent.inception_score_splits(logits, SPLITS, RNG_SEED), rel=1e-9)
    assert got[1] > 0.01  # random splits do differ: the spread is measured, not assumed
