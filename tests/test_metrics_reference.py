"""The reference-feature cache is keyed by everything that changes what an entry holds, logits included:
an entry written by an extractor without logits is never served to one whose metrics need them."""

from __future__ import annotations

import torch

from ganbench.core.assets import cache_root
from ganbench.data import load_split
from ganbench.metrics import parse_metric
from ganbench.metrics.api import EvalContext
from ganbench.extractors import INCEPTION_RESIZE, FeatureSource
from ganbench.metrics.isc import inception_score
from ganbench.metrics.reference import reference_images
from ganbench.spec.protocol import load_protocol

N = 40
PROJECTION = torch.randn(4, 10, generator=torch.Generator().manual_seed(1))


def features_and_logits(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cheap stand-in features: per-image mean, spread and the two half-image means; logits a fixed projection."""
    x = images.float().flatten(1) / 255
    feats = torch.stack([x.mean(1), x.std(1), x[:, :392].mean(1), x[:, 392:].mean(1)], 1)
    return feats, feats @ PROJECTION * 10


def source(with_logits: bool) -> FeatureSource:
    """Two sources with the same name and weight hash that differ only in whether they give logits
    (the converted Inception file, and a user's file with the same feature layers plus the logits layer)."""

    def extract(images: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
        feats, logits = features_and_logits(images)
        return {"features": feats, **({"logits": logits} if with_logits else {})}

    return FeatureSource("inception-v3-compat", "", "c" * 64, INCEPTION_RESIZE, "2048", extract,
                         None if with_logits else "no logits in these weights")


def evaluate_with(src: FeatureSource, protocol, metric: str) -> tuple[dict, EvalContext]:
    samples = torch.randint(0, 256, (N, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ctx = EvalContext(samples, protocol, torch.device("cpu"))
    ctx._sources["inception-v3-compat"] = src
    definition, extractor = parse_metric(metric, protocol.eval.extractor)
    return {r.name: r for r in definition.compute(ctx, extractor)}, ctx


def test_entry_without_logits_is_not_served_to_a_request_for_them(tmp_path, monkeypatch, eval_protocol):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))  # a cache of this test's own
    protocol = load_protocol(eval_protocol(n=N, extractor="inception-v3-compat", metrics=("fid", "is")))
    _, first = evaluate_with(source(False), protocol, "fid")  # writes the test and train entries, no logits
    assert first.cache_hits == {"inception-v3-compat/test": False, "inception-v3-compat/train": False}
    results, ctx = evaluate_with(source(True), protocol, "is")
    floor_images = reference_images("fashion-mnist", "train", N, protocol.eval.reference_seed)
    expected = inception_score(features_and_logits(floor_images)[1])[0]  # IS of the floor images' logits, directly
    (r,) = results.values()
    assert r.floor == expected and ctx.cache_hits["inception-v3-compat/train"] is False
    again, ctx = evaluate_with(source(True), protocol, "is")  # now the entry with logits is cached
    assert ctx.cache_hits["inception-v3-compat/train"] is True and next(iter(again.values())).floor == expected
    _, ctx = evaluate_with(source(False), protocol, "fid")  # and the entries without logits are still there
    assert ctx.cache_hits == {"inception-v3-compat/test": True, "inception-v3-compat/train": True}


STACKED = """
models = ["dcgan"]
seeds = [0]
[data]
dataset = "stacked-mnist"
subset = 300
subset_seed = {subset_seed}
channels = 3
[train]
epochs = 1
[eval]
num_samples = {n}
extractor = "inception-v3-compat"
metrics = ["fid"]
"""
# The keys of a stored dataset's cache entries (as written before drawn datasets could be references): the
# entries already in users' caches are found only while the manifest, and so its hash, is unchanged.
STORED_MANIFEST_KEYS = {"dataset", "split", "num_samples", "seed", "extractor", "weights_sha256", "resize", "layer",
                        "logits", "torch_fidelity", "torch", "numpy_major"}


def stacked_drawn_directly(split_seed: int, n: int, pick_seed: int, num: int) -> torch.Tensor:
    """Stacked MNIST by its definition (three MNIST test digits drawn with the split's seed as R, G, B), then
    the reference seed's pick: written without ganbench's dataset or reference code."""
    mnist = load_split("mnist", "test").images[:, 0]
    triples = torch.randint(len(mnist), (n, 3), generator=torch.Generator().manual_seed(split_seed))
    images = mnist[triples]  # n x 3 x 28 x 28
    return images[torch.randperm(n, generator=torch.Generator().manual_seed(pick_seed))[:num]]


def test_a_drawn_dataset_is_a_reference_drawn_as_training_draws_it(tmp_path, monkeypatch):
    cache = tmp_path / "cache"  # a cache of this test's own, reading MNIST from the real one
    (cache / "data").mkdir(parents=True)
    (cache / "data" / "mnist").symlink_to(cache_root() / "data" / "mnist")
    monkeypatch.setenv("GANBENCH_CACHE", str(cache))
    path = tmp_path / "stacked.toml"
    path.write_text(STACKED.format(subset_seed=5, n=N))
    protocol = load_protocol(str(path))
    samples = torch.randint(0, 256, (N, 3, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ctx = EvalContext(samples, protocol, torch.device("cpu"))
    ctx._sources["inception-v3-compat"] = source(False)
    ref = ctx.side("inception-v3-compat", "reference")
    expected = stacked_drawn_directly(5 + 1_000_003, 300, protocol.eval.reference_seed, N)  # the test split's seed
    assert torch.equal(ref["features"], features_and_logits(expected)[0])
    assert (ref["manifest"]["subset"], ref["manifest"]["subset_seed"]) == (300, 5)
    path.write_text(STACKED.format(subset_seed=6, n=N))  # another draw: another cache entry, not the first one
    other = EvalContext(samples, load_protocol(str(path)), torch.device("cpu"))
    other._sources["inception-v3-compat"] = source(False)
    assert other.side("inception-v3-compat", "reference")["cache_hit"] is False
    assert not torch.equal(other.side("inception-v3-compat", "reference")["features"], ref["features"])


def test_stored_datasets_keep_their_cache_manifest(eval_protocol):
    protocol = load_protocol(eval_protocol(n=N, extractor="inception-v3-compat", metrics=("fid",)))
    ctx = EvalContext(torch.zeros(N, 1, 28, 28, dtype=torch.uint8), protocol, torch.device("cpu"))
    ctx._sources["inception-v3-compat"] = source(False)
    assert set(ctx._manifest("inception-v3-compat", "test")) == STORED_MANIFEST_KEYS
