"""ganbench sweep: a grid of ring8 cells, locally and on a real Ray cluster, against real MLflow stores.

The Ray test starts its own Ray head on loopback and its own MLflow server, kills the worker of a cell
while it trains, and checks that every cell ends as exactly one finished MLflow run."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from ganbench.cli import main
from ganbench.core.errors import GanbenchError
from ganbench.pipeline.run import run_protocol, training_images
from ganbench.training import run_dir_for
from ganbench.pipeline.sweep import expand, run_group, sweep, tasks, why_not_together
from ganbench.core.track import TAG_MODEL, TAG_PROTOCOL_HASH, TAG_SEED, TAG_STATUS, Tracker, tracking_uri

RING8 = Path(__file__).resolve().parent.parent / "protocols" / "ring8.toml"
BIN = Path(sys.executable).parent


def ring8_copy(folder: Path, name: str, epochs: int, subset: int) -> str:
    """protocols/ring8.toml under another name with a smaller budget (its own protocol hash)."""
    text = RING8.read_text()
    text, n_epochs = re.subn(r"(?m)^epochs = \d+", f"epochs = {epochs}", text)
    text, n_subset = re.subn(r"(?m)^subset = \d+", f"subset = {subset}", text)
    assert n_epochs == 1 and n_subset == 1, "ring8.toml changed shape: update ring8_copy"
    path = folder / f"{name}.toml"
    path.write_text(text)
    return str(path)


def cell_runs(client: MlflowClient, experiment: str, view=ViewType.ACTIVE_ONLY) -> dict[tuple, list]:
    """(protocol hash, model, seed) -> that cell's MLflow runs."""
    exp = client.get_experiment_by_name(experiment)
    out: dict[tuple, list] = {}
    for run in client.search_runs([exp.experiment_id], run_view_type=view, max_results=1000):
        t = run.data.tags
        out.setdefault((t[TAG_PROTOCOL_HASH], t[TAG_MODEL], int(t[TAG_SEED])), []).append(run)
    return out


# --------------------------------------------------------------------------- local executor (fast)


def test_local_sweep_runs_each_cell_once_and_skips_finished_cells(tmp_path, one_thread_module, capsys):
    proto = ring8_copy(tmp_path, "ring8-sweep", epochs=1, subset=2560)
    first = sweep(proto, seeds=[0, 1], progress=False)
    assert [(c.model, c.seed) for c in first.cells] == [("gan-mlp2d", 0), ("gan-mlp2d", 1),
                                                         ("wgan-gp-mlp2d", 0), ("wgan-gp-mlp2d", 1)]
    assert all(c.status == "finished" and c.action == "ran" and c.run_id for c in first.cells), first.table()
    assert first.ok and first.counts == {"skipped": 0, "ran": 4, "retried": 0}

    # The same grid again, through the CLI: every cell is skipped, no MLflow run is added.
    assert main(["sweep", "--protocol", proto, "--seeds", "0", "1", "--executor", "local"]) == 0
    out = capsys.readouterr().out
    assert "4 cells (4 skipped, 0 ran, 0 retried); 0 not finished; executor local" in out
    for c in first.cells:
        assert re.search(rf"^ring8-sweep {c.model} seed {c.seed} +finished +skipped +{c.run_id}$", out, re.M), out
    runs = cell_runs(MlflowClient(tracking_uri()), "ganbench/ring8-sweep")
    assert len(runs) == 4 and all(len(r) == 1 and r[0].info.status == "FINISHED" for r in runs.values())

    # A grid that grows by a seed runs only the new cells.
    third = sweep(proto, seeds=[0, 1, 2], progress=False)
    assert [c.action for c in third.cells] == ["skipped", "skipped", "ran"] * 2
    assert {c.run_id for c in third.cells if c.action == "skipped"} == {c.run_id for c in first.cells}


def test_concurrent_seeds_sweep_trains_each_models_seeds_together_as_separate_cells(tmp_path, one_thread_module, capsys):
    proto = ring8_copy(tmp_path, "ring8-together", epochs=1, subset=2560)
    specs = expand([proto], seeds=[0, 1])
    assert [[(s.model.name, s.seed) for s in unit.values()] for unit in tasks(dict(enumerate(specs)), True)] == \
        [[("gan-mlp2d", 0), ("gan-mlp2d", 1)], [("wgan-gp-mlp2d", 0), ("wgan-gp-mlp2d", 1)]]
    assert main(["sweep", "--protocol", proto, "--seeds", "0", "1", "--concurrent-seeds"]) == 0
    assert "4 cells (0 skipped, 4 ran, 0 retried); 0 not finished" in capsys.readouterr().out
    client = MlflowClient(tracking_uri())
    runs = cell_runs(client, "ganbench/ring8-together")
    assert len(runs) == 4 and all(len(r) == 1 and r[0].info.status == "FINISHED" for r in runs.values())
    assert {r[0].data.params["concurrent_seeds"] for r in runs.values()} == {"2"}  # trained in pairs
    # Seed 0 trained together took the steps it takes alone, up to float rounding (tests/test_train.py's
    # 1e-2 over 10 steps; measured 1e-5), unlike seed 1 (measured 0.5).
    alone = sweep(ring8_copy(tmp_path, "ring8-alone", epochs=1, subset=2560), models=["gan-mlp2d"], seeds=[0],
                  progress=False).cells[0]
    a, b, other = (pd.read_parquet(Path(d) / "records.parquet").head(10)["d_grad_norm"]
                   for d in (alone.run_dir, run_dir_for(specs[0]), run_dir_for(specs[1])))
    assert ((a - b).abs() / a).max() < 1e-2 and ((a - other).abs() / a).max() > 0.1, (a, b, other)

    # The grid grows by a seed: the finished pairs are skipped, the new seed of each model trains (alone).
    grown = sweep(proto, seeds=[0, 1, 2], progress=False, concurrent_seeds=True)
    assert [c.action for c in grown.cells] == ["skipped", "skipped", "ran"] * 2 and grown.ok
    runs = cell_runs(client, "ganbench/ring8-together")
    assert len(runs) == 6 and all(len(r) == 1 for r in runs.values())
    assert runs[(specs[0].protocol_hash, "gan-mlp2d", 2)][0].data.params["concurrent_seeds"] == "1"


def test_a_model_that_cannot_batch_its_seeds_runs_them_one_after_another(tmp_path, one_thread_module):
    proto = ring8_copy(tmp_path, "ring8-sn", epochs=1, subset=1280)
    specs = [dataclasses.replace(s, model=dataclasses.replace(s.model, tricks=dataclasses.replace(s.model.tricks, spectral_norm=True)))
             for s in expand([proto], ["gan-mlp2d"], [0, 1])]
    assert "spectral normalisation" in why_not_together(specs[0]) and why_not_together(expand([proto], ["gan-mlp2d"], [0])[0]) == ""
    cells = run_group(specs, training_images(specs[0].protocol), torch.device("cpu"), Tracker())
    assert [(c.seed, c.status, c.action) for c in cells] == [(0, "finished", "ran"), (1, "finished", "ran")]
    assert all(c.note.startswith("trained alone: spectral normalisation") for c in cells), cells
    client = MlflowClient(tracking_uri())
    assert [client.get_run(c.run_id).data.params["concurrent_seeds"] for c in cells] == ["1", "1"]


def test_attempt_killed_before_its_first_checkpoint_is_replaced_not_kept(tmp_path, one_thread_module):
    proto = ring8_copy(tmp_path, "ring8-killed", epochs=1, subset=2560)
    (spec,) = expand([proto], ["gan-mlp2d"], [0])
    # What a process killed during its first epoch leaves: the MLflow run run_one opened (status running)
    # and the run folder's mlflow_run_id, but no checkpoint.
    tracker = Tracker()
    killed = tracker.start("ganbench/ring8-killed", "gan-mlp2d-seed0", {},
                           {TAG_PROTOCOL_HASH: spec.protocol_hash, TAG_MODEL: "gan-mlp2d", TAG_SEED: "0"})
    run_dir = run_dir_for(spec)
    run_dir.mkdir(parents=True)
    (run_dir / "mlflow_run_id").write_text(killed)

    (cell,) = sweep(proto, models=["gan-mlp2d"], seeds=[0], progress=False).cells
    assert (cell.status, cell.action) == ("finished", "retried") and cell.run_id != killed
    assert "left no checkpoint" in cell.note
    client = MlflowClient(tracking_uri())
    (active,) = cell_runs(client, "ganbench/ring8-killed").values()
    assert [r.info.run_id for r in active] == [cell.run_id] and active[0].info.status == "FINISHED"
    gone = client.get_run(killed)  # ended and deleted: one run per cell, no RUNNING leftover
    assert gone.info.lifecycle_stage == "deleted" and gone.info.status == "KILLED"


def test_a_cell_another_live_process_trains_is_left_alone(tmp_path, one_thread_module):
    """A killed-looking attempt (MLflow says running) whose run folder's training lock is held by a live process
    is that process's run, not a killed one: the sweep neither discards nor continues it, and a direct run of
    the same cell is refused before its MLflow run is touched. Once the process is gone the cell is resumable."""
    proto = ring8_copy(tmp_path, "ring8-live", epochs=1, subset=2560)
    (spec,) = expand([proto], ["gan-mlp2d"], [0])
    tracker = Tracker()
    live = tracker.start("ganbench/ring8-live", "gan-mlp2d-seed0", {},
                         {TAG_PROTOCOL_HASH: spec.protocol_hash, TAG_MODEL: "gan-mlp2d", TAG_SEED: "0"})
    run_dir = run_dir_for(spec)
    run_dir.mkdir(parents=True)
    (run_dir / "mlflow_run_id").write_text(live)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from ganbench.core.concurrency import training_lock\n"
                               "with training_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
                               str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (cell,) = sweep(proto, models=["gan-mlp2d"], seeds=[0], progress=False).cells
        assert (cell.status, cell.action) == ("training elsewhere", "skipped") and f"pid {holder.pid}" in cell.note
        with pytest.raises(GanbenchError, match=f"being trained by another live process \\(pid {holder.pid}\\)"):
            run_protocol(proto, ["gan-mlp2d"], [0], resume=True, progress=False)
        run = MlflowClient(tracking_uri()).get_run(live)
        assert run.info.status == "RUNNING" and run.info.lifecycle_stage == "active"  # untouched
    finally:
        holder.kill()
        holder.wait()
    (cell,) = sweep(proto, models=["gan-mlp2d"], seeds=[0], progress=False).cells
    assert (cell.status, cell.action) == ("finished", "retried")  # the dead holder's lock is gone


def test_sweep_user_errors_exit_2(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["sweep", "--protocol", "ring8", "--executor", "ray", "--address", f"127.0.0.1:{port}"]) == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:" in capsys.readouterr().err
    assert main(["sweep", "--protocol", "ring8", "--address", f"127.0.0.1:{port}"]) == 2
    assert "use it with --executor ray" in capsys.readouterr().err
    # A cluster on another host cannot write to this machine's SQLite store (refused before connecting).
    assert main(["sweep", "--protocol", "ring8", "--executor", "ray", "--address", "ray://198.51.100.7:10001"]) == 2
    err = capsys.readouterr().err
    assert "is a local file, but the Ray cluster on 198.51.100.7 cannot write to it: run an MLflow server" in err
    with pytest.raises(GanbenchError, match="use auto, cuda or cpu"):
        sweep("ring8", executor="ray", address=f"ray://127.0.0.1:{port}", device="cuda:1")
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where Ray is not installed
    assert main(["sweep", "--protocol", "ring8", "--executor", "ray"]) == 2
    assert "pip install 'ganbench[ray]'" in capsys.readouterr().err


# --------------------------------------------------------------------------- Ray executor (slow)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_session(proc: subprocess.Popen, grace_s: float) -> None:
    """Stop a process started with start_new_session and everything in its session: SIGTERM, then
    SIGKILL after ``grace_s`` (for Ray this replaces `ray stop`, which stops every Ray process of the
    user on the machine, not only this test's)."""
    sid = proc.pid

    def members() -> list[int]:
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and _sid(int(p)) == sid]

    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        for pid in members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait_s
        while members() and time.time() < deadline:
            proc.poll()  # reap the session leader
            time.sleep(0.1)
        if not members():
            break
    proc.wait(timeout=10)


def _sid(pid: int) -> int | None:
    """The session of a live process (None for zombies, which only wait to be reaped)."""
    try:
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return None
        return os.getsid(pid)
    except (OSError, IndexError):
        return None


def start_mlflow_server(root: Path) -> tuple[subprocess.Popen, str]:
    """A real MLflow tracking server on loopback: SQLite backend, artifacts served from a local folder."""
    port = free_port()
    root.mkdir()
    with open(root / "server.log", "w") as log:
        proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                                 "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                                 "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def start_ray_head(temp: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """A Ray head on loopback with 2 CPUs, its own ports and temp dir; its processes know nothing of the
    test's GANBENCH_HOME or tracking URI (tasks must get them from the sweep)."""
    gcs = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GANBENCH_HOME", "GANBENCH_CACHE", "MLFLOW_TRACKING_URI")}
    env["RAY_AUTH_MODE"] = "disabled"  # loopback only; a token in ~/.ray would otherwise switch token auth on
    ports = ["--port", gcs, "--ray-client-server-port", free_port(), "--dashboard-agent-listen-port", free_port(),
             "--dashboard-agent-grpc-port", free_port(), "--metrics-export-port", free_port(),
             "--runtime-env-agent-port", free_port(), "--node-manager-port", free_port(),
             "--object-manager-port", free_port()]
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                                 *map(str, ports), "--num-cpus", "2", "--num-gpus", "0", "--temp-dir", str(temp),
                                 "--include-dashboard", "false", "--disable-usage-stats"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, f"127.0.0.1:{gcs}"


def wait_until(ready, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while not ready():
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


def _healthy(uri: str) -> bool:
    try:
        return urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """The address of a Ray head on loopback that this module's tests share, as sweeps share an existing
    cluster. Ray's own start-up sometimes times out on 2 busy cores ("The current node timed out during
    startup"); that is Ray, not what these tests check, so a head that dies starting is started once more."""
    logs = tmp_path_factory.mktemp("ray-logs")
    for attempt in (1, 2):
        temp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
        log = logs / f"ray-start-{attempt}.log"
        head, address = start_ray_head(temp, log)
        try:
            wait_until(lambda: "Ray runtime started" in log.read_text(), head, log)
            break
        except AssertionError:
            end_session(head, grace_s=0)
            shutil.rmtree(temp, ignore_errors=True)
            if attempt == 2:
                raise
    try:
        yield address
    finally:
        end_session(head, grace_s=0)  # its state lives in the temp dir removed below
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_and_mlflow(tmp_path_factory, ray_cluster):
    """(Ray address, tracking URI): the module's Ray head and MLflow server, shared as a team shares them (each
    test logs to an experiment of its own)."""
    root = tmp_path_factory.mktemp("mlflow") / "server"
    server, uri = start_mlflow_server(root)
    try:
        wait_until(lambda: _healthy(uri), server, root / "server.log")
        yield ray_cluster, uri
    finally:
        end_session(server, grace_s=2)


def ray_worker(task_name: str) -> int | None:
    """The pid of the Ray worker running the task of that name (Ray titles it ``ray::<task name>``)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith(f"ray::{task_name}"):
            return int(pid)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("together", [False, True], ids=["cells", "concurrent-seeds"])
def test_ray_sweep_survives_a_killed_worker_with_one_finished_run_per_cell(tmp_path, ganbench_home, ray_and_mlflow,
                                                                           together):
    """One task per cell, or with --concurrent-seeds one per model (its two seeds trained together): the
    worker of a task whose cells have a checkpoint and are still training is killed; Ray retries the task,
    and each of its cells continues its own MLflow run from its checkpoint."""
    ray_cluster, mlflow_server = ray_and_mlflow
    epochs = 6
    name = "ring8-ray-together" if together else "ring8-ray"  # its own experiment and task names on the shared cluster
    proto = ring8_copy(tmp_path, name, epochs=epochs, subset=12800)
    t0 = time.time()
    sweep_cmd = [sys.executable, "-m", "ganbench.cli", "sweep", "--protocol", proto, "--seeds", "0", "1",
                 "--executor", "ray", "--address", ray_cluster, "--tracking-uri", mlflow_server]
    proc = subprocess.Popen(sweep_cmd + (["--concurrent-seeds"] if together else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    victims: dict[tuple, str] = {}  # killed cell -> its MLflow run
    deadline = time.time() + 150
    while not victims:  # the first task whose cells all have a checkpoint and still train: kill its worker
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no cell reached its first checkpoint"
        for model_dir in ganbench_home.glob(f"runs/{name}/*/*"):
            seeds = [0, 1] if together else [s for s in (0, 1) if (model_dir / f"seed{s}" / "checkpoints" / "last.pt").is_file()]
            for task_seeds in ([seeds] if together else [[s] for s in seeds]):
                dirs = [model_dir / f"seed{s}" for s in task_seeds]
                done = [len(list((d / "scatter").glob("epoch_*.png"))) for d in dirs]
                pid = ray_worker(f"ganbench-sweep {name} {model_dir.name} seed{','.join(map(str, task_seeds))}")
                if pid and all(1 <= k <= epochs - 2 for k in done):
                    victims = {(model_dir.name, s): (d / "mlflow_run_id").read_text().strip() for s, d in zip(task_seeds, dirs)}
                    os.kill(pid, signal.SIGKILL)
                    break
            if victims:
                break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=180)
    elapsed = time.time() - t0
    assert proc.returncode == 0, out + err[-5000:]

    # The summary: four finished cells; the killed ones were retried in the MLflow runs they had started.
    rows = {(m, int(s)): (status, action, run) for m, s, status, action, run in
            re.findall(rf"^{name} (\S+) seed (\d) +(\S+) +(\S+) +(\S+)$", out, re.M)}
    assert set(rows) == {(m, s) for m in ("gan-mlp2d", "wgan-gp-mlp2d") for s in (0, 1)}, out
    for cell, run in victims.items():
        assert rows[cell] == ("finished", "retried", run), out
    assert all(r[:2] == ("finished", "ran") for cell, r in rows.items() if cell not in victims), out
    k = len(victims)
    assert f"4 cells (0 skipped, {4 - k} ran, {k} retried); 0 not finished; executor ray at {ray_cluster}" in out

    # MLflow (the server every task logged to): exactly one run per cell, finished; nothing left running.
    client = MlflowClient(mlflow_server)
    active = cell_runs(client, f"ganbench/{name}")
    everything = cell_runs(client, f"ganbench/{name}", ViewType.ALL)
    assert len(active) == 4 and active.keys() == everything.keys()
    for cell, runs in everything.items():
        assert len(runs) == 1, cell  # not even a deleted attempt: the killed cell continued its own run
        (run,) = runs
        assert run.info.status == "FINISHED" and run.data.tags[TAG_STATUS] == "finished", cell
        assert run.info.run_id == rows[cell[1:]][2]
        assert run.data.params["concurrent_seeds"] == ("2" if together else "1")
        assert any(re.fullmatch(r"modes_hq_\d+", k) for k in run.data.metrics), run.data.metrics  # evaluated
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "d_loss"))
        assert steps[-1] == epochs, (cell, steps)
    print(f"ray sweep of 4 cells ({'seeds together' if together else 'one task per cell'}) with one killed "
          f"worker: {elapsed:.1f}s")


def test_adding_a_model_to_the_protocol_does_not_rerun_finished_cells(tmp_path, one_thread_module, monkeypatch):
    """A cell's identity is its protocol and its own model: another card joining the grid leaves it finished."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "gan-mlp2d-copy.toml").write_text((RING8.parent.parent / "zoo" / "gan-mlp2d.toml").read_text())
    monkeypatch.setenv("GANBENCH_ZOO_PATH", str(zoo))
    proto = ring8_copy(tmp_path, "ring8-grow", epochs=1, subset=1280)
    text = Path(proto).read_text()
    Path(proto).write_text(re.sub(r"(?m)^models = .*$", 'models = ["gan-mlp2d"]', text))
    (first,) = sweep(proto, seeds=[0], progress=False).cells
    assert (first.status, first.action) == ("finished", "ran")
    Path(proto).write_text(re.sub(r"(?m)^models = .*$", 'models = ["gan-mlp2d", "gan-mlp2d-copy"]', text))
    grown = sweep(proto, seeds=[0], progress=False).cells
    assert [(c.model, c.action) for c in grown] == [("gan-mlp2d", "skipped"), ("gan-mlp2d-copy", "ran")]
    assert grown[0].run_id == first.run_id and grown[0].protocol_hash == first.protocol_hash
    assert grown[1].protocol_hash != first.protocol_hash  # same hyper-parameters, another card: its own cell
