"""The one metric API on the domain extractor: recipe names, floors, the reference cache (hits, corrupt
entries, provenance), unavailable Inception Score, and sample checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ganbench.errors import GanbenchError
from ganbench.metrics import evaluate, mlflow_metrics, mlflow_tags
from ganbench.metrics.fid import frechet_distance, gaussian_statistics
from ganbench.metrics.reference import cache_path, check_comparable, reference_images
from ganbench.protocol import load_protocol

@pytest.fixture
def write_protocol(eval_protocol):
    return lambda **kw: load_protocol(eval_protocol(**kw))


@pytest.fixture(scope="module")
def real_samples():
    return reference_images("fashion-mnist", "train", 500, 7)  # real images, not the floor's (seed 0)


def test_recipe_names_values_and_floors(real_samples, write_protocol):
    proto = write_protocol()
    ctx = {}
    res = evaluate(real_samples, proto, context=ctx)
    assert sorted(res) == sorted(["domain_fid500_test", "domain_kid500_test", "domain_is500",
                                  "domain_pr5003_test_precision", "domain_pr5003_test_recall",
                                  "domain_dc5005_test_density", "domain_dc5005_test_coverage"])
    fid = res["domain_fid500_test"]
    assert fid.extractor == "ganbench-domain-fashion-mnist" and fid.num_samples == 500 and not fid.higher_is_better
    assert fid.reference == "fashion-mnist/test" and fid.floor_reference == "fashion-mnist/train vs fashion-mnist/test"
    # the floor is FID(500 train images picked by the reference seed, 500 test images), recomputed here independently
    clf = ctx["ctx"].source("domain")
    feats = lambda imgs: clf.extract(imgs, 100)["features"]  # noqa: E731
    test = reference_images("fashion-mnist", "test", 500, 0)
    floor_train = reference_images("fashion-mnist", "train", 500, 0)
    assert fid.floor == pytest.approx(frechet_distance(gaussian_statistics(feats(floor_train)),
                                                       gaussian_statistics(feats(test))), rel=1e-9)
    assert fid.value == pytest.approx(frechet_distance(gaussian_statistics(feats(real_samples)),
                                                       gaussian_statistics(feats(test))), rel=1e-9)
    # real samples score like the floor
    assert fid.value < 3 * fid.floor
    assert res["domain_kid500_test"].std is not None and res["domain_kid500_test"].std > 0
    is_ = res["domain_is500"]
    assert 1.0 < is_.value <= 10.0 and is_.higher_is_better and is_.std > 0
    assert 0.5 < res["domain_pr5003_test_precision"].value <= 1 and 0.5 < res["domain_dc5005_test_coverage"].value <= 1
    logged = mlflow_metrics(res.values())
    assert logged["domain_fid500_test_floor"] == fid.floor and "domain_kid500_test_std" in logged
    assert "floor=fashion-mnist/train" in mlflow_tags(res.values())["ganbench.metric.domain_fid500_test"]


def test_collapsed_samples_score_worse(real_samples, write_protocol):
    proto = write_protocol(metrics=("fid", "pr", "dc"))
    collapsed = real_samples.clone()
    collapsed[:] = real_samples[0]
    good, bad = evaluate(real_samples, proto), evaluate(collapsed, proto)
    assert bad["domain_fid500_test"].value > 20 * good["domain_fid500_test"].value
    assert bad["domain_pr5003_test_recall"].value < 0.05 < 0.5 < good["domain_pr5003_test_recall"].value
    assert bad["domain_dc5005_test_coverage"].value < 0.05


def test_cache_hit_and_corrupt_entry(real_samples, write_protocol):
    proto = write_protocol(metrics=("fid",))
    evaluate(real_samples, proto)  # fills the cache
    ctx = {}
    first = evaluate(real_samples, proto, context=ctx)
    assert ctx["ctx"].cache_hits == {"domain/test": True, "domain/train": True}
    man = ctx["ctx"].side("domain", "reference")["manifest"]
    path = cache_path(man)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte inside the stored arrays
    path.write_bytes(bytes(data))
    ctx2 = {}
    second = evaluate(real_samples, proto, context=ctx2)
    assert ctx2["ctx"].cache_hits["domain/test"] is False  # detected and recomputed
    assert second["domain_fid500_test"].value == first["domain_fid500_test"].value
    ctx3 = {}
    evaluate(real_samples, proto, context=ctx3)
    assert ctx3["ctx"].cache_hits["domain/test"] is True  # rewritten correctly


def test_different_provenance_is_never_compared(real_samples, write_protocol):
    proto = write_protocol(metrics=("fid",))
    ctx = {}
    evaluate(real_samples, proto, context=ctx)
    man = ctx["ctx"].side("domain", "reference")["manifest"]
    check_comparable(man, {**man, "split": "train", "seed": 3})  # what differs by design
    with pytest.raises(GanbenchError, match="weights_sha256"):
        check_comparable(man, {**man, "weights_sha256": "0" * 64})
    with pytest.raises(GanbenchError, match="num_samples"):
        check_comparable(man, {**man, "num_samples": 499})


def test_per_metric_extractor_and_unavailable_inception_score(real_samples, write_protocol):
    from ganbench.metrics.extractors import inception_weights

    proto = write_protocol(n=20, extractor="inception-v3-compat", metrics=("is", "is@domain"))
    res = evaluate(real_samples[:20], proto)
    assert "domain_is20" in res and res["domain_is20"].value > 1
    if not inception_weights(allow_fetch=False).has_logits:
        r = res["is20"]
        assert r.value is None and "1008-way logits" in r.unavailable
        assert "is20" not in mlflow_metrics(res.values())  # never a made-up number
        assert "unavailable=" in mlflow_tags(res.values())["ganbench.metric.is20"]


def test_sample_checks(real_samples, write_protocol):
    proto = write_protocol(metrics=("fid",))
    with pytest.raises(GanbenchError, match="evaluates 500 samples, got 499"):
        evaluate(real_samples[:499], proto)
    with pytest.raises(GanbenchError, match="N x 1 x 28 x 28"):
        evaluate(real_samples.expand(-1, 3, -1, -1), proto)
    with pytest.raises(GanbenchError, match="uint8"):
        evaluate(real_samples.float(), proto)


def test_protocol_rejects_unknown_metric_or_extractor(write_protocol):
    with pytest.raises(GanbenchError, match="eval.metrics"):
        write_protocol(metrics=("fid@vgg",))
    with pytest.raises(GanbenchError, match="eval.extractor"):
        write_protocol(extractor="clip")


def test_metrics_run_in_ieee_fp32_and_leave_the_precision_flags_as_they_were(real_samples, write_protocol, monkeypatch):
    """cuDNN may use TF32 for convolutions by default; evaluation switches TF32 off for every metric (it moves
    FID by an unmeasured amount) and restores the caller's flags. The flags are what cuDNN and cuBLAS read,
    so a metric that records them sees what its convolutions would run in."""
    from ganbench.metrics import METRICS, MetricDef

    seen = []

    def probe(ctx, extractor):
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return []

    monkeypatch.setitem(METRICS, "precision_probe", MetricDef("precision_probe", False, probe))
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        evaluate(real_samples, write_protocol(metrics=("precision_probe",)))
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
    assert seen == [(False, False)]
