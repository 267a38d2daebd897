"""The one metric API: values, spreads, floors and provenance against independent answers (tests/independent.py,
closed forms), the naming rule, the reference cache (hits, corrupt entries, provenance), unavailable
Inception Score, and sample checks."""

from __future__ import annotations

import independent
import numpy as np
import pytest
import torch

from ganbench.core.errors import GanbenchError
from ganbench.metrics import evaluate, mlflow_metrics, mlflow_tags
from ganbench.metrics.fid import frechet_distance, gaussian_statistics
from ganbench.metrics.reference import cache_path, check_comparable, reference_images
from ganbench.spec.protocol import load_protocol

@pytest.fixture
def write_protocol(eval_protocol):
    return lambda **kw: load_protocol(eval_protocol(**kw))


@pytest.fixture(scope="module")
def real_samples():
    return reference_images("fashion-mnist", "train", 500, 7)  # real images, not the floor's (seed 0)


def test_recipe_names_values_and_floors(real_samples, write_protocol):
    """Every value, spread and floor of the API against its paper's definition (tests/independent.py) on
    features extracted here from the images each side should hold."""
    from ganbench.extractors.domain import domain_classifier

    proto = write_protocol()
    ctx = {}
    res = evaluate(real_samples, proto, context=ctx)
    assert sorted(res) == sorted(["domain_fid_500_test", "domain_kid_500_test", "domain_is_500",
                                  "domain_precision_k3_500_test", "domain_recall_k3_500_test",
                                  "domain_density_k5_500_test", "domain_coverage_k5_500_test"])
    clf = ctx["ctx"].source("domain")

    def feats(imgs):
        out = clf.extract(imgs, 100)
        return out["features"].double().numpy(), out["logits"].double().numpy()

    (x, x_logits), (test, _) = feats(real_samples), feats(reference_images("fashion-mnist", "test", 500, 0))
    floor, floor_logits = feats(reference_images("fashion-mnist", "train", 500, 0))  # the other split, reference seed

    def fid_of(a, b):
        return frechet_distance(gaussian_statistics(torch.from_numpy(a)), gaussian_statistics(torch.from_numpy(b)))

    fid = res["domain_fid_500_test"]
    # 1e-6: cached real features may come from a process with another thread count, whose kernels round
    # differently in the last float32 bits (FID moved by 1e-8 relative); a wrong formula moves it by far more.
    assert fid.value == pytest.approx(fid_of(x, test), rel=1e-6) and fid.floor == pytest.approx(fid_of(floor, test), rel=1e-6)
    assert fid.value < 3 * fid.floor  # real samples score like the floor
    kid = res["domain_kid_500_test"]
    assert kid.value == pytest.approx(independent.mmd2_unbiased(x, test), rel=1e-5)
    assert kid.std == pytest.approx(np.sqrt(independent.jackknife_variance(x, test)), rel=1e-4)
    assert kid.floor == pytest.approx(independent.mmd2_unbiased(floor, test), rel=1e-5)
    is_ = res["domain_is_500"]
    assert (is_.value, is_.std) == pytest.approx(independent.inception_score_splits(x_logits, 10, 2020), rel=1e-9)
    # the floor's logits may come from the cache (another thread count's rounding, see above)
    assert is_.floor == pytest.approx(independent.inception_score_splits(floor_logits, 10, 2020)[0], rel=1e-6)
    tol = 3 / 500  # a borderline ball membership may flip between float32 cdist and float64 numpy
    for (first, second, k), fn in ((("precision", "recall", 3), independent.precision_recall),
                                   (("density", "coverage", 5), independent.density_coverage)):
        want, want_floor = fn(x, test, k), fn(floor, test, k)
        for i, quantity in enumerate((first, second)):
            r = res[f"domain_{quantity}_k{k}_500_test"]
            assert r.value == pytest.approx(want[i], abs=tol) and r.floor == pytest.approx(want_floor[i], abs=tol)
    # what is logged: each value, the KID's and IS's spread, every floor; the provenance names weights and splits
    logged = mlflow_metrics(res.values())
    expected = {**{r.name: r.value for r in res.values()}, **{f"{r.name}_floor": r.floor for r in res.values()},
                "domain_kid_500_test_std": kid.std, "domain_is_500_std": is_.std}
    assert logged == expected
    sha = domain_classifier("fashion-mnist").weights_sha256
    assert mlflow_tags(res.values())["ganbench.metric.domain_fid_500_test"] == (
        f"extractor=ganbench-domain-fashion-mnist weights={sha[:16]} n=500 reference=fashion-mnist/test "
        "higher_is_better=False floor=fashion-mnist/train vs fashion-mnist/test")
    assert [r.higher_is_better for r in (fid, kid, is_, res["domain_coverage_k5_500_test"])] == [False, False, True, True]


def test_collapsed_samples_score_worse(real_samples, write_protocol):
    proto = write_protocol(metrics=("fid", "pr", "dc"))
    collapsed = real_samples.clone()
    collapsed[:] = real_samples[0]
    good, bad = evaluate(real_samples, proto), evaluate(collapsed, proto)
    assert bad["domain_fid_500_test"].value > 20 * good["domain_fid_500_test"].value
    assert bad["domain_recall_k3_500_test"].value < 0.05 < 0.5 < good["domain_recall_k3_500_test"].value
    assert bad["domain_coverage_k5_500_test"].value < 0.05


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
    # recomputed features equal the cached ones up to the rounding of another thread count (see above)
    assert second["domain_fid_500_test"].value == pytest.approx(first["domain_fid_500_test"].value, rel=1e-6)
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
    from ganbench.extractors import inception_weights

    proto = write_protocol(n=20, extractor="inception-v3-compat", metrics=("is", "is@domain"))
    ctx = {}
    res = evaluate(real_samples[:20], proto, context=ctx)
    assert sorted(res) == ["domain_is_20", "is_20"]
    logits = ctx["ctx"].source("domain").extract(real_samples[:20], 20)["logits"].double().numpy()
    got = res["domain_is_20"]
    assert (got.value, got.std) == pytest.approx(independent.inception_score_splits(logits, 10, 2020), rel=1e-9)
    r = res["is_20"]
    if inception_weights(allow_fetch=False).has_logits:
        assert r.value > 1 and r.unavailable is None
    else:
        assert r.value is None and "1008-way logits" in r.unavailable
        assert "is_20" not in mlflow_metrics(res.values())  # never a made-up number
        assert "unavailable=" in mlflow_tags(res.values())["ganbench.metric.is_20"]


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


# ----------------------------------------------------------------------------- the API on designed features


def exact_gaussian(n: int, mean: np.ndarray, scale: np.ndarray, seed: int) -> np.ndarray:
    """n points whose sample mean is ``mean`` and sample covariance (ddof 1) is diag(scale^2), exactly."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened: sample covariance I
    return mean + z * scale


def designed_context(protocol, sides: dict):
    """An EvalContext whose extractor returns the given features for "samples", "reference" and "floor"."""
    from ganbench.metrics.api import EvalContext
    from ganbench.extractors import FeatureSource

    source = FeatureSource("designed", None, "ab" * 32, "none", "test", lambda images, batch: {})
    man = {"extractor": "designed", "num_samples": protocol.eval.num_samples}

    class Designed(EvalContext):
        def source(self, extractor: str) -> FeatureSource:
            return source

        def _compute_side(self, extractor: str, which: str) -> dict | None:
            x = sides.get(which)
            return None if x is None else {"features": torch.from_numpy(x), "manifest": {**man, "split": which}}

    n = protocol.eval.num_samples
    return Designed(torch.zeros(n, 1, 28, 28, dtype=torch.uint8), protocol, torch.device("cpu"))


def test_fid_kid_floor_and_provenance_on_features_with_known_statistics(write_protocol):
    """FID of N(m1, diag(s1^2)) vs N(m2, diag(s2^2)) is |m1 - m2|^2 + sum (s1 - s2)^2 (Heusel et al. 2017,
    eq. 6, commuting covariances): the API must return it for the samples and for the floor side, under the
    rule's names, with the provenance of the extractor; KID against the numpy MMD^2 and jackknife."""
    from ganbench.metrics import METRICS

    n, d = 200, 6
    rng = np.random.default_rng(0)
    means, scales = rng.normal(size=(3, d)), rng.uniform(0.5, 2.0, size=(3, d))
    sides = {w: exact_gaussian(n, means[i], scales[i], seed=i) for i, w in enumerate(("samples", "reference", "floor"))}

    def closed_form(a: int, b: int) -> float:
        return float(((means[a] - means[b]) ** 2).sum() + ((scales[a] - scales[b]) ** 2).sum())

    ctx = designed_context(write_protocol(n=n, metrics=("fid", "kid")), sides)
    (fid,) = METRICS["fid"].compute(ctx, "designed")
    assert fid.name == "fid_200_test" and fid.num_samples == n and not fid.higher_is_better
    assert fid.value == pytest.approx(closed_form(0, 1), rel=1e-9) and fid.floor == pytest.approx(closed_form(2, 1), rel=1e-9)
    assert fid.provenance() == ("extractor=designed weights=abababababababab n=200 reference=fashion-mnist/test "
                                "higher_is_better=False floor=fashion-mnist/train vs fashion-mnist/test")
    (kid,) = METRICS["kid"].compute(ctx, "designed")
    x, ref, floor = sides["samples"], sides["reference"], sides["floor"]
    assert kid.name == "kid_200_test"
    assert kid.value == pytest.approx(independent.mmd2_unbiased(x, ref), rel=1e-9)
    assert kid.std == pytest.approx(np.sqrt(independent.jackknife_variance(x, ref)), rel=1e-9)
    assert kid.floor == pytest.approx(independent.mmd2_unbiased(floor, ref), rel=1e-9)
    assert mlflow_metrics([fid, kid]) == pytest.approx({
        "fid_200_test": closed_form(0, 1), "fid_200_test_floor": closed_form(2, 1),
        "kid_200_test": kid.value, "kid_200_test_std": kid.std, "kid_200_test_floor": kid.floor}, rel=1e-9)


def test_without_a_floor_side_nothing_is_made_up(write_protocol):
    from ganbench.metrics import METRICS

    sides = {"samples": exact_gaussian(50, np.zeros(3), np.ones(3), 0), "reference": exact_gaussian(50, np.ones(3), np.ones(3), 1)}
    (fid,) = METRICS["fid"].compute(designed_context(write_protocol(n=50, metrics=("fid",)), sides), "designed")
    assert fid.value == pytest.approx(3.0, rel=1e-9)  # |0 - 1|^2 in each of 3 dimensions, equal covariances
    assert fid.floor is None and fid.floor_reference == "" and "floor=" not in fid.provenance()
    assert mlflow_metrics([fid]) == {"fid_50_test": fid.value}


# ----------------------------------------------------------------------------- the naming rule


@pytest.mark.parametrize("args, name", [
    (("fid", 10000, "test"), "fid_10k_test"),
    (("kid", 10000, "test", None, "domain"), "domain_kid_10k_test"),
    (("is", 10000), "is_10k"),
    (("precision", 10000, "test", 3), "precision_k3_10k_test"),
    (("coverage", 500, "train", 5, "domain"), "domain_coverage_k5_500_train"),
    (("ppl_w", 2000, None, None, "domain"), "domain_ppl_w_2k"),
    (("fid", 1500, "test"), "fid_1500_test"),  # not a multiple of 1000: written out
])
def test_metric_name_and_its_inverse(args, name):
    from ganbench.metrics import MetricName, metric_name, parse_metric_name

    assert metric_name(*args) == name
    quantity, n, reference, k, space = (list(args) + [None] * 5)[:5]
    for suffix in ("", "_std", "_floor"):
        assert parse_metric_name(name + suffix) == MetricName(quantity, n, reference, k, space, suffix)


def test_names_of_other_forms_do_not_parse():
    from ganbench.metrics import parse_metric_name

    for name in ("fid10k_test", "images_seen", "wall_time_s", "final_d_loss", "kid_test"):
        assert parse_metric_name(name) is None, name


@pytest.mark.parametrize("old, new", [
    ("fid256_test", "fid_256_test"), ("fid10k_test_floor", "fid_10k_test_floor"),
    ("domain_kid1k_test_std", "domain_kid_1k_test_std"), ("is10k", "is_10k"), ("domain_is500", "domain_is_500"),
    ("pr10k3_test_precision", "precision_k3_10k_test"), ("domain_pr5003_test_recall", "domain_recall_k3_500_test"),
    ("domain_dc5005_test_density", "domain_density_k5_500_test"), ("dc10k5_train_coverage", "coverage_k5_10k_train"),
    ("domain_ppl2k_w", "domain_ppl_w_2k"), ("domain_ppl100_z", "domain_ppl_z_100"),
    ("fid_256_test", None), ("images_seen", None), ("final_g_loss", None),
])
def test_old_names_map_to_the_rule(old, new):
    from ganbench.metrics import legacy_metric_name

    assert legacy_metric_name(old) == new


def test_direction_from_the_quantity_of_a_name():
    from ganbench.metrics import quantity_direction

    want = {"fid_10k_test": False, "domain_kid_1k_test": False, "is_10k": True, "precision_k3_10k_test": True,
            "domain_recall_k3_500_test": True, "density_k5_10k_test": True, "coverage_k5_10k_test": True,
            "domain_ppl_w_2k": False, "images_seen": None, "fid10k_test": None}
    assert {name: quantity_direction(name) for name in want} == want
