"""Model cards filled from measured runs: ``ganbench card MODEL... --protocol P``.

A zoo card's ``[results]`` table holds only numbers ganbench measured. For one protocol, the finished
MLflow runs of a model under the newest protocol hash that has any become a sub-table
``[results.<protocol>]``: the hash, seeds, run count, device, date of the newest run, and every headline
metric (the leaderboard's quality metrics plus final losses and wall time) as ``[mean, std]`` over seeds
(sample std, ddof = 1, as the leaderboard's ``summarise``; nan for a single seed).

tomllib only reads, so the sub-table is emitted as text and spliced into the file: the rest of the
file stays byte-for-byte (comments, hyper-parameters, other protocols' results). The new text is
re-parsed and must differ from the old only in that sub-table before it is written (atomically).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganbench.core.assets import atomic_write_bytes
from ganbench.core.errors import GanbenchError
from ganbench.core.track import Tracker, experiment_name
from ganbench.reporting.leaderboard import headline_metrics, migrate_legacy_names
from ganbench.spec.protocol import ModelSpec, find_spec_file, from_mapping

EXTRA_METRICS = ("final_d_loss", "final_g_loss", "wall_time_s")  # logged by every training run, not quality metrics
SIGNIFICANT_DIGITS = 6  # the card is for reading; MLflow keeps the full values


@dataclass(frozen=True)
class CardUpdate:
    model: str
    path: Path
    protocol: str
    table: dict[str, Any]  # what [results.<protocol>] now holds


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(x) else x


def measured_runs(runs: pd.DataFrame, model: str, protocol: str) -> pd.DataFrame:
    """``Tracker.search`` rows of ``model``'s finished runs of ``protocol`` under the newest hash that has
    any, one per seed (a re-run seed counts once: its newest run), ordered by seed."""
    done = runs[(runs["protocol"] == protocol) & (runs["model"] == model) & (runs["status"] == "finished")
                & runs["protocol_hash"].notna() & runs["seed"].notna()] if len(runs) else runs
    if not len(done):
        raise GanbenchError(f"model {model!r} has no finished runs of protocol {protocol!r}; "
                            f"run `ganbench run --protocol {protocol} --models {model}` first")
    newest = done.groupby("protocol_hash")["start_time"].max().idxmax()
    group = done[done["protocol_hash"] == newest].sort_values("start_time")
    return group.drop_duplicates("seed", keep="last").sort_values("seed")


def metric_summaries(group: pd.DataFrame) -> dict[str, list[float]]:
    """``name -> [mean, std]`` (ddof = 1; nan for one seed) of every headline metric and EXTRA_METRICS."""
    names = [n for n, _ in headline_metrics(group)] + [n for n in EXTRA_METRICS if f"metrics.{n}" in group]
    out = {}
    for name in names:
        x = group[f"metrics.{name}"].dropna().to_numpy(dtype=np.float64)
        if len(x):
            out[name] = [_round(float(x.mean())), _round(float(x.std(ddof=1))) if len(x) > 1 else math.nan]
    return out


def _device(tracker, run_ids: list[str]) -> str:
    """The device the runs trained on, from their MLflow params ``device`` / ``device_name``."""
    found = []
    for run_id in run_ids:
        p = tracker.get(run_id).data.params
        dev, name = p.get("device", "unknown"), p.get("device_name", "")
        text = f"{dev} ({name})" if name and name != dev else dev
        if text not in found:
            found.append(text)
    return ", ".join(found)


# --------------------------------------------------------------------------- TOML text


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def results_block(protocol: str, table: dict[str, Any]) -> str:
    lines = [f"[results.{_key(protocol)}]",
             "# written by `ganbench card` from MLflow runs; re-run it rather than editing by hand"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def splice(text: str, protocol: str, block: str) -> str:
    """``text`` with its ``[results.<protocol>]`` sub-table replaced by ``block`` (appended when absent).
    Blank and comment lines just before the next table header stay with that table."""
    keys = "|".join(re.escape(k) for k in {protocol, json.dumps(protocol)})
    header = re.compile(rf"^[ \t]*\[[ \t]*results[ \t]*\.[ \t]*(?:{keys})[ \t]*\][ \t]*(#.*)?$", re.M)
    m = header.search(text)
    if m is None:
        body = text if not text or text.endswith("\n") else text + "\n"
        return body + "\n" + block
    lines = text[m.start():].splitlines(keepends=True)
    end = next((i for i in range(1, len(lines)) if re.match(r"^[ \t]*\[", lines[i])), len(lines))
    while end > 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return text[:m.start()] + block + "".join(lines[end:])


def _same(a: Any, b: Any) -> bool:
    """Equality of parsed TOML in which nan equals nan (single-seed stds are nan)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def write_card(path: Path, protocol: str, table: dict[str, Any]) -> None:
    """Replace ``[results.<protocol>]`` of the card at ``path``; untouched unless the result re-parses
    to the old card with exactly this sub-table changed, and still loads as a model card."""
    old_text = path.read_text(encoding="utf-8")
    new_text = splice(old_text, protocol, results_block(protocol, table))
    try:
        old, new = tomllib.loads(old_text), tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as err:
        raise GanbenchError(f"{path}: writing [results.{protocol}] would not give valid TOML ({err}); "
                            "the file was left untouched") from err
    got = new.get("results", {}).pop(protocol, None)
    old.get("results", {}).pop(protocol, None)
    if not (_same(got, table) and _same(old, new)):
        raise GanbenchError(f"{path}: splicing [results.{protocol}] would change more than that table "
                            "(is [results] an inline table?); the file was left untouched")
    from_mapping(ModelSpec, {"name": path.stem, **tomllib.loads(new_text)}, str(path))
    atomic_write_bytes(path, new_text.encode("utf-8"))


def update_cards(models: list[str], protocol: str, tracking_uri: str | None = None,
                 zoo_dir: str | Path | None = None) -> list[CardUpdate]:
    """Write each model's ``[results.<protocol>]`` from its finished MLflow runs of ``protocol``.

    Cards are ``<zoo_dir>/<model>.toml``, or found like ``load_model`` does (``GANBENCH_ZOO_PATH``, shipped zoo)."""
    name = Path(protocol).stem if protocol.endswith(".toml") else protocol
    tracker = Tracker(tracking_uri)
    runs = migrate_legacy_names(tracker.search(experiments=[experiment_name(name)]))
    paths = {}
    for model in models:  # every card found before any is written
        paths[model] = Path(zoo_dir) / f"{model}.toml" if zoo_dir else find_spec_file("zoo", model)
        if not paths[model].is_file():
            raise GanbenchError(f"no model card {paths[model]}")
    groups = {m: measured_runs(runs, m, name) for m in models}  # refuse before writing anything
    out = []
    for model, group in groups.items():
        newest = dt.datetime.fromtimestamp(group["start_time"].max() / 1000, dt.timezone.utc)
        table = {"protocol_hash": str(group["protocol_hash"].iloc[0])[:12], "date": newest.strftime("%Y-%m-%d"),
                 "device": _device(tracker, group["run_id"].tolist()), "seeds": [int(s) for s in group["seed"]],
                 "n_runs": len(group), **metric_summaries(group)}
        write_card(paths[model], name, table)
        out.append(CardUpdate(model, paths[model], name, table))
    return out


def format_results(results: dict[str, Any]) -> list[str]:
    """One readable line per protocol of a card's ``results`` table."""
    lines = []
    for proto, t in results.items():
        if not isinstance(t, dict):
            lines.append(f"{proto}: {t}")
            continue
        n = t.get("n_runs")
        head = ", ".join(x for x in (f"hash {t['protocol_hash']}" if "protocol_hash" in t else "",
                                     f"{n} seed{'s' * (n != 1)}" if n is not None else "",
                                     t.get("device", ""), t.get("date", "")) if x)
        values = []
        for k, v in t.items():
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) for x in v):
                values.append(f"{k} {v[0]:.4g}" + (f" ± {v[1]:.2g}" if math.isfinite(v[1]) else ""))
        lines.append(f"{proto} ({head}): {', '.join(values) or 'no metrics'}")
    return lines
