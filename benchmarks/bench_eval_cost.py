"""What a protocol's evaluation costs on this machine, metric by metric.

The protocol's metric list runs through the metrics layer's own context (``EvalContext``, what
``ganbench.metrics.evaluate`` runs) on held-out real images standing in for samples, at ``--n`` samples:
first with an empty reference-statistics cache (cold: the reference and floor splits are extracted too,
as on a machine's first evaluation) and then again (warm: only the samples are extracted). Each line is
the time a metric added; the first metric of a feature space pays for that space's extraction. Feature
extraction and the nearest-neighbour search grow linearly with n, the k-NN metrics (PR, DC) and KID's
spread quadratically, so the protocol's own size can be read off a run at a smaller n; ``--n`` equal to
the protocol's own sample count measures it directly.

    python benchmarks/bench_eval_cost.py [--protocol fashion-50ep] [--n 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch


def cold_cache(real: Path, folder: Path) -> Path:
    """A cache that shares the datasets, weights and domain classifiers but holds no reference statistics."""
    for entry in real.iterdir():
        if entry.name != "refstats":
            (folder / entry.name).symlink_to(entry)
    return folder


def timed_metrics(proto, samples: torch.Tensor) -> list[tuple[str, float]]:
    from ganbench.metrics import parse_metric
    from ganbench.metrics.api import EvalContext, full_fp32

    ctx = EvalContext(samples, proto, torch.device("cpu"))
    rows = []
    with full_fp32():
        for spec in proto.eval.metrics:
            metric, extractor = parse_metric(spec, proto.eval.extractor)
            t0 = time.perf_counter()
            metric.compute(ctx, extractor)
            rows.append((spec, time.perf_counter() - t0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", default="fashion-50ep")
    ap.add_argument("--n", type=int, default=1000, help="samples evaluated (the protocol's own count: its real cost)")
    args = ap.parse_args()

    from ganbench.core.assets import cache_root
    from ganbench.metrics.reference import reference_images
    from ganbench.spec.protocol import load_protocol

    proto = load_protocol(args.protocol)
    proto = dataclasses.replace(proto, eval=dataclasses.replace(proto.eval, num_samples=args.n))
    # Training images of another permutation than the floor's: real images that are neither reference nor floor.
    samples = reference_images(proto.data.dataset, "train", args.n, seed=proto.eval.reference_seed + 1)
    real_cache = cache_root()
    print(f"{args.protocol}: {len(proto.eval.metrics)} metrics at n = {args.n} on {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GANBENCH_CACHE"] = str(cold_cache(real_cache, Path(tmp)))
        runs = {"cold": timed_metrics(proto, samples), "warm": timed_metrics(proto, samples)}
    print(f"{'metric':<16}{'cold s':>10}{'warm s':>10}")
    for (spec, cold), (_, warm) in zip(runs["cold"], runs["warm"]):
        print(f"{spec:<16}{cold:>10.1f}{warm:>10.1f}")
    totals = {k: sum(s for _, s in v) for k, v in runs.items()}
    print(f"{'total':<16}{totals['cold']:>10.1f}{totals['warm']:>10.1f}")


if __name__ == "__main__":
    main()
