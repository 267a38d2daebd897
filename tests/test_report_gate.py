"""The regression gate compares runs with a baseline only under equal identity, per model, and says
which parts of the identity differ when it refuses; format-1 baselines are migrated only when their
stored hash still holds. Runs here are real MLflow runs written through the tracker (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganbench.core import track
from ganbench.cli import main
from ganbench.core.errors import GanbenchError
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.reporting.gate import check, load_baseline, migrate_baseline, save_baseline

from test_protocol_identity import W, card_copy, protocol_copy

REPO = Path(__file__).resolve().parent.parent
FID = "fid_256_test"


def log_run(tracker: track.Tracker, spec, value: float) -> str:
    """A finished run of ``spec`` as ``ganbench run`` tags it, with one FID value."""
    tags = {track.TAG_PROTOCOL: spec.protocol.name, **track.identity_tags(spec.identity),
            track.TAG_MODEL: spec.model.name, track.TAG_SEED: str(spec.seed)}
    run_id = tracker.start(track.experiment_name(spec.protocol.name), f"{spec.model.name}-seed{spec.seed}", {}, tags)
    tracker.log_metrics(run_id, {FID: value})
    tracker.set_tags(run_id, {f"ganbench.metric.{FID}": "extractor=x higher_is_better=False"})
    tracker.end(run_id, "finished")
    return run_id


@pytest.fixture
def gated(tmp_path, monkeypatch):
    """A baseline of dcgan seeds 0-2 and one new dcgan run made after its card changed."""
    path = protocol_copy(tmp_path, "p")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = track.Tracker(uri)
    old = resolve(load_protocol(path), W, ["dcgan"], [0, 1, 2, 3])
    base_ids = [log_run(tracker, s, v) for s, v in zip(old[:3], (400.0, 410.0, 405.0))]
    save_baseline(base_ids, tmp_path / "base.json", uri)
    same = log_run(tracker, old[3], 404.0)
    card_copy(tmp_path / "zoo", "dcgan", "lr = 2e-4", "lr = 1e-4")
    monkeypatch.setenv("GANBENCH_ZOO_PATH", str(tmp_path / "zoo"))
    (new,) = resolve(load_protocol(path), W, ["dcgan"], [3])
    changed = log_run(tracker, new, 404.0)
    return {"uri": uri, "baseline": tmp_path / "base.json", "same": same, "changed": changed, "spec": old[0]}


def test_baseline_stores_each_models_identity_and_parts(gated):
    data = load_baseline(gated["baseline"])
    spec = gated["spec"]
    assert data["models"]["dcgan"]["identity"] == spec.protocol_hash
    assert data["models"]["dcgan"]["identity_parts"] == spec.identity.parts
    assert data["protocol_hash"] == spec.identity.board_hash
    assert data["models"]["dcgan"]["eval_identity"] == spec.identity.eval_hash
    assert data["models"]["dcgan"]["eval_identity_parts"] == spec.identity.eval_parts


def test_gate_refuses_runs_evaluated_under_another_evaluation_and_names_reevaluate(gated, tmp_path, monkeypatch):
    """Runs of the baseline's training identity whose numbers come from another evaluation (a metric added to the
    protocol since) are not gated against it: the error says what changed and that re-evaluation fixes it."""
    spec = gated["spec"]
    monkeypatch.delenv("GANBENCH_ZOO_PATH")  # the baseline's card
    path = protocol_copy(tmp_path / "more", "p", metrics='["fid", "kid", "fid@domain", "memorisation"]')
    (more,) = resolve(load_protocol(path), W, ["dcgan"], [4])
    assert more.protocol_hash == spec.protocol_hash and more.identity.eval_hash != spec.identity.eval_hash
    run = log_run(track.Tracker(gated["uri"]), more, 404.0)
    with pytest.raises(GanbenchError, match=r"trained under the baseline's identity .* evaluated under another "
                                            r"evaluation \(protocol's evaluation changed.*ganbench reevaluate --protocol p"):
        check([run], gated["baseline"], gated["uri"])


def test_gate_refuses_another_identity_and_says_the_model_card_changed(gated, capsys):
    assert check([gated["same"]], gated["baseline"], gated["uri"]).ok  # equal identity: gated
    with pytest.raises(GanbenchError, match=r"model 'dcgan': no run has the baseline's identity .*: model card changed"):
        check([gated["changed"]], gated["baseline"], gated["uri"])
    assert main(["check", gated["changed"], "--baseline", str(gated["baseline"]), "--tracking-uri", gated["uri"]]) == 2
    assert "model card changed" in capsys.readouterr().err
    allowed = check([gated["changed"]], gated["baseline"], gated["uri"], allow_protocol_change=True)
    assert "dcgan (model card changed): changed since the baseline" in allowed.table()


def test_a_baseline_of_several_models_keeps_only_the_metrics_each_model_logged(tmp_path):
    """A conditional model logs a metric the unconditional one does not: the unconditional model's entry must
    not list it, or every later check of that model fails on a metric it can never have."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = track.Tracker(uri)
    specs = resolve(load_protocol(protocol_copy(tmp_path, "p", models=["dcgan", "cdcgan"])), W, ["dcgan", "cdcgan"],
                    [0, 1, 2, 3])
    ids = {}
    for spec in specs:
        run_id = log_run(tracker, spec, 400.0 + spec.seed)
        if spec.model.name == "cdcgan":
            tracker.log_metrics(run_id, {"label_acc": 0.5 + spec.seed / 100})
            tracker.set_tags(run_id, {"ganbench.metric.label_acc": "extractor=x higher_is_better=True"})
        ids[spec.model.name, spec.seed] = run_id
    data = save_baseline([ids[m, s] for m in ("dcgan", "cdcgan") for s in (0, 1, 2)], tmp_path / "base.json", uri)
    assert set(data["models"]["dcgan"]["metrics"]) == {FID}
    assert set(data["models"]["cdcgan"]["metrics"]) == {FID, "label_acc"}
    result = check([ids["dcgan", 3], ids["cdcgan", 3]], tmp_path / "base.json", uri)
    assert {(r.model, r.metric) for r in result.rows} == {("dcgan", FID), ("cdcgan", FID), ("cdcgan", "label_acc")}
    assert result.ok, result.table()


def test_format_1_baseline_is_migrated_when_its_hash_holds_and_refused_otherwise(tmp_path):
    """A format-1 baseline holds one hash over the protocol and all its models (the old formula, written out here
    from today's protocol, cards and Inception weights): migration keeps its numbers and adds today's identities."""
    import dataclasses

    from ganbench.extractors import inception_weights
    from ganbench.spec.identity import model_fields
    from ganbench.spec.protocol import content_hash, load_model, to_plain

    proto = load_protocol("fashion-smoke")
    legacy = to_plain(dataclasses.replace(proto, eval=dataclasses.replace(
        proto.eval, extractor_weights_sha256=inception_weights().features_sha256)))
    legacy.pop("seeds"), legacy.pop("description"), legacy.pop("report")  # fields the old formula never had
    legacy["models"] = {m: model_fields(load_model(m)) for m in proto.models}
    models = {m: {"seeds": [0, 1], "run_ids": ["a", "b"],
                  "metrics": {"fid_256_test": {"higher_is_better": False, "values": [400.0 + i, 410.0 + i]}}}
              for i, m in enumerate(proto.models)}
    old = {"format": 1, "protocol": "fashion-smoke", "protocol_hash": content_hash(legacy), "confidence": 0.99,
           "created": "2026-11-23T13:10:01+00:00", "ganbench": "0.1.0", "models": models}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old, indent=1) + "\n")
    with pytest.raises(GanbenchError, match="format 1.*ganbench baseline migrate"):
        load_baseline(path)
    assert main(["baseline", "migrate", str(path)]) == 0
    migrated = json.loads(path.read_text())
    specs = {s.model.name: s for s in resolve(proto, None, seeds=[0])}
    assert migrated["format"] == 2 and migrated["migrated_from"] == old["protocol_hash"]
    assert {m: d["identity"] for m, d in migrated["models"].items()} == {m: s.protocol_hash for m, s in specs.items()}
    assert {m: d["metrics"] for m, d in migrated["models"].items()} == {m: d["metrics"] for m, d in models.items()}
    load_baseline(path)  # format 2 now
    old["protocol_hash"] = "0" * 64  # numbers of some other condition
    path.write_text(json.dumps(old))
    with pytest.raises(GanbenchError, match="regenerate it"):
        migrate_baseline(path)
    assert json.loads(path.read_text())["format"] == 1  # left as it was


def test_leaderboard_ranks_models_of_one_protocol_identity_and_sets_an_older_card_apart(gated):
    from ganbench.reporting.leaderboard import build_boards

    tracker = track.Tracker(gated["uri"])
    path = protocol_copy(Path(gated["baseline"]).parent / "again", "p")
    (wgan,) = resolve(load_protocol(path), W, ["wgan-gp"], [0])
    log_run(tracker, wgan, 450.0)  # logged after the card change: wgan-gp's identity did not move
    newest, older = build_boards(tracker.search(), "p")
    assert newest.protocol_hash == older.protocol_hash == gated["spec"].identity.board_hash
    assert {r.model: len(r.seeds) for r in newest.rows} == {"dcgan": 1, "wgan-gp": 1}
    assert newest.row("dcgan").identity != gated["spec"].protocol_hash  # the changed card
    assert [(r.model, r.seeds, r.identity) for r in older.rows] == [("dcgan", [0, 1, 2, 3], gated["spec"].protocol_hash)]


def test_targets_and_tests_are_never_ranked_and_are_gated_by_their_kind(tmp_path):
    """C_T is a test (below -3: copying), suspected copies a share tested against its real-vs-real floor, the
    nearest-neighbour distance descriptive and density a target (1): none is a headline metric or a winner, and
    the gate fails a new run by each one's own rule, with the family-wise confidence split over its rows."""
    from ganbench.reporting.leaderboard import build_boards
    from ganbench.reporting.publish import winner_rows

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = track.Tracker(uri)
    specs = resolve(load_protocol(protocol_copy(tmp_path, "p")), W, ["dcgan", "wgan-gp"], [0, 1, 2, 3])
    ct, copies, nn, density = "copying_ct_256_train", "copies_l1_256_train", "nn_l1_256_train", "density_k5_256_test"
    ids = {}
    for spec in specs:
        run_id = log_run(tracker, spec, 400.0 + spec.seed + 50 * (spec.model.name == "wgan-gp"))
        bad = spec.seed == 3 and spec.model.name == "dcgan"  # the new run copies: C_T far below -3, 8 % copies
        values = {ct: -9.0 if bad else 8.0 + spec.seed, copies: 0.08 if bad else 0.004 * (spec.seed % 2),
                  f"{copies}_floor": 0.01, nn: 30.0 + spec.seed, density: 1.0 + 0.05 * spec.seed + (2.0 if bad else 0)}
        tracker.log_metrics(run_id, values)
        ids[spec.model.name, spec.seed] = run_id
    boards = build_boards(tracker.search(), "p")
    (board,) = boards
    assert [n for n, _ in board.metrics] == [FID] and board.others == sorted([ct, copies, nn, density])
    assert [row[1] for row in winner_rows("p", board)] == [FID]
    data = save_baseline([ids[m, s] for m in ("dcgan", "wgan-gp") for s in (0, 1, 2)], tmp_path / "base.json", uri)
    assert {n: v["kind"] for n, v in data["models"]["dcgan"]["metrics"].items()} == {
        FID: "lower", ct: "test", copies: "test", density: "target"}  # the descriptive distance is not gated
    good = check([ids["wgan-gp", 3]], tmp_path / "base.json", uri)
    assert good.ok, good.table()
    assert good.row_confidence == pytest.approx(1 - 0.01 / 4)  # 4 gated rows share the family's 1 %
    bad = check([ids["dcgan", 3]], tmp_path / "base.json", uri)
    failed = {r.metric: r.note for r in bad.rows if not r.passed}
    assert set(failed) == {ct, copies, density}, bad.table()
    assert failed[ct] == "below -3 in 1/1 new seeds" and "binomial p" in failed[copies]


def test_a_check_protocol_publishes_pass_fail_and_ranks_nothing(tmp_path, monkeypatch):
    """fashion-failures-like: a healthy reference and an induced failure whose card expects a finding. The page
    and the index say whether each did what its card expects, from the diagnosis each run logged; no winner row,
    no rank, no DCGAN vs WGAN-GP comparison. A failure the diagnosis missed is a FAIL, not a pass."""
    from ganbench.diagnosis.findings import Diagnosis, Finding, write_diagnosis
    from ganbench.diagnosis.tracked import DIAGNOSIS_FILE
    from ganbench.reporting.publish import publish

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = track.Tracker(uri)
    path = protocol_copy(tmp_path / "protos", "chk", "fashion-failures", models=["dcgan", "fail-weak-d", "fail-oscillate"],
                         seeds="[0, 1]")
    monkeypatch.setenv("GANBENCH_PROTOCOLS_PATH", str(tmp_path / "protos"))
    specs = resolve(load_protocol("chk"), W, None, [0, 1])
    said = {("fail-weak-d", 0): ["g-dominance"], ("fail-weak-d", 1): ["g-dominance", "oscillation"],
            ("fail-oscillate", 0): ["oscillation"], ("fail-oscillate", 1): [], ("dcgan", 0): [], ("dcgan", 1): []}
    for spec in specs:
        run_id = log_run(tracker, spec, 400.0 + spec.seed)
        diag = Diagnosis(tuple(Finding(n, "warning", 1, 5, n) for n in said[spec.model.name, spec.seed]), 10, {})
        (tmp_path / run_id).mkdir()
        tracker.log_artifact(run_id, write_diagnosis(diag, tmp_path / run_id / DIAGNOSIS_FILE))
    out = tmp_path / "reports"
    published = publish([path], out, uri)
    page, index = (out / "chk" / "README.md").read_text(), published.index.read_text()
    assert "This protocol is a check, not a leaderboard" in page
    assert "| fail-weak-d | names g-dominance | 2/2 |" in page and "| pass |" in page
    assert "| fail-oscillate | names oscillation | 1/2 |" in page and page.count("| FAIL |") == 1
    assert "| dcgan | trains, healthy | 2/2 |" in page
    assert "| chk | fail-oscillate | names oscillation | 1/2 |" in index
    assert "| chk | fid_" not in index  # no winner row for a check protocol
    assert not [c for c in published.cases if c.protocol == "chk"]
    assert "| – | dcgan |" in page  # the numbers are there, unranked
