"""``ganbench reproduce``: run every cell a tier of the published reports needs, then (in ``ganbench.api``)
render the reports.

A tiers file (``reports/tiers.toml``) lists, per tier (``[[cpu]]``, ``[[gpu]]``), the cells the reports
publish: each entry names a protocol, optionally some of its models and seeds, and says why it is
published. A cell is (protocol identity, model, seed), as in :mod:`ganbench.pipeline.sweep`, whose
machinery runs it (:func:`ganbench.pipeline.sweep.run_group`): a cell with a finished run is skipped, a
killed attempt continues from its run folder's ``checkpoints/last.pt``, so a reproduction stopped by a kill
or the end of a session is resumed by starting it again. A protocol whose identity changed (budget,
model card, evaluation weights) is a new set of cells: its old runs are never counted as done.

Before running, every cell gets a state (finished | diverged | interrupted | todo) and an estimate of
the time it still needs, from the tracked runs of the same identity (their ``wall_time_s`` +
``eval_time_s``), else from the runs of the other models of the same protocol identity (not scaled to
this model: the estimate says so), else unknown.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from ganbench.core import track
from ganbench.core.errors import GanbenchError
from ganbench.pipeline.reevaluate import is_stale, reevaluate_run
from ganbench.core.device import resolve_device
from ganbench.pipeline.run import training_images
from ganbench.training import run_dir_for
from ganbench.pipeline.sweep import (TRAINING_ELSEWHERE, CellResult, SweepResult, inspect_cell, of_cell, run_group,
                                     tasks)
from ganbench.spec.protocol import RunSpec, load_protocol, resolve

TIERS_FILE = Path(__file__).resolve().parents[2] / "reports" / "tiers.toml"  # the published cells
ENTRY_KEYS = {"protocol": str, "why": str, "models": list, "seeds": list, "concurrent_seeds": bool}
REQUIRED_KEYS = ("protocol", "why")
# A diverged run is a result, not a failure to retry: training is seeded, so a new attempt diverges again
# (and the induced-failure protocols publish such runs). The leaderboard ranks it as unhealthy.
DONE = ("finished", "diverged")
REEVALUATE = "re-evaluate"  # a finished run whose numbers were measured under another evaluation identity
STAND_IN_HASH = "0" * 64  # checking a tiers file reads names only, never weight files (spec.protocol.resolve)


# --------------------------------------------------------------------------- the tiers file


@dataclass(frozen=True)
class Entry:
    """One ``[[tier]]`` table: a protocol (a name, or a .toml path relative to the tiers file), the models
    and seeds it publishes (None: the protocol's own), and why."""

    tier: str
    index: int  # 1-based position among the tier's tables
    protocol: str
    why: str
    models: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    concurrent_seeds: bool = False

    @property
    def label(self) -> str:
        return f"[[{self.tier}]] entry {self.index} (protocol {self.protocol!r})"


@dataclass(frozen=True)
class Tiers:
    path: Path
    tiers: dict[str, tuple[Entry, ...]]

    def entries(self, tier: str) -> tuple[Entry, ...]:
        if tier not in self.tiers:
            raise GanbenchError(f"unknown tier {tier!r} in {self.path}; its tiers: {', '.join(self.tiers) or 'none'}")
        return self.tiers[tier]


def load_tiers(path: str | Path | None = None) -> Tiers:
    """The tiers file (default: the repository's ``reports/tiers.toml``), every entry checked: its keys,
    its protocol, and that its models belong to the protocol and its seeds are distinct integers >= 0."""
    path = Path(path) if path is not None else TIERS_FILE
    if not path.is_file():
        raise GanbenchError(f"tiers file {path} does not exist; pass --tiers FILE (see reports/tiers.toml)")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise GanbenchError(f"{path}: not valid TOML ({err})") from err
    tiers: dict[str, tuple[Entry, ...]] = {}
    for tier, tables in raw.items():
        if not (isinstance(tables, list) and tables and all(isinstance(t, dict) for t in tables)):
            raise GanbenchError(f"{path}: {tier!r} is not a tier: write each of its cells as a [[{tier}]] table "
                                "with protocol = \"...\" and why = \"...\"")
        tiers[tier] = tuple(_entry(path, tier, i, table) for i, table in enumerate(tables, 1))
        _check_no_duplicates(path, tiers[tier])
    return Tiers(path, tiers)


def _entry(path: Path, tier: str, index: int, table: dict) -> Entry:
    where = f"{path}: [[{tier}]] entry {index}" + (f" (protocol {table['protocol']!r})" if "protocol" in table else "")
    unknown = sorted(set(table) - set(ENTRY_KEYS))
    missing = [k for k in REQUIRED_KEYS if k not in table]
    if unknown or missing:
        raise GanbenchError(f"{where}: " + "; ".join(
            ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) + ([f"missing {', '.join(missing)}"] if missing else []))
            + f". An entry has {', '.join(ENTRY_KEYS)} (protocol and why required)")
    for key, kind in ENTRY_KEYS.items():
        if key in table and not isinstance(table[key], kind):
            raise GanbenchError(f"{where}: {key} must be a {kind.__name__}, got {table[key]!r}")
    models, seeds = table.get("models"), table.get("seeds")
    if models is not None and not (models and all(isinstance(m, str) for m in models)):
        raise GanbenchError(f"{where}: models must be a non-empty list of zoo model names, got {models!r}")
    if seeds is not None and not (seeds and all(type(s) is int and s >= 0 for s in seeds) and len(set(seeds)) == len(seeds)):
        raise GanbenchError(f"{where}: seeds must be a non-empty list of distinct integers >= 0, got {seeds!r}")
    protocol = table["protocol"]
    if protocol.endswith(".toml") and not Path(protocol).is_absolute():  # relative to the tiers file, not the cwd
        protocol = str(path.parent / protocol)
    entry = Entry(tier, index, protocol, table["why"], tuple(models) if models else None,
                  tuple(seeds) if seeds else None, table.get("concurrent_seeds", False))
    try:
        resolve(load_protocol(protocol), STAND_IN_HASH, list(models) if models else None, seeds)
    except GanbenchError as err:
        raise GanbenchError(f"{where}: {err}; fix the entry or comment it out") from err
    return entry


def _check_no_duplicates(path: Path, entries: tuple[Entry, ...]) -> None:
    seen: dict[tuple, Entry] = {}
    for entry in entries:
        proto = load_protocol(entry.protocol)
        for model in entry.models or proto.models:
            for seed in entry.seeds or proto.seeds:
                key = (proto.name, model, seed)
                if key in seen:
                    raise GanbenchError(f"{path}: {entry.label} lists {proto.name} {model} seed {seed}, which "
                                        f"{seen[key].label} lists already; name each cell once")
                seen[key] = entry


def cell_specs(entries: Sequence[Entry]) -> list[tuple[RunSpec, Entry]]:
    """Every cell of ``entries`` with its full identity (the evaluation's weight and data hashes), in order."""
    out = []
    for entry in entries:
        proto = load_protocol(entry.protocol)
        specs = resolve(proto, None, list(entry.models) if entry.models else None, list(entry.seeds or ()) or None)
        out.extend((spec, entry) for spec in specs)
    return out


# --------------------------------------------------------------------------- the plan: states and estimates


@dataclass(frozen=True)
class PlannedCell:
    """One cell before it runs: ``state`` finished | diverged (done: skipped) | interrupted (a checkpoint
    with ``epoch`` of ``epochs`` epochs done, continued) | todo (started); ``estimate_s``: the time it still
    needs (0 when done, None when unknown), ``estimate_from``: what the estimate rests on."""

    protocol: str
    protocol_hash: str
    model: str
    seed: int
    state: str
    epoch: int
    epochs: int
    estimate_s: float | None
    estimate_from: str
    run_id: str = ""

    @property
    def done(self) -> bool:
        return self.state in DONE

    @property
    def left_alone(self) -> bool:
        """Not trained here: done, to be re-evaluated only, or being trained by another live process (not done:
        ``ok`` stays false)."""
        return self.done or self.state in (TRAINING_ELSEWHERE, REEVALUATE)

    @property
    def cell(self) -> str:
        return f"{self.protocol} {self.model} seed {self.seed}"


@dataclass(frozen=True)
class Plan:
    tier: str
    tiers_file: Path
    tracking_uri: str
    cells: tuple[PlannedCell, ...]

    @property
    def to_run(self) -> list[PlannedCell]:
        return [c for c in self.cells if not c.done]

    @property
    def total_s(self) -> float:
        """The estimated time of the cells to run that have an estimate."""
        return sum(c.estimate_s for c in self.to_run if c.estimate_s is not None)

    @property
    def unknown(self) -> int:
        return sum(c.estimate_s is None for c in self.to_run)

    def table(self) -> str:
        """One line per cell (state, identity, estimate and its source), then the totals."""
        head = ("cell", "state", "identity", "time left", "estimated from (done: its run)")
        rows = [(c.cell, c.state + (f" at epoch {c.epoch}/{c.epochs}" if c.state == "interrupted" else ""),
                 c.protocol_hash[:12], "-" if c.done else duration(c.estimate_s),
                 f"run {c.run_id}" if c.done else c.estimate_from)
                for c in self.cells]
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *rows]]
        known = len(self.to_run) - self.unknown
        time_left = (f"about {duration(self.total_s)}" if known else "no estimate yet" if self.to_run else "nothing") + (
            f" ({self.unknown} of them with no estimate)" if self.unknown and known else "")
        lines.append(f"tier {self.tier} ({self.tiers_file}): {len(self.cells)} cells, {len(self.cells) - len(self.to_run)} "
                     f"done, {len(self.to_run)} to run, {time_left}; tracking {self.tracking_uri}")
        return "\n".join(lines)


def duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3h05m``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def plan(tier: str, tracking_uri: str | None = None, tiers: str | Path | None = None) -> Plan:
    """The cells of ``tier`` (from the tiers file ``tiers``), each with its state and estimate; runs nothing."""
    book = load_tiers(tiers)
    tracker = track.Tracker(tracking_uri)
    return Plan(tier, book.path, tracker.uri, tuple(plan_cells(cell_specs(book.entries(tier)), tracker)))


def plan_cells(pairs: Sequence[tuple[RunSpec, Entry]], tracker: track.Tracker) -> list[PlannedCell]:
    """State and estimate of each cell, from one search of the tracking store per protocol experiment."""
    frames: dict[str, pd.DataFrame] = {}
    out = []
    for spec, _ in pairs:
        experiment = track.experiment_name(spec.protocol.name)
        if experiment not in frames:
            frames[experiment] = tracker.search([experiment])
        out.append(planned_cell(spec, frames[experiment]))
    return out


def planned_cell(spec: RunSpec, runs: pd.DataFrame) -> PlannedCell:
    """The state of one cell and its estimate, from the runs of its protocol's experiment."""
    mine = of_cell(runs, spec)
    state = inspect_cell(spec, mine)
    epochs = spec.protocol.train.epochs
    head = dict(protocol=spec.protocol.name, protocol_hash=spec.protocol_hash, model=spec.model.name, seed=spec.seed,
                epochs=epochs)
    if state.finished is not None:
        run = mine[mine["run_id"] == state.finished].iloc[0]
        if is_stale(run, spec):  # trained, but measured under another evaluation: evaluated again, not trained
            seconds = run.get("metrics.eval_time_s")
            return PlannedCell(**head, state=REEVALUATE, epoch=epochs,
                               estimate_s=float(seconds) if pd.notna(seconds) else None,
                               estimate_from="its last evaluation's time" if pd.notna(seconds) else "unknown",
                               run_id=state.finished)
        return PlannedCell(**head, state="finished", epoch=epochs, estimate_s=0.0, estimate_from="", run_id=state.finished)
    diverged = mine[mine["status"] == "diverged"] if not mine.empty else mine
    if not diverged.empty:
        run_id = str(diverged.sort_values("start_time")["run_id"].iloc[-1])
        return PlannedCell(**head, state="diverged", epoch=0, estimate_s=0.0, estimate_from="", run_id=run_id)
    if state.live is not None:
        return PlannedCell(**head, state=TRAINING_ELSEWHERE, epoch=0, estimate_s=0.0,
                           estimate_from=f"another live process (pid {state.live}) is training it", run_id="")
    seconds, source = estimate(spec, runs, state.epoch)
    return PlannedCell(**head, state="interrupted" if state.resume else "todo", epoch=state.epoch,
                       estimate_s=seconds, estimate_from=source, run_id=state.previous if state.resume else "")


def estimate(spec: RunSpec, runs: pd.DataFrame, epochs_done: int = 0) -> tuple[float | None, str]:
    """Seconds the cell of ``spec`` still needs, and what that rests on: the mean ``wall_time_s`` +
    ``eval_time_s`` of the finished runs of the same identity, else of the other models of the same protocol
    identity (unscaled), else None. A cell with ``epochs_done`` of its epochs done needs that share less
    training time (wall time grows with epochs; the evaluation runs once at the end, whole)."""
    done = runs[runs["status"] == "finished"] if not runs.empty else runs
    if "metrics.wall_time_s" not in done:
        return None, "unknown: no finished run of this protocol identity"
    same = done[done["protocol_hash"] == spec.protocol_hash]
    others = done[(done["shared_hash"] == spec.identity.shared_hash) & (done["model"] != spec.model.name)]
    if not same.empty:
        basis, source = same, f"{len(same)} finished run{'s' * (len(same) > 1)} of this identity"
    elif not others.empty:
        names = ", ".join(sorted(set(others["model"])))
        basis, source = others, (f"{len(others)} finished run{'s' * (len(others) > 1)} of {names} under this "
                                 f"protocol identity, not scaled to {spec.model.name}")
    else:
        return None, "unknown: no finished run of this protocol identity"
    train = float(basis["metrics.wall_time_s"].mean())
    evaluation = float(basis["metrics.eval_time_s"].fillna(0).mean()) if "metrics.eval_time_s" in basis else 0.0
    epochs = spec.protocol.train.epochs
    left = (epochs - epochs_done) / epochs
    if epochs_done:
        source += f", {epochs - epochs_done} of {epochs} epochs left"
    return train * left + evaluation, source


# --------------------------------------------------------------------------- running a tier


@dataclass(frozen=True)
class ReproduceResult:
    """What a reproduction did: one result per cell of the tier, in plan order (the sweep's summary table),
    and the protocols whose reports it covers."""

    tier: str
    sweep: SweepResult
    protocols: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return all(c.status in DONE for c in self.sweep.cells)


def units(pairs: Sequence[tuple[RunSpec, Entry]], todo: Sequence[int], concurrent_seeds: bool | None) -> list[list[int]]:
    """The runs to make, each one :func:`run_group` call: one cell each, or the cells of one model under one
    protocol together where the entry (or ``concurrent_seeds``, when not None) asks for concurrent seeds."""
    out: list[list[int]] = []
    by_entry: dict[Entry, dict[int, RunSpec]] = {}  # in the order of the tiers file
    for i in todo:
        spec, entry = pairs[i]
        by_entry.setdefault(entry, {})[i] = spec
    for entry, cells in by_entry.items():
        together = entry.concurrent_seeds if concurrent_seeds is None else concurrent_seeds
        out.extend(list(unit) for unit in tasks(cells, together))
    return out


def run(tier: str, *, tiers: str | Path | None = None, tracking_uri: str | None = None, device: str = "auto",
        data_root=None, concurrent_seeds: bool | None = None, progress: bool = True,
        say: Callable[[str], None] = print) -> ReproduceResult:
    """Run every cell of ``tier`` that is not done, through the sweep's machinery; ``say`` gets a line before
    each cell (``[k/N] protocol model seed s: started|continued from epoch e; about T left (...)``) and after
    each run. Never raises for a failed cell (its result says why), only for KeyboardInterrupt and user errors."""
    book = load_tiers(tiers)
    entries = book.entries(tier)
    pairs = cell_specs(entries)
    tracker = track.Tracker(tracking_uri)
    dev = resolve_device(device)
    planned = plan_cells(pairs, tracker)
    cells: dict[int, CellResult] = {i: _skipped(spec, c) for i, ((spec, _), c) in enumerate(zip(pairs, planned))
                                    if c.left_alone and c.state != REEVALUATE}
    for i, ((spec, _), c) in enumerate(zip(pairs, planned)):
        if c.state == REEVALUATE:  # a changed evaluation: the run's final weights measured again, nothing trained
            cells[i] = _reevaluated(spec, c, tracker, dev, data_root, say)
    todo = [i for i in range(len(pairs)) if i not in cells]
    say(f"tier {tier}: {len(pairs)} cells; {len(cells)} left alone (done, re-evaluated, or trained by another "
        f"process), {len(todo)} to run")
    data: dict[str, object] = {}
    k = 0
    for unit in units(pairs, todo, concurrent_seeds):
        left = [i for i in todo if i not in cells]
        fresh = dict(zip(left, plan_cells([pairs[i] for i in left], tracker)))  # estimates with what just finished
        for i in unit:
            k += 1
            say(progress_line(k, len(todo), fresh[i], [fresh[j] for j in left]))
        protocol = pairs[unit[0]][0].protocol
        if protocol.name not in data:  # one protocol's cells share its training data; one set held at a time
            data = {protocol.name: training_images(protocol, data_root)}
        for i, result in zip(unit, run_group([pairs[i][0] for i in unit], data[protocol.name], dev, tracker,
                                             data_root, progress)):
            cells[i] = result
            say(f"    {result.cell}: {result.status} ({result.action}) run {result.run_id or '-'}"
                + (f"; {result.note.splitlines()[0]}" if result.note else ""))
    ordered = [cells[i] for i in range(len(pairs))]
    counts = {a: sum(c.action == a for c in ordered) for a in ("skipped", "re-evaluated", "ran", "retried")}
    protocols = tuple(dict.fromkeys(e.protocol for e in entries))
    return ReproduceResult(tier, SweepResult(ordered, "local", tracker.uri, None, counts), protocols)


def _reevaluated(spec: RunSpec, c: PlannedCell, tracker: track.Tracker, dev, data_root,
                 say: Callable[[str], None]) -> CellResult:
    done = reevaluate_run(spec, c.run_id, tracker, dev, data_root)
    say(f"    {done.line}")
    return CellResult(c.protocol, c.protocol_hash, c.model, c.seed, "finished", "re-evaluated", c.run_id,
                      str(run_dir_for(spec)))


def _skipped(spec: RunSpec, c: PlannedCell) -> CellResult:
    return CellResult(c.protocol, c.protocol_hash, c.model, c.seed, c.state, "skipped", c.run_id, str(run_dir_for(spec)))


def progress_line(k: int, n: int, cell: PlannedCell, left: Sequence[PlannedCell]) -> str:
    """``[k/N] protocol model seed s: started|continued from epoch e; about T left (...)``: T sums the
    estimates of every cell still to run, this one included."""
    how = f"continued from epoch {cell.epoch}" if cell.state == "interrupted" else "started"
    known = [c.estimate_s for c in left if c.estimate_s is not None]
    unknown = len(left) - len(known)
    basis = f"this cell {duration(cell.estimate_s)}: {cell.estimate_from}" if cell.estimate_s is not None else \
        f"this cell {cell.estimate_from}"
    if not known:
        return f"[{k}/{n}] {cell.cell}: {how}; time left unknown ({basis})"
    if unknown:
        basis += f"; {unknown} of the {len(left)} cells left have no estimate"
    return f"[{k}/{n}] {cell.cell}: {how}; about {duration(sum(known))} left ({basis})"
