"""Does reduced precision move FID? Inception features in fp32, TF32 (CUDA only) and bf16 autocast on the
same images, side by side in one process: images/s of each and the FID each gives, with its difference
from fp32. ganbench evaluates in fp32; a faster precision is only worth adopting if FID moves by less
than 0.1 (the resolution at which FIDs are compared).

Two image pairs: Fashion-MNIST test vs train images (a small FID) and test vs train images with added
Gaussian noise (sigma 40 of 255: a FID in the range of a mediocre generator).

    python benchmarks/bench_fid_precision.py [--n 1000] [--device cpu|cuda] [--batch 100]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch


def features(model, images: torch.Tensor, device: torch.device, batch: int, precision: str) -> tuple[torch.Tensor, float]:
    from ganbench.extractors import extract_layers

    cuda = device.type == "cuda"
    if cuda:  # PyTorch lets cuDNN convolutions use TF32 by default: fp32 must switch it off explicitly
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with ctx:
        extract_layers(model, images[:batch], batch, device)  # warm-up
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = extract_layers(model, images, batch, device)["2048"]
        if cuda:
            torch.cuda.synchronize()
    return out.double(), len(images) / (time.perf_counter() - t0)


def fid_of(a: torch.Tensor, b: torch.Tensor) -> float:
    from ganbench.metrics.fid import frechet_distance, gaussian_statistics

    return frechet_distance(gaussian_statistics(a), gaussian_statistics(b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="images per set")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    from ganbench.extractors import inception_extractor, inception_weights
    from ganbench.metrics.reference import reference_images

    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    test = reference_images("fashion-mnist", "test", args.n, 0)
    train = reference_images("fashion-mnist", "train", args.n, 1)
    noisy = (train.float() + 40 * torch.randn(train.shape, generator=gen)).round().clamp(0, 255).to(torch.uint8)
    model = inception_extractor(inception_weights(), device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}; Inception pool3 features of {args.n} images per set, batch {args.batch}")
    precisions = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    feats, rates = {}, {}
    for p in precisions:
        out = [features(model, x, device, args.batch, p) for x in (test, train, noisy)]
        feats[p] = [f for f, _ in out]
        rates[p] = sum(r for _, r in out) / len(out)
    base = {pair: fid_of(feats["fp32"][0], feats["fp32"][i]) for pair, i in (("test vs train", 1), ("test vs noisy train", 2))}
    for p in precisions:
        diff = max(float((feats[p][i] - feats["fp32"][i]).abs().max()) for i in range(3))
        line = f"  {p:5s} {rates[p]:8.1f} images/s ({rates[p] / rates['fp32']:.2f}x fp32)  max |feature - fp32| {diff:.2e}"
        for pair, i in (("test vs train", 1), ("test vs noisy train", 2)):
            f = fid_of(feats[p][0], feats[p][i])
            line += f"   FID {pair} {f:.3f} ({f - base[pair]:+.3f})"
        print(line)
    print("  adopt a precision only where both FID differences are below 0.1 in absolute value")


if __name__ == "__main__":
    main()
