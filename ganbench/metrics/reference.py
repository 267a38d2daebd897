"""Features of real splits, cached by content key, with a provenance manifest.

The key covers everything that changes the stored content: dataset, split, sample count and the
seed that picks the images (for a drawn dataset also the size and seed of its draw), the extractor name, its weight hash, the resize path, the feature layer,
whether the entry holds the extractor's logits, and the library versions. Each entry is one .npz written atomically holding the features (float32,
exactly what the extractor returned), their Gaussian statistics (float64), the logits when the
extractor has them, the manifest, and a SHA-256 of the arrays: an entry whose manifest does not
match, whose checksum is wrong or that cannot be read is recomputed.

Two sets of features are compared only when their manifests agree on everything but the split
and the seed (``check_comparable``), so statistics of different provenance never meet.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Callable

import numpy as np
import torch
import torch_fidelity

from ganbench.core.assets import atomic_write_bytes, cache_dir
from ganbench.core.errors import GanbenchError
from ganbench.core.hooks import materialised
from ganbench.data import ImageSet, get_dataset
from ganbench.spec.protocol import DataSpec, content_hash

ARRAYS = ("features", "logits", "mu", "sigma")


def reference_images(data: DataSpec | str, split: str, num_samples: int, seed: int, data_root=None) -> torch.Tensor:
    """The first ``num_samples`` images of a seeded permutation of the protocol's split (all of it when equal).
    ``data``: the protocol's ``[data]`` table (a drawn dataset's split is drawn as training draws it), or a
    dataset name for its defaults (a stored dataset's split as stored)."""
    spec = _data_spec(data)
    images = _whole(spec, split, data_root).images
    if num_samples > len(images):
        raise GanbenchError(f"{spec.dataset}/{split} has {len(images)} images; the protocol asks for {num_samples}")
    if num_samples == len(images):
        return materialised(images)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return materialised(images[order[:num_samples]])


def reference_labels(data: DataSpec | str, split: str, num_samples: int, seed: int, data_root=None) -> torch.Tensor:
    """The labels of :func:`reference_images` (the same seeded permutation)."""
    labels = _whole(_data_spec(data), split, data_root).labels
    if num_samples >= len(labels):
        return labels[:num_samples]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    return labels[order[:num_samples]]


def _data_spec(data: DataSpec | str) -> DataSpec:
    return DataSpec(data) if isinstance(data, str) else data


def _whole(spec: DataSpec, split: str, data_root) -> ImageSet:
    return get_dataset(spec.dataset).whole_split(spec, split, data_root)


def manifest(dataset: str, split: str, num_samples: int, seed: int, source) -> dict:
    """Provenance of one set of features (``source`` is an ``extractors.FeatureSource``)."""
    return {"dataset": dataset, "split": split, "num_samples": num_samples, "seed": seed,
            "extractor": source.name, "weights_sha256": source.weights_sha256, "resize": source.resize,
            "layer": source.layer, "logits": source.logits_unavailable is None,  # IS needs them: part of the key
            "torch_fidelity": torch_fidelity.__version__,
            "torch": torch.__version__.split("+")[0], "numpy_major": np.__version__.split(".")[0]}


def check_comparable(a: dict, b: dict) -> None:
    """Raise unless two manifests differ only in what is being compared (split, seed)."""
    keys = sorted((set(a) | set(b)) - {"split", "seed"})
    diff = [k for k in keys if a.get(k) != b.get(k)]
    if diff:
        detail = ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in diff)
        raise GanbenchError(f"refusing to compare features of different provenance ({detail})")


def gaussian_statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    """Mean and unbiased covariance of N x D features, in float64."""
    x = features.to(torch.float64).numpy()
    return {"mu": x.mean(axis=0), "sigma": np.cov(x, rowvar=False)}


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def cache_path(man: dict):
    return cache_dir("refstats") / f"{content_hash(man)}.npz"


def load_entry(man: dict) -> dict[str, np.ndarray] | None:
    """The cached arrays for ``man``, or None when absent, unreadable, stale or corrupt."""
    path = cache_path(man)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ARRAYS if k in z.files}
            stored_man, stored_sum = json.loads(str(z["manifest"])), str(z["checksum"])
    except Exception:  # truncated or not an npz
        return None
    if stored_man != man or stored_sum != _checksum(arrays) or not np.isfinite(arrays["sigma"]).all():
        return None
    if man.get("logits") and "logits" not in arrays:  # the manifest promises logits the entry lacks
        return None
    return arrays


def cached_features(man: dict, compute: Callable[[], dict[str, torch.Tensor]]) -> dict:
    """Features, logits (when any) and Gaussian statistics for ``man``: from the cache or ``compute()``.
    Returns {"features": float32 tensor, "logits": tensor | None, "mu", "sigma": float64 arrays, "cache_hit": bool}."""
    arrays = load_entry(man)
    hit = arrays is not None
    if arrays is None:
        out = compute()
        feats = out["features"].to(torch.float32)
        arrays = {"features": feats.numpy(), **gaussian_statistics(feats)}
        if out.get("logits") is not None:
            arrays["logits"] = out["logits"].to(torch.float32).numpy()
        elif man.get("logits"):
            raise GanbenchError(f"extractor {man['extractor']!r} returned no logits though its source declares them")
        buf = io.BytesIO()
        np.savez(buf, **arrays, manifest=np.array(json.dumps(man)), checksum=np.array(_checksum(arrays)))
        atomic_write_bytes(cache_path(man), buf.getvalue())
    return {"features": torch.from_numpy(arrays["features"]),
            "logits": torch.from_numpy(arrays["logits"]) if "logits" in arrays else None,
            "mu": arrays["mu"], "sigma": arrays["sigma"], "cache_hit": hit}
