"""ganbench reproduce: tiers of tiny 2D-mixture protocols against a real MLflow SQLite store and real runs.

What is checked against what: run counts and states against the MLflow store read directly; estimates against
the wall and evaluation times the finished runs logged; a continued attempt against an uninterrupted run of the
same protocol; the shipped tiers file against the issue's list of published cells."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

import ganbench.pipeline.measure as measure_module
import ganbench.pipeline.run as run_module
from ganbench import api
from ganbench.cli import main
from ganbench.core.errors import GanbenchError
from ganbench.core.track import TAG_MODEL, TAG_PROTOCOL_HASH, TAG_SEED, TAG_SHARED_HASH, Tracker, tracking_uri
from ganbench.pipeline import reproduce
from ganbench.pipeline.sweep import expand
from ganbench.spec.protocol import load_protocol, resolve

REPO = Path(__file__).resolve().parent.parent

RING = """
description = "tiny 2D mixture protocol for reproduce tests"
models = ["gan-mlp2d", "wgan-gp-mlp2d"]
seeds = [0]

[data]
dataset = "ring8"
subset = {subset}
subset_seed = 0
image_size = 0
channels = 2

[train]
epochs = {epochs}
batch_size = 256
check_every = 25

[eval]
num_samples = 200
metrics = ["modes2d"]
"""


@pytest.fixture(autouse=True)
def _one_thread(one_thread_module):
    """Short runs on a shared 2-core machine (see conftest.one_thread_module)."""


def ring(folder: Path, name: str, epochs: int = 1, subset: int = 1280) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(RING.format(epochs=epochs, subset=subset))
    return path


def tiers_file(folder: Path, *entries: str, tier: str = "cpu") -> Path:
    """A tiers file of ``entries`` (TOML bodies of [[tier]] tables)."""
    path = folder / "tiers.toml"
    path.write_text("".join(f"[[{tier}]]\n{body.strip()}\n\n" for body in entries))
    return path


def active_runs(experiment: str, view=ViewType.ACTIVE_ONLY) -> dict[tuple, list]:
    """(model, seed) -> the MLflow runs of that cell, read from the store directly."""
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    out: dict[tuple, list] = {}
    for run in client.search_runs([exp.experiment_id], run_view_type=view, max_results=1000):
        out.setdefault((run.data.tags[TAG_MODEL], int(run.data.tags[TAG_SEED])), []).append(run)
    return out


def cost(run) -> float:
    """What a finished run says it took: training wall time plus evaluation time."""
    return run.data.metrics["wall_time_s"] + run.data.metrics["eval_time_s"]


def kill_after_first_epoch(monkeypatch) -> None:
    """The next run dies right after its epoch-1 checkpoint (as tests/test_run_tracking.py simulates it):
    the per-epoch scatter raises KeyboardInterrupt once, the run's MLflow run is left `stopped`."""
    scatter = run_module.scatter_2d

    def killed_once(*args, **kwargs):
        monkeypatch.setattr(run_module, "scatter_2d", scatter)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "scatter_2d", killed_once)


# --------------------------------------------------------------------------- running a tier


def test_fresh_reproduce_runs_each_cell_once_renders_and_a_second_one_runs_nothing(tmp_path, capsys):
    a, b = ring(tmp_path, "rep-a"), ring(tmp_path, "rep-b")
    tiers = tiers_file(tmp_path, f'protocol = "{a.name}"\nseeds = [0, 1]\nwhy = "both models"',
                       f'protocol = "{b.name}"\nmodels = ["gan-mlp2d"]\nwhy = "one model"')
    out = tmp_path / "reports"
    assert main(["reproduce", "--tier", "cpu", "--tiers", str(tiers), "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "tier cpu: 5 cells; 0 left alone (done, re-evaluated, or trained by another process), 5 to run" in text
    starts = re.findall(r"^\[(\d)/5\] (\S+) (\S+) seed (\d): started; (.*)$", text, re.M)
    assert [s[:4] for s in starts] == [("1", "rep-a", "gan-mlp2d", "0"), ("2", "rep-a", "gan-mlp2d", "1"),
                                       ("3", "rep-a", "wgan-gp-mlp2d", "0"), ("4", "rep-a", "wgan-gp-mlp2d", "1"),
                                       ("5", "rep-b", "gan-mlp2d", "0")]
    assert starts[0][4].startswith("time left unknown (this cell unknown: no finished run")
    # After seed 0 finished, seed 1 (same identity) is estimated from it; wgan-gp from gan-mlp2d, unscaled.
    assert "this cell" in starts[1][4] and "1 finished run of this identity" in starts[1][4]
    assert "2 finished runs of gan-mlp2d under this protocol identity, not scaled to wgan-gp-mlp2d" in starts[2][4]
    assert "5 cells (0 skipped, 0 re-evaluated, 5 ran, 0 retried); 0 not finished" in text
    for name in ("rep-a", "rep-b"):
        report = (out / name / "README.md").read_text()
        assert "gan-mlp2d" in report and (out / name / "index.html").is_file()
        assert f"report {name}: {out / name / 'README.md'}" in text
    assert "wgan-gp-mlp2d" in (out / "rep-a" / "README.md").read_text()
    first = {k: [r.info.run_id for r in v] for k, v in active_runs("ganbench/rep-a").items()}

    # Again: nothing runs, every cell is skipped, the store keeps exactly one run per cell.
    assert main(["reproduce", "--tier", "cpu", "--tiers", str(tiers), "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "tier cpu: 5 cells; 5 left alone (done, re-evaluated, or trained by another process), 0 to run" in text and "started" not in text
    assert "5 cells (5 skipped, 0 re-evaluated, 0 ran, 0 retried); 0 not finished" in text
    for experiment, cells in (("ganbench/rep-a", 4), ("ganbench/rep-b", 1)):
        runs = active_runs(experiment, ViewType.ALL)
        assert len(runs) == cells and all(len(r) == 1 and r[0].info.status == "FINISHED" for r in runs.values())
    assert {k: [r.info.run_id for r in v] for k, v in active_runs("ganbench/rep-a").items()} == first


def test_a_killed_cell_is_continued_from_its_checkpoint_and_ends_as_an_uninterrupted_run(tmp_path, monkeypatch):
    path = ring(tmp_path, "rep-kill", epochs=3, subset=1280)
    tiers = tiers_file(tmp_path, f'protocol = "{path.name}"\nmodels = ["gan-mlp2d"]\nwhy = "killed once"')
    kill_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        reproduce.run("cpu", tiers=tiers, device="cpu", progress=False, say=lambda line: None)
    (killed,) = active_runs("ganbench/rep-kill")[("gan-mlp2d", 0)]
    assert killed.info.status == "KILLED"
    (cell,) = reproduce.plan("cpu", tiers=tiers).cells
    assert (cell.state, cell.epoch, cell.run_id) == ("interrupted", 1, killed.info.run_id)

    lines: list[str] = []
    result = reproduce.run("cpu", tiers=tiers, device="cpu", progress=False, say=lines.append)
    assert lines[1].startswith("[1/1] rep-kill gan-mlp2d seed 0: continued from epoch 1;"), lines
    (done,) = result.sweep.cells
    assert (done.status, done.action, done.run_id) == ("finished", "retried", killed.info.run_id) and result.ok
    (run,) = active_runs("ganbench/rep-kill", ViewType.ALL)[("gan-mlp2d", 0)]  # the killed run itself, finished
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"

    # The same protocol under another name, never interrupted: the same records and the same final metrics.
    whole = ring(tmp_path, "rep-whole", epochs=3, subset=1280)
    (alone,) = expand([str(whole)], ["gan-mlp2d"], [0])
    (uninterrupted,) = run_module.run_protocol(str(whole), ["gan-mlp2d"], [0], "cpu", progress=False)
    records = [pd.read_parquet(Path(d) / "records.parquet") for d in (done.run_dir, uninterrupted.run_dir)]
    timing = [c for c in records[0].columns if "time" in c]  # wall-clock columns differ between any two runs
    pd.testing.assert_frame_equal(records[0].drop(columns=timing), records[1].drop(columns=timing), check_exact=True)
    assert alone.identity.parts["model"] == expand([str(path)], ["gan-mlp2d"], [0])[0].identity.parts["model"]
    modes = [k for k in run.data.metrics if k.startswith("modes")]
    assert modes and {k: run.data.metrics[k] for k in modes} == {k: uninterrupted.metrics[k] for k in modes}


def test_a_failed_cell_exits_1_still_renders_and_is_run_again_next_time(tmp_path, monkeypatch, capsys):
    path = ring(tmp_path, "rep-fail")
    tiers = tiers_file(tmp_path, f'protocol = "{path.name}"\nwhy = "one cell fails once"')
    evaluate = measure_module.evaluate

    def broken_once(*args, **kwargs):  # an induced fault in the first cell's evaluation
        monkeypatch.setattr(measure_module, "evaluate", evaluate)
        raise RuntimeError("induced evaluation fault")

    monkeypatch.setattr(measure_module, "evaluate", broken_once)
    out = tmp_path / "reports"
    args = ["reproduce", "--tier", "cpu", "--tiers", str(tiers), "--out", str(out), "--device", "cpu"]
    assert main(args) == 1
    text = capsys.readouterr().out
    assert re.search(r"^rep-fail gan-mlp2d seed 0 +failed +ran", text, re.M), text
    assert "RuntimeError: induced evaluation fault" in text and "1 not finished" in text
    assert "wgan-gp-mlp2d" in (out / "rep-fail" / "README.md").read_text()  # what finished is rendered
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "tier cpu: 2 cells; 1 left alone (done, re-evaluated, or trained by another process), 1 to run" in text and "[1/1] rep-fail gan-mlp2d seed 0: started" in text


# --------------------------------------------------------------------------- the plan


def test_plan_reports_states_and_estimates_from_the_store(tmp_path, monkeypatch, capsys):
    path = ring(tmp_path, "rep-plan", epochs=2)
    tiers = tiers_file(tmp_path, f'protocol = "{path.name}"\nseeds = [0, 1, 2]\nwhy = "every state"')
    specs = {(s.model.name, s.seed): s for s in expand([str(path)], seeds=[0, 1, 2])}
    run_module.run_protocol(str(path), ["gan-mlp2d"], [0], "cpu", progress=False)  # finished
    kill_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):  # interrupted after epoch 1 of 2
        run_module.run_protocol(str(path), ["gan-mlp2d"], [1], "cpu", progress=False)
    spec = specs[("wgan-gp-mlp2d", 1)]  # a diverged run: a result, not retried (see reproduce.DONE)
    tracker = Tracker()
    diverged = tracker.start("ganbench/rep-plan", "wgan-gp-mlp2d-seed1", {},
                             {TAG_PROTOCOL_HASH: spec.protocol_hash, TAG_SHARED_HASH: spec.identity.shared_hash,
                              TAG_MODEL: "wgan-gp-mlp2d", TAG_SEED: "1"})
    tracker.end(diverged, "diverged", "non-finite loss")

    cells = {(c.model, c.seed): c for c in reproduce.plan("cpu", tiers=tiers).cells}
    runs = active_runs("ganbench/rep-plan")
    (finished,) = runs[("gan-mlp2d", 0)]
    assert (cells[("gan-mlp2d", 0)].state, cells[("gan-mlp2d", 0)].run_id) == ("finished", finished.info.run_id)
    assert (cells[("wgan-gp-mlp2d", 1)].state, cells[("wgan-gp-mlp2d", 1)].run_id) == ("diverged", diverged)
    interrupted = cells[("gan-mlp2d", 1)]
    assert (interrupted.state, interrupted.epoch, interrupted.epochs) == ("interrupted", 1, 2)
    # Estimates: a todo cell of the same identity needs what the finished run took; the interrupted one half
    # its training time (1 of 2 epochs left) and the whole evaluation; another model, the same, unscaled.
    wall, evaluation = finished.data.metrics["wall_time_s"], finished.data.metrics["eval_time_s"]
    assert cells[("gan-mlp2d", 2)].state == "todo"
    assert cells[("gan-mlp2d", 2)].estimate_s == pytest.approx(cost(finished), rel=1e-12)
    assert cells[("gan-mlp2d", 2)].estimate_from == "1 finished run of this identity"
    assert interrupted.estimate_s == pytest.approx(wall / 2 + evaluation, rel=1e-12)
    other = cells[("wgan-gp-mlp2d", 0)]
    assert other.state == "todo" and other.estimate_s == pytest.approx(cost(finished), rel=1e-12)
    assert other.estimate_from.endswith("of gan-mlp2d under this protocol identity, not scaled to wgan-gp-mlp2d")
    assert all(c.protocol_hash == specs[(c.model, c.seed)].protocol_hash for c in cells.values())

    assert main(["reproduce", "--tier", "cpu", "--tiers", str(tiers), "--plan"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^rep-plan gan-mlp2d seed 1 +interrupted at epoch 1/2 ", text, re.M), text
    assert "6 cells, 2 done, 4 to run, about " in text
    assert list(runs) == list(active_runs("ganbench/rep-plan"))  # --plan ran nothing

    # Another budget is another identity: every cell is todo again, with nothing to estimate from.
    path.write_text(path.read_text().replace("epochs = 2", "epochs = 3"))
    changed = reproduce.plan("cpu", tiers=tiers).cells
    assert [c.state for c in changed] == ["todo"] * 6 and all(c.estimate_s is None for c in changed)
    assert {c.protocol_hash for c in changed}.isdisjoint(s.protocol_hash for s in specs.values())


# --------------------------------------------------------------------------- the tiers file


BAD_ENTRIES = {  # entry body -> what the error must say (besides the file and the entry)
    'protocol = "no-such-protocol"\nwhy = "x"': "Unknown protocol 'no-such-protocol'",
    'protocol = "ring8"\nmodels = ["dcgan"]\nwhy = "x"': "model 'dcgan' is not part of protocol 'ring8'",
    'protocol = "ring8"\nseeds = [-1]\nwhy = "x"': "seeds must be a non-empty list of distinct integers >= 0",
    'protocol = "ring8"\nseeds = [0, 0]\nwhy = "x"': "seeds must be a non-empty list of distinct integers >= 0",
    'protocol = "ring8"\nseeds = ["0"]\nwhy = "x"': "seeds must be a non-empty list of distinct integers >= 0",
    'protocol = "ring8"\nseed = [0]\nwhy = "x"': "unknown key(s) seed",
    'protocol = "ring8"': "missing why",
    'protocol = "ring8"\nwhy = "x"\nconcurrent_seeds = "yes"': "concurrent_seeds must be a bool",
}


@pytest.mark.parametrize("body", list(BAD_ENTRIES))
def test_a_bad_entry_names_the_file_and_the_entry(tmp_path, body, capsys):
    tiers = tiers_file(tmp_path, 'protocol = "ring8"\nmodels = ["gan-mlp2d"]\nwhy = "fine"', body)
    with pytest.raises(GanbenchError) as err:
        reproduce.load_tiers(tiers)
    assert f"{tiers}: [[cpu]] entry 2" in str(err.value) and BAD_ENTRIES[body] in str(err.value), str(err.value)
    assert main(["reproduce", "--tier", "cpu", "--tiers", str(tiers), "--plan"]) == 2  # no traceback, exit 2
    assert "[[cpu]] entry 2" in capsys.readouterr().err


def test_bad_files_duplicates_and_unknown_tiers_are_refused(tmp_path):
    dup = tiers_file(tmp_path, 'protocol = "ring8"\nseeds = [0, 1]\nwhy = "a"', 'protocol = "ring8"\nseeds = [1]\nwhy = "b"')
    with pytest.raises(GanbenchError, match=r"entry 2 \(protocol 'ring8'\) lists ring8 gan-mlp2d seed 1, which "
                                            r"\[\[cpu\]\] entry 1 \(protocol 'ring8'\) lists already"):
        reproduce.load_tiers(dup)
    good = tiers_file(tmp_path, 'protocol = "ring8"\nwhy = "a"')
    with pytest.raises(GanbenchError, match=r"unknown tier 'gpu' in .*; its tiers: cpu"):
        reproduce.plan("gpu", tiers=good)
    broken = tmp_path / "broken.toml"
    broken.write_text("[[cpu]\nprotocol = ")
    with pytest.raises(GanbenchError, match=rf"{re.escape(str(broken))}: not valid TOML"):
        reproduce.load_tiers(broken)
    broken.write_text('cpu = "ring8"\n')
    with pytest.raises(GanbenchError, match=r"'cpu' is not a tier: write each of its cells as a \[\[cpu\]\] table"):
        reproduce.load_tiers(broken)
    with pytest.raises(GanbenchError, match="does not exist; pass --tiers FILE"):
        reproduce.load_tiers(tmp_path / "missing.toml")


# The cells the issues ask to publish (issue 22; issue 31: fashion-50ep at three seeds a side), written out
# independently of reports/tiers.toml, in the order they run (cheap cells and the gate's baseline first, then the fashion-50ep headline):
# protocol -> (models, or None for every model of the protocol; seeds).
CPU_TIER = {"fashion-smoke": (["dcgan"], [0, 1, 2]), "ring8": (None, [0, 1, 2]), "grid25": (None, [0, 1, 2]),
            "edges2fashion-smoke": (None, [0]), "mnist-a2b-smoke": (None, [0]), "fashion-failures": (None, [0]),
            "fashion-50ep": (["dcgan", "wgan-gp"], [0, 1, 2]),
            "fashion-zoo-smoke": (None, [0, 1, 2]), "stacked-mnist-cpu": (["dcgan", "wgan-gp"], [0]),
            "edges2fashion": (None, [0]), "mnist-a2b": (None, [0]),
            "fashion32-3ep": (["progan-lite", "stylegan-lite"], [0])}
GPU_TIER = {"fashion-50ep": (["dcgan", "wgan-gp"], [0, 1, 2]), "stacked-mnist": (None, [0, 1, 2]),
            "fashion-zoo-50ep": (None, [0, 1, 2]), "fashion64-25ep": (None, [0, 1, 2]), "fashion32": (None, [0, 1, 2])}


def test_the_shipped_tiers_file_publishes_the_issues_cells_and_every_one_resolves():
    book = reproduce.load_tiers()
    assert book.path == REPO / "reports" / "tiers.toml" and set(book.tiers) == {"cpu", "gpu"}
    for tier, expected in (("cpu", CPU_TIER), ("gpu", GPU_TIER)):
        wanted = expected
        entries = book.entries(tier)
        assert [e.protocol for e in entries] == list(wanted), tier
        for entry in entries:
            models, seeds = wanted[entry.protocol]
            proto = load_protocol(entry.protocol)
            cells = resolve(proto, "0" * 64, entry.models and list(entry.models), list(entry.seeds or proto.seeds))
            assert {(s.model.name, s.seed) for s in cells} == {(m, s) for m in models or proto.models for s in seeds}
            assert entry.why and entry.concurrent_seeds == (tier == "gpu")


def test_api_plan_only_runs_nothing(tmp_path):
    path = ring(tmp_path, "rep-api")
    tiers = tiers_file(tmp_path, f'protocol = "{path.name}"\nwhy = "plan only"')
    out = api.reproduce("cpu", plan_only=True, tiers=tiers, out=tmp_path / "reports")
    assert out.result is None and not out.ok and [c.state for c in out.plan.cells] == ["todo", "todo"]
    assert not (tmp_path / "reports").exists()
    assert MlflowClient(tracking_uri()).get_experiment_by_name("ganbench/rep-api") is None


def test_concurrent_entries_train_each_models_seeds_together_unless_overridden(tmp_path):
    path = ring(tmp_path, "rep-together")
    tiers = tiers_file(tmp_path, f'protocol = "{path.name}"\nseeds = [0, 1]\nconcurrent_seeds = true\nwhy = "together"')
    pairs = reproduce.cell_specs(reproduce.load_tiers(tiers).entries("cpu"))
    cells = [(s.model.name, s.seed) for s, _ in pairs]
    assert [[cells[i] for i in u] for u in reproduce.units(pairs, range(4), None)] == [cells[:2], cells[2:]]
    assert reproduce.units(pairs, [1, 3], None) == [[1], [3]]  # only what is left of each group
    assert reproduce.units(pairs, range(4), False) == [[0], [1], [2], [3]]  # --no-concurrent-seeds
    result = reproduce.run("cpu", tiers=tiers, device="cpu", progress=False, say=lambda line: None)
    assert result.ok and [c.action for c in result.sweep.cells] == ["ran"] * 4
    client = MlflowClient(tracking_uri())
    assert {client.get_run(c.run_id).data.params["concurrent_seeds"] for c in result.sweep.cells} == {"2"}


# --------------------------------------------------------------------------- a changed evaluation

GARMENTS = """
description = "tiny image protocol whose evaluation grows"
models = ["dcgan"]
seeds = [0, 1]

[data]
dataset = "fashion-mnist"
subset = 256

[train]
epochs = 1
batch_size = 32
check_every = 4

[eval]
num_samples = 200
extractor = "domain"
metrics = {metrics}
grid_size = 4
"""


def test_a_metric_added_to_the_protocol_re_evaluates_the_finished_runs_and_trains_nothing(tmp_path, capsys):
    """The issue's case at tiny scale: runs trained and evaluated; a metric added to the protocol's evaluation;
    ``reproduce`` then measures the same final weights again (the old numbers come out again, the new metric is
    there), trains nothing (no new run, training records and times untouched) and keeps the replaced numbers."""
    path = tmp_path / "grow.toml"
    path.write_text(GARMENTS.format(metrics='["fid"]'))
    tiers = tiers_file(tmp_path, f'protocol = "{path.name}"\nwhy = "its evaluation grows"')
    args = ["reproduce", "--tier", "cpu", "--tiers", str(tiers), "--out", str(tmp_path / "reports"), "--device", "cpu"]
    assert main(args) == 0
    before = {k: v[0] for k, v in active_runs("ganbench/grow").items()}
    old = resolve(load_protocol(str(path)), None)[0].identity
    assert {r.data.tags["ganbench.eval_hash"] for r in before.values()} == {old.eval_hash}
    capsys.readouterr()

    path.write_text(GARMENTS.format(metrics='["fid", "kid"]'))
    new = resolve(load_protocol(str(path)), None)[0].identity
    assert new.hash == old.hash and new.eval_hash != old.eval_hash
    (cell, other) = reproduce.plan("cpu", tiers=tiers).cells
    assert cell.state == other.state == "re-evaluate" and cell.run_id == before[("dcgan", 0)].info.run_id
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "started" not in text and "2 cells (0 skipped, 2 re-evaluated, 0 ran, 0 retried)" in text
    assert re.search(rf"grow dcgan seed 0: re-evaluated \({old.eval_hash[:12]} -> {new.eval_hash[:12]}", text)
    after = {k: v for k, v in active_runs("ganbench/grow", ViewType.ALL).items()}
    assert {k: [r.info.run_id for r in v] for k, v in after.items()} == \
        {k: [r.info.run_id] for k, r in before.items()}  # the same runs, no new one
    client = MlflowClient(tracking_uri())
    for key, run in before.items():
        now = client.get_run(run.info.run_id)
        assert now.data.tags["ganbench.eval_hash"] == new.eval_hash
        assert now.data.tags["ganbench.protocol_hash"] == run.data.tags["ganbench.protocol_hash"]
        fid = "domain_fid_200_test"
        assert now.data.metrics[fid] == pytest.approx(run.data.metrics[fid], rel=1e-9)  # the same weights measured
        assert "domain_kid_200_test" in now.data.metrics and "domain_kid_200_test" not in run.data.metrics
        for kept in ("wall_time_s", "final_d_loss", "images_seen"):  # training's numbers untouched
            assert now.data.metrics[kept] == run.data.metrics[kept]
        arts = [a.path for a in client.list_artifacts(run.info.run_id, "evaluations")]
        assert arts == [f"evaluations/{old.eval_hash[:12]}.json"]
    assert main(args) == 0  # and now nothing at all is left to do
    assert "2 cells (2 skipped, 0 re-evaluated, 0 ran, 0 retried)" in capsys.readouterr().out
    assert main(["reevaluate", "--protocol", str(path), "--device", "cpu"]) == 0
    assert "2 finished runs: 0 re-evaluated, 2 already current" in capsys.readouterr().out
