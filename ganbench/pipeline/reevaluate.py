"""``ganbench reevaluate``: measure finished runs again under their protocol's current evaluation, training nothing.

A run is trained under a training identity and its numbers are measured under an evaluation identity
(:func:`ganbench.spec.protocol.identity`). When a protocol's evaluation changes (a metric added, another sample
count or reference split, other extractor weights) its finished runs keep their training identity, so they are
not orphaned: this module evaluates each one's final weights (``final.pt``, from the run folder or else the MLflow
run's artifacts) under the current evaluation through the one evaluation function training uses
(:func:`ganbench.pipeline.measure.evaluate_final`), logs the numbers to the same MLflow run and rewrites its
evaluation-identity tags. What the replaced evaluation measured is kept beside it, as the artifact
``evaluations/<its evaluation hash[:12]>.json`` (and in MLflow's metric history). The per-epoch curve
(``eval.curve``) was measured during training and is not measured again.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from ganbench.core import track
from ganbench.core.assets import atomic_write_bytes
from ganbench.core.errors import GanbenchError
from ganbench.core.device import resolve_device
from ganbench.pipeline.measure import evaluate_final
from ganbench.training import run_dir_for
from ganbench.pipeline.use import load_generator_from_run
from ganbench.spec.protocol import RunSpec, load_protocol, resolve


@dataclass(frozen=True)
class Reevaluated:
    """One finished run: ``action`` is "re-evaluated" or "current" (already measured under this evaluation)."""

    protocol: str
    model: str
    seed: int
    run_id: str
    old_eval_hash: str
    eval_hash: str
    action: str
    eval_time_s: float = 0.0

    @property
    def line(self) -> str:
        what = (f"re-evaluated ({self.old_eval_hash[:12] or 'unrecorded'} -> {self.eval_hash[:12]}, "
                f"{self.eval_time_s:.0f} s)" if self.action == "re-evaluated" else f"current ({self.eval_hash[:12]})")
        return f"{self.protocol} {self.model} seed {self.seed}: {what} run {self.run_id}"


def finished_runs(spec: RunSpec, runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs of the cell of ``spec`` (its training identity, model and seed) in ``runs``."""
    if runs.empty:
        return runs
    return runs[(runs["protocol_hash"] == spec.protocol_hash) & (runs["model"] == spec.model.name)
                & (runs["seed"] == spec.seed) & (runs["status"] == "finished")]


def is_stale(run: pd.Series, spec: RunSpec) -> bool:
    """Whether a finished run's numbers were measured under another evaluation than the protocol's current one."""
    return str(run.get("eval_hash") or "") != spec.identity.eval_hash


def reevaluate_run(spec: RunSpec, run_id: str, tracker: track.Tracker, device: torch.device,
                   data_root=None) -> Reevaluated:
    """Evaluate the final weights of the finished run ``run_id`` (trained under ``spec``'s training identity)
    under ``spec``'s evaluation; the MLflow run gets the new numbers and evaluation tags."""
    got = tracker.get(run_id)
    tags, old_metrics = got.data.tags, dict(got.data.metrics)
    if tags.get(track.TAG_PROTOCOL_HASH) != spec.protocol_hash:
        raise GanbenchError(f"run {run_id} was trained under identity {tags.get(track.TAG_PROTOCOL_HASH, '?')[:12]}, not "
                            f"{spec.protocol_hash[:12]} ({spec.protocol.name} {spec.model.name}): re-evaluation keeps "
                            "the training identity; train the cell instead")
    old_hash = tags.get(track.TAG_EVAL_HASH, "")
    run_dir = run_dir_for(spec)
    _, G = load_generator_from_run(run_id, tracker.uri, ema=spec.model.tricks.ema > 0, device=device)
    with tempfile.TemporaryDirectory(prefix="ganbench-reevaluate-") as tmp:
        kept = Path(tmp) / f"{old_hash[:12] or 'unrecorded'}.json"
        kept.write_text(json.dumps({"eval_hash": old_hash, "eval_identity": json.loads(tags.get(track.TAG_EVAL_IDENTITY, "{}")),
                                    "metrics": old_metrics}, indent=1, sort_keys=True))
        tracker.log_artifact(run_id, kept, "evaluations")
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_final(G, spec, device, tracker, run_id, run_dir, data_root)
    tracker.log_metrics(run_id, metrics)
    tracker.set_tags(run_id, track.eval_identity_tags(spec.identity))
    spec_file = run_dir / "spec.json"  # the run's spec now names the evaluation its numbers come from
    if (run_dir / "mlflow_run_id").is_file() and (run_dir / "mlflow_run_id").read_text().strip() == run_id:
        atomic_write_bytes(spec_file, json.dumps(spec.to_dict(), indent=1, sort_keys=True).encode())
    return Reevaluated(spec.protocol.name, spec.model.name, spec.seed, run_id, old_hash, spec.identity.eval_hash,
                       "re-evaluated", float(metrics["eval_time_s"]))


def reevaluate(protocol: str, models: list[str] | None = None, seeds: list[int] | None = None,
               device: str = "auto", tracking_uri: str | None = None, data_root=None,
               say: Callable[[str], None] = print) -> list[Reevaluated]:
    """Every finished run of ``protocol`` (optionally only ``models`` / ``seeds``) whose training identity is the
    protocol's current one: re-evaluated when its numbers were measured under another evaluation, else left as
    it is. Cells without a finished run are not trained here (``ganbench run`` or ``reproduce`` does that)."""
    specs = resolve(load_protocol(protocol), None, models, seeds)
    tracker = track.Tracker(tracking_uri)
    dev = resolve_device(device)
    runs = tracker.search([track.experiment_name(specs[0].protocol.name)])
    out = []
    for spec in specs:
        for _, run in finished_runs(spec, runs).sort_values("start_time").iterrows():
            if is_stale(run, spec):
                done = reevaluate_run(spec, str(run["run_id"]), tracker, dev, data_root)
            else:
                done = Reevaluated(spec.protocol.name, spec.model.name, spec.seed, str(run["run_id"]),
                                   spec.identity.eval_hash, spec.identity.eval_hash, "current")
            say(done.line)
            out.append(done)
    return out
