"""The diagnosis of a tracked run: written and logged when a run ends, re-read from MLflow later.

This glue composes tracking (layer 1) with diagnosis and stays here rather than in the pipeline because
it needs nothing above layer 5, and because ``ganbench diagnose <run>`` re-diagnoses a run from its
logged artifacts alone (records and sample statistics), without the trainer or the pipeline.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

from ganbench.core import track
from ganbench.core.errors import GanbenchError
from ganbench.core.plots import timeline_plot
from ganbench.diagnosis.detectors import diagnose
from ganbench.diagnosis.findings import Diagnosis, write_diagnosis
from ganbench.diagnosis.monitor import SAMPLE_STATS_FILE, ProbeMonitor
from ganbench.diagnosis.thresholds import THRESHOLDS, Thresholds

DIAGNOSIS_FILE = "diagnosis.json"
TIMELINE_FILE = "timeline.png"
RECORDS_FILE = "records.parquet"  # the trainer's per-step records, logged by the run


def record_health(tracker, run_id: str, run_dir: Path, result, monitor: ProbeMonitor, title: str = "") -> Diagnosis:
    """Diagnose a finished (or stopped, or diverged) run; write and log the findings (JSON), the sample
    statistics and the timeline plot, and tag the worst severity and the first bad step."""
    run_dir = Path(run_dir)
    samples = monitor.samples
    monitor.save(run_dir / SAMPLE_STATS_FILE)
    diag = diagnose(result.records, samples, monitor.th, monitor.space.name)
    write_diagnosis(diag, run_dir / DIAGNOSIS_FILE)
    timeline_plot(result.records, samples, diag.findings, run_dir / TIMELINE_FILE, title)
    for name in (DIAGNOSIS_FILE, SAMPLE_STATS_FILE, TIMELINE_FILE):
        tracker.log_artifact(run_id, run_dir / name)
    tags = {track.TAG_HEALTH: diag.worst}
    bad = [s for s in (diag.first_step("failure"), monitor.first_bad_step, result.first_bad_step) if s is not None]
    if bad:
        tags[track.TAG_FIRST_BAD_STEP] = str(min(bad))
    if result.status == "stopped":
        tags[track.TAG_STOP_REASON] = result.message
    tracker.set_tags(run_id, tags)
    return diag


def diagnose_run(run_id: str, tracking_uri: str | None = None, thresholds: Thresholds = THRESHOLDS) -> Diagnosis:
    """Re-diagnose a tracked run from its logged artifacts (records, sample statistics) with ``thresholds``."""
    tracker = track.Tracker(tracking_uri)
    try:
        run = tracker.get(run_id)
    except Exception as err:
        raise GanbenchError(f"no run {run_id!r} in {tracker.uri} ({type(err).__name__}); see `ganbench show`") from err
    logged = set(tracker.artifacts(run.info.run_id))
    if RECORDS_FILE not in logged:
        raise GanbenchError(f"run {run_id} has no {RECORDS_FILE} artifact (it ended before its first records were "
                            "written); nothing to diagnose")
    with tempfile.TemporaryDirectory() as tmp:
        records = pd.read_parquet(tracker.download(run_id, RECORDS_FILE, Path(tmp)))
        samples = pd.read_parquet(tracker.download(run_id, SAMPLE_STATS_FILE, Path(tmp))) \
            if SAMPLE_STATS_FILE in logged else None
        space = None
        if DIAGNOSIS_FILE in logged:
            space = json.loads(tracker.download(run_id, DIAGNOSIS_FILE, Path(tmp)).read_text()).get("feature_space")
    return diagnose(records, samples, thresholds, space)
