"""Concurrent `ganbench run` processes on one machine: training images/s of one run alone against N runs
started at once, with each run's threads capped at its share of the cores (the default, see
``ganbench.core.concurrency``) and uncapped (every run takes torch's default thread count, as ganbench did
before: ``GANBENCH_THREADS`` = that count).

Each run is a real ``ganbench run`` process (DCGAN, a Fashion-MNIST subset, batch 128, as
``fashion-smoke``; a tiny evaluation on the domain classifier) into one fresh SQLite store; images/s is
the MLflow metric ``images_per_s`` of each run's epochs (training only: start-up and evaluation excluded).
The script prints the per-run rate, the machine's total rate and the ratio to one run alone.

    python benchmarks/bench_concurrent.py [--runs 4] [--images 4096] [--epochs 1] [--model dcgan]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PROTOCOL = """
description = "concurrency benchmark"
models = ["{model}"]
seeds = [0]
[data]
dataset = "fashion-mnist"
subset = {images}
[train]
epochs = {epochs}
batch_size = 128
[eval]
num_samples = 64
metrics = ["fid@domain"]
floor = false
grid_size = 4
batch_size = 64
"""


def launch(protocol: Path, seeds: range, env: dict) -> float:
    """Start one `ganbench run` per seed at once; wait for all; return the wall time."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "ganbench.cli", "run", "--protocol", str(protocol),
                               "--device", "cpu", "--seeds", str(s)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for s in seeds]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a run failed (exit {p.returncode}):\n{err[-3000:]}")
    return time.perf_counter() - t0


def rates(home: Path, name: str) -> list[float]:
    """Mean training images/s of each run of the protocol's experiment."""
    os.environ["GANBENCH_HOME"] = str(home)
    from ganbench.core.track import Tracker

    tracker = Tracker(f"sqlite:///{home / 'mlflow.db'}")
    runs = tracker.search([f"ganbench/{name}"])
    return [float(tracker.metric_history(r, "images_per_s")["value"].mean()) for r in runs["run_id"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--images", type=int, default=4096, help="training images per run and epoch")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--model", default="dcgan")
    args = ap.parse_args()
    from ganbench.core.assets import cache_root

    cache = cache_root()  # the datasets, weights and domain classifiers already fetched: shared by every case
    base = torch.get_num_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch's default {base} threads per process; "
          f"{args.model}, {args.images} images x {args.epochs} epoch(s) per run")
    with tempfile.TemporaryDirectory(prefix="ganbench-bench-concurrent-") as tmp:
        results = {}
        cases = [("alone", 1, {}), ("capped", args.runs, {}), ("uncapped", args.runs, {"GANBENCH_THREADS": str(base)})]
        for label, n, extra in cases:
            home = Path(tmp) / label
            protocol = Path(tmp) / f"{label}.toml"
            protocol.write_text(PROTOCOL.format(model=args.model, images=args.images, epochs=args.epochs))
            env = {**os.environ, "GANBENCH_HOME": str(home), "GANBENCH_CACHE": str(cache), **extra}
            env.pop("MLFLOW_TRACKING_URI", None)
            env.pop("GANBENCH_THREADS", None) if not extra else None
            wall = launch(protocol, range(n), env)
            per_run = rates(home, label)
            results[label] = per_run
            print(f"{label:9s} {n} run(s): {statistics.mean(per_run):7.1f} images/s per run "
                  f"({', '.join(f'{r:.0f}' for r in per_run)}), total {sum(per_run):7.1f}; wall {wall:.1f} s")
        alone = results["alone"][0]
        for label in ("capped", "uncapped"):
            mean = statistics.mean(results[label])
            print(f"{label}: per run {mean / alone:.2f}x one run alone, machine total {sum(results[label]) / alone:.2f}x")


if __name__ == "__main__":
    main()
