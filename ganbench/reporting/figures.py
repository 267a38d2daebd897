"""Figures of a leaderboard (seaborn, PNG): the headline metric per seed, loss curves with diagnosis
spans, and the artifacts runs already carry (final sample grids, mode-coverage and memorisation plots)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
import seaborn as sns
from cycler import cycler
from matplotlib.figure import Figure as PlotFigure

from ganbench.core.assets import atomic_path
from ganbench.reporting.leaderboard import FLOOR_SUFFIX, STD_SUFFIX, Board, ModelRow, metric_direction
from ganbench.core.track import Tracker

SEVERITY_COLORS = {"failure": "tab:red", "warning": "tab:orange"}  # info-level findings are not shaded
OWN_ARTIFACTS = ("loss_curves.png",)  # run artifacts redrawn here rather than copied


@dataclass(frozen=True)
class Figure:
    title: str
    path: Path
    caption: str = ""
    kind: str = "plot"  # plot | grid (sample grids are drawn larger, pixels kept sharp)


# seaborn's whitegrid style at notebook scale with its "deep" palette (sns.set_theme's defaults), applied
# per figure through rc_context rather than set globally: writing a report leaves the caller's matplotlib
# settings (a notebook's backend and style) as they were
THEME = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook"),
         "axes.prop_cycle": cycler(color=sns.color_palette("deep"))}


def _axes(figsize: tuple[float, float]):
    """A figure of its own (no pyplot state, no backend to select) and its axes."""
    fig = PlotFigure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    return path


def metric_per_seed(board: Board, tracker: Tracker, out: Path) -> Figure | None:
    """The first headline metric over training per seed (lines), or its final value per seed when runs
    logged it once (points with the mean and its 95% bootstrap interval)."""
    if not board.metrics:
        return None
    name, higher = board.metrics[0]
    frames = []
    for row in board.rows:
        for seed, run_id in zip(row.seeds, row.run_ids):
            h = tracker.metric_history(run_id, name)
            frames.append(h.assign(model=row.model, seed=seed))
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    with matplotlib.rc_context(THEME):
        path, title = _draw_per_seed(df, board, name, higher, out)
    return Figure(title, path)


def _draw_per_seed(df: pd.DataFrame, board: Board, name: str, higher: bool, out: Path) -> tuple[Path, str]:
    fig, ax = _axes((7, 4))
    direction = "higher is better" if higher else "lower is better"
    if df.groupby(["model", "seed"]).size().max() > 1:
        sns.lineplot(df, x="step", y="value", hue="model", units="seed", estimator=None, marker="o", ax=ax)
        ax.set_xlabel("epoch")
        title = f"{name} over training, one line per seed ({direction})"
    else:
        order = [r.model for r in board.rows]
        # a seeded bootstrap and no jitter (stripplot draws it from numpy's global generator): re-rendering the
        # same runs gives the same image, so a republished report has no spurious diff
        sns.pointplot(df, x="model", y="value", order=order, errorbar=("ci", 95), seed=0, color="black",
                      linestyle="none", capsize=0.15, ax=ax)
        sns.stripplot(df, x="model", y="value", order=order, hue="model", size=8, jitter=False, alpha=0.7, legend=False, ax=ax)
        ax.set_xlabel("")
        title = f"final {name} per seed, mean and 95% interval ({direction})"
    ax.set_ylabel(name)
    ax.set_title(title)
    return _save(fig, out / f"{name}_per_seed.png"), title


def findings_spans(tracker: Tracker, run_id: str, artifacts: list[str], tmp: Path) -> list[dict]:
    """Step spans of a run's diagnosis findings ({name, severity, start, end}) from its findings JSON, if any."""
    spans = []
    for art in artifacts:
        if not (art.endswith(".json") and ("finding" in art or "diagnos" in art)):
            continue
        try:
            data = json.loads(tracker.download(run_id, art, tmp).read_text())
        except (OSError, ValueError):
            continue
        items = data.get("findings", []) if isinstance(data, dict) else data
        for f in items if isinstance(items, list) else []:
            if not isinstance(f, dict):
                continue
            start, end = _step_range(f)
            if start is not None:
                spans.append({"name": str(f.get("name", "finding")), "severity": str(f.get("severity", "")),
                              "start": start, "end": end if end is not None else start})
    return spans


def _step_range(f: dict) -> tuple[float | None, float | None]:
    for lo, hi in (("start_step", "end_step"), ("first_step", "last_step"), ("step_start", "step_end"), ("start", "end")):
        if f.get(lo) is not None:
            return float(f[lo]), (float(f[hi]) if f.get(hi) is not None else None)
    for key in ("steps", "step_range"):
        v = f.get(key)
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
            return float(v[0]), float(v[1])
    return None, None


def loss_curves(board: Board, row: ModelRow, tracker: Tracker, out: Path, tmp: Path,
                artifacts: dict[str, list[str]]) -> Figure | None:
    """D and G loss per generator step, one line per seed (moving average), diagnosis spans shaded."""
    run_ids = board.runs[board.runs["model"] == row.model][["run_id", "seed"]].values.tolist()
    frames, spans = [], []
    for run_id, seed in run_ids:
        if "records.parquet" not in artifacts[run_id]:
            continue
        rec = pd.read_parquet(tracker.download(run_id, "records.parquet", tmp / run_id))
        window = max(1, len(rec) // 50)
        for col in ("d_loss", "g_loss"):
            if col in rec:
                frames.append(pd.DataFrame({"step": rec["step"], "loss": rec[col].rolling(window, min_periods=1).mean(),
                                            "series": col, "seed": int(seed)}))
        spans += [dict(s, seed=int(seed)) for s in findings_spans(tracker, run_id, artifacts[run_id], tmp / run_id)]
    if not frames:
        return None
    shaded = [s for s in spans if s["severity"] in SEVERITY_COLORS]
    with matplotlib.rc_context(THEME):
        fig, ax = _axes((7, 3.6))
        df = pd.concat(frames, ignore_index=True)
        sns.lineplot(df, x="step", y="loss", hue="series", units="seed", estimator=None, alpha=0.8, linewidth=1, ax=ax)
        for s in shaded:
            ax.axvspan(s["start"], max(s["end"], s["start"] + 1), color=SEVERITY_COLORS[s["severity"]], alpha=0.15,
                       linewidth=0)
        ax.set_xlabel("generator step")
        ax.set_title(f"{row.model}: D and G loss per seed (moving average)")
        path = _save(fig, out / f"loss_{row.model}.png")
    caption = "; ".join(f"seed {s['seed']}: {s['severity']} {s['name']} at steps {s['start']:.0f}-{s['end']:.0f}"
                        for s in shaded) or "no warning- or failure-level diagnosis spans"
    return Figure(f"{row.model}: loss curves", path, caption)


def best_and_worst(board: Board, row: ModelRow) -> list[tuple[str, int, str]]:
    """(label, seed, run_id) of the best and the worst finished seed by the first headline metric."""
    done = board.runs[(board.runs["model"] == row.model) & (board.runs["status"] == "finished")]
    if not len(done):
        return []
    col = f"metrics.{board.metrics[0][0]}" if board.metrics else None
    if col is None or col not in done or done[col].isna().all():
        first = done.sort_values("seed").iloc[0]
        return [("seed", int(first["seed"]), first["run_id"])]
    name, higher = board.metrics[0]
    ranked = done[done[col].notna()].sort_values(col, ascending=not higher)
    picks = [("best", ranked.iloc[0])] + ([("worst", ranked.iloc[-1])] if len(ranked) > 1 else [])
    return [(f"{label} seed ({name} {r[col]:.4g})", int(r["seed"]), r["run_id"]) for label, r in picks]


def final_grids(board: Board, row: ModelRow, tracker: Tracker, out: Path, tmp: Path,
                artifacts: dict[str, list[str]]) -> list[Figure]:
    figs = []
    for label, seed, run_id in best_and_worst(board, row):
        grids = sorted(a for a in artifacts[run_id] if a.startswith("grids/") and a.endswith(".png"))
        if grids:
            dest = out / f"grid_{row.model}_seed{seed}.png"
            shutil.copyfile(tracker.download(run_id, grids[-1], tmp / run_id), dest)
            figs.append(Figure(f"{row.model}, {label}", dest, f"final samples, seed {seed} ({grids[-1]})", "grid"))
    return figs


def extra_figures(board: Board, row: ModelRow, tracker: Tracker, out: Path, tmp: Path,
                  artifacts: dict[str, list[str]]) -> list[Figure]:
    """Other PNGs the best seed's run carries (mode-coverage histograms, memorisation pairs, ...)."""
    picks = best_and_worst(board, row)[:1]
    figs = []
    for _, seed, run_id in picks:
        chosen: dict[str, str] = {}  # per-epoch series (``<dir>/epoch_NNN.png``): only the last epoch
        for art in sorted(artifacts[run_id]):
            if art.endswith(".png") and not art.startswith(("grids/", "checkpoints/")) and art not in OWN_ARTIFACTS:
                chosen[str(Path(art).parent) if Path(art).name.startswith("epoch_") else art] = art
        for art in chosen.values():
            dest = out / f"extra_{row.model}_seed{seed}_{art.replace('/', '_')}"
            shutil.copyfile(tracker.download(run_id, art, tmp / run_id), dest)
            figs.append(Figure(f"{row.model}, seed {seed}: {Path(art).stem.replace('_', ' ')}", dest, art))
    return figs


# --------------------------------------------------------------------------- per-epoch curves

CURVE_FIRST_STEP = 1  # eval.curve logs epoch k at MLflow step k; the final evaluation logs its metrics at step 0
LOSS_SERIES = ("d_loss", "g_loss")  # the trainer's per-epoch mean losses (MLflow step = epoch)


def curve_history(board: Board, tracker: Tracker, models: list[str] | None = None,
                  names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Per-epoch values (MLflow steps >= 1) of the finished runs of a board: columns ``model``, ``seed``,
    ``run_id``, ``metric``, ``step``, ``value``. ``names`` picks the series; by default every quality metric a
    run logged per epoch (the ``eval.curve`` metrics)."""
    frames = []
    for row in board.rows:
        if models is not None and row.model not in models:
            continue
        for seed, run_id in zip(row.seeds, row.run_ids):
            run = tracker.get(run_id)
            keys = names if names is not None else sorted(
                k for k in run.data.metrics if not k.endswith((STD_SUFFIX, FLOOR_SUFFIX))
                and metric_direction(k, run.data.tags) is not None)
            for key in keys:
                h = tracker.metric_history(run_id, key)
                h = h[h["step"] >= CURVE_FIRST_STEP]
                if len(h):
                    frames.append(h.assign(model=row.model, seed=int(seed), run_id=run_id, metric=key))
    cols = ["model", "seed", "run_id", "metric", "step", "value"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols].sort_values(["metric", "model", "seed", "step"], ignore_index=True)


def draw_curves(history: pd.DataFrame, metric: str, title: str, path: Path) -> Path:
    """One line per (model, seed) of one series over epochs: colour = model, line style = seed."""
    df = history[history["metric"] == metric].assign(seed=lambda d: "seed " + d["seed"].astype(str))
    with matplotlib.rc_context(THEME):
        fig, ax = _axes((6.4, 3.4))
        sns.lineplot(df, x="step", y="value", hue="model", style="seed", estimator=None, units="run_id",
                     marker="o", markersize=3, linewidth=1.2, ax=ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, ncols=2)
        return _save(fig, path)


def curve_figures(board: Board, tracker: Tracker, out: Path, history: pd.DataFrame | None = None) -> list[Figure]:
    """A figure per per-epoch curve metric of a board's runs (none when no run logged a curve)."""
    history = curve_history(board, tracker) if history is None else history
    figs = []
    for metric in sorted(history["metric"].unique()):
        higher = metric_direction(metric, {})
        direction = {True: "higher is better", False: "lower is better"}.get(higher, "")
        title = f"{metric} after every epoch, one line per seed ({direction})"
        figs.append(Figure(title, draw_curves(history, metric, title, out / f"curve_{metric}.png"),
                           "the per-epoch curve (eval.curve): the first samples of the fixed z after each epoch"))
    return figs
