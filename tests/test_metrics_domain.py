"""The domain classifiers: the shipped files (pinned, their stated accuracy re-measured, damaged files named),
a user's retrained file (a new identity), the training code's accuracy (subset-trained here, the full recipe in
the slow test and the benchmark), determinism, and the features/logits contract."""

from __future__ import annotations

import pytest
import torch

from ganbench.core.errors import GanbenchError
from ganbench.data import load_split
from ganbench.extractors import domain as dom
from ganbench.extractors.domain import (FEATURE_DIM, SHIPPED, DomainRecipe, accuracy, domain_classifier,
                                        state_sha256, train_domain_net, write_classifier)
from ganbench.spec.protocol import load_protocol, resolve

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
def test_the_full_recipe_still_reaches_its_accuracy_on_the_test_split(dataset, tmp_path):
    """The training code stays for anyone who rebuilds the classifiers: the full recipe (about 90 s per dataset
    on 2 CPU cores) reaches the accuracy of the shipped files, into a file of its own."""
    clf = write_classifier(dataset, tmp_path / f"domain-{dataset}.pt", progress=False)
    assert clf.test_accuracy >= FULL_MIN_ACCURACY[dataset], clf.test_accuracy
    assert (tmp_path / f"domain-{dataset}.pt").is_file()


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_shipped_classifier_is_pinned_and_its_stated_accuracy_holds_here(dataset):
    """The shipped weights load without training, match their pins, and classify the 10k test images as well as
    stated when they were trained (a prediction on a borderline image may flip with another CPU's rounding:
    at most 10 of 10k)."""
    clf = domain_classifier(dataset)
    assert clf.weights_sha256 == SHIPPED[dataset].weights_sha256
    assert clf.test_accuracy >= FULL_MIN_ACCURACY[dataset]
    test = load_split(dataset, "test")
    assert accuracy(clf.net, test.images, test.labels) == pytest.approx(SHIPPED[dataset].test_accuracy, abs=1e-3)


def test_a_damaged_or_missing_classifier_is_named_and_never_retrained(tmp_path, monkeypatch):
    shipped = dom.SHIPPED_DIR / "domain-mnist.pt"
    bad = tmp_path / "shipped"
    bad.mkdir()
    (bad / "domain-mnist.pt").write_bytes(shipped.read_bytes()[:5000])  # truncated
    monkeypatch.setattr(dom, "SHIPPED_DIR", bad)
    dom._loaded.cache_clear()
    try:
        with pytest.raises(GanbenchError, match=r"domain-mnist.pt: SHA-256 differs from its pin .*reinstall"):
            domain_classifier("mnist")
        (problem,) = [c.problem for c in dom.verify_classifiers() if c.name == "domain-mnist"]
        assert "differs from its pin" in problem
        monkeypatch.setenv("GANBENCH_DOMAIN_WEIGHTS", str(tmp_path / "nowhere"))
        with pytest.raises(GanbenchError, match="GANBENCH_DOMAIN_WEIGHTS=.*no such folder"):
            domain_classifier("mnist")
        monkeypatch.setenv("GANBENCH_DOMAIN_WEIGHTS", str(tmp_path))
        with pytest.raises(GanbenchError, match="no domain classifier for mnist: .*`ganbench data train-domain mnist"):
            domain_classifier("mnist")
        assert list(tmp_path.glob("*.pt")) == []  # nothing was trained
    finally:
        dom._loaded.cache_clear()


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


def test_a_retrained_classifier_is_used_only_when_asked_and_changes_the_identity(tmp_path, monkeypatch):
    """``ganbench data train-domain`` writes a new file; GANBENCH_DOMAIN_WEIGHTS uses it, and every protocol that
    measures in its feature space then has another evaluation identity (never the shipped one's)."""
    proto = load_protocol("fashion-zoo-smoke")
    shipped = resolve(proto, None, ["dcgan"], [0])[0].identity
    mine = write_classifier("fashion-mnist", tmp_path / "domain-fashion-mnist.pt", TINY, progress=False)
    assert mine.weights_sha256 != SHIPPED["fashion-mnist"].weights_sha256
    monkeypatch.setenv("GANBENCH_DOMAIN_WEIGHTS", str(tmp_path))
    dom._loaded.cache_clear()
    try:
        assert domain_classifier("fashion-mnist").weights_sha256 == mine.weights_sha256
        again = resolve(proto, None, ["dcgan"], [0])[0].identity
        assert again.eval_parts["weights/domain-fashion-mnist"] == mine.weights_sha256
        assert again.eval_hash != shipped.eval_hash and again.hash == shipped.hash  # the same training
        assert again.changes(shipped) == ["domain classifier weights (fashion-mnist) changed"]
        state = torch.load(tmp_path / "domain-fashion-mnist.pt", weights_only=True)
        state["state"]["head.1.bias"] += 1.0  # altered after it was written: its own stored hash no longer holds
        torch.save(state, tmp_path / "domain-fashion-mnist.pt")
        dom._loaded.cache_clear()
        with pytest.raises(GanbenchError, match="do not match their hash"):
            domain_classifier("fashion-mnist")
    finally:
        dom._loaded.cache_clear()


def test_features_logits_contract():
    clf = domain_classifier("mnist")
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
