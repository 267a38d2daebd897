"""Quality regression gates: ``ganbench baseline save`` and ``ganbench check``.

A baseline (``baselines/<protocol>.json``) keeps the per-seed values of every headline metric of
each model, measured by ganbench, with each model's identity (``protocol.identity``: the protocol,
the model card and every weight and dataset file the evaluation reads) and its parts. A check
gates only runs of the baseline's identity per model, and when a model has none says which parts
changed (model card, protocol, Inception or domain-classifier weights, dataset files). A check compares new runs with it: per
model and metric, the mean of the new seeds fails when it lies beyond the one-sided t bound of
the baseline's own seed spread (``stats.regression_bound``): no hand-picked tolerance, and a
metric whose seeds scatter widely gets a wide gate. A run that did not finish always fails.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ganbench.core.assets import atomic_write_bytes
from ganbench.core.errors import GanbenchError
from ganbench.core.version import __version__
from ganbench.extractors import inception_weights
from ganbench.spec.protocol import identity, identity_changes, legacy_protocol_hash, load_model, load_protocol, with_assets
from ganbench.metrics import Kind, legacy_metric_name, parse_metric_name, quantity_kind
from ganbench.metrics.base import HIGHER, LOWER
from ganbench.reporting.leaderboard import build_boards, metric_kind
from ganbench.reporting.stats import excess_over_floor, regression_bound
from ganbench.core.track import TAG_EVAL_IDENTITY, TAG_IDENTITY, Tracker

BASELINE_FORMAT = 2  # 1: one protocol hash over every model (``migrate_baseline`` converts it)
# One-sided confidence of the gate: a rerun drawn from the baseline's distribution passes a metric with
# this probability (under normality of seed means), so a false alarm costs 1 check in 100 per metric.
DEFAULT_CONFIDENCE = 0.99
MIN_BASELINE_SEEDS = 2  # a spread needs at least two seeds


def _runs(tracker: Tracker, refs: list[str]) -> pd.DataFrame:
    ids = [r for ref in refs for r in tracker.resolve_runs(ref)]
    return tracker.search(run_ids=list(dict.fromkeys(ids)))


def save_baseline(refs: list[str], path: Path | str, tracking_uri: str | None = None,
                  confidence: float = DEFAULT_CONFIDENCE, models: list[str] | None = None) -> dict:
    """Write a baseline from finished runs (run ids, experiment or protocol names) of one protocol identity,
    one identity per model: trained by ganbench, or evaluations of one's own generator (``ganbench eval
    --name M``, ``ganbench.evaluate(..., track=True, name=M)``), each evaluation a replicate. ``models``: only
    the runs of these models (an experiment holds every model's)."""
    if not 0.5 < confidence < 1:
        raise GanbenchError(f"confidence must be between 0.5 and 1 (e.g. {DEFAULT_CONFIDENCE}), got {confidence}")
    runs = _runs(Tracker(tracking_uri), refs)
    if models and len(runs):
        found = set(runs["model"].dropna())
        absent = [m for m in models if m not in found]
        if absent:
            raise GanbenchError(f"no runs of {', '.join(absent)} in {', '.join(refs)}; models there: "
                                f"{', '.join(sorted(found)) or 'none'}")
        runs = runs[runs["model"].isin(models)]
    boards = build_boards(runs)
    if not boards:
        raise GanbenchError(f"no ganbench runs found in {', '.join(refs)}")
    if len(boards) > 1:
        listing = ", ".join(f"{b.protocol} {b.protocol_hash[:12]} ({len(b.runs)} runs)" for b in boards)
        raise GanbenchError(f"the runs span {len(boards)} protocol or model versions ({listing}); a baseline covers one "
                            "per model: pass the run ids of one version")
    board = boards[0]
    models = {}
    for row in board.rows:
        if len(row.seeds) < MIN_BASELINE_SEEDS:
            raise GanbenchError(f"model {row.model!r} has {len(row.seeds)} finished run(s); a baseline needs at least "
                                f"{MIN_BASELINE_SEEDS} to measure its spread: run more seeds with `ganbench run --seeds "
                                "...`, or evaluate more independently trained generators of your own")
        # Only the metrics this model's runs logged: a board of several models lists the union (a conditional
        # model's label accuracy, say), which a model without it would read as "missing in the new runs".
        kept = board.metrics + [(n, False) for n in board.others if not metric_kind(n).descriptive]
        models[row.model] = {"identity": row.identity, "identity_parts": _parts(board.runs, row.identity),
                             "eval_identity": board.eval_hash,
                             "eval_identity_parts": _parts(board.runs, row.identity, TAG_EVAL_IDENTITY),
                             "seeds": row.seeds, "run_ids": row.run_ids, "metrics": {
            name: {"higher_is_better": higher, "kind": _kind(name, {"higher_is_better": higher}).kind,
                   "values": row.values[name]}
            for name, higher in kept if len(row.values[name]) >= MIN_BASELINE_SEEDS}}
    data = {"format": BASELINE_FORMAT, "protocol": board.protocol, "protocol_hash": board.protocol_hash,
            "confidence": confidence, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ganbench": __version__, "models": models}
    atomic_write_bytes(Path(path), (json.dumps(data, indent=1) + "\n").encode())
    return data


def _parts(runs: pd.DataFrame, ident: str, tag: str = TAG_IDENTITY) -> dict[str, str]:
    """The identity parts (``tag``: training, or evaluation with TAG_EVAL_IDENTITY) the runs of training identity
    ``ident`` recorded (empty for runs made before they did)."""
    col = f"tags.{tag}"
    if col not in runs:
        return {}
    found = runs.loc[(runs["protocol_hash"] == ident) & runs[col].notna(), col]
    return json.loads(found.iloc[0]) if len(found) else {}


def load_baseline(path: Path | str) -> dict:
    """The baseline at ``path``. Metric names of the rule before ``metric_name`` (``fid256_test``) are read
    under their current names (``fid_256_test``, same values); ``data["renamed"]`` lists them, old -> new,
    and the check's table says so, so that the file can be re-saved."""
    path = Path(path)
    if not path.is_file():
        raise GanbenchError(f"baseline {path} does not exist; write one with `ganbench baseline save RUNS... --out {path}`")
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise GanbenchError(f"baseline {path} is not valid JSON ({err})") from err
    if isinstance(data, dict) and data.get("format") == 1:
        raise GanbenchError(f"baseline {path} is in format 1 (one protocol hash over all models); convert it with "
                            f"`ganbench baseline migrate {path}` (it checks that its hash still holds), or re-save it")
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT or "models" not in data:
        raise GanbenchError(f"baseline {path}: expected a ganbench baseline (format {BASELINE_FORMAT}); "
                            "write one with `ganbench baseline save`")
    data["renamed"] = {}
    for model in data["models"].values():
        metrics = model.get("metrics", {})
        for old in [m for m in metrics if legacy_metric_name(m)]:
            new = legacy_metric_name(old)
            if new in metrics:
                raise GanbenchError(f"baseline {path}: metric {old!r} is the old name of {new!r}, which it also "
                                    f"holds; keep one of them (or re-save the baseline with `ganbench baseline save`)")
            metrics[new] = metrics.pop(old)
            data["renamed"][old] = new
    return data


@dataclass(frozen=True)
class GateRow:
    model: str
    metric: str
    higher_is_better: bool | None
    baseline_mean: float
    baseline_std: float
    baseline_n: int
    value: float  # mean over the new seeds
    n: int
    bound: float  # worst acceptable mean of n new seeds
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class CheckResult:
    protocol: str
    protocol_hash: str
    confidence: float
    rows: list[GateRow]
    notes: tuple[str, ...] = ()  # models gated against a baseline of another identity, and why
    renamed: dict[str, str] = field(default_factory=dict)  # baseline metric names read under their current names
    row_confidence: float = math.nan  # each row's confidence: the family's, Bonferroni-corrected over the rows

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.rows)

    def table(self) -> str:
        head = f"{'':4s} {'model':12s} {'metric':22s} {'new':>10s} {'n':>3s} {'baseline':>20s} {'limit':>10s}"
        lines = [f"protocol {self.protocol} ({self.protocol_hash[:12]}), family-wise confidence {self.confidence} over "
                 f"{sum(r.metric != 'status' for r in self.rows)} rows (each at {self.row_confidence:.4g}, Bonferroni)"]
        for note in self.notes:
            lines.append(f"note: {note}: changed since the baseline, compared anyway")
        if self.renamed:
            pairs = ", ".join(f"{old} -> {new}" for old, new in self.renamed.items())
            lines.append(f"note: the baseline names metrics by the old rule, read as {pairs}; re-save it with "
                         "`ganbench baseline save` to store the current names")
        lines.append(head)
        for r in self.rows:
            base = f"{r.baseline_mean:.4g} ± {r.baseline_std:.3g} (n={r.baseline_n})" if r.baseline_n else ""
            lines.append(f"{'PASS' if r.passed else 'FAIL':4s} {r.model:12s} {r.metric:22s} {r.value:>10.4g} {r.n:>3d} "
                         f"{base:>20s} {r.bound:>10.4g}" + (f"  {r.note}" if r.note else ""))
        regressed = sum(not r.passed for r in self.rows)
        lines.append(f"{len(self.rows) - regressed} passed, {regressed} regressed")
        return "\n".join(lines)


def _select(runs: pd.DataFrame, base: dict, baseline, allow_change: bool) -> tuple[pd.DataFrame, list[str]]:
    """Per model, its runs of the baseline's identity; else (``allow_change``) its newest identity's runs
    with a note, or an error saying which parts of the identity differ."""
    chosen, notes = [], []
    for model, mruns in runs.groupby("model"):
        if model not in base["models"]:
            raise GanbenchError(f"baseline {baseline} has no model {model!r}; it has {', '.join(base['models'])}")
        want = base["models"][model]
        same = mruns[mruns["protocol_hash"] == want["identity"]]
        if len(same) and want.get("eval_identity"):
            measured = same[same["eval_hash"] == want["eval_identity"]]
            if not len(measured):
                newest = same.sort_values("start_time").iloc[-1:]
                why = "; ".join(identity_changes(want.get("eval_identity_parts", {}),
                                                 _parts(newest, want["identity"], TAG_EVAL_IDENTITY))) or "evaluation differs"
                raise GanbenchError(f"model {model!r}: its runs were trained under the baseline's identity "
                                    f"{want['identity'][:12]} but evaluated under another evaluation ({why}); evaluate "
                                    f"them again with `ganbench reevaluate --protocol {base['protocol']}` (no training), "
                                    "or re-save the baseline")
            same = measured
        if len(same):
            chosen.append(same)
            continue
        newest = str(mruns.sort_values("start_time")["protocol_hash"].iloc[-1])
        why = "; ".join(identity_changes(want.get("identity_parts", {}), _parts(mruns, newest))) or "identity differs"
        if not allow_change:
            raise GanbenchError(f"model {model!r}: no run has the baseline's identity {want['identity'][:12]} (newest: "
                                f"{newest[:12]}): {why}. Re-save the baseline, or pass --allow-protocol-change to gate "
                                "the new version against it")
        chosen.append(mruns[mruns["protocol_hash"] == newest])
        notes.append(f"{model} ({why})")
    return pd.concat(chosen), notes


def check(refs: list[str], baseline: Path | str, tracking_uri: str | None = None,
          confidence: float | None = None, allow_protocol_change: bool = False) -> CheckResult:
    """Compare runs (run ids or experiment names) with a baseline; rows for every (model, metric).

    Each model's runs are compared only under the baseline's identity of that model, unless
    ``allow_protocol_change``: then a model's newest other identity (a changed budget, model card or
    weights) is gated too, and the result says what changed."""
    base = load_baseline(baseline)
    conf = confidence if confidence is not None else float(base.get("confidence", DEFAULT_CONFIDENCE))
    runs = _runs(Tracker(tracking_uri), refs)
    runs = runs[runs["protocol_hash"].notna() & runs["model"].notna()] if len(runs) else runs
    if not len(runs):
        raise GanbenchError(f"no ganbench runs found in {', '.join(refs)}")
    same, notes = _select(runs, base, baseline, allow_protocol_change)
    boards = build_boards(same)
    if not boards:
        raise GanbenchError(f"the runs of {', '.join(refs)} are still running; check them once they have ended")
    if len(boards) > 1:
        raise GanbenchError(f"the runs span {len(boards)} protocol versions; check one version at a time")
    board = boards[0]
    gated = [(row, name, spec) for row in board.rows for name, spec in base["models"][row.model]["metrics"].items()
             if not _kind(name, spec).descriptive]
    per_row = 1 - (1 - conf) / max(1, len(gated))  # Bonferroni: the family-wise false-alarm rate stays <= 1 - conf
    rows = []
    for row in board.rows:
        for _, r in board.runs[board.runs["model"] == row.model].iterrows():
            if r["status"] != "finished":
                rows.append(GateRow(row.model, "status", None, math.nan, math.nan, 0, math.nan, 1, math.nan, False,
                                    f"run {r['run_id'][:8]} seed {r['seed']} {r['status']}"))
    for row, name, spec in gated:
        rows.append(gate_row(row.model, name, spec, row.values.get(name, []), per_row, (board.floor or {}).get(name)))
    return CheckResult(board.protocol, board.protocol_hash, conf, rows, tuple(notes), base["renamed"], per_row)


def migrate_baseline(path: Path | str) -> dict:
    """Rewrite a format-1 baseline (one protocol hash over all models) with per-model identities, after
    checking that its hash is what today's protocol, cards and Inception weights give under the old
    formula: then its numbers were measured under exactly these conditions. Only the hash and identity
    fields change. A baseline whose hash does not hold is refused: regenerate it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise GanbenchError(f"baseline {path} cannot be read ({err})") from err
    if data.get("format") == BASELINE_FORMAT:
        return data
    if data.get("format") != 1:
        raise GanbenchError(f"baseline {path}: expected a ganbench baseline of format 1 to migrate")
    proto, assets = with_assets(load_protocol(data["protocol"]))
    cards = {m: load_model(m) for m in proto.models}
    legacy = dataclasses.replace(proto, eval=dataclasses.replace(  # the old formula always held the Inception hash
        proto.eval, extractor_weights_sha256=inception_weights().features_sha256))
    old = legacy_protocol_hash(legacy, cards)
    if old != data["protocol_hash"]:
        raise GanbenchError(f"baseline {path} was made under protocol hash {data['protocol_hash'][:12]}, but protocol "
                            f"{data['protocol']!r} with today's cards and weights gives {old[:12]}: its numbers belong "
                            "to other conditions; regenerate it with `ganbench baseline save`")
    idents = {m: identity(proto, cards[m], assets) for m in data["models"]}
    out = {}
    for key, value in data.items():
        out[key] = value
        if key == "protocol_hash":
            out[key] = next(iter(idents.values())).board_hash
            out["migrated_from"] = old
    out["format"] = BASELINE_FORMAT
    out["models"] = {m: {"identity": idents[m].hash, "identity_parts": idents[m].parts,
                         "eval_identity": idents[m].eval_hash, "eval_identity_parts": idents[m].eval_parts, **v}
                     for m, v in data["models"].items()}
    atomic_write_bytes(path, (json.dumps(out, indent=1) + "\n").encode())
    return out


def _kind(name: str, spec: dict) -> Kind:
    """A baseline metric's kind: the registry's (baselines written before kinds name a direction only)."""
    return quantity_kind(name) or (HIGHER if spec["higher_is_better"] else LOWER)


def gate_row(model: str, name: str, spec: dict, new: list[float], confidence: float,
             floor: float | None = None) -> GateRow:
    """One metric of one model, gated by its kind at ``confidence`` (already corrected for the number of rows):
    a ranked metric by the one-sided t bound of the baseline's seeds; a target by the same bound on the distance
    to the target; a threshold test (C_T) by every new seed staying above the threshold; a share tested against
    its real-vs-real ``floor`` (suspected copies) by a one-sided binomial test per new seed."""
    kind = _kind(name, spec)
    vals = np.asarray(spec["values"], dtype=float)
    if kind.kind == "target":
        vals, new = np.abs(vals - kind.value), [abs(v - kind.value) for v in new]
    higher = kind.kind == "higher"
    mean, std = float(vals.mean()), float(vals.std(ddof=1))
    if not new:
        return GateRow(model, name, higher, mean, std, len(vals), math.nan, 0, math.nan, False, "missing in the new runs")
    value = float(np.mean(new))
    if kind.kind == "test" and kind.value is not None:
        below = sum(v < kind.value for v in new)
        return GateRow(model, name, True, mean, std, len(vals), value, len(new), kind.value, below == 0,
                       f"below {kind.value:g} in {below}/{len(new)} new seeds" if below else "")
    if kind.kind == "test":
        if floor is None:
            return GateRow(model, name, False, mean, std, len(vals), value, len(new), math.nan, False,
                           "no real-vs-real floor logged to test against")
        samples = parse_metric_name(name).num_samples
        worst = min(excess_over_floor(v, samples, floor) for v in new)
        return GateRow(model, name, False, mean, std, len(vals), value, len(new), floor, worst >= 1 - confidence,
                       f"binomial p = {worst:.2g} against the floor {floor:.3g}")
    bound = regression_bound(vals, higher, len(new), confidence)
    passed = value >= bound if higher else value <= bound
    note = "distance to the target" if kind.kind == "target" else ""
    if kind.unit_range and not 0 <= bound <= 1:
        note = f"cannot fail: its bound {bound:.3g} is outside [0, 1] (the baseline's seeds spread too much; add seeds)"
    return GateRow(model, name, higher, mean, std, len(vals), value, len(new), bound, passed, note)
