"""Results named before the one naming rule (``fid256_test``) in MLflow runs and baseline files: read under
the rule's names, with the values they had; a baseline holding both forms of one name is refused."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from ganbench.core import track
from ganbench.core.errors import GanbenchError
from ganbench.reporting.gate import check, load_baseline
from ganbench.reporting.leaderboard import build_boards, migrate_legacy_names

HASH = "c" * 64


def test_old_columns_are_renamed_and_fill_the_gaps_of_new_ones():
    runs = pd.DataFrame([
        {"metrics.fid256_test": 400.0, "metrics.fid256_test_floor": 5.0, "metrics.domain_pr5003_test_recall": 0.5,
         "tags.ganbench.metric.fid256_test": "n=256 higher_is_better=False", "metrics.images_seen": 10.0},
        {"metrics.fid_256_test": 390.0, "metrics.images_seen": 20.0}])
    got = migrate_legacy_names(runs)
    assert sorted(got.columns) == sorted(["metrics.fid_256_test", "metrics.fid_256_test_floor",
                                          "metrics.domain_recall_k3_500_test", "metrics.images_seen",
                                          "tags.ganbench.metric.fid_256_test"])
    assert got["metrics.fid_256_test"].tolist() == [400.0, 390.0]  # the old run's value, the new run's value
    assert got["metrics.domain_recall_k3_500_test"].iloc[0] == 0.5 and got["metrics.images_seen"].tolist() == [10.0, 20.0]


def log_run(tracker: track.Tracker, seed: int, metrics: dict[str, float]) -> str:
    run_id = tracker.start("ganbench/smoke", f"dcgan-seed{seed}", {"device": "cpu"},
                           {track.TAG_PROTOCOL: "smoke", track.TAG_PROTOCOL_HASH: HASH, track.TAG_MODEL: "dcgan",
                            track.TAG_SEED: str(seed)})
    tracker.log_metrics(run_id, metrics)
    tracker.end(run_id, "finished")
    time.sleep(0.01)
    return run_id


def old_baseline(path, values: list[float], extra: dict | None = None) -> None:
    metrics = {"fid256_test": {"higher_is_better": False, "values": values}, **(extra or {})}
    path.write_text(json.dumps({"format": 2, "protocol": "smoke", "protocol_hash": HASH, "confidence": 0.99,
                                "models": {"dcgan": {"identity": HASH, "identity_parts": {}, "seeds": [0, 1, 2],
                                                     "metrics": metrics}}}))


def test_a_baseline_of_old_names_gates_runs_of_new_and_old_names(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = track.Tracker(uri)
    new_ids = [log_run(tracker, s, {"fid_256_test": v}) for s, v in ((0, 400.0), (1, 404.0))]
    old_id = log_run(tracker, 2, {"fid256_test": 1000.0})  # a run logged before the rename
    path = tmp_path / "smoke.json"
    old_baseline(path, [400.0, 402.0, 404.0])
    base = load_baseline(path)
    assert base["renamed"] == {"fid256_test": "fid_256_test"}
    assert base["models"]["dcgan"]["metrics"] == {"fid_256_test": {"higher_is_better": False, "values": [400.0, 402.0, 404.0]}}
    result = check(new_ids, path, uri)
    (row,) = result.rows
    assert row.metric == "fid_256_test" and row.value == pytest.approx(402.0) and row.passed
    assert "fid256_test -> fid_256_test" in result.table()
    (row,) = check([old_id], path, uri).rows  # the old run's value is read under the new name: a regression
    assert row.metric == "fid_256_test" and row.value == 1000.0 and not row.passed
    (board,) = build_boards(tracker.search(run_ids=[*new_ids, old_id]))
    assert board.metrics == [("fid_256_test", False)] and board.rows[0].values["fid_256_test"] == [400.0, 404.0, 1000.0]


def test_a_baseline_with_both_forms_of_a_name_is_refused(tmp_path):
    path = tmp_path / "both.json"
    old_baseline(path, [1.0, 2.0], {"fid_256_test": {"higher_is_better": False, "values": [1.0, 2.0]}})
    with pytest.raises(GanbenchError, match="'fid256_test' is the old name of 'fid_256_test'"):
        load_baseline(path)
