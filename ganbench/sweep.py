"""``ganbench sweep``: a grid of runs (protocol × model × seed) on this machine or on a Ray cluster.

Every cell of the grid is one :func:`ganbench.run.run_one` call, the same path as ``ganbench run``;
this module only decides which cells still need work, where they run, and how a cell that was
killed goes on:

- a cell with a finished MLflow run (same protocol hash, model and seed) is skipped, so a sweep
  that was stopped is resumed by starting it again;
- a cell whose last attempt was killed (its MLflow run still says ``running``, or ``stopped`` by an
  interrupt) continues that attempt's MLflow run from the run folder's ``checkpoints/last.pt``;
  an attempt killed before its first checkpoint has nothing to continue, so its MLflow run is
  deleted and the cell starts again. Either way the cell ends as exactly one MLflow run.

The local executor runs the cells one after another in this process. The Ray executor runs each
cell as a Ray task (one GPU per task when the cluster has GPUs, else ``cpus_per_task`` CPUs) that
Ray retries when its worker dies; tasks get the driver's ganbench home, cache and tracking URI, so
on a cluster of several machines the ganbench home (run folders, checkpoints) must be shared storage
and the tracking store an MLflow server whose artifacts every node can reach.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ganbench import track
from ganbench.errors import GanbenchError
from ganbench.protocol import RunSpec
from ganbench.run import run_dir_for

EXECUTORS = ("local", "ray")
RAY_GCS_PORT = 6379  # `ray start --head` defaults: the GCS port and the Ray Client server port
RAY_CLIENT_PORT = 10001
INTERRUPTED = "running"  # the ganbench status tag of an attempt whose process died without ending its run


@dataclass(frozen=True)
class CellResult:
    """What became of one cell: ``status`` is the run's (finished | diverged | stopped | failed);
    ``action`` is skipped (already finished), ran, or retried (an earlier attempt had been killed)."""

    protocol: str
    protocol_hash: str
    model: str
    seed: int
    status: str
    action: str
    run_id: str = ""
    run_dir: str = ""
    note: str = ""  # how a retried cell went on, or why it failed

    @property
    def cell(self) -> str:
        return f"{self.protocol} {self.model} seed {self.seed}"


@dataclass(frozen=True)
class SweepResult:
    cells: list[CellResult]
    executor: str
    tracking_uri: str
    address: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.status == "finished" for c in self.cells)

    def table(self) -> str:
        """The summary: one line per cell (status, action, MLflow run id) with its note below, then the totals."""
        head = ("cell", "status", "action", "run")
        rows = [(c.cell, c.status, c.action, c.run_id or "-") for c in self.cells]
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        lines = ["  ".join(x.ljust(w) for x, w in zip(head, widths)).rstrip()]
        for c, row in zip(self.cells, rows):
            lines.append("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
            if c.note:
                lines.append(f"    {c.note.splitlines()[0]}")
        where = "local" if self.executor == "local" else f"ray at {self.address or 'the default cluster'}"
        totals = ", ".join(f"{n} {k}" for k, n in self.counts.items())
        unfinished = sum(c.status != "finished" for c in self.cells)
        lines.append(f"{len(self.cells)} cells ({totals}); {unfinished} not finished; executor {where}; "
                     f"tracking {self.tracking_uri}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the grid and its state


def expand(protocols: Sequence[str], models: list[str] | None = None, seeds: list[int] | None = None) -> list[RunSpec]:
    """The grid: one RunSpec per (protocol, model, seed); models and seeds default to each protocol's own."""
    from ganbench.metrics.extractors import inception_weights
    from ganbench.protocol import load_protocol, resolve

    weights = inception_weights().features_sha256
    specs: list[RunSpec] = []
    for name in protocols:
        specs.extend(resolve(load_protocol(name), weights, models, seeds))
    return specs


def cell_runs(tracker: track.Tracker, spec: RunSpec):
    """The MLflow runs of one cell (same protocol hash, model, seed) as rows of ``Tracker.search``."""
    runs = tracker.search([track.experiment_name(spec.protocol.name)])
    if runs.empty:
        return runs
    return runs[(runs["protocol_hash"] == spec.protocol_hash) & (runs["model"] == spec.model.name)
                & (runs["seed"] == spec.seed)]


def finished_cells(tracker: track.Tracker, specs: list[RunSpec]) -> dict[int, str]:
    """Index in ``specs`` -> the run id of that cell's finished MLflow run, for cells that have one
    (one search per protocol experiment)."""
    out: dict[int, str] = {}
    for experiment in dict.fromkeys(track.experiment_name(s.protocol.name) for s in specs):
        runs = tracker.search([experiment])
        if runs.empty:
            continue
        done = runs[runs["status"] == "finished"].dropna(subset=["protocol_hash", "model", "seed"])
        done = done.sort_values("start_time")
        columns = done[["protocol_hash", "model", "seed", "run_id"]]
        latest = {(h, m, int(s)): r for h, m, s, r in columns.itertuples(index=False)}
        for i, spec in enumerate(specs):
            key = (spec.protocol_hash, spec.model.name, spec.seed)
            if track.experiment_name(spec.protocol.name) == experiment and key in latest:
                out[i] = str(latest[key])
    return out


def finished_run(runs) -> str | None:
    done = runs[runs["status"] == "finished"] if not runs.empty else runs
    return None if done.empty else str(done.sort_values("start_time")["run_id"].iloc[-1])


def interrupted_runs(runs) -> list[str]:
    """Attempts that were killed (still ``running``) or interrupted (``stopped`` without a health stop reason)."""
    if runs.empty:
        return []
    reason = runs.get(f"tags.{track.TAG_STOP_REASON}")
    stopped = (runs["status"] == "stopped") & (reason.isna() if reason is not None else True)
    return list(runs[(runs["status"] == INTERRUPTED) | stopped]["run_id"])


def discard_attempt(tracker: track.Tracker, run_id: str, why: str) -> None:
    """End a killed attempt that cannot be continued and delete its MLflow run (``mlflow gc`` purges it;
    ``mlflow runs restore`` brings it back), so that the cell ends as one run, not a killed one plus another."""
    tracker.end(run_id, "stopped", why)
    tracker.delete(run_id)


# --------------------------------------------------------------------------- one cell


def run_cell(spec: RunSpec, data, device, tracker: track.Tracker, data_root=None, progress: bool = False) -> CellResult:
    """Run one cell through ``run_one``: skip it when finished, continue a killed attempt, else start it.
    Never raises for a failed cell (the result says why), only for KeyboardInterrupt."""
    from ganbench.run import run_one
    from ganbench.train import checkpoint_path

    run_dir = run_dir_for(spec)
    result = dict(protocol=spec.protocol.name, protocol_hash=spec.protocol_hash, model=spec.model.name,
                  seed=spec.seed, run_dir=str(run_dir))
    try:
        runs = cell_runs(tracker, spec)
        done = finished_run(runs)
        if done is not None:
            return CellResult(**result, status="finished", action="skipped", run_id=done)
        id_file = run_dir / "mlflow_run_id"
        previous = id_file.read_text().strip() if id_file.is_file() else None
        killed = interrupted_runs(runs)
        resume = previous in killed and checkpoint_path(run_dir).is_file()
        for run_id in killed:
            if not (resume and run_id == previous):
                discard_attempt(tracker, run_id, "a killed attempt with no checkpoint to continue; the cell started again")
        if not resume:  # a fresh start: a checkpoint left by an older attempt must not be continued later
            checkpoint_path(run_dir).unlink(missing_ok=True)
        note = ("continued the killed attempt's run from its last checkpoint" if resume else
                "the killed attempt left no checkpoint: started again" if killed else "")
        outcome = run_one(spec, data, device, tracker, resume, data_root, progress)
        message = "; ".join(x for x in (note, outcome.message) if x)
        return CellResult(**result, status=outcome.status, action="retried" if killed else "ran",
                          run_id=outcome.run_id, note=message)
    except Exception as err:  # a failed cell must not end the sweep; run_one has already ended its MLflow run
        print(traceback.format_exc(), file=sys.stderr)
        id_file = run_dir / "mlflow_run_id"
        return CellResult(**result, status="failed", action="ran",
                          run_id=id_file.read_text().strip() if id_file.is_file() else "",
                          note=f"{type(err).__name__}: {err}")


# --------------------------------------------------------------------------- executors


def sweep(protocols: str | Sequence[str], models: list[str] | None = None, seeds: list[int] | None = None,
          executor: str = "local", address: str | None = None, tracking_uri: str | None = None,
          device: str = "auto", data_root=None, max_retries: int = 3, cpus_per_task: float = 1,
          progress: bool = True, on_cell: Callable[[CellResult], None] | None = None) -> SweepResult:
    """Run every cell of the grid that has not finished yet; returns one result per cell, in grid order.

    ``executor`` "local" runs the cells here one after another; "ray" runs each as a Ray task on the
    cluster at ``address`` (``ray://HOST:PORT`` through Ray Client, ``HOST:PORT`` from a cluster node,
    None: ``RAY_ADDRESS``, a cluster started on this machine, or a new local one), retried up to
    ``max_retries`` times when its worker dies. ``on_cell`` is called as each cell ends."""
    if executor not in EXECUTORS:
        raise GanbenchError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if max_retries < 0 or cpus_per_task <= 0:
        raise GanbenchError("--max-retries must be >= 0 and --cpus-per-task > 0")
    if address is not None and executor != "ray":
        raise GanbenchError("--address names a Ray cluster: use it with --executor ray")
    if executor == "ray":  # fail before any work: Ray missing, a device Ray cannot give, nothing at the address
        _import_ray()
        if device not in ("auto", "cpu", "cuda"):
            raise GanbenchError(f"--device {device!r} with --executor ray: Ray gives each task its own GPU; "
                                "use auto, cuda or cpu")
        if address not in (None, "auto", "local"):
            host = parse_address(address)[0]
            if not is_local_address(host):
                refuse_local_store(track.tracking_uri(tracking_uri), f"the Ray cluster on {host}")
            check_reachable(address)
    specs = expand([protocols] if isinstance(protocols, str) else list(protocols), models, seeds)
    tracker = track.Tracker(tracking_uri)
    cells: dict[int, CellResult] = {}
    for i, run_id in finished_cells(tracker, specs).items():  # no task for these (each task checks again)
        spec = specs[i]
        cells[i] = CellResult(spec.protocol.name, spec.protocol_hash, spec.model.name, spec.seed, "finished",
                              "skipped", run_id, str(run_dir_for(spec)))
        if on_cell:
            on_cell(cells[i])
    todo = {i: spec for i, spec in enumerate(specs) if i not in cells}
    for experiment in dict.fromkeys(track.experiment_name(s.protocol.name) for s in todo.values()):
        tracker.experiment_id(experiment)  # once here rather than in every task
    if todo and executor == "local":
        cells.update(_run_local(todo, tracker, device, data_root, progress, on_cell))
    elif todo:
        cells.update(_run_ray(todo, tracker, address, device, data_root, max_retries, cpus_per_task, on_cell))
    ordered = [cells[i] for i in range(len(specs))]
    counts = {k: sum(c.action == k for c in ordered) for k in ("skipped", "ran", "retried")}
    return SweepResult(ordered, executor, tracker.uri, address, counts)


def _run_local(todo: dict[int, RunSpec], tracker, device, data_root, progress, on_cell) -> dict[int, CellResult]:
    from ganbench.run import resolve_device, training_images

    dev = resolve_device(device)
    cells, data = {}, {}
    for i, spec in todo.items():
        if spec.protocol.name not in data:  # one protocol's cells share its training data
            data = {spec.protocol.name: training_images(spec.protocol, data_root)}
        cells[i] = run_cell(spec, data[spec.protocol.name], dev, tracker, data_root, progress)
        if on_cell:
            on_cell(cells[i])
    return cells


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise GanbenchError("--executor ray needs Ray, an optional extra: pip install 'ganbench[ray]' "
                            "(or use --executor local)") from err
    return ray


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of ``ray://HOST[:PORT]`` (Ray Client) or ``HOST[:PORT]`` (GCS), with Ray's default ports."""
    client = address.startswith("ray://")
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep:
        host, port = hostport, str(RAY_CLIENT_PORT if client else RAY_GCS_PORT)
    if not port.isdigit() or not host:
        raise GanbenchError(f"--address {address!r}: expected ray://HOST:PORT (Ray Client) or HOST:PORT (the GCS "
                            "address `ray start --head` prints), or auto")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast with a readable message when nothing listens at a Ray address (``ray.init`` would wait)."""
    try:
        socket.create_connection(parse_address(address), timeout=timeout_s).close()
    except OSError as err:
        raise GanbenchError(f"cannot reach the Ray cluster at {address} ({err}); start one with `ray start --head` "
                            f"(GCS port {RAY_GCS_PORT}, Ray Client port {RAY_CLIENT_PORT}) or check the address") from err


def refuse_local_store(uri: str, where: str) -> None:
    if local_store(uri):
        raise GanbenchError(f"the tracking store {uri} is a local file, but {where} cannot write to it: run an MLflow "
                            "server (mlflow server --backend-store-uri ... --artifacts-destination ...) and pass "
                            "--tracking-uri http://HOST:PORT")


def local_store(uri: str) -> bool:
    """A tracking store only this machine can write: an SQLite file or a local folder."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri and not uri.startswith("databricks")


def is_local_address(host: str) -> bool:
    """Whether ``host`` is an address of this machine (binding to it only works here)."""
    try:
        for family, kind, _, _, addr in socket.getaddrinfo(host, 0, type=socket.SOCK_DGRAM):
            with socket.socket(family, kind) as s:
                s.bind(addr)
        return True
    except OSError:
        return False


def _connect(ray, address: str | None):
    import logging

    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as err:  # ConnectionError, RuntimeError (version mismatch), ...
        hint = ""
        if "nauthenticated" in str(err) or "uthentication" in type(err).__name__:
            hint = ("; the cluster uses token authentication: set RAY_AUTH_MODE=token and its token "
                    "(RAY_AUTH_TOKEN or ~/.ray/auth_token)")
        raise GanbenchError(f"cannot connect to the Ray cluster at {address or 'the default address'}: "
                            f"{type(err).__name__}: {err}{hint}") from err


def _run_ray(todo: dict[int, RunSpec], tracker, address, device, data_root, max_retries, cpus_per_task,
             on_cell) -> dict[int, CellResult]:
    from ganbench.assets import atomic_write_bytes, cache_root, ganbench_home

    ray = _import_ray()
    cells: dict[int, CellResult] = {}
    _connect(ray, address)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        remote_nodes = sorted(ip for ip in {n["NodeManagerAddress"] for n in nodes} if not is_local_address(ip))
        if remote_nodes:
            refuse_local_store(tracker.uri, f"the Ray cluster's nodes on other hosts ({', '.join(remote_nodes)})")
        gpus = ray.cluster_resources().get("GPU", 0)
        if device == "cuda" and not gpus:
            raise GanbenchError("--device cuda: the Ray cluster has no GPUs; use --device auto or cpu")
        use_gpu = bool(gpus) and device != "cpu"
        if max((n.get("Resources", {}).get("CPU", 0) for n in nodes), default=0) < cpus_per_task:
            raise GanbenchError(f"--cpus-per-task {cpus_per_task}: no node of the Ray cluster has that many CPUs")
        # A manifest in the ganbench home: tasks refuse to run where it is not visible (home not shared).
        manifest = ganbench_home() / "sweeps" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
        atomic_write_bytes(manifest, json.dumps({
            "address": address, "tracking_uri": tracker.uri, "device": device,
            "cells": [[s.protocol.name, s.protocol_hash, s.model.name, s.seed] for s in todo.values()]},
            indent=1).encode())
        env = {"GANBENCH_HOME": str(ganbench_home()), "GANBENCH_CACHE": str(cache_root()),
               "MLFLOW_TRACKING_URI": tracker.uri}
        task = ray.remote(ray_cell)
        refs = {}
        for i, spec in todo.items():
            ref = task.options(name=f"ganbench-sweep {spec.protocol.name} {spec.model.name} seed{spec.seed}",
                               num_cpus=cpus_per_task, num_gpus=1 if use_gpu else 0, max_retries=max_retries,
                               retry_exceptions=False).remote(spec, env, "cuda" if use_gpu else "cpu", data_root,
                                                              str(manifest))
            refs[ref] = i
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    i = refs[ref]
                    cells[i] = _task_result(ray, ref, todo[i], max_retries)
                    if on_cell:
                        on_cell(cells[i])
        except KeyboardInterrupt:
            for ref in pending:  # killed attempts stay `running` in MLflow: the next sweep continues them
                ray.cancel(ref, force=True)
            raise
    finally:
        ray.shutdown()
    return cells


def _task_result(ray, ref, spec: RunSpec, max_retries: int) -> CellResult:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:  # workers died more than max_retries times, a task raised, ...
        cause = getattr(err, "cause", None) or err
        if isinstance(err, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
            why = f"the task's worker died {max_retries + 1} times ({type(err).__name__})"
        else:
            why = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
        id_file = run_dir_for(spec) / "mlflow_run_id"
        return CellResult(spec.protocol.name, spec.protocol_hash, spec.model.name, spec.seed, "failed", "ran",
                          id_file.read_text().strip() if id_file.is_file() else "", str(run_dir_for(spec)), why)


def ray_cell(spec: RunSpec, env: dict[str, str], device: str, data_root, manifest: str) -> CellResult:
    """The body of one Ray task: the driver's ganbench home, cache and tracking URI, then :func:`run_cell`."""
    os.environ.update(env)
    if not Path(manifest).is_file():
        raise GanbenchError(f"GANBENCH_HOME {env['GANBENCH_HOME']} on {socket.gethostname()} does not hold {manifest}, "
                            "which the sweep's driver wrote there: every Ray node must mount the same GANBENCH_HOME "
                            "(shared storage such as NFS), or a retried cell cannot find its checkpoints")
    from ganbench.run import resolve_device, training_images

    data = training_images(spec.protocol, data_root)
    return run_cell(spec, data, resolve_device(device), track.Tracker(env["MLFLOW_TRACKING_URI"]), data_root)


def to_json(result: SweepResult) -> str:
    return json.dumps({"executor": result.executor, "address": result.address, "tracking_uri": result.tracking_uri,
                       "counts": result.counts, "cells": [asdict(c) for c in result.cells]}, indent=2)
