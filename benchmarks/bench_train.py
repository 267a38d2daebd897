"""Training speed: a DCGAN (or WGAN-GP) loop written the usual way vs ganbench's trainer, side by side in one process.

The usual way (as in PyTorch's DCGAN tutorial): torchvision's FashionMNIST dataset with
ToTensor + Normalize, a shuffling DataLoader, batch 128, eager PyTorch, the same 28x28 networks and
optimisers as the zoo card (``dcgan``: Adam(2e-4, beta1 = 0.5); ``wgan-gp``: 5 critic steps with the
gradient penalty per G step). ganbench: ``ganbench.training.train`` on the protocol
``fashion-50ep`` (data resident as uint8 on the device, one permutation per epoch), once on the
plain path and once on the fast path, with the same per-step records and health checks a
``ganbench run`` makes. Each loop trains the same number of images; the script prints images/s
and the ratios, and checks that the plain and fast paths give the same losses. On a GPU the fast path
replays its step as a CUDA graph (``ganbench.training.cudagraph``); the script says how many steps it replayed.

Concurrent seeds (``ganbench run --concurrent-seeds``): ``--seeds N`` seeds trained together in one
process (``ganbench.training.train_together``) against one seed on the fast path, the same images per seed;
it prints the wall-time ratio (goal on a GPU: 4 seeds in at most 2.5x one seed's time; one after
another is 4x) and how far seed 0's losses together are from seed 0 alone.

    python benchmarks/bench_train.py [--images 25600] [--device cpu|cuda] [--model dcgan|wgan-gp] [--seeds 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms

from ganbench.data import get_dataset, load_split
from ganbench.data.idx import _find_file
from ganbench.diagnosis import health_monitor
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.training import build_models, train, train_together


def torchvision_root(folder: Path) -> Path:
    """torchvision's FashionMNIST layout (root/FashionMNIST/raw/<idx files>) from ganbench's verified files."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    ds = get_dataset("fashion-mnist")
    for name in ds.pins:
        src = _find_file(ds, name, None)
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as f, open(raw / name, "wb") as out:
            shutil.copyfileobj(f, out)
    return folder


def usual_way(spec, root: Path, images: int, device: torch.device) -> float:
    """The tutorial loop; returns images/s over ``images`` training images (after a warm-up of 5 steps).
    DCGAN as in PyTorch's DCGAN tutorial (BCE, G reuses the D step's fakes); WGAN-GP as in Gulrajani et
    al.'s Algorithm 1 written the same way (n_critic critic steps on the next batches of the loader, the
    penalty by ``torch.autograd.grad`` with ``create_graph``, then one G step)."""
    data = torchvision.datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(data, batch_size=128, shuffle=True, drop_last=True)
    G, D = build_models(spec, device, torch.Generator().manual_seed(0))
    m = spec.model
    opt_g = torch.optim.Adam(G.parameters(), lr=m.optim_g.lr, betas=m.optim_g.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=m.optim_d.lr, betas=m.optim_d.betas)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    def batches():
        while True:
            for x, _ in loader:
                yield x.to(device)

    def dcgan_step(it) -> int:
        x = next(it)
        z = torch.randn(len(x), m.z_dim, device=device)
        fake = G(z)
        real_logits, fake_logits = D(x), D(fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        out = D(fake)
        g_loss = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_loss.item(), g_loss.item()  # what a tutorial loop prints/logs each step
        return len(x)

    def wgan_gp_step(it) -> int:
        seen = 0
        for _ in range(m.n_critic):
            x = next(it)
            z = torch.randn(len(x), m.z_dim, device=device)
            fake = G(z).detach()
            alpha = torch.rand(len(x), 1, 1, 1, device=device)
            x_hat = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
            gp = ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
            d_loss = D(fake).mean() - D(x).mean() + m.loss.options["gp_weight"] * gp
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            seen += len(x)
        g_loss = -D(G(torch.randn(len(x), m.z_dim, device=device))).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_loss.item(), g_loss.item()
        return seen

    step = wgan_gp_step if m.loss.name == "wgan-gp" else dcgan_step
    it = batches()
    for _ in range(5):  # warm-up
        step(it)
    sync()
    t0, seen = time.perf_counter(), 0
    while seen < images:
        seen += step(it)
    sync()
    return seen / (time.perf_counter() - t0)


def ganbench_way(spec, train_images: torch.Tensor, device: torch.device, fast: bool, folder: Path):
    """ganbench's trainer with the health monitor of ``ganbench run``; returns (images/s, records, steps replayed)."""
    run_dir = Path(tempfile.mkdtemp(dir=folder))
    monitor = health_monitor(spec, train_images, run_dir, device)
    res = train(spec, train_images, run_dir, device, progress=False, on_check=monitor, fast=fast)
    (summary,) = res.epoch_summaries
    return summary["images_per_s"], res.records, res.replayed_steps


def together_way(specs, train_images: torch.Tensor, device: torch.device, folder: Path):
    """The seeds of ``specs`` trained together, each with its health monitor; returns (wall s, seed 0's records)."""
    dirs = [Path(tempfile.mkdtemp(dir=folder)) for _ in specs]
    monitors = [health_monitor(s, train_images, d, device) for s, d in zip(specs, dirs)]
    t0 = time.perf_counter()
    results = train_together(specs, train_images, dirs, device, progress=False, on_check=monitors)
    return time.perf_counter() - t0, results[0].records


def seeds_side_by_side(proto, model: str, images: torch.Tensor, device: torch.device, n: int, folder: Path) -> None:
    specs = resolve(proto, "0" * 64, models=[model], seeds=list(range(n)))
    together_way(specs, images[:1024], device, folder)  # warm-up
    run_dir = Path(tempfile.mkdtemp(dir=folder))
    t0 = time.perf_counter()
    alone = train(specs[0], images, run_dir, device, progress=False, on_check=health_monitor(specs[0], images, run_dir, device))
    t_one = time.perf_counter() - t0
    t_all, rec = together_way(specs, images, device, folder)
    rel = {k: ((alone.records[k] - rec[k]).abs() / alone.records[k].abs().clip(lower=1e-3)) for k in ("d_loss", "g_loss")}
    print(f"  concurrent seeds: one seed {t_one:.1f} s ({len(images) / t_one:.0f} images/s); {n} seeds together "
          f"{t_all:.1f} s ({n * len(images) / t_all:.0f} images/s in all) = {t_all / t_one:.2f}x one seed's wall time "
          f"(one after another: {n}x)")
    print(f"  seed 0 together vs alone, relative loss difference: step 1 d {rel['d_loss'][0]:.1e} g {rel['g_loss'][0]:.1e}; "
          f"steps 1-10 at most d {rel['d_loss'][:10].max():.1e} g {rel['g_loss'][:10].max():.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=25600, help="training images per loop (one epoch of a subset)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="dcgan", choices=["dcgan", "wgan-gp"], help="the models the usual-way loop is written for")
    ap.add_argument("--seeds", type=int, default=4, help="seeds trained together in the concurrent-seeds comparison (0: skip)")
    ap.add_argument("--only-seeds", action="store_true", help="run the concurrent-seeds comparison only")
    args = ap.parse_args()

    device = torch.device(args.device)
    proto = load_protocol("fashion-50ep")
    proto = dataclasses.replace(proto, train=dataclasses.replace(proto.train, epochs=1))
    (spec,) = resolve(proto, "0" * 64, models=[args.model], seeds=[0])
    images = load_split("fashion-mnist", "train").images[: args.images]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}; model {args.model}; {args.images} images per loop, batch "
          f"{proto.train.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.seeds:
            seeds_side_by_side(proto, args.model, images, device, args.seeds, Path(tmp))
        if args.only_seeds:
            return
        folder = Path(tmp)
        ganbench_way(spec, images[:1024], device, True, folder)  # warm-up (allocator, kernels, caches)
        rate_plain, rec_plain, _ = ganbench_way(spec, images, device, False, folder)
        rate_fast, rec_fast, replayed = ganbench_way(spec, images, device, True, folder)
        rate_usual = usual_way(spec, torchvision_root(folder / "tv"), args.images, device)
    rel = {k: ((rec_plain[k] - rec_fast[k]).abs() / rec_plain[k].abs().clip(lower=1e-3)) for k in ("d_loss", "g_loss")}
    print(f"  usual way (torchvision + DataLoader)  {rate_usual:9.1f} images/s")
    for label, rate in (("ganbench plain path", rate_plain), ("ganbench fast path", rate_fast)):
        print(f"  {label:36s} {rate:9.1f} images/s   {rate / rate_usual:.2f}x the usual way")
    print(f"  fast path: {replayed} of {len(rec_fast)} steps replayed as a CUDA graph")
    print(f"  fast / plain {rate_fast / rate_plain:.2f}x; relative loss difference fast vs plain: step 1 "
          f"d {rel['d_loss'][0]:.1e} g {rel['g_loss'][0]:.1e}; steps 1-10 at most "
          f"d {rel['d_loss'][:10].max():.1e} g {rel['g_loss'][:10].max():.1e} (rounding, amplified by the "
          f"dynamics over {len(rec_plain)} steps to d {rel['d_loss'].max():.1e} g {rel['g_loss'].max():.1e})")


if __name__ == "__main__":
    main()
