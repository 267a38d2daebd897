"""The domain classifier: accuracy (subset-trained here, full-set in the benchmark and the slow test),
determinism, the cache (reuse, corrupt entries), and the features/logits contract."""

from __future__ import annotations

import pytest
import torch

from ganbench.core.errors import GanbenchError
from ganbench.extractors.domain import (FEATURE_DIM, DomainRecipe, _cached, classifier_path, domain_classifier,
                                     state_sha256, train_domain_net)

# A fast stand-in for the full recipe: 2 epochs on 3k training images (measured: 95.6% MNIST, 82.1%
# Fashion-MNIST); the thresholds leave slack for thread-count rounding differences. The full recipe's
# 99.0% / 91.0% are asserted on the full training set below (slow) and in benchmarks/bench_metrics.py.
SUBSET = DomainRecipe(epochs=2, subset=3000)
SUBSET_MIN_ACCURACY = {"mnist": 0.94, "fashion-mnist": 0.79}
FULL_MIN_ACCURACY = {"mnist": 0.990, "fashion-mnist": 0.910}


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_subset_trained_accuracy(dataset):
    net, acc, seconds = train_domain_net(dataset, SUBSET)
    assert acc >= SUBSET_MIN_ACCURACY[dataset], acc


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_full_classifier_accuracy(dataset):
    clf = domain_classifier(dataset)  # from the cache, or trained on the full split now
    assert clf.test_accuracy >= FULL_MIN_ACCURACY[dataset], clf.test_accuracy


TINY = DomainRecipe(epochs=1, subset=600, batch_size=64)


def test_training_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, acc_a, _ = train_domain_net("mnist", TINY)
    after = torch.rand(1)
    b, acc_b, _ = train_domain_net("mnist", TINY)
    assert state_sha256(a.state_dict()) == state_sha256(b.state_dict())
    assert acc_a == acc_b
    assert torch.equal(before, after)  # the global RNG stream was not consumed
    c, _, _ = train_domain_net("mnist", DomainRecipe(epochs=1, subset=600, batch_size=64, seed=1))
    assert state_sha256(c.state_dict()) != state_sha256(a.state_dict())


def test_cache_reuse_and_corrupt_entry_is_retrained():
    path = classifier_path("mnist", TINY)
    path.unlink(missing_ok=True)
    _cached.cache_clear()
    try:
        first = domain_classifier("mnist", recipe=TINY)
        assert path.is_file()
        stamp = path.stat().st_mtime_ns
        _cached.cache_clear()
        again = domain_classifier("mnist", recipe=TINY)
        assert path.stat().st_mtime_ns == stamp and again.weights_sha256 == first.weights_sha256
        path.write_bytes(path.read_bytes()[:1000])  # truncated file
        _cached.cache_clear()
        retrained = domain_classifier("mnist", recipe=TINY)
        assert retrained.weights_sha256 == first.weights_sha256  # deterministic: the same weights again
        assert retrained.test_accuracy == first.test_accuracy
        assert path.stat().st_mtime_ns != stamp
    finally:
        _cached.cache_clear()


def test_features_logits_contract():
    clf = domain_classifier("mnist", recipe=TINY)
    from ganbench.data import load_split

    test = load_split("mnist", "test")
    imgs = test.images[:257]
    f, lg = clf.features(imgs, batch_size=64), clf.logits(imgs)
    assert f.shape == (257, FEATURE_DIM) and f.dtype == torch.float32
    assert lg.shape == (257, 10) and lg.dtype == torch.float32
    assert torch.allclose(f, clf.features(imgs, batch_size=1000), atol=1e-5)  # batch-size invariant (eval mode)
    assert (lg.argmax(1) == test.labels[:257]).float().mean() > 0.5  # it is a classifier
    assert not torch.is_grad_enabled() or not f.requires_grad
    with pytest.raises(GanbenchError, match="uint8 images N x 1 x 28 x 28"):
        clf.features(imgs.float())
    with pytest.raises(GanbenchError, match="Unknown dataset"):
        domain_classifier("cifar-11")
