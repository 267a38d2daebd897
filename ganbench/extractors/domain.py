"""Domain classifiers: a small CNN per dataset, trained by ganbench on the training split.

On 28x28 grayscale data an ImageNet Inception is a poor judge (its features describe upsampled
digits as textures), so, as is common for MNIST-like GAN evaluation (e.g. the "MNIST score" of
Salimans et al. 2016's successors), ganbench also measures samples in the feature space of a
classifier trained on the domain itself. The classifier gives:

- ``features``: the penultimate layer (``FEATURE_DIM``), for domain FID/KID/precision/recall;
- ``logits``: 10-way logits, for the classifier-based Inception Score and mode coverage.

The weights ship with ganbench, pinned by SHA-256 (``SHIPPED``): training is deterministic on one machine
(fixed seed, fixed data order, scoped RNG), but float reductions differ between CPUs, so the same recipe
trained elsewhere gives other weights and another identity. The training code stays
(``ganbench data train-domain``, for anyone who rebuilds them); the test accuracy, measured on the 10k
test split right after training, is stored with the weights.

The classifier never sees the test split (``HELD_OUT_SPLIT``), so only test images tell how it errs on
images it was not fitted to (its training-split accuracy flatters it: 99.6% against 99.4% on MNIST,
94.3% against 92.3% on Fashion-MNIST, 10k images of each split). ``held_out_confusion`` counts its
confusions on a fixed half of the test split (the calibration half; the other half stays free for
checks of what uses the counts), cached beside the weights and keyed by their hash.

The classifiers are the ``domain`` extractor entry (one network per dataset) and torch-fidelity feature
extractors named ``ganbench-domain-<dataset>`` (:class:`GanbenchDomainExtractor`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
import copy
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from torch_fidelity.utils import create_feature_extractor

from ganbench.core.assets import FileCheck, atomic_torch_save, atomic_write_bytes, cache_dir, sha256_file
from ganbench.core.errors import GanbenchError
from ganbench.data import DATASETS, StoredDataset, get_dataset, load_split, resize_images
from ganbench.data.idx import SPLIT_FILES
from ganbench.extractors.base import Extractor, FeatureSource, register_extractor
from ganbench.spec.protocol import content_hash

INPUT_SIZE = 28  # DomainNet's input side (the MNIST-like datasets' own): other sizes are resized to it
FEATURE_DIM = 128
NUM_LOGITS = 10
TRAIN_SPLIT = "train"  # the split the classifier is fitted to (all of it)
HELD_OUT_SPLIT = "test"  # digits it never saw: where its errors are measured
# Which held-out images calibrate the confusion counts: the first ``size`` of a seeded permutation of the
# held-out split. Half of MNIST's 10k test digits: ~500 per class, and a disjoint half left for checks.
CALIBRATION = {"seed": 0, "size": 5000}
CONFUSION_VERSION = 1  # bump when held_out_confusion changes: the cache key includes it


def has_domain_classifier(dataset: str) -> bool:
    """Whether ganbench trains a domain classifier for ``dataset``: stored, labelled, single-channel images
    (the input DomainNet is built for); MNIST and Fashion-MNIST today."""
    ds = DATASETS.get(dataset)
    return isinstance(ds, StoredDataset) and ds.num_classes > 0 and ds.channels == 1


def domain_datasets() -> list[str]:
    return [name for name in sorted(DATASETS) if has_domain_classifier(name)]


@dataclass(frozen=True)
class DomainRecipe:
    """How a domain classifier is trained. Defaults reach >= 99.0% (MNIST) and >= 91.0%
    (Fashion-MNIST) test accuracy in well under 5 minutes on 2 CPU cores (benchmarks/bench_metrics.py)."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 3e-3  # peak of a one-cycle schedule (Smith & Topin 2018): fast, stable convergence
    weight_decay: float = 5e-4
    seed: int = 0
    subset: int | None = None  # train on the first ``subset`` images of a seeded permutation (tests)


class DomainNet(nn.Module):
    """2 conv blocks (32-64 channels, 3x3, BN, max-pool; 28 -> 14 -> 7) -> 128-d features -> 10 logits.
    Two blocks rather than three: on 2 CPU cores the 28x28 layers dominate the cost, and this size
    reaches the accuracy targets in a few epochs."""

    def __init__(self, num_classes: int = NUM_LOGITS):
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                                 nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.body = nn.Sequential(block(1, 32), block(32, 64), nn.Flatten(), nn.Dropout(0.25),
                                  nn.Linear(64 * (INPUT_SIZE // 4) ** 2, FEATURE_DIM), nn.BatchNorm1d(FEATURE_DIM), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(FEATURE_DIM, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.body(x.contiguous(memory_format=torch.channels_last))  # ~1.7x faster on CPU
        return feat, self.head(feat)


def _to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x 1 x INPUT_SIZE x INPUT_SIZE -> float in [-1, 1] (the models' range)."""
    return images.float().div_(127.5).sub_(1.0)


class DomainClassifier:
    """A trained DomainNet in eval mode with batched, gradient-free feature and logit calls."""
    def __init__(self, dataset: str, net: DomainNet, test_accuracy: float, weights_sha256: str,
                 device: torch.device, train_seconds: float = float("nan")):
        self.dataset = dataset
        self.net = net.to(device).eval()
        self.test_accuracy = test_accuracy
        self.weights_sha256 = weights_sha256
        self.device = device
        self.train_seconds = train_seconds
        self.name = f"domain-{dataset}"
        self.input_size = INPUT_SIZE

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N x 1 x S x S; other sizes (the resized fashion64/fashion32 protocols) are resized to the
        classifier's INPUT_SIZE the same way the protocols resize (bilinear, antialiased)."""
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
                or images.shape[1] != 1 or images.shape[2] != images.shape[3]:
            got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
            raise GanbenchError(f"the {self.name} classifier expects uint8 images N x 1 x {INPUT_SIZE} x {INPUT_SIZE}, "
                                f"got {got}")
        if images.shape[-1] != INPUT_SIZE:
            images = resize_images(images, INPUT_SIZE)
        return images

    @torch.no_grad()
    def _run(self, images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = self._check(images)
        feats, logits = [], []
        for start in range(0, len(images), batch_size):
            f, lg = self.net(_to_input(images[start:start + batch_size].to(self.device)))
            feats.append(f.float().cpu())
            logits.append(lg.float().cpu())
        if not feats:
            return torch.empty(0, FEATURE_DIM), torch.empty(0, NUM_LOGITS)
        return torch.cat(feats), torch.cat(logits)

    def features(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Penultimate-layer features, float32 N x FEATURE_DIM."""
        return self._run(images, batch_size)[0]

    def logits(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """10-way logits, float32 N x 10."""
        return self._run(images, batch_size)[1]

    def features_and_logits(self, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """Both in one pass (the translation metrics read a class and a feature vector of every image)."""
        return self._run(images, batch_size)


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """Hash of every tensor of a state dict, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def accuracy(net: DomainNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        _, lg = net(_to_input(images[start:start + batch_size]))
        correct += int((lg.argmax(1) == labels[start:start + batch_size]).sum())
    return correct / len(images)


def train_domain_net(dataset: str, recipe: DomainRecipe = DomainRecipe(), data_root=None,
                     progress: bool = False) -> tuple[DomainNet, float, float]:
    """Train a DomainNet on the training split; returns (net, test accuracy, seconds). Deterministic:
    the seed fixes the initialisation, the data order and dropout (the global RNG is forked, not touched)."""
    train = load_split(dataset, TRAIN_SPLIT, data_root)
    test = load_split(dataset, HELD_OUT_SPLIT, data_root)
    images, labels = train.images, train.labels
    gen = torch.Generator().manual_seed(recipe.seed)
    if recipe.subset is not None:
        idx = torch.randperm(len(images), generator=gen)[: recipe.subset]
        images, labels = images[idx], labels[idx]
    x_all = _to_input(images)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = DomainNet(train.num_classes).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        steps_per_epoch = len(images) // recipe.batch_size
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch)
        for epoch in range(recipe.epochs):
            net.train()
            order = torch.randperm(len(images), generator=gen)
            for step in range(steps_per_epoch):
                idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
                _, logits = net(x_all[idx])
                loss = F.cross_entropy(logits, labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if progress:
                print(f"[domain {dataset}] epoch {epoch + 1}/{recipe.epochs} loss {loss.item():.4f} "
                      f"{time.perf_counter() - t0:.0f}s", flush=True)
    seconds = time.perf_counter() - t0
    acc = accuracy(net, test.images, test.labels)
    return net.eval(), acc, seconds


# --------------------------------------------------------------------------- the shipped classifiers
# The weights are files of the project (``ganbench/extractors/weights/domain-<dataset>.pt``), pinned here by the
# SHA-256 of the file and of its tensors: float reductions differ between CPUs, so training the recipe again on
# another machine gives other weights (same accuracy), and with them another identity for every number measured
# in their feature space. They are never retrained behind the user's back: ``ganbench data train-domain`` trains a
# new file on request, used through GANBENCH_DOMAIN_WEIGHTS (a folder of ``domain-<dataset>.pt`` files), and
# every run measured with it names its weights hash, a new identity.

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
DOMAIN_WEIGHTS_ENV = "GANBENCH_DOMAIN_WEIGHTS"


@dataclass(frozen=True)
class ShippedClassifier:
    file_sha256: str  # the file's bytes
    weights_sha256: str  # its tensors (state_sha256): the identity part "weights/domain-<dataset>"
    test_accuracy: float  # on the 10k test split, measured when it was trained


SHIPPED = {  # trained once with DomainRecipe() (torch 2.14.1, 2 CPU cores) and shipped; see README "Data and weights"
    "fashion-mnist": ShippedClassifier("b1c4b5f7977807049b13e566276f81e6ba08aa111ccb60c46d873ad278a70133",
                                       "9a3bf25c0d83c66c35c9f0c3bcac34401ebde2afe734396ca4d65b6812a5b06e", 0.9217),
    "mnist": ShippedClassifier("1f9188e0314519665a5fb1b0a9a012fb8065f83178e0b241d780be8d2370d7a9",
                               "88c374434140aaf3c0ff21e8439ed25319377e679593bf34a8ced4142b516836", 0.9938),
}
REPAIR_SHIPPED = "reinstall ganbench (`git checkout ganbench/extractors/weights`, or `pip install --force-reinstall`)"


def weights_file(dataset: str) -> tuple[Path, ShippedClassifier | None]:
    """The weight file of ``dataset``'s classifier in use, and its pin (None: a user's file, pinned by nothing but its
    own stored hash): GANBENCH_DOMAIN_WEIGHTS/domain-<dataset>.pt when that variable is set, else the shipped one."""
    folder = os.environ.get(DOMAIN_WEIGHTS_ENV)
    if folder:
        if not Path(folder).is_dir():
            raise GanbenchError(f"{DOMAIN_WEIGHTS_ENV}={folder}: no such folder; point it at a folder of "
                                "domain-<dataset>.pt files written by `ganbench data train-domain`, or unset it")
        return Path(folder) / f"domain-{dataset}.pt", None
    return SHIPPED_DIR / f"domain-{dataset}.pt", SHIPPED.get(dataset)


def classifier_available(dataset: str) -> bool:
    """Whether a weight file for ``dataset``'s classifier is there (shipped, or in GANBENCH_DOMAIN_WEIGHTS)."""
    return has_domain_classifier(dataset) and weights_file(dataset)[0].is_file()


def _missing(dataset: str, path: Path) -> str:
    return (f"no domain classifier for {dataset}: {path} does not exist; train one with `ganbench data train-domain "
            f"{dataset} --out {path.parent}` (a few minutes on 2 CPU cores; a new identity for what it measures)")


def read_classifier(path: Path, pin: ShippedClassifier | None) -> dict:
    """The checked contents of a classifier file: the file's SHA-256 and its tensors' against the pin (a user's
    file: its tensors against the hash stored in it). A GanbenchError saying what is wrong otherwise."""
    if pin is not None and sha256_file(path) != pin.file_sha256:
        raise GanbenchError(f"{path}: SHA-256 differs from its pin {pin.file_sha256[:16]}... (damaged or replaced); "
                            + REPAIR_SHIPPED)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        sha = state_sha256(blob["state"])
    except Exception as err:  # truncated zip, not a torch file, missing keys
        raise GanbenchError(f"{path} cannot be read ({type(err).__name__}: truncated or not a classifier file)") from err
    if sha != (pin.weights_sha256 if pin is not None else blob.get("sha256")):
        raise GanbenchError(f"{path}: its weights do not match their hash (corrupt)")
    return blob


@lru_cache(maxsize=None)
def _loaded(path: Path, pin: ShippedClassifier | None, dataset: str, device: str) -> DomainClassifier:
    blob = read_classifier(path, pin)
    net = DomainNet()
    net.load_state_dict(blob["state"])
    return DomainClassifier(dataset, net, float(blob["test_accuracy"]), state_sha256(blob["state"]),
                            torch.device(device), float(blob.get("train_seconds", float("nan"))))


def domain_classifier(dataset: str, device: torch.device | str = "cpu") -> DomainClassifier:
    """The classifier for ``dataset`` ("mnist" | "fashion-mnist"): the shipped, pinned weights (or the user's,
    see :func:`weights_file`). Never trained here."""
    get_dataset(dataset)  # unknown names: GanbenchError listing what exists
    path, pin = weights_file(dataset)
    if not path.is_file():
        raise GanbenchError(_missing(dataset, path))
    return _loaded(path, pin, dataset, str(torch.device(device)))


def write_classifier(dataset: str, path: Path, recipe: DomainRecipe = DomainRecipe(), data_root=None,
                     progress: bool = True) -> DomainClassifier:
    """Train ``dataset``'s classifier with ``recipe`` and write it to ``path`` (atomically), in the shipped format
    (``ganbench data train-domain``: a user's explicit request; the weights hash names a new identity)."""
    net, acc, seconds = train_domain_net(dataset, recipe, data_root, progress)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    sha = state_sha256(state)
    atomic_torch_save({"state": state, "sha256": sha, "test_accuracy": acc, "train_seconds": seconds,
                       "recipe": dataclasses.asdict(recipe), "dataset": dataset,
                       "torch": torch.__version__.split("+")[0]}, path)
    return DomainClassifier(dataset, net, acc, sha, torch.device("cpu"), seconds)


def calibration_split(num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into the held-out split: (calibration half, the rest), from a seeded permutation (the split's
    files are ordered by source, e.g. MNIST's first 5k test digits are the cleaner ones, so halves by position
    would differ in difficulty)."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(CALIBRATION["seed"]))
    return order[: CALIBRATION["size"]], order[CALIBRATION["size"]:]


def confusion_path(clf: DomainClassifier):
    pins = {f: get_dataset(clf.dataset).pins[f][1] for f in SPLIT_FILES[HELD_OUT_SPLIT]}
    key = content_hash({"weights_sha256": clf.weights_sha256, "dataset": clf.dataset, "split": HELD_OUT_SPLIT,
                        "pins": pins, "calibration": CALIBRATION, "version": CONFUSION_VERSION})
    return cache_dir("domain") / f"{clf.dataset}-confusion-{key[:24]}.json"


def confusion_counts(clf: DomainClassifier, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """int64 K x K counts: row = true class, column = the classifier's prediction."""
    k = int(clf.net.head[-1].out_features)
    pred = clf.logits(images).argmax(1)
    return torch.bincount(labels * k + pred, minlength=k * k).view(k, k)


_CONFUSIONS: dict[str, torch.Tensor] = {}  # confusion_path -> counts, for the life of the process


def held_out_confusion(clf: DomainClassifier, data_root=None) -> torch.Tensor:
    """The classifier's confusion counts on the calibration half of the held-out split (from the cache, or
    measured now, a few seconds, and written atomically)."""
    path = confusion_path(clf)
    if str(path) in _CONFUSIONS:
        return _CONFUSIONS[str(path)].clone()
    counts = None
    if path.is_file():
        try:
            blob = json.loads(path.read_text())
            if blob["weights_sha256"] == clf.weights_sha256:
                counts = torch.tensor(blob["counts"], dtype=torch.int64)
        except (ValueError, KeyError, TypeError):  # corrupt entry: measure again below
            counts = None
    if counts is None:
        held_out = load_split(clf.dataset, HELD_OUT_SPLIT, data_root)
        calib, _ = calibration_split(len(held_out.images))
        counts = confusion_counts(clf, held_out.images[calib], held_out.labels[calib])
        blob = {"weights_sha256": clf.weights_sha256, "dataset": clf.dataset, "split": HELD_OUT_SPLIT,
                "calibration": CALIBRATION, "counts": counts.tolist()}
        atomic_write_bytes(path, json.dumps(blob, indent=1).encode())
    _CONFUSIONS[str(path)] = counts
    return counts.clone()


def verify_classifiers() -> list["FileCheck"]:
    """Each classifier's weight file against its pin (shipped) or its stored hash (GANBENCH_DOMAIN_WEIGHTS);
    reads only."""
    checks = []
    for dataset in domain_datasets():
        path, pin = weights_file(dataset)
        problem = None
        if not path.is_file():
            problem = _missing(dataset, path) if pin is None else f"missing; {REPAIR_SHIPPED}"
        else:
            try:
                read_classifier(path, pin)
            except GanbenchError as err:
                problem = str(err)
        checks.append(FileCheck(f"domain-{dataset}", path, problem))
    return checks


def fetch_classifiers() -> list[str]:
    """``ganbench data fetch domain``: nothing to download (the classifiers ship with ganbench); one line per
    classifier in use, after checking it."""
    lines = []
    for dataset in domain_datasets():
        path, pin = weights_file(dataset)
        if not path.is_file() and pin is None:
            lines.append(f"--  domain-{dataset}  none ({_missing(dataset, path)})")
            continue
        clf = domain_classifier(dataset)
        lines.append(f"ok  domain-{dataset}  {'shipped' if pin else 'user'} {path}  test accuracy "
                     f"{clf.test_accuracy:.4f}  weights sha256 {clf.weights_sha256}")
    return lines


# --------------------------------------------------------------------------- the feature source
# The classifiers also join torch-fidelity's registry of feature extractors (as ``ganbench-domain-<dataset>``),
# so that torch-fidelity's own metric code can measure in their feature space.


class GanbenchDomainExtractor(FeatureExtractorBase):
    """ganbench's domain classifier as a torch-fidelity feature extractor: uint8 N x 1|3 x S x S in (resized to
    INPUT_SIZE), ("features" = penultimate layer, "logits" = 10-way) out. RGB input keeps its first channel
    (the grayscale-repeated images torch-fidelity passes around). One subclass per dataset sets ``dataset``."""

    dataset = ""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        self.classifier = domain_classifier(self.dataset, "cpu")
        self.net = copy.deepcopy(self.classifier.net)  # moving this module to a device leaves the shared one alone

    @staticmethod
    def get_provided_features_list():
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)

    def forward(self, x):
        feat, logits = self.net(_to_input(x[:, :1]))
        named = {"features": feat.float(), "logits": logits.float()}
        return tuple(named[name] for name in self.features_list)


def domain_extractor_name(dataset: str) -> str:
    return f"ganbench-domain-{dataset}"


def register_domain_extractors() -> None:
    """Register ``ganbench-domain-<dataset>`` with torch-fidelity (idempotent)."""
    for dataset in domain_datasets():
        name = domain_extractor_name(dataset)
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(name, type(f"DomainExtractor_{dataset}", (GanbenchDomainExtractor,),
                                                  {"dataset": dataset}))


DOMAIN_BATCH = 500  # images per forward pass at least: the net is small, larger batches amortise the calls


def domain_source(dataset: str, device: torch.device) -> FeatureSource:
    register_domain_extractors()
    model = create_feature_extractor(domain_extractor_name(dataset), ["features", "logits"], cuda=False, verbose=False)
    model = model.to(device)

    def extract(images: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
        images = model.classifier._check(images)  # resized to INPUT_SIZE when a protocol resized its images
        batch = max(batch_size, DOMAIN_BATCH)
        out = {"features": [], "logits": []}
        with torch.no_grad():
            for start in range(0, len(images), batch):
                feat, logits = model(images[start:start + batch].to(device))
                out["features"].append(feat.cpu())
                out["logits"].append(logits.cpu())
        return {k: torch.cat(v) for k, v in out.items()}

    return FeatureSource(domain_extractor_name(dataset), "domain", model.classifier.weights_sha256,
                         f"none ({INPUT_SIZE}x{INPUT_SIZE} grayscale in [-1, 1])", "penultimate", extract)


def weights_sha256(dataset: str) -> str:
    """The identity part of ``dataset``'s classifier: the pinned tensors' hash of the shipped file (read from the
    pin, no file opened), else of the user's file."""
    path, pin = weights_file(dataset)
    return pin.weights_sha256 if pin is not None else domain_classifier(dataset).weights_sha256


register_extractor(Extractor("domain", domain_source, weights_sha256, ready=domain_classifier,
                             per_dataset=True, files="domain", fetch=fetch_classifiers, verify=verify_classifiers))
