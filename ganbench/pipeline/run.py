"""``ganbench run``: a protocol end to end — data, training, evaluation, tracking — one run per (model, seed).

Each run gets a folder under ``<ganbench home>/runs/<protocol>/<identity[:12]>/<model>/seed<k>`` (checkpoints,
grids, records) and an MLflow run in the experiment ``ganbench/<protocol>``. A run that diverges or
fails keeps every artifact written so far and is tagged with its status.
"""

from __future__ import annotations

import contextlib
import functools
import dataclasses
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch


from ganbench.core import track
from ganbench.core.assets import atomic_torch_save, atomic_write_bytes
from ganbench.core.concurrency import ThreadShare, fixed_threads, training_lock
from ganbench.core.errors import GanbenchError
from ganbench.core.plots import loss_plot, save_grid, scatter_2d
from ganbench.core.device import device_name, resolve_device, versions
from ganbench.data import ImageSet, get_dataset, is_points, load_data
from ganbench.diagnosis import SAMPLE_STATS_FILE, health_monitor, record_health
from ganbench.metrics.samples import load_tensors
from ganbench.core.registry import EXTRACTORS
from ganbench.core.hooks import Growing
from ganbench.spec.protocol import Protocol, RunSpec, load_protocol, networks_read, resolve
from ganbench.metrics.translation import task_split
from ganbench.nets.sampling import TRIPLETS_PER_ROW, generate, is_translator, triplets
from ganbench.pipeline.measure import curve_point, evaluate_final
from ganbench.spec.seeds import fixed_z
from ganbench.training import (CHECKPOINT_DIR, FINAL_WEIGHTS, build_models, check_batchable, check_together,
                               checkpoint_path, num_classes, run_dir_for, train_together)


@dataclass(frozen=True)
class RunOutcome:
    model: str
    seed: int
    status: str
    run_id: str
    run_dir: Path
    metrics: dict[str, float]
    message: str = ""




def training_images(protocol: Protocol, data_root=None) -> ImageSet:
    try:
        return load_data(protocol.data, protocol.data.split, data_root)
    except GanbenchError as err:
        raise GanbenchError(f"protocol {protocol.name!r}: {err}") from err








def run_protocol(protocol: str, models: list[str] | None = None, seeds: list[int] | None = None,
                 device: str = "auto", resume: bool = False, tracking_uri: str | None = None,
                 data_root=None, progress: bool = True, stop_on: str | None = None,
                 overrides: dict | None = None, fast: bool = True, together: bool = False,
                 threads: int | None = None) -> list[RunOutcome]:
    """Train and evaluate every (model, seed) of a protocol; returns one outcome per run. ``stop_on``
    ("failure" | "warning") ends a run early when the health diagnostics find that severity;
    ``overrides`` (dotted keys such as ``tricks.ema``) change the chosen models' cards for this run;
    ``fast=False`` trains on the plain path (see ``ganbench.training.loop.train``); ``together`` trains each
    model's seeds together in one process (``ganbench.training.stack``), each still its own MLflow run.
    ``resume`` continues each run from its last checkpoint, starts one that has none, and leaves a
    finished run as it is. ``threads`` fixes torch's threads per run (default: a fair share of the
    cores among the ganbench runs alive on this machine, see ``ganbench.core.concurrency``)."""
    fixed_threads(threads)  # a bad --threads or GANBENCH_THREADS is refused before any work
    proto = load_protocol(protocol)
    dev = resolve_device(device)
    specs = resolve(proto, None, models, seeds, overrides)
    data = training_images(proto, data_root)
    tracker = track.Tracker(tracking_uri)
    groups = [[s for s in specs if s.model.name == name] for name in dict.fromkeys(s.model.name for s in specs)]
    if not together:
        groups = [[s] for s in specs]
    outcomes = []
    for group in groups:
        outcomes.extend(run_together(group, data, dev, tracker, resume, data_root, progress, stop_on, fast, threads))
    return outcomes


def check_evaluation_weights(protocol: Protocol) -> None:
    """Open every network the protocol's evaluation will read (fetching what is missing): a damaged or missing
    weight file is an error before training, not after it (identities are computed from pins, without them)."""
    for extractor, dataset in networks_read(protocol):
        EXTRACTORS[extractor].check_ready(dataset)


def run_one(spec: RunSpec, data: ImageSet, device: torch.device, tracker: track.Tracker, resume: bool,
            data_root=None, progress: bool = True, stop_on: str | None = None, fast: bool = True,
            threads: int | None = None) -> RunOutcome:
    """One (model, seed): train, evaluate, track."""
    return run_together([spec], data, device, tracker, resume, data_root, progress, stop_on, fast, threads)[0]


INTERRUPTED = "interrupted; `ganbench run` with the same arguments and --resume continues it from its last checkpoint"


@dataclass
class _Opened:
    """A run whose MLflow run and folder exist: what training reports to (``on_epoch``, ``on_phase``: the
    trainer's callbacks) and what evaluation and the end of the run write to."""

    spec: RunSpec
    run_id: str
    run_dir: Path
    tracker: track.Tracker
    device: torch.device
    data_root: object = None
    monitor: object = None

    @functools.cached_property
    def grid_z(self) -> torch.Tensor:
        """The fixed z of the epoch grids (2D mixtures: of the scatter, eval.num_samples points)."""
        ev = self.spec.protocol.eval
        n = ev.num_samples if is_points(self.spec.protocol.data.dataset) else ev.grid_size ** 2
        return fixed_z(n, self.spec.model.z_dim, ev.z_seed)

    def on_epoch(self, epoch: int, G, summary: dict) -> None:
        """After each epoch's checkpoint: the health monitor's sample statistics beside it (a resumed run continues
        them), the epoch's grid (2D mixtures: a scatter over the true modes), the epoch's numbers with the
        curve point and, for a growing model, the resolution and fade-in the grid was drawn at."""
        spec, run_dir, tracker = self.spec, self.run_dir, self.tracker
        self.monitor.save(run_dir / SAMPLE_STATS_FILE)
        if is_points(spec.protocol.data.dataset):
            picture = scatter_2d(generate(G, self.grid_z, as_uint8=False), get_dataset(spec.protocol.data.dataset).mixture,
                                 run_dir / "scatter" / f"epoch_{epoch:03d}.png", f"{spec.model.name} epoch {epoch}")
            tracker.log_artifact(self.run_id, picture, "scatter")
        else:
            tracker.log_artifact(self.run_id, _save_grid(G, spec, self.grid_z, run_dir / "grids" / f"epoch_{epoch:03d}.png"),
                                 "grids")
        phase = G.progress_info() if isinstance(G, Growing) else {}
        curve = curve_point(G, spec, self.device, self.data_root)
        tracker.log_metrics(self.run_id, {**{k: v for k, v in summary.items() if k != "epoch"}, **phase, **curve}, step=epoch)

    def on_phase(self, k: int, G, info: dict) -> None:
        """The end of phase k of a growing model: its grid (as drawn then) and its numbers, MLflow step = k."""
        name = f"phase_{k:02d}_{int(info['resolution'])}px_{'fade' if k % 2 else 'stable'}.png"
        self.tracker.log_artifact(self.run_id, _save_grid(G, self.spec, self.grid_z, self.run_dir / "grids" / name), "grids")
        self.tracker.log_metrics(self.run_id, {f"phase_{key}": v for key, v in info.items() if key != "step"}, step=k)


def _open(spec: RunSpec, device: torch.device, tracker: track.Tracker, resume: bool, fast: bool,
          together: int, data_root=None) -> _Opened:
    """Start (or on resume reopen) the run's MLflow run and folder."""
    run_dir = run_dir_for(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    id_file = run_dir / "mlflow_run_id"
    if resume and id_file.is_file():
        run_id = id_file.read_text().strip()
        if tracker.status(run_id) is None:
            raise GanbenchError(f"--resume: {run_dir} belongs to MLflow run {run_id}, which is not in {tracker.uri} "
                                "(deleted, or logged to another store): resume with the --tracking-uri the run was "
                                "started with, or run without --resume to start it again")
        tracker.reopen(run_id)
    else:
        tags = {track.TAG_PROTOCOL: spec.protocol.name, **track.identity_tags(spec.identity),
                track.TAG_MODEL: spec.model.name, track.TAG_SEED: str(spec.seed)}
        params = {**spec.to_dict(), "versions": versions(), "device": str(device), "fast_path": fast,
                  "concurrent_seeds": together, "device_name": device_name(device)}
        run_id = tracker.start(track.experiment_name(spec.protocol.name), f"{spec.model.name}-seed{spec.seed}", params, tags)
        id_file.write_text(run_id)
        spec_file = run_dir / "spec.json"  # what `ganbench sample`/`interpolate` rebuild the generator from
        atomic_write_bytes(spec_file, json.dumps(spec.to_dict(), indent=1, sort_keys=True).encode())
        tracker.log_artifact(run_id, spec_file)
    return _Opened(spec, run_id, run_dir, tracker, device, data_root)


def _save_grid(G, spec: RunSpec, grid_z: torch.Tensor, path: Path) -> Path:
    """An epoch's grid: G at the protocol's fixed z, or for an image-to-image model (source | translation |
    target) triplets of the first test pairs."""
    ev = spec.protocol.eval
    if not is_translator(G):
        return save_grid(generate(G, grid_z), path, nrow=ev.grid_size)
    test = task_split(spec.protocol.data, ev.reference_split)
    n = ev.grid_size * TRIPLETS_PER_ROW
    images, columns = triplets(G, test.inputs[:n], test.images[:n], seed=ev.z_seed)
    return save_grid(images, path, nrow=columns)




def _failed(ops: list[_Opened], err: BaseException, metrics: dict, tracker: track.Tracker) -> list[RunOutcome]:
    """End the MLflow runs of runs that raised ``err``: interrupted -> "stopped" and re-raised; a usage
    error -> "failed" and re-raised (the CLI says what to fix); anything else -> "failed" outcomes
    (the traceback is printed and kept in the run)."""
    stopped = isinstance(err, KeyboardInterrupt)
    message = f"{type(err).__name__}: {err}"
    trace = "".join(traceback.format_exception(err))
    outcomes = []
    for op in ops:
        if stopped:
            tracker.end(op.run_id, "stopped", INTERRUPTED)
            continue
        tracker.log_metrics(op.run_id, metrics) if metrics else None
        tracker.end(op.run_id, "failed", message + "\n" + trace)
        outcomes.append(RunOutcome(op.spec.model.name, op.spec.seed, "failed", op.run_id, op.run_dir, metrics, message))
    if stopped or isinstance(err, GanbenchError):
        raise err
    print(trace, file=sys.stderr)
    return outcomes


def run_together(specs: list[RunSpec], data: ImageSet, device: torch.device, tracker: track.Tracker, resume: bool,
                 data_root=None, progress: bool = True, stop_on: str | None = None,
                 fast: bool = True, threads: int | None = None) -> list[RunOutcome]:
    """The seeds of one model trained together (one spec: trained alone), then each evaluated and tracked
    as its own run. An error in training fails every run of the group; one in a run's evaluation, that run.
    On ``resume`` a run that already finished is left untouched (its outcome is read back from MLflow)."""
    done = {s.seed: _finished(s, tracker) for s in specs} if resume else {}
    todo = [s for s in specs if done.get(s.seed) is None]
    trained = iter(_train_group(todo, data, device, tracker, resume, data_root, progress, stop_on, fast, threads)
                   if todo else [])
    return [done.get(s.seed) or next(trained) for s in specs]


def _finished(spec: RunSpec, tracker: track.Tracker) -> RunOutcome | None:
    """The outcome of a run whose MLflow run already finished (None when it has not): a finished run is
    never modified, so that its status, metrics and end time stay those it finished with."""
    run_dir = run_dir_for(spec)
    id_file = run_dir / "mlflow_run_id"
    if not id_file.is_file():
        return None
    run_id = id_file.read_text().strip()
    if tracker.status(run_id) != "finished":
        return None
    metrics = dict(tracker.get(run_id).data.metrics)
    return RunOutcome(spec.model.name, spec.seed, "finished", run_id, run_dir, metrics,
                      "already finished; --resume leaves a finished run as it is (run without --resume to train it again)")


def _train_group(specs: list[RunSpec], data: ImageSet, device: torch.device, tracker: track.Tracker, resume: bool,
                 data_root=None, progress: bool = True, stop_on: str | None = None, fast: bool = True,
                 threads: int | None = None) -> list[RunOutcome]:
    check_evaluation_weights(specs[0].protocol)  # refused before any MLflow run exists
    if len(specs) > 1:  # refuse before any MLflow run exists
        check_together(specs)
        check_batchable(specs[0], *build_models(specs[0], torch.device("cpu"), torch.Generator().manual_seed(0)))
    # a run interrupted before its first checkpoint (or never started) has nothing to continue: it starts
    # from scratch, in its MLflow run when it has one, so that the resume command works for every run
    continuing = resume and any(checkpoint_path(run_dir_for(s)).is_file() for s in specs)
    for spec in specs if continuing else []:  # refuse an unreadable checkpoint before its MLflow run is reopened
        _check_checkpoint(checkpoint_path(run_dir_for(spec)))
    with ThreadShare(threads) as share, contextlib.ExitStack() as locks:
        for spec in specs:  # refused, before its MLflow run is touched, when another process trains it
            locks.enter_context(training_lock(run_dir_for(spec)))
        opened = [_open(spec, device, tracker, resume, fast, len(specs), data_root) for spec in specs]
        try:
            for op in opened:
                op.monitor = health_monitor(op.spec, data.images, op.run_dir, device, stop_on, continuing,
                                            on_failure=lambda step, run_id=op.run_id: tracker.set_tags(
                                                run_id, {track.TAG_FIRST_BAD_STEP: str(step)}))  # logged live
            results = train_together(specs, data.images, [op.run_dir for op in opened], device, resume=continuing,
                                     on_epoch=[op.on_epoch for op in opened], progress=progress,
                                     on_check=[_sharing(op.monitor, share) for op in opened], labels=data.labels,
                                     fast=fast, on_phase=[op.on_phase for op in opened],
                                     sources=getattr(data, "inputs", None))  # image-to-image tasks: the sources
        except BaseException as err:
            return _failed(opened, err, {}, tracker)
        return [_finish(op, result) for op, result in zip(opened, results)]


def _check_checkpoint(path: Path) -> None:
    """A checkpoint to resume from must load as ganbench wrote it (tensors only, a dict)."""
    try:
        ok = isinstance(load_tensors(path), dict)
    except GanbenchError:
        ok = False
    if not ok:
        raise GanbenchError(f"--resume: {path} is not a readable ganbench checkpoint (damaged or replaced); "
                            "run without --resume to start the run again")


def _sharing(monitor, share: ThreadShare):
    """The trainer's ``on_check``: the health monitor, after following the thread share as runs start and end."""

    def on_check(step: int, G, rows: list[dict], say):
        share.adjust()
        return monitor(step, G, rows, say)

    return on_check


def training_metrics(result) -> dict[str, float]:
    """What a run's training cost and ended at: final losses (the last epoch's means and the last step's), wall
    and CPU time, threads and the share of them the run had, images seen, epochs done, CUDA-graph replays."""
    metrics: dict[str, float] = {}
    if len(result.records):
        records = result.records
        last_epoch = records[records["epoch"] == records["epoch"].max()]
        metrics.update(final_d_loss=float(last_epoch["d_loss"].mean()), final_g_loss=float(last_epoch["g_loss"].mean()),
                       last_step_d_loss=float(records["d_loss"].iloc[-1]), last_step_g_loss=float(records["g_loss"].iloc[-1]))
    threads = torch.get_num_threads()
    metrics.update(wall_time_s=result.wall_time_s, cpu_time_s=result.cpu_time_s, threads=threads,
                   cpu_share=result.cpu_time_s / max(result.wall_time_s * threads, 1e-9),
                   images_seen=result.images_seen, epochs_done=result.epochs_done,
                   replayed_steps=result.replayed_steps)  # > 0: the fast path's CUDA graph ran
    return metrics


def _finish(op: _Opened, result) -> RunOutcome:
    """After training: loss curves, training metrics, health findings, and for a finished run the final
    weights and the protocol's evaluation; the MLflow run ends with the run's status."""
    spec, run_id, run_dir, tracker = op.spec, op.run_id, op.run_dir, op.tracker
    status, message, metrics = result.status, result.message, {}
    try:
        metrics.update(training_metrics(result))
        if len(result.records):
            loss_plot(result.records, run_dir / "loss_curves.png", f"{spec.model.name} seed {spec.seed} on {spec.protocol.name}")
            tracker.log_artifact(run_id, run_dir / "loss_curves.png")
            tracker.log_artifact(run_id, run_dir / "records.parquet")
        if result.first_bad_step is not None:
            tracker.set_tags(run_id, {track.TAG_FIRST_BAD_STEP: str(result.first_bad_step)})
        if len(result.records):
            record_health(tracker, run_id, run_dir, result, op.monitor, f"{spec.model.name} seed {spec.seed}")
        if status == "finished":
            final = run_dir / FINAL_WEIGHTS
            atomic_torch_save({"G": result.G.state_dict(), "D": result.D.state_dict(),
                               **({"G_ema": result.G_ema.state_dict()} if result.G_ema is not None else {})}, final)
            tracker.log_artifact(run_id, final, CHECKPOINT_DIR)
            metrics.update(evaluate_final(result.G_eval, spec, op.device, tracker, run_id, run_dir, op.data_root))
        elif checkpoint_path(run_dir).is_file():
            tracker.log_artifact(run_id, checkpoint_path(run_dir), CHECKPOINT_DIR)
        tracker.log_metrics(run_id, metrics)
    except BaseException as err:
        return _failed([op], err, metrics, tracker)[0]
    tracker.end(run_id, status, message)
    return RunOutcome(spec.model.name, spec.seed, status, run_id, run_dir, metrics, message)
