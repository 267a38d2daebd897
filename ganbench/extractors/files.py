"""What ``ganbench data fetch`` and ``ganbench data verify`` know by name: each stored dataset's files (by the
dataset's name) and each extractor's weight files (by the entry's ``files`` name), all from the registries."""

from __future__ import annotations

from ganbench.core.assets import FileCheck
from ganbench.core.errors import GanbenchError
from ganbench.data import DATASETS, StoredDataset
from ganbench.extractors.base import extractors_with_files


def _stored() -> dict[str, StoredDataset]:
    return {name: ds for name, ds in DATASETS.items() if isinstance(ds, StoredDataset)}


def data_names() -> tuple[str, ...]:
    """Stored datasets, then extractor weights, in registration order (``fashion-mnist mnist inception domain``)."""
    return (*_stored(), *extractors_with_files())


def _check(name: str) -> None:
    if name not in data_names():
        raise GanbenchError(f"Unknown data name {name!r}. Available: {', '.join(data_names())}")


def fetch_named(name: str) -> list[str]:
    """Fetch what is missing of ``name`` (the domain classifiers ship with ganbench: checked); lines saying what is in use."""
    _check(name)
    if name in _stored():
        return [f"{name}: {_stored()[name].fetch_files()}"]
    return extractors_with_files()[name].fetch()


def verify_named(name: str, data_root=None) -> list[FileCheck]:
    """Every file of ``name`` checked against its pin (``data_root``: where a stored dataset's files are); reads only."""
    _check(name)
    if name in _stored():
        return _stored()[name].verify_files(data_root)
    return extractors_with_files()[name].verify()
