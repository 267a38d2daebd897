"""Several ganbench processes on one machine: a lock for one-time set-up, and a fair share of the cores.

``file_lock`` serialises what must happen once (creating the schema of a fresh SQLite MLflow store:
MLflow's migrations are not safe to run from several processes at once).

``ThreadShare`` caps the intra-op threads of each training run at ``max(1, base // live)``, where
``base`` is the thread count torch chose for this process (the cores, or ``OMP_NUM_THREADS``) and
``live`` is the number of ganbench runs alive on this machine. Without it every process starts
one thread per core, and N runs on C cores keep N x C threads spinning on C cores: measured on 2
cores, 4 concurrent DCGAN runs trained at 52 images/s each against 500 for one run alone, far below
a fair quarter. Each live run holds an exclusive ``flock`` on a file of its own in a per-user folder
of the temporary directory, so a run that died is not counted (the kernel drops its lock). The share
is recomputed at the start of a run and while it trains, as runs start and end. ``GANBENCH_THREADS``
(or ``ganbench run --threads N``) fixes the count instead.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ganbench.core.errors import GanbenchError

THREADS_ENV = "GANBENCH_THREADS"  # a fixed thread count per run; 0 or unset: the automatic share
RECHECK_S = 2.0  # how often a training run re-counts its neighbours: a directory listing, cheap at this pace

try:  # POSIX; elsewhere runs are neither serialised nor counted (the caps below then keep torch's choice)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


TRAINING_LOCK = "training.lock"  # in a run folder: held by the process that trains the run


@contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's training lock while the block runs: a second process that would train the same
    run (a sweep started twice, a resume beside a live run) is refused instead of writing the same
    checkpoint and MLflow run. The kernel drops the lock of a process that dies."""
    path = Path(run_dir) / TRAINING_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GanbenchError(f"{run_dir} is being trained by another live process (pid {_holder(path)}): "
                                    "wait for it to end, or stop it and resume") from None
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


def training_elsewhere(run_dir: Path) -> int | None:
    """The pid of the live process that holds ``run_dir``'s training lock (None when no process does)."""
    path = Path(run_dir) / TRAINING_LOCK
    if fcntl is None or not path.is_file():
        return None
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path) or -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _holder(path: Path) -> int:
    text = path.read_text().strip()
    return int(text) if text.isdigit() else 0


def live_folder() -> Path:
    """Where live runs register: per user and per machine (the temporary directory is node-local)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"ganbench-{uid}" / "live"


def fixed_threads(explicit: int | None = None) -> int | None:
    """The thread count the user fixed (``explicit``, else ``GANBENCH_THREADS``); None: share automatically."""
    value = explicit if explicit is not None else os.environ.get(THREADS_ENV, "").strip() or None
    if value is None:
        return None
    given = f"--threads {value}" if explicit is not None else f"{THREADS_ENV}={value!r}"
    try:
        n = int(value)
    except ValueError as err:
        raise GanbenchError(f"{given}: expected a whole number of threads (0: automatic)") from err
    if n < 0:
        raise GanbenchError(f"{given}: expected a positive number of threads, or 0 for the automatic share")
    return n or None


class LiveRuns:
    """This process's entry among the ganbench runs alive on the machine (one per process)."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or live_folder()
        self._file = None

    def join(self) -> None:
        """Register: lock a file under a temporary name, then rename it into view, so that a counter never
        sees a registered file whose lock is not yet taken (and would remove it as stale)."""
        if fcntl is None or self._file is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.folder / f".{name}.tmp"
        f = open(tmp, "w")
        fcntl.flock(f, fcntl.LOCK_EX)
        os.replace(tmp, self.folder / f"{name}.run")
        self._file, self._path = f, self.folder / f"{name}.run"

    def leave(self) -> None:
        if self._file is None:
            return
        self._path.unlink(missing_ok=True)
        self._file.close()  # closing drops the lock
        self._file = None

    def count(self) -> int:
        """Runs alive now, this one included; files of dead runs are removed on the way."""
        if fcntl is None or not self.folder.is_dir():
            return 1
        live = 0 if self._file is not None else 1
        for path in self.folder.glob("*.run"):
            try:
                with open(path) as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1  # another process (or this one) holds it
                continue
            except FileNotFoundError:
                continue  # left between the listing and the open
            path.unlink(missing_ok=True)  # nobody holds it: its process died without leaving
        return max(live, 1)


class ThreadShare:
    """Caps torch's intra-op threads for one run while it is alive, and restores them afterwards.

    ``threads`` fixes the count; None shares ``base`` (torch's own choice for this process) among the
    live runs. ``adjust`` is cheap and rate-limited: call it at safe points of training."""

    def __init__(self, threads: int | None = None, folder: Path | None = None, base: int | None = None):
        self.fixed = fixed_threads(threads)
        self.restore = torch.get_num_threads()
        self.base = base or self.restore  # torch's choice for this process: the cores, or OMP_NUM_THREADS
        self.live = LiveRuns(folder)
        self._checked = 0.0

    def __enter__(self) -> "ThreadShare":
        self.live.join()
        self.adjust(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.live.leave()
        torch.set_num_threads(self.restore)

    def share(self) -> int:
        """The thread count this run should use now."""
        if self.fixed is not None:
            return self.fixed
        return max(1, self.base // self.live.count())

    def adjust(self, force: bool = False) -> int:
        now = time.monotonic()
        if force or now - self._checked >= RECHECK_S:
            self._checked = now
            n = self.share()
            if n != torch.get_num_threads():
                torch.set_num_threads(n)
        return torch.get_num_threads()
