"""Leaderboards and two-model comparisons from a DataFrame of tracked runs (``track.Tracker.search``).

One board per protocol identity (the shared training identity ``shared_hash``: the protocol's data and
budget; and the evaluation identity ``eval_hash``: its evaluation recipe and every weight and dataset file
the evaluation reads) and one training identity per model on it: runs whose protocol side differs
measured different things and are never mixed; a model whose card changed appears on the board with its newest
card, its runs with an older card on a board of their own. Per model: every headline metric as
mean ± std over seeds with a 95% bootstrap interval, the seed count, the **stability score** (the share of the model's runs that finished healthy: status
``finished`` and no failure-level diagnosis), and the compute used (wall time, images seen).

Which metrics are headline metrics, and their direction, comes from each run's metric provenance tag
(``ganbench.metric.<name>``, written by ``ganbench run``) or else the metric registry (by the quantity
the name carries, ``ganbench.metrics.quantity_direction``), never a list here. Runs tracked before the
one naming rule (``fid256_test``) are read under the current names (``fid_256_test``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ganbench.core.errors import GanbenchError
from ganbench.metrics import (COMPANION_SUFFIXES, Kind, legacy_metric_name, parse_metric_name, quantity_direction,
                              quantity_kind)
from ganbench.reporting.stats import Summary, WelchResult, excess_over_floor, hedges_g, holm, summarise, welch_test
from ganbench.spec.protocol import board_hash

# Data, not code paths: the significance level of the two-model test and the confidence of intervals.
SIGNIFICANCE = 0.05  # two-sided level at which compare calls a difference (the conventional 5%)
CI_LEVEL = 0.95
FAILURE_SEVERITY = "failure"  # the diagnosis severity that makes a run unhealthy
# What a run cost: training wall time, CPU time (all threads) and their ratio cpu_time_s / (wall_time_s x threads),
# the share of its cores the run had: well below 1 it waited for them (a shared machine, or data-bound).
COMPUTE_METRICS = ("wall_time_s", "images_seen", "cpu_time_s", "cpu_share")
SHARED_BELOW = 0.8  # a cpu_share below this: the page says the wall time is not a cost figure
# Companion values the metric API logs beside a metric (``mlflow_metrics``): its standard error or spread and
# its real-vs-real floor (the same recipe on real images of another split). Not headline metrics themselves.
STD_SUFFIX, FLOOR_SUFFIX = COMPANION_SUFFIXES
HEADLINE_FIRST = "fid"  # the quantity boards rank by when a run has it (the field's most reported metric)


def metric_direction(name: str, tags: dict[str, str]) -> bool | None:
    """True when higher is better, False when lower is, None when ``name`` is not a quality metric."""
    prov = tags.get(f"ganbench.metric.{name}")
    if prov:
        m = re.search(r"higher_is_better=(True|False)", prov)
        if m:
            return m.group(1) == "True"
    return quantity_direction(name)


TAG_PREFIX = "tags.ganbench.metric."


def migrate_legacy_names(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the ``metrics.<name>`` and provenance-tag columns of names from before the one naming
    rule renamed to their current form (values unchanged; where a run frame has both, the current column
    keeps its values and the old one fills its gaps)."""
    renames = {}
    for col in runs.columns:
        for prefix in ("metrics.", TAG_PREFIX):
            if col.startswith(prefix) and (new := legacy_metric_name(col[len(prefix):])) is not None:
                renames[col] = prefix + new
    if not renames:
        return runs
    runs = runs.copy()
    for old, new in renames.items():
        runs[new] = runs[new].combine_first(runs[old]) if new in runs else runs[old]
    return runs.drop(columns=list(renames))


def _headline_order(name: str) -> tuple:
    parsed = parse_metric_name(name)
    return (parsed is None or parsed.quantity != HEADLINE_FIRST, name)


def _tags(row: pd.Series) -> dict[str, str]:
    return {k[len("tags."):]: v for k, v in row.items() if k.startswith("tags.") and isinstance(v, str)}


def is_curve_only(name: str, tags: dict[str, str]) -> bool:
    """A metric a run logged only per epoch (``eval.curve``: ``domain_fid_2k_test`` beside the final evaluation's
    ``domain_fid_10k_test``). The final evaluation tags each of its metrics with its provenance; an untagged
    metric whose recipe (quantity, feature space, reference, k) the final evaluation measured at another sample
    count is a curve, and its last value is the last epoch's point, not a headline result."""
    parsed = parse_metric_name(name)
    if parsed is None or f"ganbench.metric.{name}" in tags:
        return False
    recipe = dataclasses.replace(parsed, num_samples=0)
    for key in tags:
        if key.startswith("ganbench.metric."):
            other = parse_metric_name(key[len("ganbench.metric."):])
            if other is not None and dataclasses.replace(other, num_samples=0) == recipe:
                return True
    return False


def _final_metrics(runs: pd.DataFrame) -> dict[str, bool]:
    """name -> higher_is_better of every quality metric a final evaluation logged (not the per-epoch curve's)."""
    found: dict[str, bool] = {}
    for _, row in runs.iterrows():
        tags = _tags(row)
        for col in runs.columns:
            if col.startswith("metrics.") and pd.notna(row[col]):
                name = col[len("metrics."):]
                if name not in found and not name.endswith((STD_SUFFIX, FLOOR_SUFFIX)) and not is_curve_only(name, tags):
                    direction = metric_direction(name, tags)
                    if direction is not None:
                        found[name] = direction
    return found


def is_ranked(name: str) -> bool:
    """Whether a metric ranks models by a direction (its registry kind is lower or higher); targets and tests
    (density, C_T, suspected copies, nearest-neighbour distance) are read otherwise and never ranked."""
    kind = quantity_kind(name)
    return kind is None or kind.ranked


def headline_metrics(runs: pd.DataFrame) -> list[tuple[str, bool]]:
    """(name, higher_is_better) of every ranked quality metric of a final evaluation present (per-epoch curve
    metrics, targets and tests are not headline metrics), FID first, then by name."""
    found = _final_metrics(runs)
    return sorted(((n, h) for n, h in found.items() if is_ranked(n)), key=lambda kv: _headline_order(kv[0]))


HEADLINE_QUANTITIES = ("fid", "kid", "precision", "recall", "is")  # what a reader looks for first (FID, KID, P/R, IS)
MAX_HEADLINE = 6  # columns of the first table when a protocol measures none of those (modes, translation)


def headline_split(metrics: list[tuple[str, bool]]) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """(headline, secondary) of a board's ranked metrics: FID, KID, precision, recall and IS in Inception's space,
    else in the domain classifier's, else the first ``MAX_HEADLINE``; the rest go to a table of their own."""
    for space in (None, "domain"):
        chosen = [(n, h) for n, h in metrics if (m := parse_metric_name(n)) is not None and m.space == space
                  and m.quantity in HEADLINE_QUANTITIES]
        if chosen:
            return chosen, [mh for mh in metrics if mh not in chosen]
    return metrics[:MAX_HEADLINE], metrics[MAX_HEADLINE:]


def other_metrics(runs: pd.DataFrame) -> list[str]:
    """The target and test metrics a final evaluation logged (read by their kind, :func:`metric_kind`), by name."""
    return sorted(n for n in _final_metrics(runs) if not is_ranked(n))


def metric_kind(name: str) -> Kind:
    kind = quantity_kind(name)
    assert kind is not None, name
    return kind


TEST_LEVEL = 0.01  # a per-seed test result (copies above the floor) is a finding below this p-value


def test_outcome(name: str, values: list[float], floor: float | None) -> str:
    """How a target or test metric reads over a model's seeds, in words: the distance to a target, how many seeds
    fall below a test's threshold, or how many exceed the real-vs-real floor (one-sided binomial test)."""
    kind, n = metric_kind(name), len(values)
    if not n or kind.descriptive:
        return ""
    if kind.kind == "target":
        return f"|mean − {kind.value:g}| = {abs(float(np.mean(values)) - kind.value):.3g}"
    if kind.value is not None:
        below = sum(v < kind.value for v in values)
        return f"below {kind.value:g} in {below}/{n} seeds"
    if floor is None:
        return "no floor logged: untested"
    samples = parse_metric_name(name).num_samples
    above = sum(excess_over_floor(v, samples, floor) < TEST_LEVEL for v in values)
    return f"above the floor in {above}/{n} seeds (binomial p < {TEST_LEVEL:g})"


def is_healthy(row: pd.Series) -> bool:
    """Finished, and no diagnosis tag (the worst-severity tag ``ganbench.health``, or any ``*severity*``
    tag) at failure level."""
    if row.get("status") != "finished":
        return False
    return not any(v == FAILURE_SEVERITY for k, v in _tags(row).items() if "health" in k or "severity" in k)


@dataclass(frozen=True)
class ModelRow:
    model: str
    identity: str  # the training identity (protocol's training side and model) of every run in the row
    runs: int  # every run of this model under the hash, healthy or not
    healthy: int
    metrics: dict[str, Summary]  # over finished runs that logged the metric
    compute: dict[str, Summary]  # wall_time_s, images_seen
    values: dict[str, list[float]]  # per-seed values (finished runs, ordered by seed)
    seeds: list[int | None]  # None: an evaluation of one's own generator that named no seed
    run_ids: list[str]

    @property
    def stability(self) -> float:
        return self.healthy / self.runs if self.runs else math.nan


@dataclass(frozen=True)
class Board:
    protocol: str
    protocol_hash: str  # the board's hash: shared training identity and evaluation identity (``board_hash``)
    metrics: list[tuple[str, bool]]
    rows: list[ModelRow]  # best first by the first headline metric
    runs: pd.DataFrame = field(repr=False)
    floor: dict[str, float] | None = None  # real-vs-real values of the headline metrics (as logged with the runs)
    eval_hash: str = ""  # the evaluation identity of every number on the board ("" for runs made before it)
    others: list[str] = field(default_factory=list)  # target and test metrics (in each row's metrics, never ranked)

    def row(self, model: str) -> ModelRow:
        for r in self.rows:
            if r.model == model:
                return r
        raise GanbenchError(f"model {model!r} has no runs under protocol {self.protocol!r} "
                            f"(hash {self.protocol_hash[:12]}); models with runs: {', '.join(r.model for r in self.rows)}")


def _cost_sentence(a: ModelRow, b: ModelRow) -> str:
    """Training cost compared in CPU time where both rows recorded it, else in wall time, and said so when a
    run did not have its cores to itself (its wall time then measures the machine's load as well)."""
    shared = [r.model for r in (a, b) if r.compute["cpu_share"].mean < SHARED_BELOW]
    if all(r.compute["cpu_time_s"].mean > 0 for r in (a, b)):
        ta, tb, what = a.compute["cpu_time_s"].mean, b.compute["cpu_time_s"].mean, "CPU time"
    else:
        ta, tb, what = a.compute["wall_time_s"].mean, b.compute["wall_time_s"].mean, "wall time"
    if not (ta > 0 and tb > 0):
        return ""
    text = f"{b.model} took {tb / ta:.2g}x the {what} of {a.model} per run ({_fmt(tb)} s vs {_fmt(ta)} s)."
    if shared:
        text += (f" Runs of {' and '.join(shared)} had under {SHARED_BELOW:.0%} of their cores (a shared machine): "
                 "their wall times are not cost figures.")
    elif what == "wall time":
        text += " (These runs recorded no CPU time: whether they shared their machine is not known.)"
    return text


def model_row(model: str, runs: pd.DataFrame, metrics: list[tuple[str, bool]]) -> ModelRow:
    runs = runs.sort_values("seed")
    done = runs[runs["status"] == "finished"]
    values = {name: [float(v) for v in done.get(f"metrics.{name}", pd.Series(dtype=float)) if pd.notna(v)]
              for name, _ in metrics}
    compute = {name: summarise(done.get(f"metrics.{name}", pd.Series(dtype=float)).dropna().tolist(), CI_LEVEL)
               for name in COMPUTE_METRICS}
    healthy = int(sum(is_healthy(r) for _, r in runs.iterrows()))
    return ModelRow(model, str(runs["protocol_hash"].iloc[0]), len(runs), healthy,
                    {name: summarise(v, CI_LEVEL) for name, v in values.items()}, compute, values,
                    [int(s) if pd.notna(s) else None for s in done["seed"].tolist()], done["run_id"].tolist())


def _rank_key(row: ModelRow, metrics: list[tuple[str, bool]]) -> tuple:
    if not metrics:
        return (0, row.model)
    name, higher = metrics[0]
    mean = row.metrics[name].mean
    if math.isnan(mean):
        return (1, 0.0, row.model)
    return (0, -mean if higher else mean, row.model)


def floors(runs: pd.DataFrame, metrics: list[tuple[str, bool]]) -> dict[str, float] | None:
    """The real-vs-real floor of each headline metric, logged by the metric API as ``<name>_floor``
    (the same under one hash; the mean over runs guards against float noise). None when no run has one."""
    out = {name: float(runs[f"metrics.{name}{FLOOR_SUFFIX}"].mean()) for name, _ in metrics
           if f"metrics.{name}{FLOOR_SUFFIX}" in runs and runs[f"metrics.{name}{FLOOR_SUFFIX}"].notna().any()}
    return out or None


def _versions(group: pd.DataFrame) -> list[pd.DataFrame]:
    """Runs of one protocol identity split so that each part holds one identity per model: part k holds
    each model's k-th newest identity (a changed card starts a new identity; its old runs move down)."""
    newest = group.groupby(["model", "protocol_hash"])["start_time"].max().reset_index()
    newest["rank"] = newest.groupby("model")["start_time"].rank(ascending=False, method="first").astype(int) - 1
    rank = {(m, h): k for m, h, k in newest[["model", "protocol_hash", "rank"]].itertuples(index=False)}
    ranks = [rank[(m, h)] for m, h in zip(group["model"], group["protocol_hash"])]
    return [group[[r == k for r in ranks]] for k in range(max(ranks) + 1)]


def build_boards(runs: pd.DataFrame, protocol: str | None = None) -> list[Board]:
    """One board per protocol identity (shared training identity and evaluation identity) and model-identity
    version (newest first), optionally only for protocol name ``protocol``. Runs made before identities are
    grouped by their protocol hash."""
    runs = migrate_legacy_names(runs[runs["protocol_hash"].notna() & runs["model"].notna()])
    if protocol is not None:
        runs = runs[runs["protocol"] == protocol]
    runs = runs[runs["status"] != "running"]
    shared = runs["shared_hash"].fillna(runs["protocol_hash"]) if "shared_hash" in runs else runs["protocol_hash"]
    evals = runs["eval_hash"].fillna("") if "eval_hash" in runs else pd.Series("", index=runs.index)
    runs = runs.assign(shared_hash=shared, eval_hash=evals)
    boards = []
    for (key, evaluation), whole in runs.groupby(["shared_hash", "eval_hash"], sort=False):
        for group in _versions(whole):
            metrics, others = headline_metrics(group), other_metrics(group)
            rows = [model_row(m, g, metrics + [(n, False) for n in others]) for m, g in group.groupby("model")]
            rows.sort(key=lambda r: _rank_key(r, metrics))
            boards.append(Board(str(group["protocol"].iloc[0]), board_hash(str(key), str(evaluation)), metrics, rows,
                                group, floors(group, metrics + [(n, False) for n in others]), str(evaluation), others))
    boards.sort(key=lambda b: -b.runs["start_time"].max())
    return boards


# --------------------------------------------------------------------------- two models


@dataclass(frozen=True)
class MetricDelta:
    name: str
    higher_is_better: bool
    a: Summary
    b: Summary
    test: WelchResult  # delta = mean(b) - mean(a)
    p_holm: float = math.nan  # Welch's p adjusted by Holm over the metrics of this comparison
    effect: float = math.nan  # Hedges' g of b - a

    @property
    def better(self) -> str | None:
        """'a' or 'b' when the difference is significant at SIGNIFICANCE after Holm's correction, else None."""
        if not (self.p_holm < SIGNIFICANCE):
            return None
        b_higher = self.test.delta > 0
        return "b" if b_higher == self.higher_is_better else "a"


@dataclass(frozen=True)
class Comparison:
    protocol: str
    protocol_hash: str
    a: ModelRow
    b: ModelRow
    deltas: list[MetricDelta]
    verdict: str


def compare(board: Board, model_a: str, model_b: str) -> Comparison:
    a, b = board.row(model_a), board.row(model_b)
    tests = [welch_test(a.values[name], b.values[name]) for name, _ in board.metrics]
    adjusted = holm([t.p_value for t in tests])  # one family: the metrics of this comparison
    deltas = [MetricDelta(name, higher, a.metrics[name], b.metrics[name], t, p, hedges_g(a.values[name], b.values[name]))
              for (name, higher), t, p in zip(board.metrics, tests, adjusted)]
    return Comparison(board.protocol, board.protocol_hash, a, b, deltas, verdict(board.protocol, a, b, deltas))


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def verdict(protocol: str, a: ModelRow, b: ModelRow, deltas: list[MetricDelta]) -> str:
    """A plain-language paragraph generated from the numbers of a comparison."""
    names = {"a": a.model, "b": b.model}
    parts = [f"On {protocol}, {a.model} has {len(a.seeds)} finished seed(s) and {b.model} {len(b.seeds)}."]
    wins: dict[str, list[str]] = {"a": [], "b": []}
    untested: list[str] = []
    tested = sum(not math.isnan(d.test.p_value) for d in deltas)
    for d in deltas:
        if d.a.n == 0 or d.b.n == 0:
            parts.append(f"{d.name} is missing for {a.model if d.a.n == 0 else b.model}, so it cannot be compared.")
            continue
        word = "higher" if d.higher_is_better else "lower"
        lead = "b" if (d.test.delta > 0) == d.higher_is_better else "a"
        if d.test.delta == 0:
            parts.append(f"Both reach the same mean {d.name} ({_fmt(d.a.mean)}).")
            continue
        text = (f"{names[lead]} has the better ({word}) mean {d.name}: {_fmt(d.b.mean if lead == 'b' else d.a.mean)} "
                f"vs {_fmt(d.a.mean if lead == 'b' else d.b.mean)}")
        if math.isnan(d.test.p_value):
            untested.append(d.name)
            continue
        size = f", effect size g = {d.effect:.2g}" if not math.isnan(d.effect) else ""
        if d.better:
            wins[d.better].append(d.name)
            text += (f", and the difference is significant (Welch p = {d.test.p_value:.3g}, {d.p_holm:.3g} after Holm's "
                     f"correction over {tested} metrics < {SIGNIFICANCE}{size}).")
        else:
            text += (f", but the difference is not significant (Welch p = {d.test.p_value:.3g}, {d.p_holm:.3g} after "
                     f"Holm's correction over {tested} metrics >= {SIGNIFICANCE}{size}); more seeds would be needed.")
        parts.append(text)
    if untested:
        parts.append(f"Not established ({', '.join(untested)}): with fewer than two seeds on a side, or no spread, no "
                     "test is possible.")
    parts.append(f"Healthy runs (no failure-level diagnosis): {a.model} {a.healthy}/{a.runs} ({_pct(a.stability)}), "
                 f"{b.model} {b.healthy}/{b.runs} ({_pct(b.stability)}).")
    if cost := _cost_sentence(a, b):
        parts.append(cost)
    if wins["a"] and not wins["b"]:
        parts.append(f"Overall, {a.model} is the better model on this protocol ({', '.join(wins['a'])}).")
    elif wins["b"] and not wins["a"]:
        parts.append(f"Overall, {b.model} is the better model on this protocol ({', '.join(wins['b'])}).")
    elif wins["a"] and wins["b"]:
        parts.append(f"Overall, the metrics disagree: {a.model} wins on {', '.join(wins['a'])}, "
                     f"{b.model} on {', '.join(wins['b'])}.")
    elif any(not math.isnan(d.test.p_value) for d in deltas):
        parts.append("Overall, no significant difference in quality between the two on this protocol (after Holm's "
                     "correction).")
    else:
        parts.append("Overall, not established: no metric could be tested (fewer than two seeds on a side, or no "
                     "spread); run more seeds with `ganbench run --seeds ...`.")
    return " ".join(parts)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"


def comparisons(board: Board) -> list[Comparison]:
    """Every pair of models of a board (best-ranked first)."""
    models = [r.model for r in board.rows]
    return [compare(board, a, b) for i, a in enumerate(models) for b in models[i + 1:]]

