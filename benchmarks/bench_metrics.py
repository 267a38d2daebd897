"""Metrics layer benchmark: side by side in one process, printing ratios.

1. Domain classifiers trained on the full training splits: seconds and test accuracy (targets:
   < 5 min each on 2 CPU cores; >= 99.0% MNIST, >= 91.0% Fashion-MNIST). --cached skips training.
2. ganbench's ``evaluate`` vs a direct ``torch_fidelity.calculate_metrics`` call on the same samples and
   the same (domain) extractor: cache miss (floor off, i.e. the same work) and cache hit.
3. Domain FID for 10k samples with the real statistics cached (target < 15 s on 2 CPU cores), floor on.
4. Throughput (images/s) of the Inception and domain extractors: ganbench's path (channels_last,
   BatchNorm folded) vs torch-fidelity's default extractor call (``get_featuresdict_from_dataset``, the
   loop ``calculate_metrics`` runs, at its default batch size) and vs the bare torch-fidelity module at
   ganbench's batch size, with the max abs difference of the features; on the GPU too when available.

    python benchmarks/bench_metrics.py [--cached] [--inception-images 32] [--n 10000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def protocol_file(folder: Path, n: int, metrics: str, floor: bool) -> str:
    path = folder / f"bench-{n}-{metrics.replace(',', '_')}-{floor}.toml"
    path.write_text(f"""models = ["dcgan"]\nseeds = [0]\n[data]\ndataset = "fashion-mnist"\n[train]\nepochs = 1\n
[eval]\nnum_samples = {n}\nextractor = "domain"\nmetrics = [{', '.join(f'"{m}"' for m in metrics.split(','))}]\n
batch_size = 500\nfloor = {str(floor).lower()}\n""")
    return str(path)


def bench_training(cached: bool) -> None:
    from ganbench.extractors.domain import DomainRecipe, domain_classifier, train_domain_net

    print("== domain classifiers (full training split, default recipe)")
    for ds, target in (("mnist", 0.990), ("fashion-mnist", 0.910)):
        if cached:
            clf = domain_classifier(ds)
            acc, secs, how = clf.test_accuracy, clf.train_seconds, "as recorded in the cache"
        else:
            c0 = time.process_time()
            _, acc, secs = train_domain_net(ds, DomainRecipe())
            how = f"trained now, process CPU {time.process_time() - c0:.0f}s"
        print(f"  {ds:14s} test accuracy {acc:.4f} (target >= {target:.3f}: {'ok' if acc >= target else 'MISSED'})  "
              f"train {secs:.0f}s (target < 300s: {'ok' if secs < 300 else 'MISSED'}; {how})")


def bench_overhead(n: int, folder: Path) -> None:
    import torch_fidelity

    from ganbench.metrics import evaluate, metric_name
    from ganbench.extractors import domain_extractor_name, register_domain_extractors
    from ganbench.metrics.reference import cache_path, reference_images
    from ganbench.spec.protocol import load_protocol

    print(f"== ganbench evaluate vs torch_fidelity.calculate_metrics: domain FID, {n} samples vs {n} test images")
    samples = reference_images("fashion-mnist", "train", n, 12345)
    reference = reference_images("fashion-mnist", "test", n, 0)
    proto = load_protocol(protocol_file(folder, n, "fid", floor=False))

    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    register_domain_extractors()

    def tf_call():
        return torch_fidelity.calculate_metrics(input1=Images(samples), input2=Images(reference), cuda=False, fid=True,
                                                feature_extractor=domain_extractor_name("fashion-mnist"),
                                                batch_size=500, cache=False, verbose=False, save_cpu_ram=True)

    def gb_miss():
        ctx = {}
        evaluate(samples, proto, context=ctx)  # warm: fills the cache, gives the manifest
        c = ctx["ctx"]
        cache_path(c.side("domain", "reference")["manifest"]).unlink()
        t0 = time.perf_counter()
        res = evaluate(samples, proto)
        return time.perf_counter() - t0, res

    tf_call()  # warm-up: classifier load, allocator
    t_tf, tf_res = timed(tf_call, 3)
    t_miss, gb = min((gb_miss() for _ in range(3)), key=lambda r: r[0])
    t_hit, _ = timed(lambda: evaluate(samples, proto), 3)
    ours = gb[metric_name("fid", n, "test", space="domain")].value
    theirs = tf_res["frechet_inception_distance"]
    print(f"  torch-fidelity          {t_tf:7.2f}s  FID {theirs:.6f}")
    print(f"  ganbench (cache miss)   {t_miss:7.2f}s  FID {ours:.6f}  overhead {100 * (t_miss / t_tf - 1):+.1f}% (target <= +5%)")
    print(f"  ganbench (cache hit)    {t_hit:7.2f}s  ratio to torch-fidelity {t_hit / t_tf:.2f}x (real split skipped)")
    print(f"  |FID difference|        {abs(ours - theirs):.3g}")


def bench_domain_fid(n: int, folder: Path) -> None:
    from ganbench.metrics import evaluate
    from ganbench.metrics.reference import reference_images
    from ganbench.spec.protocol import load_protocol

    proto = load_protocol(protocol_file(folder, n, "fid", floor=True))
    samples = reference_images("fashion-mnist", "train", n, 999)
    evaluate(samples, proto)  # fills the cache (test split and the floor's train split)
    t, res = timed(lambda: evaluate(samples, proto), 3)
    r = next(iter(res.values()))
    print(f"== domain FID, {n} samples, real statistics cached (floor included): {t:.2f}s (target < 15 s)  "
          f"{r.name} = {r.value:.4f}, floor {r.floor:.4f}")


def bench_throughput(device: torch.device, n_inception: int, n_domain: int) -> None:
    import torch_fidelity.defaults
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    from ganbench.extractors import domain_source, inception_source, inception_weights
    from ganbench.metrics.reference import reference_images

    print(f"== extractor throughput on {device} ({torch.get_num_threads()} threads)")
    w = inception_weights(allow_fetch=False)
    imgs = reference_images("fashion-mnist", "test", n_inception, 0)
    rgb = imgs.expand(-1, 3, -1, -1).contiguous()
    ours_src = inception_source(device, w)
    tf = create_feature_extractor("inception-v3-compat", ["2048"], cuda=device.type == "cuda", verbose=False,
                                  feature_extractor_weights_path=str(w.path))
    tf_bs = torch_fidelity.defaults.DEFAULTS["batch_size"]
    bs = min(32, n_inception)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(rgb)

        def __getitem__(self, i):
            return rgb[i]

    def tf_default():  # what calculate_metrics does for one input: its dataset loop, its default batch size
        return get_featuresdict_from_dataset(Images(), tf, tf_bs, device.type == "cuda", False, False)["2048"]

    def tf_same_batch():  # the bare torch-fidelity module (NCHW, with BatchNorm) at ganbench's batch size
        out = []
        with torch.no_grad():
            for i in range(0, len(rgb), bs):
                out.append(tf(rgb[i:i + bs].to(device))[0].cpu())
        return torch.cat(out)

    ours_src.extract(imgs[:bs], bs), tf_same_batch()  # warm-up
    t_ours, f_ours = timed(lambda: ours_src.extract(imgs, bs)["features"], 2)
    t_def, f_def = timed(tf_default, 2)
    t_same, _ = timed(tf_same_batch, 2)
    rate = len(imgs) / t_ours
    print(f"  inception-v3-compat  ganbench {rate:6.1f} img/s (batch {bs}, channels_last, BN folded)")
    print(f"    torch-fidelity default call {len(imgs) / t_def:6.1f} img/s (batch {tf_bs})   ratio {t_def / t_ours:.2f}x "
          f"(target >= 1.8x)   max |feature diff| {float((f_ours - f_def.float()).abs().max()):.2e}")
    print(f"    torch-fidelity module, batch {bs} {len(imgs) / t_same:6.1f} img/s   ratio {t_same / t_ours:.2f}x")
    dom = domain_source("fashion-mnist", device)
    dimgs = reference_images("fashion-mnist", "train", n_domain, 1)
    dom.extract(dimgs[:500], 500)
    t_dom, _ = timed(lambda: dom.extract(dimgs, 500), 3)
    print(f"  domain-fashion-mnist ganbench {n_domain / t_dom:8.1f} img/s ({n_domain} images)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cached", action="store_true", help="read the domain classifiers from the cache instead of training")
    ap.add_argument("--n", type=int, default=10000, help="samples for the FID timings")
    ap.add_argument("--inception-images", type=int, default=32)
    ap.add_argument("--skip", nargs="*", default=[], choices=["train", "overhead", "fid", "throughput"])
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "train" not in args.skip:
            bench_training(args.cached)
        if "overhead" not in args.skip:
            bench_overhead(args.n, folder)
        if "fid" not in args.skip:
            bench_domain_fid(args.n, folder)
        if "throughput" not in args.skip:
            bench_throughput(torch.device("cpu"), args.inception_images, args.n)
            if torch.cuda.is_available():
                bench_throughput(torch.device("cuda"), max(args.inception_images, 1000), args.n)


if __name__ == "__main__":
    main()
