"""The one adapter to MLflow: MLflow is imported here only, and this module alone knows tag names.

The embedded default is a SQLite store under the ganbench home with artifacts beside it;
``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` point to a tracking server instead.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ganbench.core.assets import ganbench_home
from ganbench.core.concurrency import file_lock
from ganbench.core.errors import GanbenchError

TAG_STATUS = "ganbench.status"  # finished | diverged | failed | running
TAG_PROTOCOL = "ganbench.protocol"
TAG_PROTOCOL_HASH = "ganbench.protocol_hash"  # the run's training identity (protocol's training side, model, data)
TAG_SHARED_HASH = "ganbench.shared_hash"  # the training identity without the model: runs a leaderboard may rank together
TAG_IDENTITY = "ganbench.identity"  # JSON: the training identity's parts (part -> SHA-256), to say what changed
TAG_EVAL_HASH = "ganbench.eval_hash"  # the evaluation identity its numbers were measured under (changes on re-evaluation)
TAG_EVAL_IDENTITY = "ganbench.eval_identity"  # JSON: the evaluation identity's parts
TAG_MODEL = "ganbench.model"
TAG_SEED = "ganbench.seed"
TAG_MESSAGE = "ganbench.message"
TAG_SOURCE = "ganbench.source"  # what `ganbench eval` measured: samples:<path> | generator:<module:fn> checkpoint:<path>
TAG_HEALTH = "ganbench.health"  # worst severity of the training-health findings: none | info | warning | failure
TAG_FIRST_BAD_STEP = "ganbench.first_bad_step"  # first step of a failure-level finding (or of a non-finite loss)
TAG_STOP_REASON = "ganbench.stop_reason"  # why a run was stopped early (--stop-on)
MLFLOW_STATUS = {"finished": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "stopped": "KILLED"}


def tracking_uri(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{ganbench_home() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (None for other stores and in-memory SQLite)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return None
    return Path(uri[len(prefix):].split("?")[0]).expanduser()


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


def identity_tags(ident) -> dict[str, str]:
    """The tags that carry a ``protocol.Identity``."""
    return {TAG_PROTOCOL_HASH: ident.hash, TAG_SHARED_HASH: ident.shared_hash,
            TAG_IDENTITY: json.dumps(ident.parts, sort_keys=True), **eval_identity_tags(ident)}


def eval_identity_tags(ident) -> dict[str, str]:
    """The tags that carry the evaluation side of a ``protocol.Identity`` (rewritten by a re-evaluation)."""
    return {TAG_EVAL_HASH: ident.eval_hash, TAG_EVAL_IDENTITY: json.dumps(ident.eval_parts, sort_keys=True)}


def experiment_name(protocol: str) -> str:
    """The MLflow experiment of a protocol's runs (training, evaluation, sweeps)."""
    return f"ganbench/{protocol}"


_SHIELD = {"depth": 0, "pending": False, "handler": None}


def _shielded(write):
    """Ctrl-C during an MLflow write can leave the store's session half-done, and the write that ends the
    interrupted run then fails with a traceback instead of the resume command: a SIGINT that arrives during
    a write is held until the write is over, then raised as usual."""

    @functools.wraps(write)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return write(*args, **kwargs)
        if _SHIELD["depth"] == 0:
            _SHIELD["handler"] = signal.getsignal(signal.SIGINT)
            _SHIELD["pending"] = False
            signal.signal(signal.SIGINT, lambda signum, frame: _SHIELD.update(pending=True))
        _SHIELD["depth"] += 1
        try:
            return write(*args, **kwargs)
        finally:
            _SHIELD["depth"] -= 1
            if _SHIELD["depth"] == 0:
                signal.signal(signal.SIGINT, _SHIELD["handler"])
                if _SHIELD["pending"]:
                    _SHIELD["pending"] = False
                    raise KeyboardInterrupt

    return wrapper


class Tracker:
    def __init__(self, uri: str | None = None):

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.uri = tracking_uri(uri)
        db = sqlite_path(self.uri)
        if db is None:
            self.client = MlflowClient(tracking_uri=self.uri)
            return
        # MLflow creates a fresh SQLite store's schema (alembic migrations) when the client opens it, and two
        # processes doing so at once crash on each other's half-built tables: one process at a time opens it
        with file_lock(db.with_name(db.name + ".lock")):
            self.client = MlflowClient(tracking_uri=self.uri)

    def experiment_id(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if self.uri.startswith("sqlite:") or self.uri.startswith("file:"):
            location = (ganbench_home() / "mlartifacts" / name.replace("/", "_")).as_uri()

        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another process (a concurrent run or sweep task) created it after the lookup
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    @_shielded
    def delete(self, run_id: str) -> None:
        """Move a run to MLflow's trash (``mlflow gc`` removes it for good)."""
        self.client.delete_run(run_id)

    @_shielded
    def start(self, experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id(experiment), run_name=run_name,
                                     tags={**tags, TAG_STATUS: "running"})
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    @_shielded
    def reopen(self, run_id: str) -> None:
        """Continue a run that did not finish: status running again, and the tags that described how it
        ended last time (the interruption's message, an early stop's reason) are dropped."""
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, TAG_STATUS, "running")
        tags = self.client.get_run(run_id).data.tags
        for key in (TAG_MESSAGE, TAG_STOP_REASON):
            if key in tags:
                self.client.delete_tag(run_id, key)

    def status(self, run_id: str) -> str | None:
        """A run's ganbench status (finished | diverged | failed | stopped | running), or None when the run
        is not in this store or was deleted."""

        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        if run.info.lifecycle_stage == "deleted":
            return None
        return run.data.tags.get(TAG_STATUS, run.info.status.lower())

    @_shielded
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:

        items = [Param(k, v[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    @_shielded
    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:


        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self.client.log_batch(run_id, metrics=items)

    @_shielded
    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    @_shielded
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k, v)

    @_shielded
    def end(self, run_id: str, status: str, message: str = "") -> None:
        self.set_tags(run_id, {TAG_STATUS: status, **({TAG_MESSAGE: message[:5000]} if message else {})})
        self.client.set_terminated(run_id, MLFLOW_STATUS[status])

    def get(self, run_id: str):
        return self.client.get_run(run_id)

    def artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        out = []
        for f in self.client.list_artifacts(run_id, path):
            out.extend(self.artifacts(run_id, f.path) if f.is_dir else [f.path])
        return out

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in reports' output
        return Path(self.client.download_artifacts(run_id, path, str(dest)))

    # ----------------------------------------------------------------- reading runs back (reports, gates)

    def search(self, experiments: list[str] | None = None, run_ids: list[str] | None = None):
        """Runs as a pandas DataFrame, one row per run: ``run_id``, ``experiment``, ``run_name``, ``start_time``,
        ``status`` (the ganbench status tag), ``protocol``, ``protocol_hash`` (the run's identity), ``shared_hash``
        (the identity without the model; older runs: their protocol hash), ``eval_hash`` (the evaluation identity
        of its numbers; "" for runs made before it was recorded), ``model``, ``seed``, then
        ``metrics.<name>`` (final values) and ``tags.<name>`` columns, as ``mlflow.search_runs`` names them.

        ``experiments`` are experiment names (default: every ``ganbench/...`` experiment); ``run_ids`` picks runs."""

        if run_ids is not None:
            runs = [self.client.get_run(r) for r in run_ids]
        else:
            exps = [e for e in self.client.search_experiments()
                    if (e.name in experiments if experiments is not None else e.name.startswith("ganbench/"))]
            runs, token = [], None
            while exps:
                page = self.client.search_runs([e.experiment_id for e in exps], max_results=1000, page_token=token)
                runs.extend(page)
                token = page.token
                if not token:
                    break
        names = {e.experiment_id: e.name for e in self.client.search_experiments()} if runs else {}
        rows = []
        for run in runs:
            tags = run.data.tags
            seed = tags.get(TAG_SEED)
            rows.append({"run_id": run.info.run_id, "experiment": names.get(run.info.experiment_id, ""),
                         "run_name": run.info.run_name, "start_time": run.info.start_time,
                         "status": tags.get(TAG_STATUS, run.info.status.lower()),
                         "protocol": tags.get(TAG_PROTOCOL), "protocol_hash": tags.get(TAG_PROTOCOL_HASH),
                         "shared_hash": tags.get(TAG_SHARED_HASH, tags.get(TAG_PROTOCOL_HASH)),
                         "eval_hash": tags.get(TAG_EVAL_HASH, ""),
                         "model": tags.get(TAG_MODEL), "seed": int(seed) if seed is not None else None,
                         **{f"metrics.{k}": v for k, v in run.data.metrics.items()},
                         **{f"tags.{k}": v for k, v in tags.items() if k.startswith("ganbench.")}})
        return pd.DataFrame(rows, columns=None if rows else ["run_id", "experiment", "run_name", "start_time", "status",
                                                             "protocol", "protocol_hash", "shared_hash", "eval_hash", "model",
                                                             "seed"])

    def resolve_runs(self, ref: str) -> list[str]:
        """Run ids named by ``ref``: a run id, an experiment name, or a protocol name (experiment ``ganbench/<ref>``)."""
        for name in (ref, f"ganbench/{ref}"):
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                return [r.info.run_id for r in self.client.search_runs([exp.experiment_id], max_results=10000)]
        try:
            return [self.client.get_run(ref).info.run_id]
        except MlflowException:
            pass

        raise GanbenchError(f"{ref!r} is neither a run id nor an experiment in {self.uri}; "
                            "pass a run id (see `ganbench show`) or an experiment name such as ganbench/<protocol>")

    def metric_history(self, run_id: str, key: str):
        """One metric's logged values of a run as a DataFrame (``step``, ``value``), sorted by step."""
        hist = self.client.get_metric_history(run_id, key)
        return pd.DataFrame({"step": [h.step for h in hist], "value": [h.value for h in hist]}).sort_values("step")
