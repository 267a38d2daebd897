"""Exact NN-L1 (memorisation check): ganbench's bounded search vs a plain chunked torch.cdist(p=1).

Both run on the same queries (Fashion-MNIST test images as stand-in generated samples) against the
same training images, in one process, one after the other; the script checks that they agree exactly
and prints images/s and the ratio.

    python benchmarks/bench_memorisation.py --queries 10000 --train 60000 [--device cuda]
"""

import argparse
import time

import torch

from ganbench.data import load_split
from ganbench.metrics.memorisation import nearest_l1, nearest_l1_cdist


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--train", type=int, default=60000)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    train = load_split("fashion-mnist", "train").images[: args.train]
    queries = load_split("fashion-mnist", "test").images[: args.queries]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    timings = {}
    results = {}
    for name, fn in (("cdist", nearest_l1_cdist), ("ganbench", nearest_l1)):
        sync()
        t0 = time.perf_counter()
        results[name] = fn(queries, train, device=args.device)
        sync()
        timings[name] = time.perf_counter() - t0
        print(f"{name:9s} {timings[name]:8.1f} s  {args.queries / timings[name]:8.1f} queries/s", flush=True)
    same = torch.equal(results["cdist"][1], results["ganbench"][1]) and torch.equal(results["cdist"][0], results["ganbench"][0])
    print(f"device {args.device}, threads {torch.get_num_threads()}, {args.queries} x {args.train} images")
    print(f"identical results: {same}")
    print(f"speed-up ganbench / cdist: {timings['cdist'] / timings['ganbench']:.2f}x")


if __name__ == "__main__":
    main()
