"""Diagnose logs a training loop of one's own already wrote: a CSV or Parquet file of per-step values, or the
metrics of an MLflow run, read under ganbench's signal names (``ganbench diagnose FILE|RUN --map ...``).

A mapping names the log's column (or MLflow metric) for each signal, ``{"d_loss": "lossD", ...}``; signals it
leaves out are looked up under the usual names (the PyTorch DCGAN tutorial's ``errD``/``errG``/``D_x``/
``D_G_z1``/``D_G_z2``, ``loss_D``, ``d_loss``, ...; case-insensitive). A run that ganbench wrote (its
``records.parquet`` artifact, by ganbench's trainer or ``ganbench.Monitor``) is read as it is.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ganbench.core import track
from ganbench.core.errors import GanbenchError
from ganbench.diagnosis.detectors import diagnose
from ganbench.diagnosis.findings import Diagnosis
from ganbench.diagnosis.thresholds import THRESHOLDS, Thresholds
from ganbench.diagnosis.tracked import RECORDS_FILE, diagnose_run

# ganbench's signal -> the names loops usually log it under (matched case-insensitively, in this order)
USUAL_NAMES: dict[str, tuple[str, ...]] = {
    "step": ("step", "global_step", "iteration", "iter", "it", "batch", "batches_done"),
    "d_loss": ("d_loss", "loss_d", "lossd", "errd", "disc_loss", "discriminator_loss", "d_cost", "critic_loss"),
    "g_loss": ("g_loss", "loss_g", "lossg", "errg", "gen_loss", "generator_loss", "g_cost"),
    "d_real": ("d_real", "d_x", "dx", "d(x)"),
    "d_fake": ("d_fake", "d_g_z1", "d_g_z", "d(g(z))"),
    "d_fake_g": ("d_fake_g", "d_g_z2"),
    "d_acc_real": ("d_acc_real", "acc_real", "real_acc"),
    "d_acc_fake": ("d_acc_fake", "acc_fake", "fake_acc"),
    "d_grad_norm": ("d_grad_norm", "grad_norm_d", "d_gradnorm"),
    "g_grad_norm": ("g_grad_norm", "grad_norm_g", "g_gradnorm"),
    "critic_gap": ("critic_gap", "wasserstein_distance", "wasserstein", "w_dist", "w_distance", "em_distance"),
    "gp": ("gp", "gradient_penalty", "grad_penalty"),
}
REQUIRED = ("d_loss", "g_loss")
LOG_SUFFIXES = (".csv", ".parquet")


def parse_map(text: str | list[str] | None) -> dict[str, str]:
    """``"d_loss=lossD,g_loss=lossG"`` (or a list of ``signal=name``) -> {"d_loss": "lossD", ...}."""
    if not text:
        return {}
    items = [p for part in ([text] if isinstance(text, str) else text) for p in part.split(",") if p.strip()]
    out = {}
    for item in items:
        if "=" not in item:
            raise GanbenchError(f"--map {item!r}: write signal=column, e.g. d_loss=lossD,g_loss=lossG")
        ours, theirs = (s.strip() for s in item.split("=", 1))
        if ours not in USUAL_NAMES:
            raise GanbenchError(f"--map {item!r}: {ours!r} is not a signal ganbench reads; signals: "
                                f"{', '.join(USUAL_NAMES)}")
        out[ours] = theirs
    return out


def to_records(log: pd.DataFrame, mapping: dict[str, str], source: str) -> pd.DataFrame:
    """The log's columns under ganbench's signal names (``mapping`` first, then the usual names); a step
    column, else the row number from 1. Errors name what the log holds."""
    available = list(log.columns)
    by_lower = {str(c).lower(): c for c in available}
    missing = [theirs for theirs in mapping.values() if theirs not in log.columns]
    if missing:
        raise GanbenchError(f"{source}: no column {', '.join(map(repr, missing))} (from --map); it has: "
                            f"{', '.join(map(str, available))}")
    chosen = dict(mapping)
    for ours, names in USUAL_NAMES.items():
        if ours not in chosen:
            hit = next((by_lower[n] for n in names if n in by_lower), None)
            if hit is not None:
                chosen[ours] = hit
    absent = [s for s in REQUIRED if s not in chosen]
    if absent:
        raise GanbenchError(f"{source}: found no column for {', '.join(absent)}; it has: "
                            f"{', '.join(map(str, available))}. Name them with --map, e.g. "
                            f"--map d_loss=<column>,g_loss=<column>")
    records = pd.DataFrame({ours: pd.to_numeric(log[theirs], errors="coerce") for ours, theirs in chosen.items()})
    if "step" not in records:
        records.insert(0, "step", range(1, len(records) + 1))
    return records.dropna(subset=["step"]).astype({"step": int})


def read_log_file(path: Path) -> pd.DataFrame:
    if path.suffix.lower() not in LOG_SUFFIXES:
        raise GanbenchError(f"{path}: expected a .csv or .parquet file of per-step values")
    try:
        return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (ValueError, OSError) as err:
        raise GanbenchError(f"{path}: not readable as {path.suffix[1:]} ({err})") from err


def read_mlflow_metrics(run_id: str, mapping: dict[str, str], tracking_uri: str | None) -> pd.DataFrame:
    """An MLflow run's metric histories, one column per metric, one row per step."""
    tracker = track.Tracker(tracking_uri)
    names = list(tracker.get(run_id).data.metrics)
    wanted = set(mapping.values()) | {n for n in names if any(n.lower() in u for u in USUAL_NAMES.values())}
    frames = [tracker.metric_history(run_id, n).groupby("step")["value"].last().rename(n) for n in sorted(wanted)
              if n in names]
    if not frames:
        return pd.DataFrame(columns=names)
    log = pd.concat(frames, axis=1).sort_index()
    log.index.name = "step"
    return log.reset_index()


def diagnose_log(source: str | Path, mapping: dict[str, str] | None = None, tracking_uri: str | None = None,
                 thresholds: Thresholds = THRESHOLDS) -> Diagnosis:
    """The diagnosis of a per-step log (.csv / .parquet) or of an MLflow run (its ``records.parquet`` when
    ganbench wrote it, else its metric histories)."""
    mapping = mapping or {}
    path = Path(source)
    if path.suffix.lower() in LOG_SUFFIXES or path.is_file():
        if not path.is_file():
            raise GanbenchError(f"{path} does not exist")
        return diagnose(to_records(read_log_file(path), mapping, str(path)), None, thresholds)
    run_id = str(source)
    tracker = track.Tracker(tracking_uri)
    try:
        tracker.get(run_id)
    except Exception as err:
        raise GanbenchError(f"no run {run_id!r} in {tracker.uri} ({type(err).__name__}), and no .csv/.parquet file of "
                            "that name; see `ganbench show`, or pass the path of a log file") from err
    if not mapping and RECORDS_FILE in set(tracker.artifacts(run_id)):
        return diagnose_run(run_id, tracking_uri, thresholds)
    return diagnose(to_records(read_mlflow_metrics(run_id, mapping, tracking_uri), mapping, f"run {run_id}"), None,
                    thresholds)
