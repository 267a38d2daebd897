"""Concurrent ganbench runs on one machine: a fresh SQLite store opened by four real `ganbench run`
processes at once, and the count of live runs behind each run's thread share (held by real processes,
one of them killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from ganbench.core.concurrency import THREADS_ENV, LiveRuns, ThreadShare
from ganbench.core.errors import GanbenchError
from ganbench.core.track import TAG_STATUS, tracking_uri

HOLDER = """
import sys, time
from pathlib import Path
from ganbench.core.concurrency import LiveRuns
run = LiveRuns(Path(sys.argv[1]))  # kept: its open file holds the lock
run.join()
print("joined", flush=True)
time.sleep(120)
"""


def test_four_runs_started_at_once_into_a_fresh_sqlite_store_all_finish(tiny_ring, ganbench_home):
    """Before the store was opened under a lock, two or three of four such runs crashed inside MLflow's
    schema migrations (alembic: "Online migration expected to match one row")."""
    path = tiny_ring(epochs=1, subset=512, name="race")
    assert not (ganbench_home / "mlflow.db").exists()
    procs = [subprocess.Popen([sys.executable, "-m", "ganbench.cli", "run", "--protocol", path, "--device", "cpu",
                               "--seeds", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
             for seed in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in outs]
    client = MlflowClient(tracking_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "ganbench/race"]
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" and r.data.tags[TAG_STATUS] == "finished" for r in runs)


def _holders(folder: Path, n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == "joined"
    return procs


def test_live_runs_counts_processes_and_forgets_a_killed_one(tmp_path):
    folder = tmp_path / "live"
    me = LiveRuns(folder)
    me.join()
    procs = _holders(folder, 3)
    try:
        assert me.count() == 4
        procs[0].send_signal(signal.SIGKILL)  # dies without leaving: the kernel drops its lock
        procs[0].wait()
        assert me.count() == 3
        assert len(list(folder.glob("*.run"))) == 3  # the dead run's file was removed by the count
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert me.count() == 1
    me.leave()
    assert list(folder.glob("*.run")) == [] and LiveRuns(folder).count() == 1


def test_thread_share_divides_the_cores_among_live_runs_and_restores_them(tmp_path, monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    folder = tmp_path / "live"
    before = torch.get_num_threads()
    procs = _holders(folder, 3)
    try:
        with ThreadShare(folder=folder, base=8) as share:  # a machine whose torch would take 8 threads
            assert torch.get_num_threads() == 2  # 8 cores, 4 live runs
            procs.pop().kill()
            assert share.adjust(force=True) == 2  # 8 // 3
            for p in procs:
                p.kill()
                p.wait()
            assert share.adjust(force=True) == 8  # alone again
        assert torch.get_num_threads() == before
        with ThreadShare(folder=folder, base=1):  # one core never goes below one thread
            assert torch.get_num_threads() == 1
    finally:
        for p in procs:
            p.kill()


def test_threads_can_be_fixed_by_argument_or_environment(tmp_path, monkeypatch):
    folder = tmp_path / "live"
    procs = _holders(folder, 1)
    try:
        with ThreadShare(3, folder=folder, base=8):
            assert torch.get_num_threads() == 3
        monkeypatch.setenv(THREADS_ENV, "5")
        with ThreadShare(folder=folder, base=8):
            assert torch.get_num_threads() == 5
        monkeypatch.setenv(THREADS_ENV, "0")  # 0: the automatic share
        with ThreadShare(folder=folder, base=8):
            assert torch.get_num_threads() == 4
        monkeypatch.setenv(THREADS_ENV, "many")
        with pytest.raises(GanbenchError, match="GANBENCH_THREADS='many': expected a whole number"):
            ThreadShare(folder=folder)
    finally:
        for p in procs:
            p.kill()
