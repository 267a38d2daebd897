"""Calibration of the training-health thresholds and the confusion table of runs x detectors.

Trains every model of the ``fashion-failures`` protocol (healthy references and induced failures) with
the live monitor, then prints, per run, the windowed statistics the thresholds compare against and
which detectors fired at which severity. Not a test: it trains 8 short runs (several minutes on 2 CPU
cores). Usage:

    python benchmarks/diagnose_calibration.py [--models dcgan,fail-g-lr] [--epochs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from ganbench import diagnosis as dg
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.pipeline.run import training_images
from ganbench.training import train

COLUMNS = ["divergence", "d-dominance", "g-dominance", "mode-collapse", "oscillation", "critic-gap-explode",
           "critic-gap-collapse", "gp-dominates", "healthy-equilibrium"]


def windowed_ranges(rec: pd.DataFrame, th: dg.Thresholds) -> dict[str, str]:
    """The ranges of the windowed statistics the thresholds are set against."""
    out = {}
    for col, how in (("d_loss", "mean"), ("g_loss", "mean"), ("d_loss", "std"), ("critic_gap", "mean")):
        if col in rec and rec[col].notna().any():
            w = dg.rolling(rec[col], th, how).dropna()
            out[f"{col} window {how}"] = f"{w.min():.3g}..{w.max():.3g}"
    for col in ("g_grad_norm", "d_grad_norm", "g_weight_norm", "d_weight_norm"):
        if col in rec:
            w = dg.rolling(rec[col], th, "median").dropna()
            out[f"{col} growth"] = f"{(w / rec[col].iloc[:th.window].median()).max():.3g}x"
    if "gp" in rec and rec["gp"].notna().any():
        ratio = (dg.rolling(rec["d_loss"] + rec["critic_gap"], th) / dg.rolling(rec["critic_gap"], th).abs()).dropna()
        out["penalty/gap"] = f"{ratio.min():.3g}..{ratio.max():.3g}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="fashion-failures")
    ap.add_argument("--models", help="comma-separated subset of the protocol's models")
    ap.add_argument("--epochs", type=int, help="override the protocol's epochs")
    ap.add_argument("--out", help="keep records and sample statistics here")
    args = ap.parse_args()
    proto = load_protocol(args.protocol)
    if args.epochs:
        proto = dataclasses.replace(proto, train=dataclasses.replace(proto.train, epochs=args.epochs))
    images = training_images(proto).images
    out = Path(args.out or tempfile.mkdtemp())
    table = {}
    for model in (args.models.split(",") if args.models else proto.models):
        spec = resolve(proto, "0" * 64, models=[model])[0]
        run_dir = out / model
        monitor = dg.health_monitor(spec, images, run_dir, "cpu", space="pixels")
        t0 = time.perf_counter()
        res = train(spec, images, run_dir, progress=False, on_check=monitor)
        seconds = time.perf_counter() - t0
        res.records.to_parquet(run_dir / "records.parquet")
        monitor.samples.to_parquet(run_dir / dg.SAMPLE_STATS_FILE)
        diag = dg.diagnose(res.records, monitor.samples, monitor.th, monitor.space.name)
        print(f"\n=== {model}: {res.status}, {res.steps} G steps, {seconds:.1f} s, live first failure step "
              f"{monitor.first_bad_step}")
        for k, v in windowed_ranges(res.records, monitor.th).items():
            print(f"    {k:24s} {v}")
        print("\n".join(line for line in dg.format_report(diag).splitlines() if "try:" not in line))
        row = {}
        for name in {f.name for f in diag.findings}:  # worst severity, then every span of the detector
            found = [f for f in diag.findings if f.name == name]
            worst = max(found, key=lambda f: dg.SEVERITIES.index(f.severity)).severity
            row[name] = {"info": "i", "warning": "W", "failure": "F"}[worst] + " " + \
                ",".join(f"{f.start_step}-{f.end_step}" for f in found)
        table[model] = row
    print("\nconfusion table (F failure, W warning, i info; first..last step), pixel feature space:")
    frame = pd.DataFrame.from_dict(table, orient="index").reindex(columns=COLUMNS).astype(object).fillna("-")
    print(frame.to_string())


if __name__ == "__main__":
    torch.set_num_threads(1)  # short runs on a shared 2-core machine: one thread avoids spin-waiting
    main()
