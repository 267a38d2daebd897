"""The cost of ganbench.Monitor per training step, measured side by side in one run: the same loop of the
tutorial DCGAN (examples/dcgan_loop.py's networks at batch 64 on 28x28 noise) without the monitor, with
``Monitor.step`` given the two losses, and with everything examples/dcgan_loop.py gives it (D's per-sample
outputs, gradient norms) plus a sample probe every 100 steps; the monitor diagnoses every 100 steps.
Prints microseconds per step and each variant's ratio to the bare loop.

    python benchmarks/bench_monitor.py [--steps 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch

import ganbench

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dcgan_loop.py"


def nets():
    spec = importlib.util.spec_from_file_location("dcgan_loop", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Generator(), mod.Discriminator()


def loop(steps: int, variant: str, batch: int = 64) -> float:
    torch.manual_seed(0)
    G, D = nets()
    optD, optG = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999)), torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    bce, ones, zeros = torch.nn.BCELoss(), torch.ones(batch), torch.zeros(batch)
    real = torch.rand(batch, 1, 28, 28) * 2 - 1
    mon = ganbench.Monitor(check_every=100, on_finding=None, real=((real + 1) * 127.5).to(torch.uint8)) \
        if variant != "bare" else None
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        D.zero_grad()
        out_real, fake = D(real), G(torch.randn(batch, 100, 1, 1))
        out_fake = D(fake.detach())
        errD = bce(out_real, ones) + bce(out_fake, zeros)
        errD.backward()
        d_norm = ganbench.grad_norm(D) if variant == "full" else None
        optD.step()
        G.zero_grad()
        out_g = D(fake)
        errG = bce(out_g, ones)
        errG.backward()
        g_norm = ganbench.grad_norm(G) if variant == "full" else None
        optG.step()
        if variant == "losses":
            mon.step(d_loss=errD, g_loss=errG)
        elif variant == "full":
            mon.step(d_loss=errD, g_loss=errG, d_real=out_real, d_fake=out_fake, d_fake_g=out_g, d_grad_norm=d_norm,
                     g_grad_norm=g_norm)
            if step % 100 == 0:
                mon.samples(fake)
    if mon is not None:
        mon.close()
    return (time.perf_counter() - t0) / steps


def monitor_alone(steps: int, variant: str, batch: int = 64) -> float:
    """Seconds per step of an otherwise empty loop that only hands the monitor precomputed values."""
    d, g = torch.tensor(1.2), torch.tensor(0.9)
    out = torch.rand(batch)
    mon = ganbench.Monitor(check_every=100, on_finding=None) if variant != "empty" else None
    t0 = time.perf_counter()
    for _ in range(steps):
        if variant == "losses":
            mon.step(d_loss=d, g_loss=g)
        elif variant == "full":
            mon.step(d_loss=d, g_loss=g, d_real=out, d_fake=out, d_fake_g=out, d_grad_norm=3.0, g_grad_norm=4.0)
    if mon is not None:
        mon.close()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    loop(20, "bare")  # warm-up
    times = {v: loop(args.steps, v) for v in ("bare", "losses", "full")}
    bare = times["bare"]
    print(f"{args.steps} steps, {args.threads} thread(s), torch {torch.__version__}")
    print("the tutorial DCGAN loop:")
    for v, t in times.items():
        print(f"  {v:7s} {t * 1e6:10.0f} us/step   {t / bare:.3f}x the bare loop   (+{(t - bare) * 1e6:.0f} us/step)")
    alone = {v: monitor_alone(10 * args.steps, v) for v in ("empty", "losses", "full")}
    print(f"an empty loop, {10 * args.steps} steps (the monitor's own cost, diagnosis every 100 steps included):")
    for v, t in alone.items():
        print(f"  {v:7s} {t * 1e6:10.1f} us/step   (+{(t - alone['empty']) * 1e6:.1f} us/step over the empty loop)")


if __name__ == "__main__":
    main()
