"""Training speed and loss drift of ``train.precision = "bf16"`` against fp32, side by side in one process.

The same protocol (fashion-smoke's data, a subset of ``--images``), model, seed and fixed data order, trained
once in fp32 and once under bfloat16 autocast; prints images/s of each, the speed ratio, and how far the bf16
run's per-step losses are from fp32's (median relative difference over the first ``--compare`` steps; the two
runs drift apart as training goes on, as two seeds do). Whether the drift moves the published metrics is
measured on whole runs: see the precision section of reports/README.md.

    python benchmarks/bench_precision.py [--images 12800] [--model dcgan] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch

from ganbench.data import load_data
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.training import train


def run(precision: str, model: str, images: int, batch: int, out: Path):
    base = load_protocol("fashion-smoke")
    proto = dataclasses.replace(base, data=dataclasses.replace(base.data, subset=images),
                                train=dataclasses.replace(base.train, epochs=1, batch_size=batch, precision=precision))
    spec = resolve(proto, None, [model], [0])[0]
    data = load_data(proto.data, "train")
    train(spec, data.images[:batch * 8], out / "warm", progress=False)  # first-call costs out of the timing
    return train(spec, data.images, out / precision, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=12800)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--model", default="dcgan")
    ap.add_argument("--compare", type=int, default=20, help="steps over which the losses are compared")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        res = {p: run(p, args.model, args.images, args.batch, Path(tmp)) for p in ("fp32", "bf16")}
    speed = {p: r.images_seen / r.wall_time_s for p, r in res.items()}
    print(f"{args.model}, {args.images} images, batch {args.batch}, {args.threads} threads:")
    for p in res:
        print(f"  {p}: {speed[p]:.0f} images/s ({res[p].wall_time_s:.1f} s)")
    print(f"  bf16 / fp32 speed: {speed['bf16'] / speed['fp32']:.2f}x")
    a, b = (res[p].records.head(args.compare) for p in ("fp32", "bf16"))
    for col in ("d_loss", "g_loss"):
        rel = np.abs(b[col].to_numpy() - a[col].to_numpy()) / np.abs(a[col].to_numpy())
        print(f"  {col}: median relative difference over the first {args.compare} steps {np.median(rel):.2e} "
              f"(step 1: {rel[0]:.1e})")


if __name__ == "__main__":
    main()
