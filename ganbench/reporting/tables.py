"""The numbers of a leaderboard as data files: ``leaderboard.csv`` (one row per protocol hash, model and
headline metric: mean, std, bootstrap interval, seed count, floor) and ``leaderboard.json`` (the same per
model, plus every run: id, seed, status, identity hash, device, wall time and metric values).

Written beside a report's README so that published figures can be read by programs, and sorted (by hash
age as the report orders boards, then model rank, then metric name, then seed) so that re-rendering an
unchanged store changes no byte.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ganbench.core.assets import atomic_path
from ganbench.core.track import Tracker
from ganbench.reporting.leaderboard import Board, ModelRow, metric_kind
from ganbench.reporting.stats import Summary

CSV_COLUMNS = ["protocol", "protocol_hash", "model", "identity", "eval_identity", "metric", "kind", "higher_is_better", "n_seeds", "mean",
               "std", "ci_low", "ci_high", "floor", "runs", "healthy", "device", "wall_time_s_mean"]


def device_label(params: dict[str, str]) -> str:
    """What a run trained on: the ``device`` param and, when it says more, the ``device_name`` (a GPU's name or
    the CPU's architecture), e.g. ``cuda:0 (NVIDIA H200)`` or ``cpu (x86_64)``."""
    device, name = params.get("device", ""), params.get("device_name", "")
    if not device:
        return name or "n/a"
    return f"{device} ({name})" if name and name != device else device


def run_devices(tracker: Tracker, run_ids) -> dict[str, str]:
    """run id -> device label, read from each run's parameters (a report's searches carry metrics and tags only)."""
    return {r: device_label(tracker.get(r).data.params) for r in sorted(set(run_ids))}


def model_devices(board: Board, devices: dict[str, str]) -> dict[str, str]:
    """model -> the devices its runs used (joined when they differ)."""
    out = {}
    for model, runs in board.runs.groupby("model"):
        out[str(model)] = ", ".join(sorted({devices.get(r, "n/a") for r in runs["run_id"]}))
    return out


def _num(x) -> float | str | None:
    """A JSON-safe number: None for missing and NaN values, "inf" / "-inf" for infinite ones (JSON has no
    infinity, and an infinite value is a result: a reverse KL with a mode never hit)."""
    if x is None or pd.isna(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def _summary(s: Summary) -> dict:
    return {"n": s.n, "mean": _num(s.mean), "std": _num(s.std), "ci_low": _num(s.ci_low), "ci_high": _num(s.ci_high)}


def csv_rows(board: Board, devices: dict[str, str]) -> list[dict]:
    by_model = model_devices(board, devices)
    rows = []
    for r in board.rows:
        for name, higher in sorted(board.metrics) + [(n, None) for n in board.others]:
            s = r.metrics[name]
            rows.append({"protocol": board.protocol, "protocol_hash": board.protocol_hash, "model": r.model,
                         "identity": r.identity, "eval_identity": board.eval_hash, "metric": name,
                         "kind": metric_kind(name).kind, "higher_is_better": higher, "n_seeds": s.n,
                         "mean": _num(s.mean), "std": _num(s.std), "ci_low": _num(s.ci_low), "ci_high": _num(s.ci_high),
                         "floor": _num((board.floor or {}).get(name)), "runs": r.runs, "healthy": r.healthy,
                         "device": by_model.get(r.model, "n/a"), "wall_time_s_mean": _num(r.compute["wall_time_s"].mean)})
    return rows


def run_records(board: Board, devices: dict[str, str]) -> list[dict]:
    """Every run of a board (finished or not), by model then seed."""
    names = [n for n, _ in board.metrics] + board.others
    out = []
    for _, run in board.runs.sort_values(["model", "seed", "run_id"]).iterrows():
        out.append({"run_id": run["run_id"], "model": run["model"], "seed": None if pd.isna(run["seed"]) else int(run["seed"]),
                    "status": run["status"], "identity": run["protocol_hash"],
                    "eval_identity": run.get("eval_hash") or None, "device": devices.get(run["run_id"], "n/a"),
                    "wall_time_s": _num(run.get("metrics.wall_time_s")), "cpu_time_s": _num(run.get("metrics.cpu_time_s")),
                    "cpu_share": _num(run.get("metrics.cpu_share")),
                    "health": run.get("tags.ganbench.health") if isinstance(run.get("tags.ganbench.health"), str) else None,
                    "metrics": {n: _num(run.get(f"metrics.{n}")) for n in names}})
    return out


def model_record(r: ModelRow, board: Board, device: str) -> dict:
    return {"model": r.model, "identity": r.identity, "runs": r.runs, "healthy": r.healthy, "seeds": r.seeds,
            "device": device, **{name: _summary(r.compute[name]) for name in ("wall_time_s", "cpu_time_s", "cpu_share")},
            "metrics": {n: {**_summary(r.metrics[n]), "values": r.values[n]}
                        for n in [m for m, _ in board.metrics] + board.others}}


def board_record(board: Board, devices: dict[str, str]) -> dict:
    by_model = model_devices(board, devices)
    return {"protocol_hash": board.protocol_hash, "eval_identity": board.eval_hash,
            "metrics": [{"name": n, "higher_is_better": h, "floor": _num((board.floor or {}).get(n))} for n, h in board.metrics],
            "tests": [{"name": n, "kind": metric_kind(n).kind, "read_as": metric_kind(n).reading,
                       "floor": _num((board.floor or {}).get(n))} for n in board.others],
            "models": [model_record(r, board, by_model.get(r.model, "n/a")) for r in board.rows],
            "runs": run_records(board, devices)}


def write_tables(protocol: str, boards: list[Board], devices: dict[str, str], out: Path) -> list[Path]:
    """``leaderboard.csv`` and ``leaderboard.json`` of a protocol's boards (newest first) under ``out``."""
    csv = pd.DataFrame([row for b in boards for row in csv_rows(b, devices)], columns=CSV_COLUMNS)
    csv = csv.replace({"inf": math.inf, "-inf": -math.inf})  # CSV readers parse inf themselves
    data = {"protocol": protocol, "boards": [board_record(b, devices) for b in boards]}
    paths = [out / "leaderboard.csv", out / "leaderboard.json"]
    with atomic_path(paths[0]) as tmp:
        csv.to_csv(tmp, index=False, float_format="%.10g")
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return paths
