"""Diagnostics end to end: a tracked run logs its findings, an induced failure is stopped early with
--stop-on failure (keeping its artifacts), and `ganbench diagnose` reads the run back from MLflow."""

import json

import pytest
from mlflow.tracking import MlflowClient

from ganbench.cli import main
from ganbench.pipeline.run import run_protocol
from ganbench.core.track import TAG_FIRST_BAD_STEP, TAG_HEALTH, TAG_STATUS, TAG_STOP_REASON, tracking_uri


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread_module):
    """Short runs on a shared 2-core machine (see conftest.one_thread_module)."""


@pytest.mark.slow
def test_stop_on_failure_ends_the_hopeless_run_and_keeps_the_healthy_one(tiny_protocol, capsys):
    # 128 images, batch 32: 4 steps per epoch, a check every 4 steps; 8 epochs = 32 steps at most.
    path = tiny_protocol(models=["dcgan", "fail-minimax"], epochs=8)
    healthy, hopeless = run_protocol(path, progress=False, stop_on="failure")
    client = MlflowClient(tracking_uri())

    assert healthy.status == "finished"
    run = client.get_run(healthy.run_id)
    assert run.data.tags[TAG_HEALTH] in ("none", "info", "warning") and TAG_STOP_REASON not in run.data.tags
    assert {"diagnosis.json", "sample_stats.parquet", "timeline.png"} <= {f.path for f in client.list_artifacts(healthy.run_id)}

    assert hopeless.status == "stopped" and "d-dominance" in hopeless.message
    run = client.get_run(hopeless.run_id)
    assert run.info.status == "KILLED" and run.data.tags[TAG_STATUS] == "stopped"
    assert run.data.tags[TAG_HEALTH] == "failure" and run.data.tags[TAG_STOP_REASON] == hopeless.message
    first_bad = int(run.data.tags[TAG_FIRST_BAD_STEP])
    assert 1 <= first_bad <= 8  # D wins from the first steps against the minimax G loss
    stopped_at = run.data.metrics["epochs_done"]
    assert stopped_at < 8  # ended early
    arts = {f.path for f in client.list_artifacts(hopeless.run_id)}
    assert {"diagnosis.json", "sample_stats.parquet", "timeline.png", "records.parquet", "checkpoints"} <= arts
    saved = json.loads((hopeless.run_dir / "diagnosis.json").read_text())
    assert saved["worst"] == "failure" and saved["feature_space"] in ("pixels", "domain-fashion-mnist")

    # `ganbench diagnose` re-reads the logged records and sample statistics.
    capsys.readouterr()
    assert main(["diagnose", hopeless.run_id, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["worst"] == "failure" and again["first_failure_step"] == saved["first_failure_step"]
    assert [f["name"] for f in again["findings"]] == [f["name"] for f in saved["findings"]]
    assert main(["diagnose", hopeless.run_id]) == 0
    text = capsys.readouterr().out
    assert "health: failure" in text and "[FAILURE] d-dominance" in text and "try: lower D's learning rate" in text


def test_diagnose_unknown_run_is_a_user_error(capsys):
    assert main(["diagnose", "0123456789abcdef"]) == 2
    assert "no run '0123456789abcdef'" in capsys.readouterr().err
