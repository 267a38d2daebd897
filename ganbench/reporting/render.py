"""``ganbench report``: boards -> ``reports/<protocol>/index.html`` (static: no script, no network; images
beside it in ``img/``, re-encoded small) and ``README.md`` (a Markdown table, the same images)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import torch
from PIL import Image
import pandas as pd

from ganbench.core.assets import atomic_path
from ganbench.core.errors import GanbenchError
from ganbench.core.version import __version__
from ganbench.metrics import parse_metric_name, quantity_direction
from ganbench.reporting import figures as F
from ganbench.reporting.checks import CHECK_HEAD, CheckRow, check_rows, is_check
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.training import build_models
from ganbench.reporting.stats import BOOTSTRAP_MIN_N
from ganbench.reporting.leaderboard import (CI_LEVEL, SHARED_BELOW, SIGNIFICANCE, Board, Comparison, build_boards, comparisons,
                                           headline_split, metric_kind, test_outcome)
from ganbench.reporting.stats import Summary
from ganbench.core.track import Tracker, sqlite_path
from ganbench.reporting.tables import model_devices, run_devices, write_tables


@dataclass(frozen=True)
class Section:
    board: Board
    comparisons: list[Comparison]
    figures: list[F.Figure] = field(default_factory=list)
    note: str = ""
    devices: dict[str, str] = field(default_factory=dict)  # model -> the device(s) its runs trained on
    checks: list[CheckRow] | None = None  # a check protocol's pass/fail rows (then the table ranks nothing)


@dataclass(frozen=True)
class Report:
    protocol: str
    html: Path
    markdown: Path
    sections: list[Section]
    files: list[Path] = field(default_factory=list)  # every file written (pages, data files, images)


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 1e5:
        return f"{x:.3g}"
    return f"{x:.{digits}g}"


def mean_std(s: Summary) -> str:
    if s.n == 0:
        return "n/a"
    return fmt(s.mean) + ("" if math.isnan(s.std) else f" ± {fmt(s.std, 3)}")


def ci(s: Summary) -> str:
    return "" if math.isnan(s.ci_low) else f"[{fmt(s.ci_low)}, {fmt(s.ci_high)}]"


def _metric_rows(board: Board, metrics: list[tuple[str, bool]], ranked: bool, lead: list[str],
                 tail) -> tuple[list[str], list[list[str]]]:
    arrow = {True: "↑", False: "↓"}
    head = ["#", "model"] + [f"{n} {arrow[h]}" for n, h in metrics] + lead
    rows = []
    for i, r in enumerate(sorted(board.rows, key=lambda r: r.model) if not ranked else board.rows, 1):
        cells = [str(i) if ranked else "–", r.model]
        for name, _ in metrics:
            s = r.metrics[name]
            cells.append(f"{mean_std(s)} {ci(s)}".strip())
        rows.append(cells + tail(r))
    if board.floor is not None:
        rows.append(["", floor_label(board)] + [fmt(board.floor.get(n)) for n, _ in metrics] + [""] * len(lead))
    return head, rows


def table_rows(board: Board, devices: dict[str, str] | None = None,
               ranked: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a leaderboard's first table (plain strings, shared by the Markdown and the HTML): the
    headline metrics (FID, KID, precision, recall, IS; :func:`headline_split`), seeds and healthy runs. ``ranked``
    False (a check protocol): models in name order, no rank."""
    headline, _ = headline_split(board.metrics)
    return _metric_rows(board, headline, ranked, ["seeds", "healthy runs"],
                        lambda r: [str(len(r.seeds)), f"{r.healthy}/{r.runs}"])


SECONDARY_COLUMNS = 4  # metrics per secondary table: each column holds "mean ± std [interval]", and a page is 1300 px


def secondary_tables(board: Board, ranked: bool = True) -> list[tuple[list[str], list[list[str]]]]:
    """The ranked metrics that are not headline metrics, in tables of their own, at most ``SECONDARY_COLUMNS``
    metrics each (none when there are none)."""
    _, secondary = headline_split(board.metrics)
    return [_metric_rows(board, secondary[i:i + SECONDARY_COLUMNS], ranked, [], lambda r: [])
            for i in range(0, len(secondary), SECONDARY_COLUMNS)]


def model_costs(protocol: str, model: str) -> tuple[int, int, int, int] | None:
    """(batch size, D steps per G step, parameters of G, parameters of D) of a protocol and zoo card known here
    (built on the CPU, nothing trained or read); None when either is not."""
    try:
        (spec,) = resolve(load_protocol(protocol), "0" * 64, [model], [0])  # a stand-in hash: no weight file read
        G, D = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    except GanbenchError:
        return None
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    return spec.protocol.train.batch_size, spec.model.n_critic, count(G), count(D)


def g_steps(costs: tuple[int, int, int, int] | None, images: float) -> float | None:
    """G steps of a run from the images it saw (each G step follows D's steps on one batch each)."""
    return None if costs is None or math.isnan(images) else images / (costs[0] * costs[1])


def _share(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{share:.0%}" + (" (shared)" if share < SHARED_BELOW else "")


def budget_rows(board: Board, devices: dict[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
    """What each model's numbers cost and where they come from, so that budgets are compared as such: seeds,
    healthy runs, G and D steps (from the images seen, the batch size and D's steps per G step), parameters of G
    and D, training wall time and the share of its cores the run had (CPU time / (wall time x threads); "shared"
    below SHARED_BELOW: the wall time then measures the machine's load too), images seen, device, the checkpoint
    measured (the final one) and the training identity hash (protocol and card)."""
    head = ["model", "seeds", "healthy runs", "G steps", "D steps", "G / D parameters", "wall time (s)", "CPU share",
            "images seen", "device", "checkpoint", "identity"]
    rows = []
    for r in sorted(board.rows, key=lambda r: r.model):
        costs = model_costs(board.protocol, r.model)
        images = r.compute["images_seen"].mean
        steps = g_steps(costs, images)
        rows.append([r.model, str(len(r.seeds)), f"{r.healthy}/{r.runs}",
                     fmt(steps, 6) if steps is not None else "n/a",
                     fmt(steps * costs[1], 6) if steps is not None else "n/a",
                     f"{costs[2] / 1e6:.2f}M / {costs[3] / 1e6:.2f}M" if costs else "n/a",
                     mean_std(r.compute["wall_time_s"]), _share(r.compute["cpu_share"].mean), fmt(images, 6),
                     (devices or {}).get(r.model, "n/a"), "final",
                     f"`{r.identity[:IDENTITY_CHARS]}`"])
    return head, rows


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]


def other_rows(board: Board) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the targets and tests beside a leaderboard (never ranked): per metric how it is read,
    each model's mean ± std with its test outcome, and the floor."""
    head = ["metric", "read as"] + [r.model for r in board.rows] + ["floor"]
    rows = []
    for name in board.others:
        floor = (board.floor or {}).get(name)
        cells = [name, metric_kind(name).reading]
        for r in board.rows:
            outcome = test_outcome(name, r.values[name], floor) or _against_trivial(name, r)
            cells.append(mean_std(r.metrics[name]) + (f"; {outcome}" if outcome else ""))
        rows.append(cells + [fmt(floor)])
    return head, rows


def _against_trivial(name: str, r) -> str:
    """For a trivial answer's score: how the model's own score of that quantity compares with it, in words."""
    kind, parsed = metric_kind(name), parse_metric_name(name)
    if not kind.answer_to or parsed is None:
        return ""
    own = name.replace(parsed.quantity, kind.answer_to, 1)
    if own not in r.metrics or not r.metrics[own].n or not r.metrics[name].n:
        return ""
    mine, trivial, higher = r.metrics[own].mean, r.metrics[name].mean, quantity_direction(own)
    worse = mine < trivial if higher else mine > trivial
    return f"the model's {own} ({fmt(mine)}) is {'WORSE than' if worse else 'better than'} this answer"


CHECK_NOTE = ("This protocol is a check, not a leaderboard: at its budget the numbers below rank nothing. Each model "
              "passes when every run did what its card expects (an induced failure: its diagnosis names the failure; "
              "any other model: it trained and finished healthy).")
IDENTITY_CHARS = 12  # hash prefix shown in tables (the full hash is in leaderboard.json)
FLOOR = "real vs real (floor)"
# An image-to-image board's floors are what a model gets for free, not real-vs-real values (metrics.translation)
TRANSLATION_FLOOR = ("floor: identity mapping (l1, psnr, ssim), true targets (class kept), training targets "
                     "(fid, kid), 0 (cycle)")


def floor_label(board: Board) -> str:
    names = [parse_metric_name(n) for n, _ in board.metrics]
    return TRANSLATION_FLOOR if any(m is not None and m.quantity in ("l1", "psnr", "ssim") for m in names) else FLOOR


def markdown_table(board: Board, devices: dict[str, str] | None = None, ranked: bool = True) -> str:
    head, rows = table_rows(board, devices, ranked)
    return "\n".join(_md_table(head, rows))


def comparison_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    head = ["metric", c.a.model, c.b.model, f"Δ ({c.b.model} − {c.a.model})", "Hedges' g", "Welch p", "p (Holm)",
            "better"]
    rows = []
    for d in c.deltas:
        better = {"a": c.a.model, "b": c.b.model}.get(d.better, f"no significant difference (Holm p ≥ {SIGNIFICANCE})"
                                                     if not math.isnan(d.test.p_value) else "not testable")
        rows.append([d.name, mean_std(d.a), mean_std(d.b), fmt(d.test.delta), fmt(d.effect, 2), fmt(d.test.p_value, 3),
                     fmt(d.p_holm, 3), better])
    rows.append(["healthy runs", f"{c.a.healthy}/{c.a.runs}", f"{c.b.healthy}/{c.b.runs}", "", "", "", "", ""])
    return head, rows


def markdown(protocol: str, sections: list[Section], out: Path) -> str:
    parts = [f"# Leaderboard: {protocol}", "", generated_line(), "",
             f"Mean ± standard deviation over seeds, [{CI_LEVEL:.0%} confidence interval of the mean: Student's t below "
             f"{BOOTSTRAP_MIN_N} seeds, percentile bootstrap from {BOOTSTRAP_MIN_N} on]; comparisons: Welch's t-test with "
             "Holm's correction over the metrics of the comparison, Hedges' g; "
             "healthy runs = runs that finished with no failure-level diagnosis (stability in Lucic et al.'s sense, the "
             "spread over seeds, is on the stability page). Runs with different protocol hashes are "
             "never mixed in one table.", ""]
    for sec in sections:
        b = sec.board
        parts += [f"## Protocol hash `{b.protocol_hash[:12]}`", "", f"Evaluation identity `{b.eval_hash[:12] or 'n/a'}` "
                  "(metrics, sample count, reference split and every weight file the evaluation reads).", ""]
        if sec.note:
            parts += [sec.note, ""]
        if sec.checks is not None:
            parts += [CHECK_NOTE, "", "| " + " | ".join(CHECK_HEAD) + " |", "|" + "---|" * len(CHECK_HEAD)]
            parts += ["| " + " | ".join(c.replace("|", "\\|") for c in row.cells) + " |" for row in sec.checks] + [""]
        parts += [markdown_table(b, sec.devices, sec.checks is None), ""]
        for k, (head, rows) in enumerate(secondary_tables(b, sec.checks is None)):
            parts += ["Other ranked metrics:" if k == 0 else "", "", *_md_table(head, rows), ""]
        if b.others:
            parts += ["Targets and tests (not ranked):", "", *_md_table(*other_rows(b)), ""]
        parts += ["Budget and identity:", "", *_md_table(*budget_rows(b, sec.devices)), ""]
        for c in sec.comparisons:
            head, rows = comparison_rows(c)
            parts += [f"### {c.a.model} vs {c.b.model}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            parts += ["| " + " | ".join(row) + " |" for row in rows]
            parts += ["", c.verdict, ""]
        for f in sec.figures:
            parts += [f"![{f.title}]({f.path.relative_to(out).as_posix()})", ""]
    return "\n".join(parts)


def image_src(path: Path, page_dir: Path) -> str:
    """An image's address in a page: its path relative to the page's folder (the images sit beside the pages
    in ``img/``, so a folder of reports moves and is committed as a whole, each image stored once)."""
    return Path(os.path.relpath(path, page_dir)).as_posix()


# Report images are re-encoded small: plots as 256-colour palettes, grey grids as 8-bit grey, both lossless
# for what they hold (a matplotlib figure has few colours; a grid's channels are equal), typically 3-5x smaller.
PALETTE_COLOURS = 256


def shrink_png(path: Path) -> None:
    """Re-encode ``path`` in place as the smallest exact-enough PNG: grey when its channels are equal, else a
    256-colour adaptive palette; optimised."""
    with Image.open(path) as im:
        im.load()
    rgb = im.convert("RGB")
    r, g, b = rgb.split()
    if r.tobytes() == g.tobytes() == b.tobytes():
        small = r
    else:
        small = rgb.quantize(PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
    with atomic_path(path) as tmp:
        small.save(tmp, format="PNG", optimize=True)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328;
     padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #d0d7de}
h3{font-size:1.05rem;margin-top:1.6rem} .muted{color:#59636e;font-size:.9rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.92rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:right} th{background:#f6f8fa}
td:nth-child(2),th:nth-child(2),td:first-child{text-align:left} tr.floor td{color:#59636e;font-style:italic}
.verdict{background:#f6f8fa;border-left:4px solid #0969da;padding:.6rem .9rem}
figure{display:inline-block;margin:.6rem 1rem .6rem 0;vertical-align:top;max-width:520px}
figure img{max-width:100%;border:1px solid #d0d7de} img.grid{width:300px;image-rendering:pixelated} figcaption{font-size:.85rem;color:#59636e}
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ganbench leaderboard: {{ protocol }}</title><style>{{ css }}</style></head>
<body>
<h1>Leaderboard: {{ protocol }}</h1>
<p class="muted">{{ generated }} From {{ uri }}. Mean ± standard deviation over seeds,
[{{ ci_level }} confidence interval of the mean: Student's t below {{ boot_n }} seeds, percentile bootstrap from
{{ boot_n }} on]; comparisons: Welch's t-test with Holm's correction over the metrics of the comparison, Hedges' g; ↑ higher is better, ↓ lower is better. Stability = runs that
finished with no failure-level diagnosis. Runs with different protocol hashes are never mixed in one table.</p>
{% for sec in sections %}
<section id="hash-{{ sec.board.protocol_hash[:12] }}">
<h2>Protocol hash <code>{{ sec.board.protocol_hash[:12] }}</code></h2>
<p class="muted">Evaluation identity <code>{{ sec.board.eval_hash[:12] or 'n/a' }}</code> (metrics, sample count, reference
split and every weight file the evaluation reads).</p>
{% if sec.note %}<p class="muted">{{ sec.note }}</p>{% endif %}
{% if sec.checks %}<p class="verdict">{{ check_note }}</p>
<table class="checks"><thead><tr>{% for h in check_head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in sec.checks %}<tr>{% for x in row %}<td>{{ x }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>{% endif %}
<table class="leaderboard"><thead><tr>{% for h in sec.head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in sec.rows %}<tr{% if row[1].startswith('real vs real') or row[1].startswith('floor:') %} class="floor"{% endif %}>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% if sec.secondary %}<p class="muted">Other ranked metrics:</p>{% endif %}
{% for t in sec.secondary %}<table class="secondary"><thead><tr>{% for h in t.head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in t.rows %}<tr{% if row[1].startswith('real vs real') or row[1].startswith('floor:') %} class="floor"{% endif %}>{% for x in row %}<td>{{ x }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
{% endfor %}
{% if sec.others %}<p class="muted">Targets and tests (not ranked):</p>
<table class="tests"><thead><tr>{% for h in sec.others_head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in sec.others %}<tr>{% for x in row %}<td>{{ x }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>{% endif %}
<p class="muted">Budget and identity:</p>
<table class="budget"><thead><tr>{% for h in sec.budget_head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in sec.budget %}<tr>{% for x in row %}<td>{{ x }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
{% for c in sec.comparisons %}
<h3>{{ c.title }}</h3>
<table class="comparison"><thead><tr>{% for h in c.head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in c.rows %}<tr>{% for x in row %}<td>{{ x }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
<p class="verdict">{{ c.verdict }}</p>
<p class="muted">Test: Welch's unequal-variance t-test on per-seed values (two-sided, level {{ significance }} after Holm's
correction over the metrics of this comparison; Hedges' g as the effect size); seeds are
independent replicates whose spread differs between models, and rank or permutation tests cannot reach p &lt; 0.05 with 3
seeds a side.</p>
{% endfor %}
{% for f in sec.figures %}<figure><img class="{{ f.kind }}" src="{{ f.src }}" alt="{{ f.title }}"><figcaption><b>{{ f.title }}</b>{% if f.caption %}
<br>{{ f.caption }}{% endif %}</figcaption></figure>
{% endfor %}
</section>
{% endfor %}
</body></html>
"""


def html(protocol: str, sections: list[Section], uri: str, out: Path) -> str:
    view = []
    for sec in sections:
        head, rows = table_rows(sec.board, sec.devices, sec.checks is None)
        budget_head, budget = budget_rows(sec.board, sec.devices)
        for row in budget:
            row[-1] = row[-1].strip("`")
        secondary = [{"head": h, "rows": r} for h, r in secondary_tables(sec.board, sec.checks is None)]
        comps = []
        for c in sec.comparisons:
            ch, cr = comparison_rows(c)
            comps.append({"title": f"{c.a.model} vs {c.b.model}", "head": ch, "rows": cr, "verdict": c.verdict})
        others_head, others = other_rows(sec.board)
        view.append({"board": sec.board, "note": sec.note, "head": head, "rows": rows, "comparisons": comps,
                     "others_head": others_head, "others": others, "budget_head": budget_head, "budget": budget,
                     "secondary": secondary,
                     "checks": [r.cells for r in sec.checks] if sec.checks is not None else None,
                     "figures": [{"title": f.title, "caption": f.caption, "kind": f.kind, "src": image_src(f.path, out)}
                                 for f in sec.figures]})
    env = jinja2.Environment(autoescape=True)
    return env.from_string(TEMPLATE).render(
        protocol=protocol, sections=view, css=CSS, uri=store_label(uri), ci_level=f"{CI_LEVEL:.0%}", boot_n=BOOTSTRAP_MIN_N,
        check_note=CHECK_NOTE, check_head=CHECK_HEAD,
        significance=SIGNIFICANCE, generated=generated_line())


def generated_line() -> str:
    """The one line of a page that changes when nothing else did (the day, not the minute: re-rendering an
    unchanged store on the same day changes no byte)."""
    return f"Generated {datetime.now(timezone.utc):%Y-%m-%d} by ganbench {__version__}."


def store_label(uri: str) -> str:
    """The tracking store a page was rendered from, without the directories of the machine that rendered it."""
    db = sqlite_path(uri)
    return f"the MLflow SQLite store {db.name}" if db is not None else uri.split("?")[0]


def section_figures(board: Board, tracker: Tracker, img: Path, tmp: Path) -> list[F.Figure]:
    artifacts = {r: tracker.artifacts(r) for r in board.runs["run_id"]}
    figs = [f for f in [F.metric_per_seed(board, tracker, img)] if f]
    figs += F.curve_figures(board, tracker, img)
    for row in board.rows:
        figs += [f for f in [F.loss_curves(board, row, tracker, img, tmp, artifacts)] if f]
    for row in board.rows:
        figs += F.final_grids(board, row, tracker, img, tmp, artifacts)
    for row in board.rows:
        figs += F.extra_figures(board, row, tracker, img, tmp, artifacts)
    return figs


def protocol_name(protocol: str) -> str:
    """A protocol's name from its name or its protocol file."""
    return Path(protocol).stem if protocol.endswith(".toml") else protocol


def write_report(protocol: str, out_root: Path | str = "reports", tracking_uri: str | None = None,
                 runs: pd.DataFrame | None = None) -> Report:
    """Render the leaderboard of one protocol (a name, or a protocol file for its name) from the tracked runs:
    ``README.md``, ``index.html``, ``leaderboard.csv``/``.json`` and ``img/``.

    Every protocol hash with runs gets its own table (newest first); the newest one also gets figures.
    ``runs`` is the store's ``Tracker.search()`` when the caller already has it (one search for many reports)."""
    name = protocol_name(protocol)
    check = is_check(protocol)
    tracker = Tracker(tracking_uri)
    boards = build_boards(tracker.search() if runs is None else runs, name)
    if not boards:
        raise GanbenchError(f"no tracked runs of protocol {name!r} in {tracker.uri}; run `ganbench run --protocol {protocol}` first")
    out = Path(out_root) / name
    img = out / "img"
    if img.is_dir():
        shutil.rmtree(img)
    img.mkdir(parents=True)
    devices = run_devices(tracker, [r for b in boards for r in b.runs["run_id"]])
    sections = []
    with tempfile.TemporaryDirectory(prefix="ganbench-report-") as tmp:
        for i, board in enumerate(boards):
            note = "" if i == 0 else ("An earlier version of this protocol or of a model card (another identity): "
                                      "not comparable with the tables above.")
            figs = section_figures(board, tracker, img, Path(tmp)) if i == 0 else []
            checks = check_rows(board, tracker, Path(tmp)) if check else None
            sections.append(Section(board, [] if check else comparisons(board), figs, note,
                                    model_devices(board, devices), checks))
    md_path, html_path = out / "README.md", out / "index.html"
    for png in img.glob("*.png"):
        shrink_png(png)
    for path, text in ((md_path, markdown(name, sections, out)), (html_path, html(name, sections, tracker.uri, out))):
        with atomic_path(path) as t:
            t.write_text(text)
    files = [md_path, html_path, *write_tables(name, boards, devices, out), *sorted(img.iterdir())]
    for path in files:
        path.chmod(0o644)  # a report is for reading by others (temporary files start private)
    return Report(name, html_path, md_path, sections, files)
