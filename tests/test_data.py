import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from ganbench.core.assets import FileCheck
from ganbench.core.registry import DATASETS
from ganbench.data import StoredDataset, get_dataset, load_split, register_dataset, verify
from ganbench.extractors import data_names, fetch_named, verify_named
from ganbench.data.idx import idx_bytes, parse_idx
from ganbench.core.errors import GanbenchError


def test_idx_roundtrip_and_header():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(arr)
    assert data[:4] == b"\x00\x00\x08\x03"
    assert np.array_equal(parse_idx(data, "x", expect_ndim=3), arr)


def test_idx_errors_are_precise():
    arr = np.zeros((5, 28, 28), dtype=np.uint8)
    data = idx_bytes(arr)
    with pytest.raises(GanbenchError, match="truncated or corrupt"):
        parse_idx(data[:-10], "short.idx", expect_ndim=3)
    with pytest.raises(GanbenchError, match="bad IDX magic"):
        parse_idx(b"\x00\x00\x0d\x03" + data[4:], "float.idx", expect_ndim=3)
    with pytest.raises(GanbenchError, match="bad IDX magic"):
        parse_idx(data, "labels?", expect_ndim=1)
    with pytest.raises(GanbenchError, match="too short"):
        parse_idx(b"\x00", "tiny", expect_ndim=1)


def test_fashion_mnist_splits_are_the_official_release():
    train, test = load_split("fashion-mnist", "train"), load_split("fashion-mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10  # Xiao et al. 2017: balanced classes
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert 0 < train.images.float().mean() / 255 < 0.5


def test_mnist_from_the_pickle_is_exact_uint8():
    train, test = load_split("mnist", "train"), load_split("mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    # LeCun et al.: 5923 zeros and 6742 ones in the 60k training set, 980 zeros in the test set
    assert torch.bincount(train.labels)[:2].tolist() == [5923, 6742]
    assert torch.bincount(test.labels)[0].item() == 980
    assert train.images.max() == 255


def test_truncated_file_in_data_root_is_a_clear_error(tmp_path):
    good = load_split("fashion-mnist", "test")
    root = tmp_path / "root"
    root.mkdir()
    payload = gzip.compress(idx_bytes(good.images.squeeze(1).numpy()))
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(GanbenchError, match=r"t10k-images-idx3-ubyte\.gz.*(truncated|corrupt)"):
        load_split("fashion-mnist", "test", data_root=root)


def test_altered_content_fails_its_pin(tmp_path):
    good = load_split("fashion-mnist", "test").images.squeeze(1).numpy().copy()
    good[0, 0, 0] ^= 1
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(good))
    with pytest.raises(GanbenchError, match="pinned SHA-256"):
        load_split("fashion-mnist", "test", data_root=tmp_path)


def test_missing_dataset_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(GanbenchError, match="ganbench data fetch mnist"):
        load_split("mnist", "test")


def test_unknown_names():
    with pytest.raises(GanbenchError, match="Available: edges2fashion, fashion-mnist, grid25, mnist, mnist-a2b, ring8, stacked-mnist"):
        load_split("cifar", "train")
    with pytest.raises(GanbenchError, match="Unknown split"):
        load_split("mnist", "valid")


def test_verify_reports_every_file():
    lines = verify("fashion-mnist")
    assert len(lines) == 4 and all(c.problem is None and c.line().startswith("ok") for c in lines)


@dataclass(frozen=True)
class OneFileDataset(StoredDataset):
    """A stored dataset of another kind than IDX: what `ganbench data` needs of it is fetch_files/verify_files."""

    def fetch_files(self) -> Path:
        return Path("/fetched")

    def verify_files(self, data_root=None) -> list[FileCheck]:
        return [FileCheck(f"{self.name}/the-file", None, "checked by the test")]


@pytest.fixture
def one_file_dataset():
    register_dataset(OneFileDataset("one-file", image_size=8, channels=1, num_classes=0))
    yield
    del DATASETS["one-file"]


def test_data_names_come_from_the_registries(one_file_dataset):
    # stored datasets in registration order, then the extractors with weight files; drawn datasets have no files
    assert data_names() == ("fashion-mnist", "mnist", "one-file", "inception", "domain")
    assert fetch_named("one-file") == ["one-file: /fetched"]
    assert [c.problem for c in verify_named("one-file")] == ["checked by the test"]
    assert [c.name for c in verify_named("mnist")] == [f"mnist/{f}" for f in get_dataset("mnist").pins]
    with pytest.raises(GanbenchError, match="Unknown data name 'ring8'. Available: fashion-mnist, mnist, one-file, "
                                            "inception, domain"):
        verify_named("ring8")
