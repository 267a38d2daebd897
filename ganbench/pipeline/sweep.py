"""``ganbench sweep``: a grid of runs (protocol × model × seed) on this machine or on a Ray cluster.

Every cell of the grid is one :func:`ganbench.pipeline.run.run_one` call, the same path as ``ganbench run``
(with ``concurrent_seeds``, the unfinished seeds of one model under one protocol are one
:func:`ganbench.pipeline.run.run_together` call, as ``ganbench run --concurrent-seeds``, each seed still its
own cell); this module only decides which cells still need work, where they run, and how a cell
that was killed goes on:

- a cell with a finished MLflow run (same identity of protocol and model, and seed) is skipped, so a sweep
  that was stopped is resumed by starting it again;
- a cell whose last attempt was killed (its MLflow run still says ``running``, or ``stopped`` by an
  interrupt) continues that attempt's MLflow run from the run folder's ``checkpoints/last.pt``;
  an attempt killed before its first checkpoint has nothing to continue, so its MLflow run is
  deleted and the cell starts again. Either way the cell ends as exactly one MLflow run.

The local executor runs the cells one after another in this process. The Ray executor runs each
cell (or group of seeds) as a Ray task (one GPU per task when the cluster has GPUs, else
``cpus_per_task`` CPUs) that Ray retries when its worker dies; tasks get the driver's ganbench home,
cache and tracking URI, so on a cluster of several machines the ganbench home (run folders, checkpoints) must be shared storage
and the tracking store an MLflow server whose artifacts every node can reach.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ganbench.core import track
from ganbench.core.assets import atomic_write_bytes, cache_root, ganbench_home
from ganbench.core.concurrency import training_elsewhere
from ganbench.core.errors import GanbenchError
from ganbench.core.device import resolve_device
from ganbench.pipeline.run import run_one, run_together, training_images
from ganbench.training import run_dir_for
from ganbench.spec.protocol import RunSpec, load_protocol, resolve
from ganbench.training import batch_blockers, build_models, checkpoint_path

EXECUTORS = ("local", "ray")
RAY_GCS_PORT = 6379  # `ray start --head` defaults: the GCS port and the Ray Client server port
RAY_CLIENT_PORT = 10001
TRAINING_ELSEWHERE = "training elsewhere"  # a cell another live process is training now
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
    specs: list[RunSpec] = []
    for name in protocols:
        specs.extend(resolve(load_protocol(name), None, models, seeds))
    return specs


def cell_runs(tracker: track.Tracker, spec: RunSpec):
    """The MLflow runs of one cell (same protocol hash, model, seed) as rows of ``Tracker.search``."""
    return of_cell(tracker.search([track.experiment_name(spec.protocol.name)]), spec)


def of_cell(runs, spec: RunSpec):
    """The rows of ``runs`` (a ``Tracker.search`` frame) that belong to the cell of ``spec``."""
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


@dataclass(frozen=True)
class _Plan:
    """How a cell that needs work goes on: continue its killed attempt from the checkpoint (``resume``,
    at epoch ``epoch``) or start; ``killed``: an earlier attempt was killed; ``note`` says which."""

    resume: bool
    killed: bool
    note: str
    epoch: int = 0


@dataclass(frozen=True)
class CellState:
    """What the tracking store and the run folder say of one cell, read without changing either: its
    finished run (if any), its killed attempts, and whether the newest of them (the one the run folder
    names) can continue from the folder's ``checkpoints/last.pt``, which has ``epoch`` epochs done."""

    finished: str | None
    killed: tuple[str, ...] = ()
    resume: bool = False
    epoch: int = 0
    previous: str | None = None  # the MLflow run the run folder belongs to
    live: int | None = None  # the pid of another live process training the cell now (its attempt is not killed)


def inspect_cell(spec: RunSpec, runs) -> CellState:
    """The state of the cell of ``spec`` from its rows of ``Tracker.search`` (see :func:`of_cell`)."""
    done = finished_run(runs)
    if done is not None:
        return CellState(done)
    run_dir = run_dir_for(spec)
    live = training_elsewhere(run_dir)
    if live is not None:
        return CellState(None, live=live)
    id_file = run_dir / "mlflow_run_id"
    previous = id_file.read_text().strip() if id_file.is_file() else None
    killed = tuple(interrupted_runs(runs))
    ckpt = checkpoint_path(run_dir)
    resume = previous in killed and ckpt.is_file()
    epoch = int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]) if resume else 0
    return CellState(None, killed, resume, epoch, previous)


def plan_cell(spec: RunSpec, tracker: track.Tracker) -> CellResult | _Plan:
    """A finished cell's result (skipped), or the plan of a cell that needs work. Killed attempts that
    cannot be continued are discarded here, and a fresh start removes a stale checkpoint."""
    state = inspect_cell(spec, cell_runs(tracker, spec))
    if state.finished is not None:
        return CellResult(**_cell_fields(spec), status="finished", action="skipped", run_id=state.finished)
    if state.live is not None:
        return CellResult(**_cell_fields(spec), status=TRAINING_ELSEWHERE, action="skipped",
                          note=f"being trained by another live process (pid {state.live}): left alone")
    for run_id in state.killed:
        if not (state.resume and run_id == state.previous):
            discard_attempt(tracker, run_id, "a killed attempt with no checkpoint to continue; the cell started again")
    if not state.resume:  # a fresh start: a checkpoint left by an older attempt must not be continued later
        checkpoint_path(run_dir_for(spec)).unlink(missing_ok=True)
    note = ("continued the killed attempt's run from its last checkpoint" if state.resume else
            "the killed attempt left no checkpoint: started again" if state.killed else "")
    return _Plan(state.resume, bool(state.killed), note, state.epoch)


def _cell_fields(spec: RunSpec) -> dict:
    return dict(protocol=spec.protocol.name, protocol_hash=spec.protocol_hash, model=spec.model.name,
                seed=spec.seed, run_dir=str(run_dir_for(spec)))


def _ran(spec: RunSpec, plan: _Plan, outcome) -> CellResult:
    return CellResult(**_cell_fields(spec), status=outcome.status, action="retried" if plan.killed else "ran",
                      run_id=outcome.run_id, note="; ".join(x for x in (plan.note, outcome.message) if x))


def _failed(spec: RunSpec, why: str) -> CellResult:
    """A cell that failed, with the MLflow run its attempt had opened (if any)."""
    id_file = run_dir_for(spec) / "mlflow_run_id"
    return CellResult(**_cell_fields(spec), status="failed", action="ran",
                      run_id=id_file.read_text().strip() if id_file.is_file() else "", note=why)


def _failed_cell(spec: RunSpec, err: BaseException) -> CellResult:
    """A cell that raised; run_one/run_together have already ended its MLflow run."""
    print("".join(traceback.format_exception(err)), file=sys.stderr)
    return _failed(spec, f"{type(err).__name__}: {err}")


def run_cell(spec: RunSpec, data, device, tracker: track.Tracker, data_root=None, progress: bool = False) -> CellResult:
    """Run one cell through ``run_one``: skip it when finished, continue a killed attempt, else start it.
    Never raises for a failed cell (the result says why), only for KeyboardInterrupt."""
    try:
        plan = plan_cell(spec, tracker)
        if isinstance(plan, CellResult):
            return plan
        return _ran(spec, plan, run_one(spec, data, device, tracker, plan.resume, data_root, progress))
    except Exception as err:  # a failed cell must not end the sweep
        return _failed_cell(spec, err)


def why_not_together(spec: RunSpec) -> str:
    """Why the seeds of ``spec``'s model cannot train together ("" when they can)."""
    return "; ".join(batch_blockers(spec, *build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))))


def run_group(specs: list[RunSpec], data, device, tracker: track.Tracker, data_root=None,
              progress: bool = False) -> list[CellResult]:
    """The cells of one model under one protocol (its seeds), trained together where they can be
    (``ganbench run --concurrent-seeds``), each still its own cell and MLflow run: finished cells are
    skipped as in :func:`run_cell`, the cells that start train together, and so do the killed attempts
    that stopped at the same epoch (their checkpoints continue together). A model whose seeds cannot be
    batched runs its cells one after another. Never raises for a failed cell."""
    why = why_not_together(specs[0]) if len(specs) > 1 else ""
    if len(specs) == 1 or why:
        cells = [run_cell(spec, data, device, tracker, data_root, progress) for spec in specs]
        return [c if not why or c.action == "skipped" else
                dataclasses.replace(c, note="; ".join(x for x in (f"trained alone: {why}", c.note) if x)) for c in cells]
    results: dict[int, CellResult] = {}
    waves: dict[tuple[bool, int], list[tuple[int, _Plan]]] = {}
    for i, spec in enumerate(specs):
        try:
            plan = plan_cell(spec, tracker)
        except Exception as err:
            results[i] = _failed_cell(spec, err)
            continue
        if isinstance(plan, CellResult):
            results[i] = plan
        else:
            waves.setdefault((plan.resume, plan.epoch), []).append((i, plan))
    for (resume, _), members in waves.items():
        group = [specs[i] for i, _ in members]
        try:
            outcomes = run_together(group, data, device, tracker, resume, data_root, progress)
        except Exception as err:
            outcomes = [err] * len(group)
        for (i, plan), spec, outcome in zip(members, group, outcomes):
            results[i] = _failed_cell(spec, outcome) if isinstance(outcome, Exception) else _ran(spec, plan, outcome)
    return [results[i] for i in range(len(specs))]


# --------------------------------------------------------------------------- executors


def sweep(protocols: str | Sequence[str], models: list[str] | None = None, seeds: list[int] | None = None,
          executor: str = "local", address: str | None = None, tracking_uri: str | None = None,
          device: str = "auto", data_root=None, max_retries: int = 3, cpus_per_task: float = 1,
          progress: bool = True, on_cell: Callable[[CellResult], None] | None = None,
          concurrent_seeds: bool = False) -> SweepResult:
    """Run every cell of the grid that has not finished yet; returns one result per cell, in grid order.

    ``executor`` "local" runs the cells here one after another; "ray" runs each as a Ray task on the
    cluster at ``address`` (``ray://HOST:PORT`` through Ray Client, ``HOST:PORT`` from a cluster node,
    None: ``RAY_ADDRESS``, a cluster started on this machine, or a new local one), retried up to
    ``max_retries`` times when its worker dies. ``on_cell`` is called as each cell ends.

    ``concurrent_seeds``: the unfinished seeds of each (protocol, model) train together in one process,
    one task (and one GPU) per group instead of per cell (:func:`run_group`); each seed stays its own
    cell and MLflow run."""
    if executor not in EXECUTORS:
        raise GanbenchError(f"executor={executor!r}: expected one of {', '.join(EXECUTORS)}")
    if max_retries < 0 or cpus_per_task <= 0:
        raise GanbenchError(f"max_retries={max_retries}, cpus_per_task={cpus_per_task}: expected retries >= 0 and "
                            "CPUs per task > 0")
    if address is not None and executor != "ray":
        raise GanbenchError(f"address={address!r} names a Ray cluster: use it with executor='ray'")
    if executor == "ray":  # fail before any work: Ray missing, a device Ray cannot give, nothing at the address
        _import_ray()
        if device not in ("auto", "cpu", "cuda"):
            raise GanbenchError(f"device={device!r} with executor='ray': Ray gives each task its own GPU; "
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
    units = tasks(todo, concurrent_seeds)
    if units and executor == "local":
        cells.update(_run_local(units, tracker, device, data_root, progress, on_cell))
    elif units:
        cells.update(_run_ray(units, tracker, address, device, data_root, max_retries, cpus_per_task, on_cell))
    ordered = [cells[i] for i in range(len(specs))]
    counts = {k: sum(c.action == k for c in ordered) for k in ("skipped", "ran", "retried")}
    return SweepResult(ordered, executor, tracker.uri, address, counts)


def tasks(todo: dict[int, RunSpec], concurrent_seeds: bool) -> list[dict[int, RunSpec]]:
    """The units of work, each one :func:`run_group` call: one cell each, or with ``concurrent_seeds`` the
    cells of one model under one protocol (same hash) together, in grid order."""
    if not concurrent_seeds:
        return [{i: spec} for i, spec in todo.items()]
    groups: dict[tuple, dict[int, RunSpec]] = {}
    for i, spec in todo.items():
        groups.setdefault((spec.protocol.name, spec.protocol_hash, spec.model.name), {})[i] = spec
    return list(groups.values())


def _run_local(units: list[dict[int, RunSpec]], tracker, device, data_root, progress, on_cell) -> dict[int, CellResult]:
    dev = resolve_device(device)
    cells, data = {}, {}
    for unit in units:
        protocol = next(iter(unit.values())).protocol
        if protocol.name not in data:  # one protocol's cells share its training data
            data = {protocol.name: training_images(protocol, data_root)}
        for i, cell in zip(unit, run_group(list(unit.values()), data[protocol.name], dev, tracker, data_root, progress)):
            cells[i] = cell
            if on_cell:
                on_cell(cell)
    return cells


def _import_ray():
    try:
        import ray  # an optional extra (ganbench[ray]): only the Ray executor needs it
    except ImportError as err:
        raise GanbenchError("executor='ray' needs Ray, an optional extra: pip install 'ganbench[ray]' "
                            "(or use executor='local')") from err
    return ray


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of ``ray://HOST[:PORT]`` (Ray Client) or ``HOST[:PORT]`` (GCS), with Ray's default ports."""
    client = address.startswith("ray://")
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep:
        host, port = hostport, str(RAY_CLIENT_PORT if client else RAY_GCS_PORT)
    if not port.isdigit() or not host:
        raise GanbenchError(f"address={address!r}: expected ray://HOST:PORT (Ray Client) or HOST:PORT (the GCS "
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
                            "tracking_uri='http://HOST:PORT'")


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
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as err:  # ConnectionError, RuntimeError (version mismatch), ...
        hint = ""
        if "nauthenticated" in str(err) or "uthentication" in type(err).__name__:
            hint = ("; the cluster uses token authentication: set RAY_AUTH_MODE=token and its token "
                    "(RAY_AUTH_TOKEN or ~/.ray/auth_token)")
        raise GanbenchError(f"cannot connect to the Ray cluster at {address or 'the default address'}: "
                            f"{type(err).__name__}: {err}{hint}") from err


def _run_ray(units: list[dict[int, RunSpec]], tracker, address, device, data_root, max_retries, cpus_per_task,
             on_cell) -> dict[int, CellResult]:
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
            raise GanbenchError("device='cuda': the Ray cluster has no GPUs; use device='auto' or device='cpu'")
        use_gpu = bool(gpus) and device != "cpu"
        if max((n.get("Resources", {}).get("CPU", 0) for n in nodes), default=0) < cpus_per_task:
            raise GanbenchError(f"cpus_per_task={cpus_per_task}: no node of the Ray cluster has that many CPUs")
        # A manifest in the ganbench home: tasks refuse to run where it is not visible (home not shared).
        manifest = ganbench_home() / "sweeps" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
        atomic_write_bytes(manifest, json.dumps({
            "address": address, "tracking_uri": tracker.uri, "device": device,
            "cells": [[s.protocol.name, s.protocol_hash, s.model.name, s.seed] for u in units for s in u.values()]},
            indent=1).encode())
        env = {"GANBENCH_HOME": str(ganbench_home()), "GANBENCH_CACHE": str(cache_root()),
               "MLFLOW_TRACKING_URI": tracker.uri}
        task = ray.remote(ray_group)
        refs = {}
        for unit in units:
            specs = list(unit.values())
            seeds = ",".join(str(s.seed) for s in specs)
            ref = task.options(name=f"ganbench-sweep {specs[0].protocol.name} {specs[0].model.name} seed{seeds}",
                               num_cpus=cpus_per_task, num_gpus=1 if use_gpu else 0, max_retries=max_retries,
                               retry_exceptions=False).remote(specs, env, "cuda" if use_gpu else "cpu", data_root,
                                                              str(manifest))
            refs[ref] = unit
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    unit = refs[ref]
                    for i, cell in zip(unit, _task_result(ray, ref, list(unit.values()), max_retries)):
                        cells[i] = cell
                        if on_cell:
                            on_cell(cell)
        except KeyboardInterrupt:
            for ref in pending:  # killed attempts stay `running` in MLflow: the next sweep continues them
                ray.cancel(ref, force=True)
            raise
    finally:
        ray.shutdown()
    return cells


def _task_result(ray, ref, specs: list[RunSpec], max_retries: int) -> list[CellResult]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:  # workers died more than max_retries times, a task raised, ...
        cause = getattr(err, "cause", None) or err
        if isinstance(err, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
            why = f"the task's worker died {max_retries + 1} times ({type(err).__name__})"
        else:
            why = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
        return [_failed(spec, why) for spec in specs]


def ray_group(specs: list[RunSpec], env: dict[str, str], device: str, data_root, manifest: str) -> list[CellResult]:
    """The body of one Ray task: the driver's ganbench home, cache and tracking URI, then :func:`run_group`."""
    os.environ.update(env)
    if not Path(manifest).is_file():
        raise GanbenchError(f"GANBENCH_HOME {env['GANBENCH_HOME']} on {socket.gethostname()} does not hold {manifest}, "
                            "which the sweep's driver wrote there: every Ray node must mount the same GANBENCH_HOME "
                            "(shared storage such as NFS), or a retried cell cannot find its checkpoints")
    data = training_images(specs[0].protocol, data_root)
    return run_group(specs, data, resolve_device(device), track.Tracker(env["MLFLOW_TRACKING_URI"]), data_root)


def to_json(result: SweepResult) -> str:
    return json.dumps({"executor": result.executor, "address": result.address, "tracking_uri": result.tracking_uri,
                       "counts": result.counts, "cells": [asdict(c) for c in result.cells]}, indent=2)
