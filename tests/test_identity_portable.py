"""Identities are portable: computed on any machine, from a fresh ganbench home, they are those the published
reports and baselines name, and they do not depend on which route brought the Inception weights, only on
whether the features are the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganbench.extractors import inception
from ganbench.spec.protocol import available, evaluation_assets, identity, load_model, load_protocol

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "identities.json"


def shipped_identities() -> dict[str, dict[str, str]]:
    """"protocol/model" -> training, shared and evaluation hashes of every shipped pair."""
    out = {}
    for name in available("protocols"):
        proto = load_protocol(name)
        assets = evaluation_assets(proto)
        for model in proto.models:
            ident = identity(proto, load_model(model), assets)
            out[f"{name}/{model}"] = {"hash": ident.hash, "shared_hash": ident.shared_hash, "eval_hash": ident.eval_hash}
    return out


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """An empty ganbench home and cache, as on a machine that has fetched nothing."""
    for var, sub in (("GANBENCH_HOME", "home"), ("GANBENCH_CACHE", "cache")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ("GANBENCH_INCEPTION_WEIGHTS", "GANBENCH_DOMAIN_WEIGHTS", "GANBENCH_PROTOCOLS_PATH", "GANBENCH_ZOO_PATH"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_every_shipped_identity_is_computed_from_pins_alone_and_stays_what_it_was(fresh_home):
    """From an empty home nothing is read or fetched (the weights' identity parts are pins of the package), and
    every shipped (protocol, model) has the identity recorded in tests/golden/identities.json: a change there is
    a deliberate re-identification (regenerate the file and say so), never a machine's doing."""
    now = shipped_identities()
    assert not any(p.is_file() for p in fresh_home.rglob("*"))  # nothing was fetched, trained or cached
    assert now == json.loads(GOLDEN.read_text())


def _published() -> list[tuple[str, str, str, str, str]]:
    """(where, protocol, model, training identity, evaluation identity) of every published row and baseline."""
    rows = []
    for board_file in sorted((REPO / "reports").glob("*/leaderboard.json")):
        data = json.loads(board_file.read_text())
        for board in data["boards"][:1]:  # the newest identity is the published one; older boards are history
            for m in board["models"]:
                rows.append((str(board_file.relative_to(REPO)), data["protocol"], m["model"], m["identity"],
                             board.get("eval_identity", "")))
            for r in board["runs"]:
                rows.append((f"{board_file.relative_to(REPO)} run {r['run_id']}", data["protocol"], r["model"],
                             r["identity"], r.get("eval_identity") or ""))
    for base in sorted((REPO / "baselines").glob("*.json")):
        data = json.loads(base.read_text())
        for model, m in data["models"].items():
            rows.append((str(base.relative_to(REPO)), data["protocol"], model, m["identity"], m.get("eval_identity", "")))
    return rows


def test_published_reports_and_baselines_name_the_identities_any_machine_computes(fresh_home):
    rows = _published()
    assert rows, "no published leaderboard or baseline found"
    now = shipped_identities()
    wrong = [f"{where}: {proto}/{model} training {trained[:12]} evaluation {evaluated[:12] or '-'}, computed here "
             f"{now[f'{proto}/{model}']['hash'][:12]} / {now[f'{proto}/{model}']['eval_hash'][:12]}"
             for where, proto, model, trained, evaluated in rows
             if (trained, evaluated) != (now[f"{proto}/{model}"]["hash"], now[f"{proto}/{model}"]["eval_hash"])]
    assert not wrong, "\n".join(wrong)


def test_the_inception_identity_follows_the_features_not_the_route(tmp_path, monkeypatch):
    """The same pool3 weights under other file bytes (another route, or packaging) give the same identity part
    as the pinned conversion; one changed tensor gives another."""
    converted = inception.inception_weights(allow_fetch=False)  # set-up fetched it
    pinned = inception.weights_identity()
    state = torch.load(converted.path, map_location="cpu", weights_only=True)
    same = tmp_path / "repacked.pth"
    torch.save(dict(reversed(list(state.items()))), same)  # other bytes, same tensors
    assert same.read_bytes() != converted.path.read_bytes()
    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", str(same))
    assert inception.weights_identity() == pinned
    first = next(k for k in state if k.endswith("conv.weight"))
    state[first] = state[first] * 1.01
    other = tmp_path / "other.pth"
    torch.save(state, other)
    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", str(other))
    assert inception.weights_identity() != pinned
    # torch-fidelity's own download (pinned by its SHA-256 prefix) is the same network: the same part
    official = inception.Weights(Path("weights-inception-2015-12-05-6726825d.pth"), "torch-fidelity", "f" * 64, True)
    assert inception.identity_sha256(official) == pinned
