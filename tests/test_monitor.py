"""ganbench.Monitor in a loop ganbench did not write, and `ganbench diagnose` on logs such loops already
wrote (CSV, Parquet, an MLflow run's metrics). The loop here is a scripted trace with a known answer: 150
steps of a D near chance, then a D that wins outright while G's gradient collapses (d-dominance, a
failure from step 151). Real loops: tests/test_examples.py."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

import ganbench
from ganbench.cli import main
from ganbench.core.errors import GanbenchError
from ganbench.core.track import TAG_HEALTH, Tracker, tracking_uri
from ganbench.diagnosis.logs import parse_map, to_records

ONSET = 151


def scripted_step(i: int, g: torch.Generator) -> dict:
    """What a user's loop hands the monitor at step i (1-based): D's per-sample outputs and the losses."""
    if i < ONSET:
        return dict(d_loss=1.2 + 0.05 * float(torch.randn((), generator=g)), g_loss=0.9,
                    d_real=torch.rand(64, generator=g) * 0.4 + 0.45, d_fake=torch.rand(64, generator=g) * 0.4 + 0.15,
                    g_grad_norm=5.0)
    return dict(d_loss=0.01, g_loss=8.0, d_real=torch.full((64,), 0.999), d_fake=torch.full((64,), 0.001),
                d_fake_g=torch.full((64,), 1e-6), g_grad_norm=0.05)


def run_loop(mon: ganbench.Monitor, steps: int = 300) -> list[tuple[int, list]]:
    g = torch.Generator().manual_seed(0)
    returned = []
    for i in range(1, steps + 1):
        new = mon.step(**scripted_step(i, g))
        if new:
            returned.append((i, new))
    return returned


def test_the_monitor_names_the_failure_once_when_it_starts_and_writes_the_records(tmp_path):
    said = []
    mon = ganbench.Monitor(tmp_path / "mine", check_every=25, on_finding=said.append)
    returned = run_loop(mon)
    assert [(f.name, f.severity, f.start_step) for f in said] == [("d-dominance", "failure", ONSET)]
    assert [(i, [f.name for f in new]) for i, new in returned] == [(175, ["d-dominance"])]  # the first check after it
    diag = mon.close()
    assert diag.first_step("failure") == ONSET and diag.worst == "failure"
    assert "critic_gap" in mon.skipped["critic-gap"] and "no sample statistics" in mon.skipped["mode-collapse"]
    records = pd.read_parquet(tmp_path / "mine" / "records.parquet")
    assert len(records) == 300 and records["d_acc_real"].iloc[-1] == 1.0  # accuracy from the per-sample outputs
    saved = json.loads((tmp_path / "mine" / "diagnosis.json").read_text())
    assert saved["first_failure_step"] == ONSET and (tmp_path / "mine" / "timeline.png").is_file()


def test_missing_signals_skip_their_detectors_and_say_so():
    mon = ganbench.Monitor(check_every=50, on_finding=None)
    g = torch.Generator().manual_seed(0)
    for i in range(1, 201):
        mon.step(d_loss=1.2 + 0.05 * float(torch.randn((), generator=g)), g_loss=0.9)  # the two losses only
    diag = mon.close()
    assert mon.skipped["d-dominance"] == "missing fields: d_acc_real, d_acc_fake, g_grad_norm"
    assert "oscillation" not in mon.skipped and diag.worst in ("none", "info")


def test_bad_signals_are_refused_with_what_is_known():
    mon = ganbench.Monitor(on_finding=None)
    with pytest.raises(GanbenchError, match=r"unknown signal\(s\) d_los; known: d_loss, g_loss"):
        mon.step(d_los=1.0, g_loss=1.0)
    with pytest.raises(GanbenchError, match=r"g_loss must be one number, got a tensor of shape \(4,\)"):
        mon.step(d_loss=1.0, g_loss=torch.ones(4))
    with pytest.raises(GanbenchError, match="d_outputs='sigmoid': say what D's outputs are, one of probabilities"):
        ganbench.Monitor(d_outputs="sigmoid")


def test_a_critic_gives_the_critic_gap_and_samples_are_probed(tmp_path):
    g = torch.Generator().manual_seed(0)
    real = (torch.rand(32, 1, 28, 28, generator=g) * 255).to(torch.uint8)  # the loop's own real batch
    for reference in (None, real):
        mon = ganbench.Monitor(d_outputs="critic", check_every=10, on_finding=None, real=reference)
        for i in range(1, 41):
            mon.step(d_loss=-5.0, g_loss=3.0, d_real=torch.full((8,), 2.0), d_fake=torch.full((8,), -3.0), gp=0.5)
            if i % 10 == 0:
                mon.samples(torch.rand(16, 1, 28, 28, generator=g) * 2 - 1)
        diag = mon.close()
        assert mon.records["critic_gap"].eq(5.0).all() and "d_acc_real" not in mon.records
        assert len(mon.probes.samples) == 4 and "healthy-equilibrium" in {f.name for f in diag.findings}
        if reference is None:  # no real reference to compare the samples' diversity with
            assert mon.skipped["mode-collapse"] == "no finite values in: real_diversity"
        else:
            assert "mode-collapse" not in mon.skipped


def test_a_tracked_monitor_is_an_mlflow_run_that_ganbench_diagnose_reads_again(tmp_path, capsys):
    mon = ganbench.Monitor(tmp_path / "tracked", check_every=50, on_finding=None, track=True, name="my-loop")
    run_loop(mon)
    diag = mon.close()
    run = MlflowClient(tracking_uri()).get_run(mon.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[TAG_HEALTH] == "failure"
    assert run.data.metrics["d_loss"] == pytest.approx(0.01)
    assert main(["diagnose", mon.run_id, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [(f["name"], f["start_step"]) for f in again["findings"]] == [(f.name, f.start_step) for f in diag.findings]


# --------------------------------------------------------------------------- logs a loop already wrote


def tutorial_log(tmp_path) -> tuple[pd.DataFrame, object]:
    """The scripted loop's records under the names a user's loop logs them (the PyTorch tutorial's errD, errG,
    D_x, D_G_z1, D_G_z2, plus its own accuracy and gradient columns), and the monitor's own diagnosis."""
    mon = ganbench.Monitor(check_every=300, on_finding=None)
    run_loop(mon)
    diag = mon.close()
    r = mon.records
    log = pd.DataFrame({"iteration": r["step"], "errD": r["d_loss"], "errG": r["g_loss"], "D_x": r["d_real"],
                        "D_G_z1": r["d_fake"], "D_G_z2": r["d_fake_g"], "acc_on_real": r["d_acc_real"],
                        "acc_on_fake": r["d_acc_fake"], "gradG": r["g_grad_norm"]})
    return log, diag


def test_diagnose_reads_a_csv_under_the_usual_names_and_a_mapping(tmp_path, capsys):
    log, diag = tutorial_log(tmp_path)
    csv = tmp_path / "train_log.csv"
    log.to_csv(csv, index=False)
    expected = [(f.name, f.severity, f.start_step) for f in diag.findings]
    mapping = "d_acc_real=acc_on_real,d_acc_fake=acc_on_fake,g_grad_norm=gradG"
    assert main(["diagnose", str(csv), "--map", mapping, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [(f["name"], f["severity"], f["start_step"]) for f in got["findings"]] == expected
    found = ganbench.diagnose(csv)  # without the mapping: the losses are found, D's accuracies are not
    assert "missing fields: d_acc_real, d_acc_fake" in found.diagnosis.skipped["d-dominance"]
    parquet = tmp_path / "train_log.parquet"
    log.to_parquet(parquet)
    assert [(f.name, f.start_step) for f in ganbench.diagnose(parquet, map=mapping)] == [(n, s) for n, _, s in expected]


def test_a_log_without_the_losses_or_with_a_wrong_mapping_names_its_columns(tmp_path, capsys):
    csv = tmp_path / "odd.csv"
    pd.DataFrame({"epoch": [1, 2], "lossA": [1.0, 0.9], "lossB": [0.5, 0.6]}).to_csv(csv, index=False)
    assert main(["diagnose", str(csv)]) == 2
    err = capsys.readouterr().err
    assert "found no column for d_loss, g_loss; it has: epoch, lossA, lossB. Name them with --map" in err
    assert main(["diagnose", str(csv), "--map", "d_loss=lossD"]) == 2
    assert "no column 'lossD' (from --map); it has: epoch, lossA, lossB" in capsys.readouterr().err
    with pytest.raises(GanbenchError, match="'loss_d' is not a signal ganbench reads; signals: step, d_loss"):
        parse_map("loss_d=lossA")
    records = to_records(pd.read_csv(csv), parse_map("d_loss=lossA,g_loss=lossB"), "odd.csv")
    assert list(records["step"]) == [1, 2] and list(records.columns) == ["step", "d_loss", "g_loss"]


def test_diagnose_reads_the_metrics_an_mlflow_run_of_ones_own_logged(tmp_path, capsys):
    log, diag = tutorial_log(tmp_path)
    client = MlflowClient(tracking_uri())
    run_id = client.create_run(Tracker().experiment_id("my-own-gan")).info.run_id
    from mlflow.entities import Metric

    metrics = [Metric(k, float(v), 0, int(s)) for _, row in log.iterrows() for k, v, s in
               ((k, row[k], row["iteration"]) for k in ("errD", "errG", "acc_on_real", "acc_on_fake", "gradG"))
               if np.isfinite(v)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    client.set_terminated(run_id)
    mapping = "d_acc_real=acc_on_real,d_acc_fake=acc_on_fake,g_grad_norm=gradG"
    assert main(["diagnose", run_id, "--map", mapping]) == 0
    out = capsys.readouterr().out
    assert "[FAILURE] d-dominance  steps 151-300" in out
