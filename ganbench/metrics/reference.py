"""Reference-split statistics, cached by content key.

The key covers everything that changes the numbers: dataset, split, sample count and the seed
that picks the images, the extractor name, its weight hash, the resize path, the feature layer
and the library versions. Each entry is one .npz written atomically, holding its provenance
manifest; an entry whose manifest does not match or that cannot be read is recomputed.
"""

from __future__ import annotations

import io
import json

import numpy as np
import torch

from ganbench.assets import atomic_write_bytes, cache_dir
from ganbench.data import load_split
from ganbench.protocol import EvalSpec, content_hash

RESIZE = "torch-fidelity interpolate_bilinear_2d_like_tensorflow1x to 299x299"


def reference_images(dataset: str, split: str, num_samples: int, seed: int, data_root=None) -> torch.Tensor:
    """The first ``num_samples`` images of a seeded permutation of the split (all of it when equal)."""
    images = load_split(dataset, split, data_root).images
    if num_samples > len(images):
        from ganbench.errors import GanbenchError

        raise GanbenchError(f"{dataset}/{split} has {len(images)} images; the protocol asks for {num_samples}")
    if num_samples == len(images):
        return images
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[order[:num_samples]]


def manifest(dataset: str, split: str, ev: EvalSpec, weights_sha256: str, layer: str = "2048") -> dict:
    import torch_fidelity

    return {"dataset": dataset, "split": split, "num_samples": ev.num_samples, "seed": ev.reference_seed,
            "extractor": ev.extractor, "weights_sha256": weights_sha256, "resize": RESIZE, "layer": layer,
            "torch_fidelity": torch_fidelity.__version__, "numpy_major": np.__version__.split(".")[0]}


def cached_statistics(man: dict, compute) -> dict[str, np.ndarray]:
    """Load the statistics for ``man`` from the cache, or ``compute()`` and store them."""
    key = content_hash(man)
    path = cache_dir("refstats") / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["manifest"])) == man and np.isfinite(z["sigma"]).all():
                    return {"mu": z["mu"], "sigma": z["sigma"]}
        except Exception:  # unreadable entry: recompute below
            pass
    stats = compute()
    buf = io.BytesIO()
    np.savez(buf, mu=stats["mu"], sigma=stats["sigma"], manifest=np.array(json.dumps(man)))
    atomic_write_bytes(path, buf.getvalue())
    return stats
