"""What a new user sees after the README's first command: `ganbench run --protocol fashion-smoke`.

Runs the protocol in a fresh ganbench home (the cache is shared, as on a user's machine after the first run),
times it, and measures its 8x8 grids: the share of the 64 grid images that the Fashion-MNIST domain
classifier labels with confidence (top softmax probability >= CONFIDENT), beside the same share for 64 real
test images and for 64 images of uniform noise; and each run's domain FID beside the domain FID of noise.

    python benchmarks/first_impression.py [--protocol fashion-smoke] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch

from ganbench import api
from ganbench.data import load_data
from ganbench.extractors.domain import domain_classifier
from ganbench.metrics import evaluate, mlflow_metrics
from ganbench.nets.sampling import generate
from ganbench.spec.protocol import load_model, load_protocol
from ganbench.spec.seeds import fixed_z

CONFIDENT = 0.7  # top-class probability of the domain classifier that counts as classified with confidence


def confident_share(images: torch.Tensor) -> str:
    """The share classified with confidence, and how many of the 10 classes the images are assigned to."""
    probs = domain_classifier("fashion-mnist").logits(images).softmax(1)
    return f"{float((probs.max(1).values >= CONFIDENT).float().mean()):.2f} over {len(probs.argmax(1).unique())} classes"


def noise_domain_fid(protocol, n: int) -> float:
    noise = torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    proto = dataclasses.replace(protocol, eval=dataclasses.replace(protocol.eval, metrics=("fid@domain",), floor=False))
    return next(iter(mlflow_metrics(evaluate(noise, proto, "cpu").values()).values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="fashion-smoke")
    args = ap.parse_args()
    protocol = load_protocol(args.protocol)
    with tempfile.TemporaryDirectory() as home:
        os.environ["GANBENCH_HOME"] = home
        t0 = time.perf_counter()
        runs = [api.train(args.protocol, m, s) for m in protocol.models for s in protocol.seeds[:1]]
        total = time.perf_counter() - t0
        test = load_data(protocol.data, "test").images[:64]
        noise = torch.randint(0, 256, (64, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        print(f"{args.protocol}: {len(runs)} runs in {total:.0f} s (train + evaluate, {torch.get_num_threads()} threads)")
        print(f"confident share (top probability >= {CONFIDENT}) of 64 images: real test {confident_share(test)}, "
              f"uniform noise {confident_share(noise)}")
        print(f"domain FID of {protocol.eval.num_samples} noise images: {noise_domain_fid(protocol, protocol.eval.num_samples):.1f}")
        for run in runs:
            G = api.load(run)
            grid = generate(G, fixed_z(64, load_model(run.model).z_dim, protocol.eval.z_seed))
            domain = {k: v for k, v in run.metrics.items() if k.startswith("domain_fid") and not k.endswith(("_std", "_floor"))}
            print(f"  {run.model:8s} seed {run.seed}: grid confident share {confident_share(grid)}; {domain}; "
                  f"train {run.metrics.get('wall_time_s', float('nan')):.0f} s, evaluate {run.metrics.get('eval_time_s', float('nan')):.0f} s")


if __name__ == "__main__":
    main()
