"""ganbench/api.py: each API function against what the command line gives for the same input (same numbers,
same identity, same rows), and bad input refused with an actionable GanbenchError."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import ganbench
from ganbench.cli import main
from ganbench.core.assets import cache_root
from ganbench.core.errors import GanbenchError
from ganbench.core.track import TAG_EVAL_HASH, Tracker
from ganbench.metrics.reference import reference_images
from ganbench.spec.protocol import load_protocol
from ganbench.nets.sampling import generate
from ganbench.spec.seeds import fixed_z
from conftest import TINY_RING


def cli_json(argv, capsys) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return reference_images("fashion-mnist", "train", 200, 3)  # uint8 N x 1 x 28 x 28


def test_evaluate_gives_the_numbers_and_identity_of_ganbench_eval(eval_protocol, images, tmp_path, ganbench_home,
                                                                    capsys):
    proto = eval_protocol(n=200, metrics=("fid", "kid"), name="apiev")
    res = ganbench.evaluate(images, proto, device="cpu")
    assert not (ganbench_home / "mlflow.db").exists() and res.run_id is None  # track=False: nothing logged
    npz = tmp_path / "s.npz"
    np.savez(npz, samples=images.numpy())
    cli = cli_json(["eval", "--protocol", proto, "--samples", str(npz), "--device", "cpu"], capsys)
    assert set(res.metrics) == set(cli["results"]) == {"domain_fid_200_test", "domain_kid_200_test"}
    for name, got in cli["results"].items():
        assert res[name] == got["value"] and res.metrics[name].std == got["std"] and res.metrics[name].floor == got["floor"]
    assert res.identity == Tracker().get(cli["run_id"]).data.tags[TAG_EVAL_HASH]  # samples: the evaluation identity
    frame = res.to_frame()
    assert frame.loc["domain_fid_200_test", "value"] == cli["results"]["domain_fid_200_test"]["value"]
    assert not frame.loc["domain_fid_200_test", "higher_is_better"] and frame["num_samples"].tolist() == [200, 200]
    # float NHWC pixels in [0, 1] are the same images; a metric subset changes the identity, not the number
    floats = images.permute(0, 2, 3, 1).numpy().astype(np.float32) / 255.0
    fid_only = ganbench.evaluate(floats, proto, ["fid"], value_range=(0, 1), device="cpu", track=True, name="f01")
    assert list(fid_only.metrics) == ["domain_fid_200_test"]
    assert fid_only["domain_fid_200_test"] == pytest.approx(res["domain_fid_200_test"], rel=1e-9)
    assert fid_only.identity != res.identity
    assert Tracker().get(fid_only.run_id).data.tags[TAG_EVAL_HASH] == fid_only.identity


@pytest.mark.parametrize("source, kwargs, message", [
    ([[0, 1], [2, 3]], {}, "expected images (a torch.Tensor or numpy array)"),
    (torch.zeros(4, 3, 28, 28, dtype=torch.uint8), {}, "expected images N x 1 x 28 x 28"),
    (torch.full((4, 1, 28, 28), 2.0), {}, "float pixels"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), {"metrics": ["fidd"]}, "Available"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), {"metrics": "fid"}, "expected a non-empty list of metric names"),
    (torch.nn.Linear(100, 784), {"value_range": (0, 1)}, "--range describes the pixels"),
    ("missing.npz", {}, "no such file or folder"),
])
def test_evaluate_refuses_bad_input_with_what_to_do(eval_protocol, source, kwargs, message):
    with pytest.raises(GanbenchError, match=re.escape(message)):
        ganbench.evaluate(source, eval_protocol(n=4, metrics=("fid",)), device="cpu", **kwargs)


# --------------------------------------------------------------------------- train / load / diagnose / report


@dataclass(frozen=True)
class Trained:
    home: Path
    protocol: str
    cli_runs: dict[int, str]  # seed -> MLflow run id of `ganbench run`
    api_run: ganbench.Run  # seed 0 again, through ganbench.training, under another protocol name


LR = 4e-4  # an override of optim_d.lr, given through --set and through **overrides


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread_module) -> Trained:
    root = tmp_path_factory.mktemp("api")
    cli_proto, api_proto = root / "ring-cli.toml", root / "ring-api.toml"
    for path in (cli_proto, api_proto):
        path.write_text(TINY_RING.format(epochs=1, subset=512))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANBENCH_CACHE", str(cache_root()))
        mp.setenv("GANBENCH_HOME", str(root / "home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["run", "--protocol", str(cli_proto), "--seeds", "0", "1", "--device", "cpu",
                     "--set", f"optim_d.lr={LR}"]) == 0
        runs = Tracker().search(experiments=["ganbench/ring-cli"])
        api_run = ganbench.train(str(api_proto), "gan-mlp2d", seed=0, device="cpu", optim_d={"lr": LR})
    return Trained(root / "home", str(cli_proto), dict(zip(runs["seed"], runs["run_id"])), api_run)


@pytest.fixture
def run(trained, monkeypatch) -> Trained:
    monkeypatch.setenv("GANBENCH_HOME", str(trained.home))
    return trained


def test_train_is_ganbench_run_for_one_model_and_seed(run):
    cli = Tracker().get(run.cli_runs[0]).data
    api = Tracker().get(run.api_run.run_id).data
    assert run.api_run.ok and run.api_run.protocol == "ring-api" and run.api_run.seed == 0
    assert api.params["model.optim_d.lr"] == cli.params["model.optim_d.lr"] == str(LR)  # the override took
    # the same model card, seed and training budget give the same numbers (the protocol's name differs)
    for name in ("final_d_loss", "final_g_loss", "modes_hq_200"):
        assert run.api_run.metrics[name] == pytest.approx(cli.metrics[name], rel=1e-6), name
    frame = run.api_run.to_frame()
    assert frame.loc[0, "run_id"] == run.api_run.run_id and frame.loc[0, "modes_hq_200"] == run.api_run.metrics["modes_hq_200"]


def test_train_refuses_a_bad_override(run):
    with pytest.raises(GanbenchError, match="tricks"):
        ganbench.train(run.protocol, "gan-mlp2d", device="cpu", tricks={"no_such_trick": 1})


def test_load_gives_the_generator_ganbench_sample_draws(run, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", run.cli_runs[0], "--n", "16", "--npz", "--out", str(out)]) == 0
    points = np.load(out.with_suffix(".npz"))["points"]
    z = fixed_z(16, 2, load_protocol(run.protocol).eval.z_seed)  # the protocol's fixed z, as `sample` draws
    for ref in (run.cli_runs[0], run.api_run):  # a run id; a Run (trained alike through the API)
        assert np.array_equal(generate(ganbench.load(ref), z, as_uint8=False).numpy(), points)
    with pytest.raises(GanbenchError, match="neither a run folder nor a run id"):
        ganbench.load("no-such-run")
    with pytest.raises(GanbenchError, match="expected a run"):
        ganbench.load(3)


def test_diagnose_gives_the_findings_of_ganbench_diagnose(run, capsys):
    cli = cli_json(["diagnose", run.cli_runs[1]], capsys)
    got = ganbench.diagnose(run.cli_runs[1])
    assert [f.to_dict() for f in got] == cli["findings"] and got.worst == cli["worst"]
    assert got.to_frame()["name"].tolist() == [f["name"] for f in cli["findings"]]
    run_dir = Path(run.api_run.run_dir)
    assert ganbench.diagnose(run_dir).run_id == run.api_run.run_id  # a run folder names its run
    with pytest.raises(GanbenchError, match="no mlflow_run_id"):
        ganbench.diagnose(run_dir.parent)


def test_report_frame_has_the_rows_of_ganbench_report(run, tmp_path, capsys):
    board = ganbench.report(run.protocol)
    frame = board.to_frame()
    assert main(["report", "--protocol", run.protocol, "--out", str(tmp_path)]) == 0
    table = [line for line in (tmp_path / "ring-cli" / "README.md").read_text().splitlines()
             if line.startswith("| 1 |")]
    assert len(table) == 1 and f"| {frame.loc[0, 'model']} |" in table[0]
    # the headline metric's mean over seeds, against the values MLflow holds for each run
    metric = board.boards[0].metrics[0][0]
    values = [Tracker().get(r).data.metrics[metric] for r in run.cli_runs.values()]
    assert frame.loc[0, metric] == pytest.approx(np.mean(values), rel=1e-12)
    assert frame.loc[0, f"{metric}_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-9)
    assert frame.loc[0, "seeds"] == 2 and frame.loc[0, "runs"] == 2
    md = ganbench.report(run.protocol, out=tmp_path / "api").markdown.read_text()
    assert sum(line.startswith("| 1 |") for line in md.splitlines()) == 1  # one ranked table, one first place
    with pytest.raises(GanbenchError, match="no tracked runs of protocol 'nothing-here'"):
        ganbench.report("nothing-here")


def test_api_functions_and_stage_packages_have_distinct_names():
    """ganbench.train/diagnose/report are the API's functions; the stages' packages are training, diagnosis and
    reporting, so importing a stage never rebinds an API name."""
    import ganbench.diagnosis.detectors  # noqa: F401
    import ganbench.reporting.leaderboard  # noqa: F401
    import ganbench.training.loop  # noqa: F401

    assert ganbench.train is ganbench.api.train and ganbench.diagnose is ganbench.api.diagnose
    assert ganbench.report is ganbench.api.report


# --------------------------------------------------------------------------- what the other commands do


def test_evaluate_files_is_ganbench_eval_and_evaluate(eval_protocol, images, tmp_path):
    """Files as `ganbench eval` names them give the numbers of the same images in memory; exactly one source."""
    proto = eval_protocol(n=200, metrics=("fid",), name="apifiles")
    npz = tmp_path / "s.npz"
    np.savez(npz, samples=images.numpy())
    from_file = ganbench.api.evaluate_files(proto, samples=npz, device="cpu")
    in_memory = ganbench.evaluate(images, proto, device="cpu")
    assert from_file["domain_fid_200_test"] == in_memory["domain_fid_200_test"]
    assert from_file.identity == in_memory.identity and from_file.run_id is None  # not tracked unless asked
    assert from_file.source == f"samples:{npz}" and from_file.protocol == "apifiles"
    with pytest.raises(GanbenchError, match="exactly one of"):
        ganbench.api.evaluate_files(proto, device="cpu")


def test_run_sample_and_interpolate_are_the_commands(run, tmp_path, capsys):
    """`ganbench run` is ``api.run`` (a finished run again: left as it is by --resume), and `ganbench sample` /
    `interpolate` are ``api.sample`` / ``api.interpolate``: the same samples and errors from a Run or its id."""
    (again,) = ganbench.api.run(run.protocol, ["gan-mlp2d"], [0], device="cpu", resume=True,
                                overrides={"optim_d.lr": LR})
    assert again.ok and again.run_id == run.cli_runs[0]
    assert main(["sample", run.cli_runs[0], "--n", "16", "--seed", "3", "--npz", "--out", str(tmp_path / "c.png")]) == 0
    got = ganbench.api.sample(again, 16, seed=3, npz=True, out=tmp_path / "a.png")
    assert np.array_equal(np.load(got.npz)["points"], np.load(tmp_path / "c.npz")["points"])
    capsys.readouterr()
    assert main(["interpolate", run.cli_runs[0]]) == 2  # a 2D mixture has no image grid to interpolate in
    assert "interpolate draws image grids" in capsys.readouterr().err
    with pytest.raises(GanbenchError, match="interpolate draws image grids"):
        ganbench.api.interpolate(again)
