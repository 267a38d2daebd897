"""``ganbench publish``: every listed protocol's report, the index ``reports/README.md`` (+ ``index.html``)
and the DCGAN vs WGAN-GP stability page, from the tracked runs.

The index has one row per protocol (its description, what it measures, the models and seeds that ran, the
devices and wall time), the winner of every headline metric (best mean by the metric's direction; a tie
when Welch's test between the best two is not significant at ``SIGNIFICANCE``), and a Literature section
that puts published figures (``literature.toml`` under the output folder) beside ours.

Output is a function of the store alone: everything is sorted and the pages carry one dated "generated"
line, so re-publishing an unchanged store changes no byte beyond it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ganbench.core.assets import atomic_path
from ganbench.core.errors import GanbenchError
from ganbench.core.track import Tracker
from ganbench.reporting import pages as P
from ganbench.reporting.leaderboard import SIGNIFICANCE, Board, ModelRow, build_boards
from ganbench.reporting.render import Report, fmt, mean_std, protocol_name, write_report
from ganbench.reporting.stability import PAGE as STABILITY_PAGE
from ganbench.reporting.stability import Case, write_stability
from ganbench.reporting.checks import CHECK_HEAD
from ganbench.reporting.stats import welch_test
from ganbench.reporting.tables import model_devices, run_devices
from ganbench.spec.protocol import load_protocol

LITERATURE_FILE = "literature.toml"
LITERATURE_KEYS = ("protocol", "model", "paper_model", "metric", "value", "plus_minus", "source", "setup")


@dataclass(frozen=True)
class Published:
    out_root: Path
    reports: list[Report]  # one per protocol with runs, in the order asked
    skipped: list[str]  # protocols without tracked runs
    index: Path
    stability: Path
    cases: list[Case] = field(default_factory=list)  # the stability comparisons made
    files: list[Path] = field(default_factory=list)  # every file written


@dataclass(frozen=True)
class Figure:
    """One published number (a row of ``literature.toml``)."""

    protocol: str
    model: str
    paper_model: str
    metric: str
    value: float
    plus_minus: float | None
    source: str
    setup: str


def load_literature(path: Path) -> list[Figure]:
    """The published figures of ``path`` (none when the file does not exist)."""
    if not path.is_file():
        return []
    try:
        entries = tomllib.loads(path.read_text()).get("figure", [])
    except tomllib.TOMLDecodeError as err:
        raise GanbenchError(f"{path}: not valid TOML ({err}); fix the file or remove it") from err
    out = []
    for i, e in enumerate(entries):
        missing = [k for k in LITERATURE_KEYS if k not in e and k != "plus_minus"]
        if missing:
            raise GanbenchError(f"{path}: [[figure]] number {i + 1} lacks {', '.join(missing)}; "
                                f"each figure needs {', '.join(LITERATURE_KEYS)} (plus_minus may be left out)")
        out.append(Figure(str(e["protocol"]), str(e["model"]), str(e["paper_model"]), str(e["metric"]),
                          float(e["value"]), None if e.get("plus_minus") is None else float(e["plus_minus"]),
                          str(e["source"]), " ".join(str(e["setup"]).split())))
    return out


# --------------------------------------------------------------------------- winners


def winner(board: Board, name: str, higher: bool) -> tuple[str, str]:
    """(winner, how sure) of one headline metric: the best mean by direction when Welch's test between the best two
    models is significant; "tie" when it is not, "untested" when a side has fewer than 2 seeds (or no spread),
    "equal" for equal means; "n/a" when fewer than two models logged it (no comparison exists)."""
    ranked = sorted((r for r in board.rows if r.metrics[name].n), key=lambda r: (-r.metrics[name].mean if higher
                                                                                 else r.metrics[name].mean, r.model))
    if len(ranked) < 2:
        return "n/a", "fewer than two models logged it: no comparison"
    best, second = ranked[:2]
    means = f"{fmt(best.metrics[name].mean)} vs {fmt(second.metrics[name].mean)}"
    if best.metrics[name].mean == second.metrics[name].mean:
        return "equal", f"{best.model} and {second.model} have the same mean ({means})"
    test = welch_test(second.values[name], best.values[name])
    if math.isnan(test.p_value):
        return "untested", (f"{best.model} ahead of {second.model} ({means}) with {best.metrics[name].n} and "
                            f"{second.metrics[name].n} seeds: fewer than 2 a side (or no spread), no test")
    if test.p_value >= SIGNIFICANCE:
        return "tie", f"{best.model} ahead of {second.model} ({means}), Welch p = {test.p_value:.2g}: not significant"
    return best.model, f"ahead of {second.model} ({means}), Welch p = {test.p_value:.2g}"


# --------------------------------------------------------------------------- index


def _describe(protocol: str) -> tuple[str, str]:
    """(description, metric list) of a protocol file, or blanks when it cannot be loaded here."""
    try:
        p = load_protocol(protocol)
    except GanbenchError:
        return "", ""
    return p.description, ", ".join(p.eval.metrics)


def _runs_cell(board: Board) -> str:
    return ", ".join(f"{r.model} × {len(r.seeds)}" for r in sorted(board.rows, key=lambda r: r.model))


def _wall_time(board: Board) -> float:
    return float(board.runs["metrics.wall_time_s"].sum()) if "metrics.wall_time_s" in board.runs else math.nan


def protocol_row(protocol: str, board: Board, devices: dict[str, str]) -> list[str]:
    name = protocol_name(protocol)
    description, measures = _describe(protocol)
    used = ", ".join(sorted(set(model_devices(board, devices).values())))
    return [name, description, measures, _runs_cell(board), used, duration(_wall_time(board))]


def duration(seconds: float) -> str:
    """A wall time as people read it: seconds, minutes or hours."""
    if math.isnan(seconds):
        return "n/a"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def winner_rows(protocol: str, board: Board) -> list[list[str]]:
    """One row per headline metric that tells the models apart: a metric every model has with the same values
    (an image-to-image task's trivial answer, ``l1_mean_target_*``) describes the task, not a model, and one that
    fewer than two models logged (PPL in W: the style-based generator's alone) has nothing to compare."""
    return [[protocol_name(protocol), name, *winner(board, name, higher)] for name, higher in board.metrics
            if not same_for_every_model(board, name) and sum(r.metrics[name].n > 0 for r in board.rows) >= 2]


def same_for_every_model(board: Board, name: str) -> bool:
    values = [tuple(r.values[name]) for r in board.rows if r.metrics[name].n]
    return len(values) > 1 and len({v[0] for v in values}) == 1 and all(len(set(v)) == 1 for v in values)


def _ours(fig: Figure, boards: dict[str, Board]) -> str:
    board = boards.get(fig.protocol)
    row: ModelRow | None = next((r for r in board.rows if r.model == fig.model), None) if board else None
    if row is None or fig.metric not in row.metrics or not row.metrics[fig.metric].n:
        return "not run"
    s = row.metrics[fig.metric]
    return f"{mean_std(s)} (n = {s.n})"


def literature_rows(figures: list[Figure], boards: dict[str, Board]) -> list[list[str]]:
    rows = []
    for f in sorted(figures, key=lambda f: (f.protocol, f.metric, f.paper_model)):
        published = fmt(f.value) + ("" if f.plus_minus is None else f" ± {fmt(f.plus_minus, 3)}")
        rows.append([f.protocol, f.paper_model, f.model or "—", f.metric, published, _ours(f, boards), f.source, f.setup])
    return rows


def index_blocks(reports: list[tuple[str, Board]], skipped: list[str], devices: dict[str, str],
                 figures: list[Figure], checks: dict[str, list] | None = None) -> list[P.Block]:
    """The index page; ``checks``: protocol name -> its check rows (a check protocol has no winners)."""
    checks = checks or {}
    ordered = sorted(reports, key=lambda rb: protocol_name(rb[0]))
    table = P.Table(["protocol", "description", "measures", "models × seeds", "device", "total wall time"],
                    [protocol_row(p, b, devices) for p, b in ordered],
                    {(i, 0): f"{protocol_name(p)}/README.md" for i, (p, _) in enumerate(ordered)})
    blocks: list[P.Block] = [
        P.Para("Reference results of ganbench: every number below comes from tracked runs and is reproduced by "
               "`ganbench reproduce`; each protocol's page has the leaderboard (mean ± std over seeds, a 95% interval of "
               "the mean, real-vs-real floor), the targets and tests, the budget and identity of every model, sample "
               "grids and curves, and the numbers as CSV and JSON. Only runs of the newest protocol identity are "
               "summarised here; the pages published under the first identity scheme are kept in archive/."),
        P.Heading("Protocols"), table]
    if skipped:
        blocks.append(P.Para("Not run yet (no tracked runs): " + ", ".join(sorted(protocol_name(s) for s in skipped)) + "."))
    wins = [row for p, b in ordered if protocol_name(p) not in checks for row in winner_rows(p, b)]
    blocks += [P.Heading("Winner per ranked metric"),
               P.Para(f"Best mean in the metric's direction, where at least two models logged it; \"tie\" when "
                      f"Welch's t-test between the best two models is not significant at {SIGNIFICANCE}, \"untested\" "
                      "with fewer than two seeds a side, \"equal\" for equal means. Check protocols rank nothing "
                      "(below)."),
               P.Table(["protocol", "metric", "winner", "evidence"], wins)]
    if checks:
        blocks += [P.Heading("Checks"),
                   P.Para("Smoke and induced-failure protocols: did each model train, and did the diagnosis name "
                          "the failure its card induces. Pass/fail, not a ranking."),
                   P.Table(["protocol", *CHECK_HEAD],
                           [[name, *row.cells] for name, rows in sorted(checks.items()) for row in rows])]
    blocks += [P.Heading("DCGAN vs WGAN-GP stability"),
               P.Table(["page"], [["DCGAN vs WGAN-GP across protocols: per-seed metrics, spread, Welch tests, curves, findings"]],
                       {(0, 0): f"{STABILITY_PAGE}.md"})]
    blocks += [P.Heading("Literature"),
               P.Para("Published figures beside ours (mean ± std over seeds, n seeds; \"not run\" when we have no "
                      "finished runs). Read the set-up column before comparing: a paper's best-of-search figure and "
                      "our fixed configuration measure different things.")]
    lit = literature_rows(figures, {protocol_name(p): b for p, b in reports})
    blocks.append(P.Table(["protocol", "paper's model", "our model", "metric", "published", "ours", "source", "set-up"], lit)
                  if lit else P.Para(f"No published figures listed ({LITERATURE_FILE})."))
    return blocks


# --------------------------------------------------------------------------- publish


def publish(protocols: Sequence[str], out_root: Path | str = "reports", tracking_uri: str | None = None) -> Published:
    """Render every listed protocol that has tracked runs (names or protocol files; those without runs are
    skipped and listed), then the index and the stability page."""
    if not protocols:
        raise GanbenchError("no protocols to publish; name them, e.g. `ganbench publish fashion-smoke ring8`")
    out = Path(out_root)
    tracker = Tracker(tracking_uri)
    runs = tracker.search()
    reports, skipped, newest = [], [], []
    for protocol in protocols:
        boards = build_boards(runs, protocol_name(protocol))
        if not boards:
            skipped.append(protocol)
            continue
        reports.append(write_report(protocol, out, tracking_uri, runs))
        newest.append((protocol, boards[0]))
    devices = run_devices(tracker, [r for _, b in newest for r in b.runs["run_id"]])
    figures = load_literature(out / LITERATURE_FILE)
    checks = {r.protocol: r.sections[0].checks for r in reports if r.sections and r.sections[0].checks is not None}
    cases, files = write_stability([protocol_name(p) for p, _ in newest if protocol_name(p) not in checks], runs, out,
                                   tracker)  # a check protocol compares no models
    blocks = index_blocks(newest, skipped, devices, figures, checks)
    title = "ganbench reference results"
    index, html = out / "README.md", out / "index.html"
    for path, text in ((index, P.to_markdown(title, blocks, out)), (html, P.to_html(title, blocks, out))):
        with atomic_path(path) as t:
            t.write_text(text)
    files = [index, html, *files, *(f for r in reports for f in r.files)]
    return Published(out, reports, skipped, index, out / f"{STABILITY_PAGE}.md", cases, files)
