"""A protocol end to end into a real MLflow SQLite store (no mocks), and what a failed run keeps."""

import dataclasses
import math
from pathlib import Path

import numpy as np

import pytest
from mlflow.tracking import MlflowClient

from ganbench.pipeline.run import run_protocol
from ganbench.core.track import TAG_PROTOCOL_HASH, TAG_STATUS, tracking_uri


def test_run_logs_params_metrics_artifacts_and_tags(tiny_protocol, ganbench_home):
    path = tiny_protocol(models=["dcgan"], epochs=2, subset=128, num_samples=20)
    (out,) = run_protocol(path, progress=False)
    assert out.status == "finished"
    assert tracking_uri() == f"sqlite:///{ganbench_home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri())
    run = client.get_run(out.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[TAG_STATUS] == "finished"
    assert len(run.data.tags[TAG_PROTOCOL_HASH]) == 64
    params = run.data.params
    assert params["model.name"] == "dcgan" and params["seed"] == "0" and params["protocol.train.epochs"] == "2"
    assert params["model.optim_g.lr"] == "0.0002" and params["device"] == "cpu" and "versions.torch" in params
    assert len(params["protocol.eval.extractor_weights_sha256"]) == 64
    m = run.data.metrics
    assert math.isfinite(m["fid_20_test"]) and m["fid_20_test"] > 0
    assert math.isfinite(m["final_d_loss"]) and math.isfinite(m["final_g_loss"]) and m["wall_time_s"] > 0
    history = client.get_metric_history(out.run_id, "d_loss")
    assert sorted(h.step for h in history) == [1, 2]
    arts = {f.path for f in client.list_artifacts(out.run_id)}
    assert {"grids", "checkpoints", "loss_curves.png", "records.parquet"} <= arts
    assert {f.path for f in client.list_artifacts(out.run_id, "grids")} == {"grids/epoch_001.png", "grids/epoch_002.png"}
    assert [f.path for f in client.list_artifacts(out.run_id, "checkpoints")] == ["checkpoints/final.pt"]
    assert (out.run_dir / "checkpoints" / "last.pt").is_file()


def test_failed_run_is_tagged_and_keeps_artifacts(tiny_protocol, monkeypatch):
    import ganbench.metrics.api as api

    def broken_evaluate(*args, **kwargs):
        raise RuntimeError("feature extractor crashed")

    monkeypatch.setattr(api.EvalContext, "side", lambda self, *args: broken_evaluate())
    (out,) = run_protocol(tiny_protocol(), progress=False)
    assert out.status == "failed" and "feature extractor crashed" in out.message
    client = MlflowClient(tracking_uri())
    run = client.get_run(out.run_id)
    assert run.info.status == "FAILED" and run.data.tags[TAG_STATUS] == "failed"
    arts = {f.path for f in client.list_artifacts(out.run_id)}
    assert {"grids", "checkpoints", "loss_curves.png", "records.parquet"} <= arts


def test_resume_continues_the_same_mlflow_run(tiny_protocol, tmp_path):
    one = tiny_protocol(epochs=1, name="one")
    (first,) = run_protocol(one, progress=False)
    two = tmp_path / "one.toml"  # the same protocol file with a larger budget: a new hash, a new run
    two.write_text(two.read_text().replace("epochs = 1", "epochs = 2"))
    (second,) = run_protocol(str(two), progress=False)
    assert second.run_id != first.run_id
    (again,) = run_protocol(str(two), resume=True, progress=False)
    assert again.run_id == second.run_id and again.status == "finished"


def test_experiment_created_by_another_process_after_the_lookup_is_reused(tmp_path, monkeypatch):
    """Concurrent runs (sweep tasks) race between "look the experiment up" and "create it": the loser gets
    MLflow's RESOURCE_ALREADY_EXISTS from the real store and must take the winner's experiment."""
    from ganbench.core.track import Tracker

    uri = f"sqlite:///{tmp_path / 'race.db'}"
    winner = Tracker(uri).experiment_id("ganbench/race")
    loser = Tracker(uri)
    lookup = loser.client.get_experiment_by_name
    calls = []

    def late_lookup(name):  # the first lookup ran before the winner created the experiment
        calls.append(name)
        return None if len(calls) == 1 else lookup(name)

    monkeypatch.setattr(loser.client, "get_experiment_by_name", late_lookup)
    assert loser.experiment_id("ganbench/race") == winner and len(calls) == 2
    run_id = loser.start("ganbench/race", "r", {}, {})
    loser.delete(run_id)
    assert MlflowClient(uri).get_run(run_id).info.lifecycle_stage == "deleted"


def test_a_run_killed_after_a_checkpoint_resumes_with_its_health_probes(tiny_protocol, ganbench_home, monkeypatch):
    """The sample statistics behind the mode-collapse detector are saved beside every checkpoint, so a run
    interrupted after epoch 1 and resumed is diagnosed over all its probes (steps 4 and 8), each once."""
    import pandas as pd

    import ganbench.pipeline.run as run_module
    from ganbench.diagnosis import SAMPLE_STATS_FILE

    path = tiny_protocol(epochs=2, name="killed")  # 128 images, batch 32, a probe every 4 steps: one per epoch
    save_grid = run_module.save_grid

    def killed_once(*args, **kwargs):  # the process dies right after the epoch-1 checkpoint
        monkeypatch.setattr(run_module, "save_grid", save_grid)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "save_grid", killed_once)  # the per-epoch grid the run draws
    with pytest.raises(KeyboardInterrupt):
        run_protocol(path, progress=False)
    import torch

    (ckpt,) = (ganbench_home / "runs").rglob("last.pt")
    first = torch.load(ckpt, weights_only=True)
    assert first["epoch"] == 1 and 0 < first["cpu_time_s"] and 0 < first["wall_time_s"]
    (again,) = run_protocol(path, resume=True, progress=False)
    assert again.status == "finished"
    assert list(pd.read_parquet(again.run_dir / SAMPLE_STATS_FILE)["step"]) == [4, 8]
    m = MlflowClient(tracking_uri()).get_run(again.run_id).data.metrics  # the CPU time goes on from the checkpoint's
    assert m["cpu_time_s"] > first["cpu_time_s"] and m["wall_time_s"] > first["wall_time_s"]
    assert m["threads"] >= 1 and m["eval_cpu_time_s"] > 0


def test_concurrent_seeds_are_separate_mlflow_runs_with_their_alone_losses(tiny_protocol):
    """`ganbench run --concurrent-seeds`: the seeds of a model train batched in one process, and each is still
    its own MLflow run with its own folder, grids, checkpoint, health findings and evaluation; its per-epoch
    losses are those of the seed trained alone up to float rounding (tests/test_train.py states the tolerance)."""
    from ganbench.cli import main

    path = tiny_protocol(models=["dcgan"], epochs=2, subset=128, num_samples=20)
    assert main(["run", "--protocol", path, "--seeds", "0", "1", "--concurrent-seeds"]) == 0
    client = MlflowClient(tracking_uri())
    (exp,) = [e for e in client.search_experiments() if e.name.endswith("tiny")]
    runs = {r.data.params["seed"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"0", "1"}
    for seed, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.params["concurrent_seeds"] == "2"
        assert math.isfinite(run.data.metrics["fid_20_test"]) and run.data.metrics["epochs_done"] == 2
        assert {f.path for f in client.list_artifacts(run.info.run_id, "grids")} == {"grids/epoch_001.png", "grids/epoch_002.png"}
        assert "diagnosis.json" in {f.path for f in client.list_artifacts(run.info.run_id)}
    def epoch_means(run_id: str) -> np.ndarray:
        return np.array([[h.value for h in sorted(client.get_metric_history(run_id, k), key=lambda h: h.step)]
                         for k in ("d_loss", "g_loss")])

    together = {seed: epoch_means(r.info.run_id) for seed, r in runs.items()}
    assert together["0"].shape == (2, 2) and not np.allclose(together["0"], together["1"])
    for out in run_protocol(path, seeds=[0, 1], progress=False):  # the same seeds alone (new runs, same folders)
        assert client.get_run(out.run_id).data.params["concurrent_seeds"] == "1"
        alone = epoch_means(out.run_id)
        assert np.all(abs(alone - together[str(out.seed)]) <= 1e-2 * abs(alone)), (alone, together[str(out.seed)])


def test_resume_leaves_a_finished_run_untouched_even_with_a_bad_checkpoint(tiny_ring, ganbench_home, capsys):
    """`--resume` on a finished run used to reopen it, and a checkpoint that no longer loads then turned it
    FAILED. A finished run is never modified: resume says so and exits 0."""
    from ganbench.cli import main

    path = tiny_ring(epochs=2, name="done")
    assert main(["run", "--protocol", path, "--device", "cpu"]) == 0
    run_id = capsys.readouterr().out.split(" run ")[1].split()[0]
    client = MlflowClient(tracking_uri())
    before = client.get_run(run_id)
    (folder,) = [p.parent for p in (ganbench_home / "runs").rglob("mlflow_run_id")]
    for name in ("checkpoints/last.pt", "final.pt"):  # an induced fault: both checkpoints unreadable
        (folder / name).write_bytes(b"not a checkpoint")
    assert main(["run", "--protocol", path, "--device", "cpu", "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"finished  run {run_id}" in out and "already finished" in out
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time) == (before.info.status, before.info.end_time) == \
        ("FINISHED", before.info.end_time)
    assert after.data.metrics == before.data.metrics and after.data.tags == before.data.tags
    assert len(client.search_runs([after.info.experiment_id])) == 1  # and no new run either


def test_resume_without_a_checkpoint_starts_the_run_in_its_mlflow_run(tiny_ring, ganbench_home):
    """A run interrupted before its first checkpoint (or never started) has nothing to continue: the resume
    command starts it, in the MLflow run it already has, instead of refusing."""
    from ganbench.core.track import Tracker

    path = tiny_ring(epochs=1, name="early")
    (first,) = run_protocol(path, progress=False)
    (first.run_dir / "checkpoints" / "last.pt").unlink()
    Tracker().end(first.run_id, "stopped", "interrupted")  # as if stopped before epoch 1 ended
    (again,) = run_protocol(path, resume=True, progress=False)
    assert again.run_id == first.run_id and again.status == "finished"
    run = MlflowClient(tracking_uri()).get_run(first.run_id)
    assert run.info.status == "FINISHED" and "ganbench.message" not in run.data.tags
    assert run.data.metrics["epochs_done"] == 1


def test_resume_against_a_store_without_the_run_is_refused(tiny_ring, tmp_path, capsys):
    """The run folder's MLflow run lives in another store (another --tracking-uri): exit 2 saying so, instead
    of MLflow's exception."""
    from ganbench.cli import main

    path = tiny_ring(epochs=1, name="elsewhere")
    (first,) = run_protocol(path, progress=False)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["run", "--protocol", path, "--resume", "--tracking-uri", other]) == 2
    err = capsys.readouterr().err
    assert f"belongs to MLflow run {first.run_id}, which is not in {other}" in err


def test_resume_from_a_damaged_checkpoint_is_refused_and_leaves_the_run_as_it_was(tiny_ring, capsys):
    """The checkpoint is checked before the MLflow run is reopened: exit 2 naming the file, and the run
    keeps the status it had (here: interrupted), instead of turning FAILED with torch's unpickling advice."""
    from ganbench.cli import main
    from ganbench.core.track import Tracker

    path = tiny_ring(epochs=1, name="damaged")
    (first,) = run_protocol(path, progress=False)
    Tracker().end(first.run_id, "stopped", "interrupted")
    before = MlflowClient(tracking_uri()).get_run(first.run_id)
    ckpt = first.run_dir / "checkpoints" / "last.pt"
    ckpt.write_bytes(b"garbage")
    assert main(["run", "--protocol", path, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"--resume: {ckpt} is not a readable ganbench checkpoint" in err and "weights_only" not in err
    after = MlflowClient(tracking_uri()).get_run(first.run_id)
    assert (after.info.status, after.data.tags) == (before.info.status, before.data.tags) == ("KILLED", before.data.tags)


def test_ctrl_c_during_an_mlflow_write_waits_for_the_write_then_interrupts(tmp_path):
    """A real SIGINT delivered in the middle of a write to a real SQLite store: the write completes (the metric
    is in the store), then KeyboardInterrupt is raised, and the run can still be ended as stopped."""
    import os
    import signal

    from ganbench.core import track

    tracker = track.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = tracker.start("ganbench/shield", "r", {}, {})
    original = tracker.client.log_batch

    def interrupted_batch(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives while the write is under way
        return original(*args, **kwargs)

    tracker.client.log_batch = interrupted_batch
    with pytest.raises(KeyboardInterrupt):
        tracker.log_metrics(run_id, {"loss": 1.5})
    tracker.client.log_batch = original
    assert MlflowClient(tracker.uri).get_run(run_id).data.metrics == {"loss": 1.5}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the usual Ctrl-C again
    tracker.end(run_id, "stopped")
    assert MlflowClient(tracker.uri).get_run(run_id).info.status == "KILLED"
