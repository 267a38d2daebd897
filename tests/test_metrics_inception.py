"""The Inception feature path: ganbench's (channels_last, BatchNorm folded, grayscale repeated) against
torch-fidelity's own module, batch-size invariance, and the reason Inception Score is unavailable."""

from __future__ import annotations

import pytest
import torch

from ganbench.extractors import inception_source, inception_weights

TOLERANCE = 1e-4  # float32 rounding of two convolution orders; pool3 features are O(0.1-10)


@pytest.fixture(scope="module")
def images():
    from ganbench.metrics.reference import reference_images

    return reference_images("fashion-mnist", "test", 3, 0)


@pytest.fixture(scope="module")
def weights():
    return inception_weights(allow_fetch=False)


def test_features_match_torch_fidelity_extractor(images, weights):
    from torch_fidelity.utils import create_feature_extractor

    ours = inception_source(torch.device("cpu"), weights).extract(images, 3)["features"]
    tf = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False, verbose=False,
                                  feature_extractor_weights_path=str(weights.path))
    with torch.no_grad():
        (theirs,) = tf(images.expand(-1, 3, -1, -1).contiguous())
    assert ours.shape == (3, 2048) and ours.dtype == torch.float32
    assert (ours - theirs).abs().max().item() < TOLERANCE
    # the agreement means something only if different images are far apart in comparison
    assert min((theirs[i] - theirs[j]).abs().max().item() for i, j in ((0, 1), (0, 2), (1, 2))) > 1000 * TOLERANCE


def test_features_do_not_depend_on_the_batch_size(images, weights):
    src = inception_source(torch.device("cpu"), weights)
    assert (src.extract(images, 1)["features"] - src.extract(images, 3)["features"]).abs().max().item() < TOLERANCE


def test_inception_score_unavailable_without_logits(weights):
    src = inception_source(torch.device("cpu"), weights)
    if weights.has_logits:
        assert src.logits_unavailable is None
    else:
        assert "1008-way logits" in src.logits_unavailable and weights.source in src.logits_unavailable
