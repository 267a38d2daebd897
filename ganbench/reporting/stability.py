"""DCGAN vs WGAN-GP stability across protocols: ``reports/stability.md`` (+ ``.html``).

For every protocol where both models have finished runs under one protocol identity (the newest such):
the final metrics per seed, their spread over seeds (std, range), Welch's t-test per headline metric
(``leaderboard.compare``; Welch 1947), the per-epoch curve of every seed of both models overlaid (the
``eval.curve`` metric, else the per-epoch D and G losses), the diagnosis findings each run logged, and a
plain-language verdict that says how confident it can be; then one verdict across protocols.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ganbench.core.assets import atomic_path
from ganbench.core.track import Tracker
from ganbench.diagnosis.findings import Diagnosis
from ganbench.diagnosis.tracked import DIAGNOSIS_FILE
from ganbench.reporting import figures as F
from ganbench.reporting import pages as P
from ganbench.reporting.leaderboard import SIGNIFICANCE, Board, Comparison, build_boards, compare, metric_direction
from ganbench.reporting.render import fmt, g_steps, model_costs
from ganbench.reporting.stats import spread_test

PAIR = ("dcgan", "wgan-gp")  # the comparison users ask for: the non-saturating DCGAN and its WGAN-GP counterpart
PAGE = "stability"
MIN_SEEDS_FOR_TEST = 2  # Welch's test needs a variance on each side
# A curve is "still improving" at the end of training when, over its last quarter of epochs (at least 3), the
# least-squares line falls by more than this share of the final value, for every seed.
TAIL_SHARE, TAIL_MIN_POINTS, STILL_IMPROVING_DROP = 0.25, 3, 0.02


@dataclass(frozen=True)
class Case:
    """One protocol's comparison of the pair."""

    protocol: str
    board: Board
    comparison: Comparison
    curves: pd.DataFrame  # curve_history of both models (eval.curve metric or per-epoch losses)
    curve_kind: str  # "curve" | "loss" | ""
    findings: dict[str, str]  # run id -> the run's logged findings, one line
    verdict: str


def pair_board(runs: pd.DataFrame, protocol: str, pair: tuple[str, str] = PAIR) -> Board | None:
    """The newest board of ``protocol`` on which both models have finished runs."""
    for board in build_boards(runs, protocol):
        models = {r.model: r for r in board.rows}
        if all(m in models and models[m].seeds for m in pair):
            return board
    return None


def run_findings(tracker: Tracker, run_id: str, tmp: Path) -> str:
    """A run's diagnosis as it was logged when the run ended (``diagnosis.json``, what the health tag and
    ``ganbench diagnose`` report), one line: ``severity name (steps a-b)`` per finding."""
    if DIAGNOSIS_FILE not in tracker.artifacts(run_id):
        return f"no diagnosis logged (health tag: {tracker.get(run_id).data.tags.get('ganbench.health', 'none')})"
    diag = Diagnosis.from_dict(json.loads(tracker.download(run_id, DIAGNOSIS_FILE, tmp / run_id).read_text()))
    return findings_line(diag.findings)


def findings_line(findings) -> str:
    """Findings as one line, ``severity name (steps a-b)`` in order of their first step; a kind that recurs
    (a long DCGAN run's hundred short oscillation spans) is one entry with its count, first to last step and
    the steps it covers, so the line stays readable."""
    if not findings:
        return "no findings"
    kinds: dict[tuple[str, str], list] = {}
    for f in sorted(findings, key=lambda f: (f.start_step, f.name)):
        kinds.setdefault((f.severity, f.name), []).append(f)
    out = []
    for (severity, name), fs in kinds.items():
        if len(fs) == 1:
            out.append(f"{severity} {name} (steps {fs[0].start_step}-{fs[0].end_step})")
        else:
            covered = sum(f.end_step - f.start_step + 1 for f in fs)
            out.append(f"{severity} {name} x{len(fs)} (steps {fs[0].start_step}-{max(f.end_step for f in fs)}, "
                       f"{covered} steps in all)")
    return "; ".join(out)


def spread_sentence(name: str, a, b) -> str:
    """Stability in Lucic et al.'s sense: the spread of the final metric over seeds of each model, and whether the
    data support calling one spread smaller (the F test of equal variances)."""
    t = spread_test(a.values[name], b.values[name])
    stds = f"std of {name} over seeds: {a.model} {fmt(a.metrics[name].std, 3)}, {b.model} {fmt(b.metrics[name].std, 3)}"
    if math.isnan(t.p_value):
        return f"Spread ({stds}): not testable (fewer than 2 seeds a side, or no spread)."
    if t.p_value < SIGNIFICANCE:
        steadier = b if t.ratio < 1 else a
        return (f"Spread ({stds}): {steadier.model}'s is smaller, F({t.df[0]}, {t.df[1]}) = {t.f:.3g}, "
                f"p = {t.p_value:.2g}.")
    return (f"Spread ({stds}): no significant difference, F({t.df[0]}, {t.df[1]}) = {t.f:.3g}, p = {t.p_value:.2g}; "
            "the data do not say which model is more stable over seeds.")


def still_improving(curves: pd.DataFrame, model: str, metric: str) -> bool | None:
    """Whether every seed of ``model`` was still improving ``metric`` when training ended (see TAIL_SHARE); None
    when the curve is too short or the metric has no direction."""
    higher = metric_direction(metric, {})
    df = curves[(curves["model"] == model) & (curves["metric"] == metric)]
    if higher is None or df.empty:
        return None
    verdicts = []
    for _, seed in df.groupby("seed"):
        seed = seed.sort_values("step")
        tail = seed.tail(max(TAIL_MIN_POINTS, math.ceil(len(seed) * TAIL_SHARE)))
        if len(seed) < 2 * TAIL_MIN_POINTS:
            return None
        x, y = tail["step"].to_numpy(float), tail["value"].to_numpy(float)
        slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
        gain = (slope if higher else -slope) * (x[-1] - x[0])
        verdicts.append(gain > STILL_IMPROVING_DROP * abs(y[-1]))
    return all(verdicts)


def budget_note(protocol: str, c: Comparison, curves: pd.DataFrame) -> str:
    """What the comparison's budgets were (G and D steps from the images seen) and which model's curve was
    still improving when training stopped: a number of an unconverged model says so beside it."""
    parts = []
    for r in (c.a, c.b):
        costs = model_costs(protocol, r.model)
        steps = g_steps(costs, r.compute["images_seen"].mean)
        if steps is not None:
            parts.append(f"{r.model} {steps:,.0f} G steps and {steps * costs[1]:,.0f} D steps")
    text = f"Budget: {' vs '.join(parts)}, the same images seen." if len(parts) == 2 else ""
    metrics = sorted(curves["metric"].unique()) if len(curves) else []
    for r in (c.a, c.b):
        for metric in metrics:
            if still_improving(curves, r.model, metric):
                text += (f" {r.model}'s {metric} curve was still improving when training ended (every seed, over the "
                         f"last quarter of its epochs): its numbers are of a model that had not converged.")
    return text.strip()


def case_verdict(c: Comparison) -> str:
    """How the pair compares on the board's first headline metric, and how sure that is."""
    a, b = c.a, c.b
    parts = []
    if c.deltas:
        d = c.deltas[0]
        word = "higher" if d.higher_is_better else "lower"
        lead, trail = (b, a) if (d.test.delta > 0) == d.higher_is_better else (a, b)
        ml, mt = (d.b.mean, d.a.mean) if lead is b else (d.a.mean, d.b.mean)
        if len(a.seeds) < MIN_SEEDS_FOR_TEST or len(b.seeds) < MIN_SEEDS_FOR_TEST or math.isnan(d.test.p_value):
            parts.append(f"With {len(a.seeds)} seed(s) of {a.model} and {len(b.seeds)} of {b.model} no test is possible: "
                         f"the comparison is anecdotal. {lead.model}'s {d.name} is {word} ({fmt(ml)} vs {fmt(mt)}).")
        elif d.better:
            parts.append(f"p = {d.test.p_value:.2g} ({d.p_holm:.2g} after Holm's correction over the page's metrics) with "
                         f"{len(a.seeds)} vs {len(b.seeds)} seeds: {lead.model}'s {d.name} is {word} ({fmt(ml)} vs "
                         f"{fmt(mt)}), a difference larger than the seed-to-seed spread (Hedges' g = {fmt(d.effect, 2)}).")
        else:
            parts.append(f"p = {d.test.p_value:.2g} ({d.p_holm:.2g} after Holm's correction) with {len(a.seeds)} vs "
                         f"{len(b.seeds)} seeds: no significant difference in {d.name} ({lead.model} {fmt(ml)} vs "
                         f"{trail.model} {fmt(mt)}).")
        parts.append(spread_sentence(d.name, a, b))
    parts.append(f"Healthy runs: {a.model} {a.healthy}/{a.runs}, {b.model} {b.healthy}/{b.runs}.")
    return " ".join(parts)


def overall_verdict(cases: list[Case]) -> str:
    """One paragraph over every protocol: where each model won on its first headline metric, and how sure."""
    if not cases:
        return f"No protocol has finished runs of both {PAIR[0]} and {PAIR[1]} yet: nothing to compare."
    wins: dict[str, list[str]] = {m: [] for m in PAIR}
    untested, ties = [], []
    for case in cases:
        d = case.comparison.deltas[0] if case.comparison.deltas else None
        if d is None or math.isnan(d.test.p_value):
            untested.append(case.protocol)
        elif d.better is None:
            ties.append(case.protocol)
        else:
            wins[case.comparison.a.model if d.better == "a" else case.comparison.b.model].append(case.protocol)
    parts = [f"Across {len(cases)} protocol(s) with runs of both:"]
    parts += [f"{m} is significantly better (p < {SIGNIFICANCE}) on {len(w)} ({', '.join(w)})." for m, w in wins.items() if w]
    if ties:
        parts.append(f"No significant difference on {len(ties)} ({', '.join(ties)}).")
    if untested:
        parts.append(f"Too few seeds to test on {len(untested)} ({', '.join(untested)}): anecdotal only.")
    winners = [m for m, w in wins.items() if w]
    if len(winners) == 1 and not ties:
        parts.append(f"The evidence points one way: {winners[0]} is the better of the two where a test was possible.")
    elif len(winners) == 1:
        parts.append(f"{winners[0]} wins where a difference is measurable, but not everywhere: the verdict depends on the protocol.")
    elif len(winners) == 2:
        parts.append("The two models win on different protocols: neither is better in general.")
    else:
        parts.append("No protocol shows a significant difference yet: more seeds would be needed to call one.")
    return " ".join(parts)


def build_case(protocol: str, board: Board, tracker: Tracker, tmp: Path) -> Case:
    comparison = compare(board, *PAIR)
    curves = F.curve_history(board, tracker, list(PAIR))
    kind = "curve" if len(curves) else ""
    if not len(curves):
        curves = F.curve_history(board, tracker, list(PAIR), F.LOSS_SERIES)
        kind = "loss" if len(curves) else ""
    run_ids = sorted(board.runs[board.runs["model"].isin(PAIR)]["run_id"])
    findings = {r: run_findings(tracker, r, tmp) for r in run_ids}
    verdict = " ".join(t for t in (case_verdict(comparison), budget_note(protocol, comparison, curves)) if t)
    return Case(protocol, board, comparison, curves, kind, findings, verdict)


def seed_table(case: Case) -> P.Table:
    names = [n for n, _ in case.board.metrics]
    runs = case.board.runs[case.board.runs["model"].isin(PAIR)].sort_values(["model", "seed", "run_id"])
    rows = []
    for _, r in runs.iterrows():
        rows.append([r["model"], str(int(r["seed"])), str(r["status"])] + [fmt(r.get(f"metrics.{n}")) for n in names]
                    + [case.findings[r["run_id"]]])
    return P.Table(["model", "seed", "status", *names, "diagnosis findings"], rows)


def spread_table(case: Case) -> P.Table:
    rows = []
    by_model = {case.comparison.a.model: case.comparison.a, case.comparison.b.model: case.comparison.b}
    for d in case.comparison.deltas:
        for model in PAIR:
            vals = by_model[model].values[d.name]
            rng = f"{fmt(min(vals))} – {fmt(max(vals))}" if vals else "n/a"
            s = d.a if model == case.comparison.a.model else d.b
            rows.append([d.name, model, str(s.n), fmt(s.mean), fmt(s.std, 3), rng])
    return P.Table(["metric", "model", "seeds", "mean", "std", "range"], rows)


def welch_table(case: Case) -> P.Table:
    c = case.comparison
    rows = []
    for d in c.deltas:
        better = {"a": c.a.model, "b": c.b.model}.get(d.better) or ("not testable" if math.isnan(d.test.p_value)
                                                                   else "no significant difference")
        rows.append([d.name, fmt(d.test.delta), fmt(d.test.t, 3), fmt(d.test.df, 3), fmt(d.test.p_value, 3), better])
    return P.Table(["metric", f"Δ ({c.b.model} − {c.a.model})", "t", "df", "Welch p", "better"], rows)


def case_blocks(case: Case, img: Path) -> list[P.Block]:
    blocks: list[P.Block] = [
        P.Heading(case.protocol), P.Para(case.verdict, "verdict"),
        P.Para(f"Protocol hash `{case.board.protocol_hash[:12]}`; identities: " + ", ".join(
            f"{r.model} `{r.identity[:12]}`" for r in (case.comparison.a, case.comparison.b)) + ".", "muted"),
        P.Heading("Final metrics per seed", 3), seed_table(case),
        P.Heading("Spread over seeds", 3), spread_table(case),
        P.Heading(f"Welch's t-test (two-sided, level {SIGNIFICANCE})", 3), welch_table(case)]
    for metric in sorted(case.curves["metric"].unique()) if len(case.curves) else []:
        what = "after every epoch" if case.curve_kind == "curve" else "per-epoch mean"
        title = f"{case.protocol}: {metric} {what}, every seed of both models"
        path = F.draw_curves(case.curves, metric, title, img / f"{case.protocol}_{metric}.png")
        blocks.append(P.Image(title, path))
    if not len(case.curves):
        blocks.append(P.Para("No per-epoch curve was logged by these runs.", "muted"))
    return blocks


def write_stability(protocols: list[str], runs: pd.DataFrame, out_root: Path, tracker: Tracker) -> tuple[list[Case], list[Path]]:
    """Write ``stability.md`` and ``stability.html`` (images under ``stability/``) for the listed protocols."""
    img = out_root / PAGE
    if img.is_dir():
        for old in img.iterdir():
            old.unlink()
    img.mkdir(parents=True, exist_ok=True)
    cases = []
    with tempfile.TemporaryDirectory(prefix="ganbench-stability-") as tmp:
        for protocol in sorted(protocols):
            board = pair_board(runs, protocol)
            if board is not None:
                cases.append(build_case(protocol, board, tracker, Path(tmp)))
    blocks: list[P.Block] = [
        P.Para(f"{PAIR[0]} and {PAIR[1]} on every published protocol where both have finished runs under the same "
               "protocol identity. Seeds are independent replicates; Welch's unequal-variance t-test (Welch 1947) "
               "compares the per-seed values, and with fewer than two seeds a side no test is possible."),
        P.Heading("Verdict across protocols"), P.Para(overall_verdict(cases), "verdict")]
    for case in cases:
        blocks += case_blocks(case, img)
    title = f"Stability: {PAIR[0]} vs {PAIR[1]}"
    md, html = out_root / f"{PAGE}.md", out_root / f"{PAGE}.html"
    for path, text in ((md, P.to_markdown(title, blocks, out_root)), (html, P.to_html(title, blocks, out_root))):
        with atomic_path(path) as t:
            t.write_text(text)
    return cases, [md, html, *sorted(img.iterdir())]
