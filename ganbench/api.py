"""The public Python API: every stage the ``ganbench`` command runs, callable from Python.

    import ganbench
    res = ganbench.evaluate(images_uint8, protocol="fashion-50ep")      # FID & co. with provenance
    run = ganbench.train("fashion-smoke", "dcgan", seed=0, tricks={"ema": 0.999})
    G = ganbench.load(run)                                               # the trained generator
    findings = ganbench.diagnose(run)                                    # training-health findings
    board = ganbench.report("fashion-smoke")                             # the leaderboard

Each function is what one subcommand does (``ganbench eval``, ``run``, ``sweep``, ``sample``, ``diagnose``,
``report``, ``check``, ...), through the same pipeline functions, so Python and the command line give the same
numbers; the command line (``ganbench.cli``) parses its arguments, calls one function of this module and
prints what it returns.
Results are frozen dataclasses with ``to_frame()`` (a pandas DataFrame). Unlike the command line,
``evaluate`` logs no MLflow run unless asked (``track=True``): measuring a tensor in a notebook should
not fill the tracking store; ``train`` always tracks, since a run's artifacts live there.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from ganbench.core import track as tracking
from ganbench.core.assets import FileCheck, raise_for_bad
from ganbench.core.errors import GanbenchError
from ganbench.core.track import Tracker
from ganbench.data import check_data_root
from ganbench.diagnosis import Diagnosis, Finding, diagnose_run, format_report
from ganbench.diagnosis.logs import LOG_SUFFIXES, diagnose_log, parse_map
from ganbench.diagnosis.watch import Monitor, grad_norm
from ganbench.extractors import data_names, domain, fetch_named, verify_named
from ganbench.metrics import MetricResult
from ganbench.pipeline import reproduce as reproduction
from ganbench.pipeline.cards import CardUpdate, format_results, update_cards as update_model_cards
from ganbench.pipeline.evaluate import eval_protocol, evaluate_source
from ganbench.pipeline.reevaluate import Reevaluated, reevaluate as reevaluate_runs
from ganbench.pipeline.run import RunOutcome, run_protocol
from ganbench.pipeline.stylemix import style_mix as style_mix_grid
from ganbench.pipeline.sweep import CellResult, SweepResult, sweep as sweep_grid, to_json as sweep_to_json
from ganbench.pipeline.use import Samples, interpolate as interpolate_grid, load_generator_from_run, sample as sample_grid
from ganbench.reporting.leaderboard import Board, Comparison, build_boards, compare as compare_rows
from ganbench.reporting.publish import Published, publish as publish_reports
from ganbench.reporting.gate import (CheckResult, check as check_runs, migrate_baseline as migrate_baseline_file,
                                     save_baseline as save_baseline_runs)
from ganbench.reporting.render import comparison_rows, write_report
from ganbench.spec.protocol import ModelSpec, Protocol, available, load_model, load_protocol, parse_overrides

DATA_NAMES = data_names()  # stored datasets, then extractor weights (domain: the per-dataset classifiers, trained once)
DEFAULT_PROTOCOL = "fashion-50ep"  # the protocol the zoo's headline numbers are measured under
# Public here too, for the command line and for scripts that print what it prints: GanbenchError (every error a
# user can cause), parse_overrides (``KEY=VALUE`` strings, as ``--set``), check_data_root (a data folder checked
# before any work), format_report (findings as text), format_results (a card's results as lines) and
# comparison_rows (a comparison as a table).


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class Results:
    """What ``evaluate`` measured: each metric's result (value, spread, floor, recipe) and its provenance."""

    protocol: str
    identity: str  # the evaluation identity (evaluation recipe, reference data, weights' hashes) of every number
    source: str  # what was measured, as the MLflow tag ``ganbench.source`` says
    metrics: Mapping[str, MetricResult]
    eval_time_s: float
    run_id: str | None = None  # the MLflow run, when tracked

    def __getitem__(self, name: str) -> float | None:
        """The value of one metric by its recipe name, e.g. ``res["fid_10k_test"]``."""
        if name not in self.metrics:
            raise KeyError(f"{name!r}; measured: {', '.join(self.metrics)}")
        return self.metrics[name].value

    def to_frame(self) -> pd.DataFrame:
        """One row per metric (index: recipe name), every field of its result."""
        rows = [dataclasses.asdict(r) for r in self.metrics.values()]
        return pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(MetricResult)]).set_index("name")


@dataclass(frozen=True)
class Run:
    """One trained (model, seed) cell of a protocol: its status, MLflow run, artifact folder and metrics."""

    protocol: str
    model: str
    seed: int
    status: str  # finished | diverged | failed | stopped
    run_id: str
    run_dir: Path
    metrics: Mapping[str, float]
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    def to_frame(self) -> pd.DataFrame:
        """One row: the run's identification columns, then its final metrics."""
        head = {"protocol": self.protocol, "model": self.model, "seed": self.seed, "status": self.status,
                "run_id": self.run_id, "run_dir": str(self.run_dir)}
        return pd.DataFrame([{**head, **self.metrics}])


@dataclass(frozen=True)
class Findings(Sequence):
    """The training-health findings of a run (a sequence of ``Finding``), with the diagnosis they come from."""

    run_id: str
    diagnosis: Diagnosis

    def __getitem__(self, i):
        return self.diagnosis.findings[i]

    def __len__(self) -> int:
        return len(self.diagnosis.findings)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.diagnosis.findings)

    @property
    def worst(self) -> str:
        return self.diagnosis.worst

    def to_frame(self) -> pd.DataFrame:
        """One row per finding: name, severity, step range, summary, evidence and remedies."""
        columns = [f.name for f in dataclasses.fields(Finding)]
        return pd.DataFrame([f.to_dict() for f in self], columns=columns)


@dataclass(frozen=True)
class Leaderboard:
    """A protocol's boards, newest identity first (one per protocol hash with runs), and where the rendered
    report was written (None when it was not)."""

    protocol: str
    boards: tuple[Board, ...]
    html: Path | None = None
    markdown: Path | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per model and protocol hash, best first within a hash: mean, std and confidence interval
        of each headline metric over seeds, then seeds, stability and compute."""
        return pd.DataFrame([row for board in self.boards for row in _board_rows(board)])


def _board_rows(board: Board) -> list[dict[str, Any]]:
    rows = []
    for rank, r in enumerate(board.rows, 1):
        row: dict[str, Any] = {"protocol_hash": board.protocol_hash, "rank": rank, "model": r.model}
        for name, _ in board.metrics:
            s = r.metrics[name]
            row.update({name: s.mean, f"{name}_std": s.std, f"{name}_ci_low": s.ci_low, f"{name}_ci_high": s.ci_high})
        row.update(seeds=len(r.seeds), healthy=r.healthy, runs=r.runs, stability=r.stability,
                   wall_time_s=r.compute["wall_time_s"].mean, images_seen=r.compute["images_seen"].mean)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- evaluate


def evaluate(samples_or_generator: torch.Tensor | np.ndarray | str | Path | nn.Module,
             protocol: str | Protocol = DEFAULT_PROTOCOL, metrics: Sequence[str] | None = None, *,
             value_range: tuple[float, float] | None = None, z_dim: int = 100, device: str = "auto",
             data_root: str | Path | None = None, track: bool = False, tracking_uri: str | None = None,
             name: str | None = None, seed: int | None = None) -> Results:
    """Measure samples, or a generator, under a protocol's evaluation (as ``ganbench eval``).

    ``samples_or_generator``: uint8 images (N x C x H x W or N x H x W x C, pixels in [0, 255]); float
    images with their ``value_range``, e.g. (0, 1) or (-1, 1) (floats with a negative value are read as
    [-1, 1] without it); an .npz/.npy file or a folder of PNGs; or a ``torch.nn.Module`` mapping
    z ~ N(0, I) of size ``z_dim`` to images in [-1, 1], sampled at the protocol's fixed z.
    ``protocol``: a name (``ganbench list``), a .toml path, or a Protocol. ``metrics``: only these of
    the protocol's metric names (e.g. ["fid", "kid@domain"]); the identity follows. ``track``: log an
    MLflow run (``tracking_uri``, default MLFLOW_TRACKING_URI or the embedded SQLite store) named ``name``
    (the model's name on boards and baselines), with ``seed`` the training seed of the generator measured.
    Tracked evaluations of several independently trained generators make a baseline (:func:`save_baseline`)."""
    source = _source_label(samples_or_generator)
    out = evaluate_source(protocol, samples_or_generator, source, z_dim, device, tracking_uri, name, track,
                          data_root, value_range, metrics, seed=seed)
    proto_name = protocol.name if isinstance(protocol, Protocol) else load_protocol(str(protocol)).name
    return Results(proto_name, out.identity.eval_hash, out.source, out.results, out.eval_time_s, out.run_id)


def _source_label(obj: Any) -> str:
    """What the MLflow tag ``ganbench.source`` says about an in-memory or file source (as ``ganbench eval``
    labels a path)."""
    if isinstance(obj, nn.Module):
        return f"generator:{type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return f"samples:{type(obj).__name__} {tuple(obj.shape)} {obj.dtype}"
    if isinstance(obj, (str, Path)):
        return f"samples:{obj}"
    raise GanbenchError(f"evaluate: expected images (a torch.Tensor or numpy array), a path to an .npz/.npy file "
                        f"or a folder of PNGs, or a generator (torch.nn.Module); got {type(obj).__name__}")


def evaluate_files(protocol: str = DEFAULT_PROTOCOL, *, samples: str | Path | None = None,
                   generator: str | None = None, checkpoint: str | Path | None = None, z_dim: int = 100,
                   device: str = "auto", data_root: str | Path | None = None,
                   value_range: tuple[float, float] | None = None, track: bool = False,
                   tracking_uri: str | None = None, name: str | None = None, seed: int | None = None) -> Results:
    """Measure what files hold, as ``ganbench eval`` names it: ``samples``, an .npz/.npy file or a folder of
    PNGs (float pixels with their ``value_range``); or ``generator``, a ``module:function`` factory of a
    ``torch.nn.Module`` (looked up in the current folder, then on the Python path) whose weights are read from
    ``checkpoint`` (a state_dict, tensors only, or .safetensors). Exactly one of the two. The other arguments
    are :func:`evaluate`'s; ``ganbench eval`` tracks unless ``--no-track``."""
    out = eval_protocol(str(protocol), None if samples is None else str(samples), generator,
                        None if checkpoint is None else str(checkpoint), z_dim, device, tracking_uri, name, track,
                        data_root, value_range=value_range, seed=seed)
    proto_name = load_protocol(str(protocol)).name
    return Results(proto_name, out.identity.eval_hash, out.source, out.results, out.eval_time_s, out.run_id)


# --------------------------------------------------------------------------- train / load


def train(protocol: str, model: str, seed: int = 0, *, device: str = "auto", resume: bool = False,
          tracking_uri: str | None = None, data_root: str | Path | None = None, progress: bool = False,
          stop_on: str | None = None, fast: bool = True, threads: int | None = None, **overrides: Any) -> Run:
    """Train, evaluate and track one (model, seed) of a protocol, as ``ganbench run --models M --seeds S``.

    ``overrides`` change the model card for this run, as ``ganbench run --set``: plain keys
    (``n_critic=5``), tables as dicts (``tricks={"ema": 0.999}``) or dotted keys
    (``**{"optim_d.lr": 4e-4}``); the identity hash follows. A run that diverges or fails is returned with
    its status (``run.ok`` is False), as the command reports it with exit code 1."""
    (out,) = run_protocol(protocol, [model], [seed], device, resume, tracking_uri, data_root, progress=progress,
                          stop_on=stop_on, overrides=dotted(overrides), fast=fast, threads=threads)
    return as_run(protocol, out)


def run(protocol: str, models: Sequence[str] | None = None, seeds: Sequence[int] | None = None, *,
        device: str = "auto", resume: bool = False, tracking_uri: str | None = None,
        data_root: str | Path | None = None, progress: bool = False, stop_on: str | None = None,
        overrides: Mapping[str, Any] | None = None, fast: bool = True, concurrent_seeds: bool = False,
        threads: int | None = None) -> list[Run]:
    """Train, evaluate and track every (model, seed) of a protocol, or only ``models`` and ``seeds``, as
    ``ganbench run``; one Run per (model, seed), diverged and failed ones included (``run.ok`` is False).

    ``overrides``: dotted keys and their values, as ``--set`` gives them (:func:`parse_overrides` reads
    ``KEY=VALUE`` strings), e.g. ``{"tricks.ema": 0.999}``; a table as a value replaces the whole table. ``fast``: the fast training path (False: the plain one, slower, same losses up to float
    rounding). ``concurrent_seeds``: each model's seeds train together in one process, batched, each still
    its own MLflow run. ``threads``: torch threads per run (default: GANBENCH_THREADS, else the cores shared
    among the ganbench runs alive on this machine). ``stop_on`` ("failure" | "warning"): end a run early when
    a health finding of that severity starts."""
    outcomes = run_protocol(protocol, list(models) if models else None, list(seeds) if seeds else None, device,
                            resume, tracking_uri, data_root, progress=progress, stop_on=stop_on,
                            overrides=dict(overrides or {}), fast=fast, together=concurrent_seeds, threads=threads)
    return [as_run(protocol, o) for o in outcomes]


def mlflow_ui(tracking_uri: str | None = None) -> str:
    """How to browse a tracking store: the ``mlflow ui`` command of a local SQLite store, else its URI."""
    uri = tracking.tracking_uri(tracking_uri)
    if tracking.sqlite_path(uri) is None:
        return uri
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)}  (then open http://127.0.0.1:5000)"


def dotted(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"tricks": {"ema": 0.999}, "n_critic": 5}`` -> ``{"tricks.ema": 0.999, "n_critic": 5}``."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            out.update(dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def as_run(protocol: str, outcome: RunOutcome) -> Run:
    name = Path(protocol).stem if str(protocol).endswith(".toml") else str(protocol)
    return Run(name, outcome.model, outcome.seed, outcome.status, outcome.run_id, outcome.run_dir,
               dict(outcome.metrics), outcome.message)


def load(run: Run | str | Path, *, ema: bool = False, device: str = "cpu", tracking_uri: str | None = None) -> nn.Module:
    """The generator of a trained run (a Run, an MLflow run id or a run folder), in eval mode on ``device``,
    rebuilt as ``ganbench sample`` rebuilds it; ``ema``: the averaged weights (models trained with
    ``tricks.ema > 0``). It maps z (N x z_dim, ``G.z_dim``) to images in [-1, 1]."""
    _, G = load_generator_from_run(_run_ref(run), tracking_uri, ema, device)
    return G


def _run_ref(run: Run | str | Path) -> str:
    if isinstance(run, Run):
        return str(run.run_dir) if Path(run.run_dir).is_dir() else run.run_id
    if isinstance(run, (str, Path)):
        return str(run)
    raise GanbenchError(f"expected a run: a ganbench.Run, an MLflow run id or a run folder; got {type(run).__name__}")


# --------------------------------------------------------------------------- pictures from a trained run


def sample(run: Run | str | Path, n: int = 64, *, label: int | None = None, seed: int | None = None,
           ema: bool = False, npz: bool = False, out: str | Path | None = None, truncation: float | None = None,
           device: str = "cpu", tracking_uri: str | None = None) -> Samples:
    """A PNG grid (ceil(sqrt(n)) columns) of ``n`` samples of a run's generator, as ``ganbench sample``; with
    ``npz``, the uint8 images (and labels) beside it. z is drawn from ``seed``, or is the protocol's fixed z
    (the run's own grids) without one; ``label``: the class of every sample (conditional models);
    ``truncation``: psi of the truncation trick (style-based generators). ``out``: the PNG's path (default:
    ``<run folder>/samples/``). 2D-point protocols get a scatter plot over the true modes instead."""
    return sample_grid(_run_ref(run), n, label, seed, ema, npz, out, tracking_uri, device, truncation=truncation)


def interpolate(run: Run | str | Path, pairs: int = 8, steps: int = 10, *, seed: int = 0, ema: bool = False,
                label: int | None = None, out: str | Path | None = None, device: str = "cpu",
                tracking_uri: str | None = None) -> Samples:
    """A PNG grid of spherical interpolations, as ``ganbench interpolate``: one row per random pair (z0, z1)
    drawn from ``seed``, ``steps`` columns from z0 to z1; a conditional model keeps one class per row
    (``label``, else the classes in turn)."""
    return interpolate_grid(_run_ref(run), pairs, steps, seed, ema, label, out, tracking_uri, device)


def style_mix(run: Run | str | Path, rows: int = 4, cols: int = 6, *, seed: int = 0, cutoff: int | None = None,
              truncation: float | None = None, ema: bool = False, out: str | Path | None = None,
              device: str = "cpu", tracking_uri: str | None = None) -> Samples:
    """A PNG style-mixing grid of a run's style-based generator, as ``ganbench style-mix``: ``rows`` + ``cols``
    random w drawn from ``seed``; the style inputs before ``cutoff`` (default: the layers up to 8x8) come
    from the row's w, the others from the column's; ``truncation`` truncates every w first."""
    return style_mix_grid(_run_ref(run), rows, cols, seed, cutoff, truncation, ema, out, tracking_uri, device)


# --------------------------------------------------------------------------- diagnose / report / compare


def diagnose(run: Run | str | Path, *, map: Mapping[str, str] | str | None = None,
             tracking_uri: str | None = None) -> Findings:
    """Training-health findings, as ``ganbench diagnose``, of a tracked ganbench run (a Run, an MLflow run id,
    or a run folder with its ``mlflow_run_id``), re-diagnosed from its logged records; or of the logs of a
    training loop of one's own: a .csv / .parquet file of per-step values, or an MLflow run's metrics.
    ``map`` names the log's column for a signal ({"d_loss": "lossD"} or "d_loss=lossD,g_loss=lossG"); the
    usual names are found without it (``ganbench.diagnosis.logs.USUAL_NAMES``)."""
    mapping = parse_map(map) if isinstance(map, str) or map is None else dict(map)
    if isinstance(run, (str, Path)) and (Path(run).suffix.lower() in LOG_SUFFIXES or Path(run).is_file()):
        return Findings(str(run), diagnose_log(run, mapping, tracking_uri))
    run_id = run_id_of(run)
    return Findings(run_id, diagnose_log(run_id, mapping, tracking_uri))


def run_id_of(run: Run | str | Path) -> str:
    """The MLflow run id of a Run, a run folder (its ``mlflow_run_id`` file) or a run id."""
    if isinstance(run, Run):
        return run.run_id
    folder = Path(run)
    if folder.is_dir():
        id_file = folder / "mlflow_run_id"
        if not id_file.is_file():
            raise GanbenchError(f"{folder} is not a ganbench run folder (no mlflow_run_id file); pass an MLflow run id")
        return id_file.read_text().strip()
    return _run_ref(run)


def report(protocol: str, *, out: str | Path | None = None, tracking_uri: str | None = None) -> Leaderboard:
    """The leaderboard of a protocol's tracked runs (a name, or a protocol file for its name); with ``out``,
    also rendered as ``<out>/<protocol>/index.html`` and ``README.md``, as ``ganbench report --out``."""
    name = Path(protocol).stem if protocol.endswith(".toml") else protocol
    if out is not None:
        rep = write_report(protocol, out, tracking_uri)
        return Leaderboard(name, tuple(s.board for s in rep.sections), rep.html, rep.markdown)
    tracker = Tracker(tracking_uri)
    boards = build_boards(tracker.search(), name)
    if not boards:
        raise GanbenchError(f"no tracked runs of protocol {name!r} in {tracker.uri}; run `ganbench run --protocol "
                            f"{protocol}` first")
    return Leaderboard(name, tuple(boards))


def publish(protocols: Sequence[str] | None = None, *, out: str | Path = "reports",
            tracking_uri: str | None = None) -> Published:
    """Every listed protocol's report (default: every protocol of the catalogue), the index ``<out>/README.md``
    and the DCGAN vs WGAN-GP stability page, as ``ganbench publish``; protocols without runs are skipped."""
    names = list(protocols) if protocols else list(available("protocols"))
    return publish_reports(names, out, tracking_uri)


def compare(protocol: str, model_a: str, model_b: str, *, tracking_uri: str | None = None) -> Comparison:
    """Two models side by side under the newest protocol hash that has runs of both, as ``ganbench compare``."""
    boards = [b for b in build_boards(Tracker(tracking_uri).search(), protocol)
              if {model_a, model_b} <= {r.model for r in b.rows}]
    if not boards:
        raise GanbenchError(f"no protocol hash of {protocol!r} has runs of both {model_a!r} and {model_b!r}; "
                            f"run `ganbench run --protocol {protocol} --models {model_a} {model_b}`")
    return compare_rows(boards[0], model_a, model_b)


# --------------------------------------------------------------------------- quality gate


RunRefs = Union[Results, Run, str, Sequence[Union[Results, Run, str]]]


def _refs(runs: RunRefs) -> list[str]:
    """Run ids (of tracked Results and Runs) and names (run ids, experiment or protocol names) as strings."""
    items = [runs] if isinstance(runs, (Results, Run, str)) else list(runs)
    out = []
    for r in items:
        ref = r.run_id if isinstance(r, (Results, Run)) else r
        if not ref:
            raise GanbenchError("an untracked evaluation has no run to gate: evaluate with track=True")
        out.append(str(ref))
    return out


def save_baseline(runs: RunRefs, out: str | Path, *, model: str | Sequence[str] | None = None,
                  confidence: float = 0.99, tracking_uri: str | None = None) -> dict:
    """Write a quality baseline, as ``ganbench baseline save``: from tracked evaluations of generators of one's
    own (``evaluate(..., track=True, name=M, seed=S)``, one per independently trained generator, at least two),
    or from ganbench runs; ``runs``: Results, Runs, run ids, or an experiment or protocol name (then ``model``
    picks the runs, e.g. ``save_baseline("fashion-smoke", "baselines/mine.json", model="mygan")``)."""
    models = [model] if isinstance(model, str) else list(model) if model else None
    return save_baseline_runs(_refs(runs), out, tracking_uri, confidence, models)


def check(runs: RunRefs, baseline: str | Path, *, confidence: float | None = None,
          tracking_uri: str | None = None, allow_protocol_change: bool = False) -> CheckResult:
    """Gate new runs or evaluations against a baseline, as ``ganbench check``: each metric by its kind, the
    family-wise false-alarm rate held at 1 - confidence over the rows. A model's runs are gated under the
    baseline's identity of that model only, unless ``allow_protocol_change``: then its newest other identity
    (a changed budget, model card or weights) is gated too, and the result says what changed."""
    return check_runs(_refs(runs), baseline, tracking_uri, confidence, allow_protocol_change)


def migrate_baseline(path: str | Path) -> dict:
    """Rewrite a format-1 baseline (one protocol hash) in place with per-model identities, after checking
    that its hash still holds, as ``ganbench baseline migrate``; returns what was written."""
    return migrate_baseline_file(path)


def assert_no_regression(runs: RunRefs, baseline: str | Path, *, confidence: float | None = None,
                         tracking_uri: str | None = None) -> CheckResult:
    """For a pytest test: raise AssertionError, with the gate's table, when a metric of ``runs`` (e.g. a new
    ``evaluate(..., track=True)``) is worse than ``baseline`` allows or a run did not finish."""
    return raise_on_regression(check(runs, baseline, confidence=confidence, tracking_uri=tracking_uri), baseline)


def raise_on_regression(result: CheckResult, baseline: str | Path) -> CheckResult:
    """The check's result, or AssertionError with its table when a row failed (the pytest assertions)."""
    if not result.ok:
        raise AssertionError(f"quality regression against {baseline}:\n{result.table()}")
    return result


# --------------------------------------------------------------------------- sweep


def sweep(protocols: str | Sequence[str], models: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
          *, executor: str = "local", address: str | None = None, device: str = "auto",
          tracking_uri: str | None = None, data_root: str | Path | None = None, max_retries: int = 3,
          cpus_per_task: float = 1, concurrent_seeds: bool = False, progress: bool = True,
          on_cell: Callable[[CellResult], None] | None = None) -> SweepResult:
    """Every cell (protocol, model, seed) of the grid not finished yet, as ``ganbench sweep``: finished cells
    are skipped, killed ones continued; one result per cell, in grid order.

    ``executor``: "local" runs the cells here one after another; "ray" runs one Ray task per cell on the
    cluster at ``address`` (``ray://HOST:PORT`` through Ray Client, ``HOST:PORT`` from a cluster node; None:
    ``RAY_ADDRESS``, a cluster started here, else a new local one), each reserving ``cpus_per_task`` CPUs and
    retried up to ``max_retries`` times when its worker dies. ``concurrent_seeds``: the unfinished seeds of
    each (protocol, model) train together, one task per group. ``on_cell`` is called as each cell ends."""
    return sweep_grid(protocols, list(models) if models else None, list(seeds) if seeds else None, executor,
                      address, tracking_uri, device, data_root, max_retries, cpus_per_task, progress=progress,
                      on_cell=on_cell, concurrent_seeds=concurrent_seeds)


def sweep_json(result: SweepResult) -> str:
    """A sweep's result as JSON: executor, address, tracking URI, counts, and every cell's fields."""
    return sweep_to_json(result)


# --------------------------------------------------------------------------- reproduce the published reports


@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` did: the plan it started from, the result of each cell (None for a plan only),
    the reports it rendered (protocol -> README.md) and the protocols it could not render (protocol -> why)."""

    plan: reproduction.Plan
    result: reproduction.ReproduceResult | None = None
    reports: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    unrendered: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every cell of the tier done (finished, or diverged: a result too) and every report rendered."""
        return self.result is not None and self.result.ok and not self.unrendered


def reproduce(tier: str, *, plan_only: bool = False, out: str | Path = "reports", render: bool = True,
              tiers: str | Path | None = None, tracking_uri: str | None = None, device: str = "auto",
              concurrent_seeds: bool | None = None, data_root: str | Path | None = None, progress: bool = True,
              say: Callable[[str], None] = print) -> Reproduction:
    """Run every cell of a tier of the published reports that is not done yet (``reports/tiers.toml``, or
    ``tiers``), then render the report of each of its protocols under ``out``, as ``ganbench reproduce``.
    ``plan_only``: the cells, their states and estimates, nothing run. ``concurrent_seeds``: None follows
    each entry of the tiers file. Rendering covers what finished even when a cell failed."""
    planned = reproduction.plan(tier, tracking_uri, tiers)
    if plan_only:
        return Reproduction(planned)
    result = reproduction.run(tier, tiers=tiers, tracking_uri=tracking_uri, device=device, data_root=data_root,
                              concurrent_seeds=concurrent_seeds, progress=progress, say=say)
    if not render:
        return Reproduction(planned, result)
    reports, unrendered = _render(result.protocols, out, tracking_uri)
    return Reproduction(planned, result, reports, unrendered)


def reevaluate(protocol: str, *, models: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
               device: str = "auto", tracking_uri: str | None = None, data_root: str | Path | None = None,
               say: Callable[[str], None] = print) -> list[Reevaluated]:
    """Every finished run of ``protocol`` trained under its current training identity, evaluated again under its
    current evaluation where its numbers were measured under another one (``ganbench reevaluate``); trains nothing."""
    return reevaluate_runs(protocol, list(models) if models else None, list(seeds) if seeds else None, device,
                           tracking_uri, data_root, say)


def _render(protocols: Sequence[str], out: str | Path, tracking_uri: str | None) -> tuple[dict[str, Path], dict[str, str]]:
    """Publish every protocol of the catalogue that has runs (so that the index and the stability page cover
    every tier rendered into ``out``, not only this one); returns the reports (protocol -> README.md) and the
    protocols of ``protocols`` with nothing to render (protocol -> why)."""
    names = [Path(p).stem if p.endswith(".toml") else p for p in protocols]
    catalogue = list(dict.fromkeys([*available("protocols"), *protocols]))
    published = publish_reports(catalogue, out, tracking_uri)
    reports = {r.protocol: r.markdown for r in published.reports}
    skipped = set(published.skipped)
    return reports, {n: f"no tracked run of protocol {n!r}" for n in names if n in skipped or n not in reports}


# --------------------------------------------------------------------------- runs, catalogue, data


@dataclass(frozen=True)
class RunInfo:
    """What ``ganbench show`` prints of a tracked run."""

    run_id: str
    name: str
    status: str
    tags: dict[str, str]  # the ganbench.* tags
    metrics: dict[str, float]
    artifacts: list[str]
    params: dict[str, str]  # protocol.name, model.name, seed, device

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"run_id": self.run_id, "name": self.name, "status": self.status, **self.metrics}])


SHOWN_PARAMS = ("protocol.name", "model.name", "seed", "device")


def show(run_id: str, *, tracking_uri: str | None = None) -> RunInfo:
    """A tracked run's status, ganbench tags, final metrics, artifacts and main parameters."""
    tracker = Tracker(tracking_uri)
    try:
        run = tracker.get(run_id)
    except Exception as err:  # MLflow's own exception types stay inside core.track
        raise GanbenchError(f"no run {run_id!r} in {tracker.uri} ({type(err).__name__})") from err
    return RunInfo(run.info.run_id, run.info.run_name, run.info.status,
                   {k: v for k, v in run.data.tags.items() if k.startswith("ganbench.")}, dict(run.data.metrics),
                   tracker.artifacts(run.info.run_id),
                   {k: v for k, v in run.data.params.items() if k in SHOWN_PARAMS})


def protocols() -> list[Protocol]:
    """Every protocol ``ganbench list`` shows (the shipped ones and those on GANBENCH_PROTOCOLS_PATH)."""
    return [load_protocol(name) for name in available("protocols")]


def models() -> list[ModelSpec]:
    """Every zoo model card (shipped and on GANBENCH_ZOO_PATH)."""
    return [load_model(name) for name in available("zoo")]


def update_cards(models: Sequence[str], protocol: str, *, zoo_dir: str | Path | None = None,
                 tracking_uri: str | None = None) -> list[CardUpdate]:
    """Write each model's measured results, mean ± std over the finished runs of the protocol's newest hash,
    into its zoo card's ``[results.<protocol>]``, as ``ganbench card``; cards are ``<zoo_dir>/<model>.toml``,
    or found as :func:`models` finds them."""
    return update_model_cards(list(models), protocol, tracking_uri, zoo_dir)


def _check_data_names(names: Sequence[str]) -> list[str]:
    for name in names:
        if name not in DATA_NAMES:
            raise GanbenchError(f"Unknown data name {name!r}. Available: {', '.join(DATA_NAMES)}")
    return list(names) or list(DATA_NAMES)


def fetch_data(names: Sequence[str] = ()) -> Iterator[str]:
    """Fetch what is missing of ``names`` (default: all of DATA_NAMES) into the cache; yields one line per
    thing fetched, as it is done."""
    for name in _check_data_names(names):
        yield "\n".join(fetch_named(name))


def train_domain_classifier(dataset: str, out: str | Path, data_root: str | Path | None = None,
                            progress: bool = True) -> Path:
    """Train ``dataset``'s domain classifier with the shipped recipe and write ``<out>/domain-<dataset>.pt``
    (``ganbench data train-domain``); used in place of the shipped one when GANBENCH_DOMAIN_WEIGHTS=<out>, and
    then every number measured in its feature space carries its weights hash: a new identity."""
    if dataset not in domain.domain_datasets():
        raise GanbenchError(f"no domain classifier can be trained for {dataset!r}; datasets that have one: "
                            f"{', '.join(domain.domain_datasets())}")
    path = Path(out) / f"domain-{dataset}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    domain.write_classifier(dataset, path, data_root=data_root, progress=progress)
    return path


def verify_data(names: Sequence[str] = (), data_root: str | Path | None = None) -> Iterator[list[FileCheck]]:
    """Re-check the cached files of ``names`` against their pinned hashes: yields each name's checks as they
    are done, then raises a GanbenchError listing every bad file."""
    checks: list[FileCheck] = []
    for name in _check_data_names(names):
        got = verify_named(name, data_root)
        yield got
        checks += got
    raise_for_bad(checks)
