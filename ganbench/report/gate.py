"""Quality regression gates: ``ganbench baseline save`` and ``ganbench check``.

A baseline (``baselines/<protocol>.json``) keeps the per-seed values of every headline metric of
each model, measured by ganbench under one protocol hash. A check compares new runs with it: per
model and metric, the mean of the new seeds fails when it lies beyond the one-sided t bound of
the baseline's own seed spread (``stats.regression_bound``): no hand-picked tolerance, and a
metric whose seeds scatter widely gets a wide gate. A run that did not finish always fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ganbench.assets import atomic_write_bytes
from ganbench.errors import GanbenchError
from ganbench.metrics import legacy_metric_name
from ganbench.report.leaderboard import build_boards
from ganbench.report.stats import regression_bound
from ganbench.track import Tracker

BASELINE_FORMAT = 1
# One-sided confidence of the gate: a rerun drawn from the baseline's distribution passes a metric with
# this probability (under normality of seed means), so a false alarm costs 1 check in 100 per metric.
DEFAULT_CONFIDENCE = 0.99
MIN_BASELINE_SEEDS = 2  # a spread needs at least two seeds


def _runs(tracker: Tracker, refs: list[str]) -> pd.DataFrame:
    ids = [r for ref in refs for r in tracker.resolve_runs(ref)]
    return tracker.search(run_ids=list(dict.fromkeys(ids)))


def save_baseline(refs: list[str], path: Path | str, tracking_uri: str | None = None,
                  confidence: float = DEFAULT_CONFIDENCE) -> dict:
    """Write a baseline from finished runs (run ids or experiment names) of one protocol hash."""
    if not 0.5 < confidence < 1:
        raise GanbenchError(f"confidence must be between 0.5 and 1 (e.g. {DEFAULT_CONFIDENCE}), got {confidence}")
    boards = build_boards(_runs(Tracker(tracking_uri), refs))
    if not boards:
        raise GanbenchError(f"no ganbench runs found in {', '.join(refs)}")
    if len(boards) > 1:
        listing = ", ".join(f"{b.protocol} {b.protocol_hash[:12]} ({len(b.runs)} runs)" for b in boards)
        raise GanbenchError(f"the runs span {len(boards)} protocol hashes ({listing}); a baseline covers one: "
                            "pass the run ids of one protocol version")
    board = boards[0]
    models = {}
    for row in board.rows:
        if len(row.seeds) < MIN_BASELINE_SEEDS:
            raise GanbenchError(f"model {row.model!r} has {len(row.seeds)} finished seed(s); a baseline needs at least "
                                f"{MIN_BASELINE_SEEDS} to measure its spread: run more with `ganbench run --seeds ...`")
        models[row.model] = {"seeds": row.seeds, "run_ids": row.run_ids, "metrics": {
            name: {"higher_is_better": higher, "values": row.values[name]} for name, higher in board.metrics}}
    from ganbench import __version__

    data = {"format": BASELINE_FORMAT, "protocol": board.protocol, "protocol_hash": board.protocol_hash,
            "confidence": confidence, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ganbench": __version__, "models": models}
    atomic_write_bytes(Path(path), (json.dumps(data, indent=1) + "\n").encode())
    return data


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
    baseline_hash: str = ""
    renamed: dict[str, str] = field(default_factory=dict)  # baseline metric names read under their current names

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.rows)

    def table(self) -> str:
        head = f"{'':4s} {'model':12s} {'metric':22s} {'new':>10s} {'n':>3s} {'baseline':>20s} {'limit':>10s}"
        lines = [f"protocol {self.protocol} ({self.protocol_hash[:12]}), one-sided confidence {self.confidence}"]
        if self.baseline_hash and self.baseline_hash != self.protocol_hash:
            lines.append(f"note: the baseline was made under hash {self.baseline_hash[:12]}: the protocol or a model card "
                         "changed since, compared anyway")
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


def check(refs: list[str], baseline: Path | str, tracking_uri: str | None = None,
          confidence: float | None = None, allow_protocol_change: bool = False) -> CheckResult:
    """Compare runs (run ids or experiment names) with a baseline; rows for every (model, metric).

    Only runs under the baseline's protocol hash are compared, unless ``allow_protocol_change``: then
    runs of the same protocol name under another hash (a changed budget or model card) are gated
    too, one hash at a time, and the result says so."""
    base = load_baseline(baseline)
    conf = confidence if confidence is not None else float(base.get("confidence", DEFAULT_CONFIDENCE))
    runs = _runs(Tracker(tracking_uri), refs)
    same = runs[runs["protocol_hash"] == base["protocol_hash"]] if len(runs) else runs
    if allow_protocol_change and len(runs) and not len(same):
        same = runs[runs["protocol"] == base["protocol"]]
    if not len(same):
        found = sorted(set(runs["protocol_hash"].dropna().str[:12])) if len(runs) else []
        raise GanbenchError(f"none of the runs was made under the baseline's protocol {base['protocol']!r} hash "
                            f"{base['protocol_hash'][:12]} (found: {', '.join(found) or 'no ganbench runs'}); the "
                            "protocol, a model card or the extractor changed since: re-save the baseline, or pass "
                            "--allow-protocol-change to gate the new version against it")
    boards = build_boards(same)
    if not boards:
        raise GanbenchError(f"the runs of {', '.join(refs)} are still running; check them once they have ended")
    if len(boards) > 1:
        raise GanbenchError(f"the runs span {len(boards)} protocol hashes; check one version at a time")
    board = boards[0]
    rows = []
    for row in board.rows:
        if row.model not in base["models"]:
            raise GanbenchError(f"baseline {baseline} has no model {row.model!r}; it has {', '.join(base['models'])}")
        for _, r in board.runs[board.runs["model"] == row.model].iterrows():
            if r["status"] != "finished":
                rows.append(GateRow(row.model, "status", None, math.nan, math.nan, 0, math.nan, 1, math.nan, False,
                                    f"run {r['run_id'][:8]} seed {r['seed']} {r['status']}"))
        for name, spec in base["models"][row.model]["metrics"].items():
            rows.append(gate_row(row.model, name, spec, row.values.get(name, []), conf))
    return CheckResult(board.protocol, board.protocol_hash, conf, rows, base["protocol_hash"], base["renamed"])


def gate_row(model: str, name: str, spec: dict, new: list[float], confidence: float) -> GateRow:
    import numpy as np

    vals, higher = np.asarray(spec["values"], dtype=float), bool(spec["higher_is_better"])
    mean, std = float(vals.mean()), float(vals.std(ddof=1))
    if not new:
        return GateRow(model, name, higher, mean, std, len(vals), math.nan, 0, math.nan, False, "missing in the new runs")
    value = float(np.mean(new))
    bound = regression_bound(vals, higher, len(new), confidence)
    passed = value >= bound if higher else value <= bound
    return GateRow(model, name, higher, mean, std, len(vals), value, len(new), bound, passed)
