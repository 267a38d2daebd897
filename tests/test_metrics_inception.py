"""The Inception feature path: ganbench's (channels_last, grayscale repeated) vs torch-fidelity's own call."""

from __future__ import annotations

import torch

from ganbench.metrics.extractors import inception_source, inception_weights


def test_features_match_torch_fidelity_extractor():
    from torch_fidelity.utils import create_feature_extractor

    from ganbench.metrics.reference import reference_images

    weights = inception_weights(allow_fetch=False)
    images = reference_images("fashion-mnist", "test", 2, 0)
    ours = inception_source(torch.device("cpu"), weights).extract(images, 2)["features"]
    tf = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False, verbose=False,
                                  feature_extractor_weights_path=str(weights.path))
    with torch.no_grad():
        (theirs,) = tf(images.expand(-1, 3, -1, -1).contiguous())
    assert ours.shape == (2, 2048) and ours.dtype == torch.float32
    assert (ours - theirs).abs().max().item() < 1e-4
    assert theirs.abs().max().item() > 0.1  # real features, not zeros


def test_inception_score_unavailable_without_logits():
    weights = inception_weights(allow_fetch=False)
    src = inception_source(torch.device("cpu"), weights)
    if weights.has_logits:
        assert src.logits_unavailable is None
    else:
        assert "1008-way logits" in src.logits_unavailable and weights.source in src.logits_unavailable
