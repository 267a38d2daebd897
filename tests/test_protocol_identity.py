"""A run's identity is that of one (protocol, model) pair, in two parts: the training identity (the protocol's
data and budget, the model's card, the dataset files) names the trained weights; the evaluation identity (the
evaluation recipe and the hashes of every weight and dataset file it reads) names the numbers measured of them.
Nothing else: not the seeds, the description, the other models, nor the machine."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from ganbench.spec.protocol import identity, identity_changes, load_model, load_protocol, resolve

REPO = Path(__file__).resolve().parent.parent
W = "a" * 64


def protocol_copy(folder: Path, name: str, source: str = "fashion-smoke", models: list[str] | None = ("dcgan", "wgan-gp"),
                  **replace: str) -> str:
    """A shipped protocol under another name, with its model list (default: two models) and ``key = value``
    lines replaced."""
    text = (REPO / "protocols" / f"{source}.toml").read_text()
    if models is not None:
        text, n = re.subn(r"(?m)^models = \[.*\]$", "models = " + str(list(models)).replace("'", '"'), text)
        assert n == 1
    for key, value in replace.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text)
    return str(folder / f"{name}.toml")


def card_copy(zoo: Path, model: str, old: str, new: str) -> None:
    """``zoo/<model>.toml`` in another zoo folder with one line changed (GANBENCH_ZOO_PATH comes first)."""
    text = (REPO / "zoo" / f"{model}.toml").read_text()
    assert old in text
    zoo.mkdir(parents=True, exist_ok=True)
    (zoo / f"{model}.toml").write_text(text.replace(old, new, 1))


def idents(path: str, assets=W) -> dict[str, str]:
    return {s.model.name: s.protocol_hash for s in resolve(load_protocol(path), assets, seeds=[0])}


def test_adding_a_model_to_the_protocol_leaves_the_other_models_identities(tmp_path):
    before = idents(protocol_copy(tmp_path / "a", "p"))
    after = idents(protocol_copy(tmp_path / "b", "p", models=["dcgan", "wgan-gp", "lsgan"]))
    assert after["dcgan"] == before["dcgan"] and after["wgan-gp"] == before["wgan-gp"]
    assert len(set(after.values())) == 3  # each model is its own condition


def test_changing_one_card_changes_that_models_identity_only(tmp_path, monkeypatch):
    path = protocol_copy(tmp_path, "p")
    before = resolve(load_protocol(path), W, seeds=[0])
    card_copy(tmp_path / "zoo", "dcgan", "lr = 2e-4", "lr = 1e-4")
    monkeypatch.setenv("GANBENCH_ZOO_PATH", str(tmp_path / "zoo"))
    after = resolve(load_protocol(path), W, seeds=[0])
    assert load_model("dcgan").optim_g.lr == 1e-4  # the changed card is the one in use
    assert after[0].protocol_hash != before[0].protocol_hash and after[1].protocol_hash == before[1].protocol_hash
    assert after[0].identity.changes(before[0].identity) == ["model card changed"]
    assert after[0].identity.shared_hash == before[0].identity.shared_hash  # still one leaderboard


def test_protocol_fields_change_identity_but_seeds_and_description_do_not(tmp_path):
    base = idents(protocol_copy(tmp_path / "a", "p"))
    assert idents(protocol_copy(tmp_path / "b", "p", seeds="[5, 6]", description='"other words"')) == base
    longer = resolve(load_protocol(protocol_copy(tmp_path / "c", "p", epochs="2")), W, seeds=[0])
    assert all(s.protocol_hash != base[s.model.name] for s in longer)
    old = resolve(load_protocol(protocol_copy(tmp_path / "a", "p")), W, seeds=[0])[0].identity
    assert longer[0].identity.changes(old) == ["protocol's training changed (data or budget)"]
    assert longer[0].identity.eval_hash == old.eval_hash  # the same evaluation of other weights


def test_a_changed_evaluation_keeps_the_training_identity(tmp_path):
    """Adding a metric (or changing the sample count) changes what is measured, not what was trained: the
    training identity, the run's folder and cell, stay; the evaluation identity moves."""
    old = resolve(load_protocol(protocol_copy(tmp_path / "a", "p")), W, seeds=[0])
    more = resolve(load_protocol(protocol_copy(tmp_path / "b", "p", metrics='["fid", "kid", "fid@domain", "memorisation"]')),
                   W, seeds=[0])
    fewer = resolve(load_protocol(protocol_copy(tmp_path / "c", "p", num_samples="128")), W, seeds=[0])
    for new in (more, fewer):
        assert [s.protocol_hash for s in new] == [s.protocol_hash for s in old]
        assert [s.identity.shared_hash for s in new] == [s.identity.shared_hash for s in old]
        assert new[0].identity.eval_hash != old[0].identity.eval_hash
        assert new[0].identity.board_hash != old[0].identity.board_hash  # never ranked with the old numbers
        assert new[0].identity.changes(old[0].identity) == [
            "protocol's evaluation changed (metrics, sample count, reference split or curve)"]


def _classifier_sha(dataset: str) -> str:
    """The hash of the shipped classifier's tensors, re-derived from the file here."""
    import hashlib

    path = REPO / "ganbench" / "extractors" / "weights" / f"domain-{dataset}.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)["state"]
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous()
        digest.update(name.encode() + str(tuple(t.shape)).encode() + t.numpy().tobytes())
    return digest.hexdigest()


def test_identity_holds_the_hashes_of_exactly_the_weights_and_data_the_evaluation_reads(tmp_path):
    fid_only = load_protocol(protocol_copy(tmp_path, "fid-only", metrics='["fid"]'))
    spec = resolve(fid_only, None, seeds=[0])[0]
    inception = spec.identity.eval_parts
    assert inception["weights/inception-v3-compat"] == spec.protocol.eval.extractor_weights_sha256
    assert not any(k.startswith("weights/domain") for k in inception)  # no metric reads the domain classifier
    assert not any(k.startswith("weights/") for k in spec.identity.parts)  # training reads no network
    both = resolve(load_protocol("fashion-smoke"), None, seeds=[0])[0].identity.eval_parts  # fid@domain, memorisation
    assert both["weights/domain-fashion-mnist"] == _classifier_sha("fashion-mnist")
    assert both["weights/inception-v3-compat"] == inception["weights/inception-v3-compat"]
    assert inception["data/fashion-mnist/t10k-images-idx3-ubyte"] == spec.identity.parts[
        "data/fashion-mnist/t10k-images-idx3-ubyte"] == \
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"  # the release's published content hash
    domain = resolve(load_protocol("fashion-zoo-smoke"), None, ["dcgan"], [0])[0].identity.eval_parts
    assert domain["weights/domain-fashion-mnist"] == _classifier_sha("fashion-mnist")
    assert "weights/inception-v3-compat" not in domain  # eval.extractor = "domain": no metric reads Inception
    ring = resolve(load_protocol("ring8"), None, seeds=[0])[0].identity
    assert set(ring.parts) == {"training", "model"} and set(ring.eval_parts) == {"evaluation"}  # no file at all
    stacked = resolve(load_protocol("stacked-mnist"), W, seeds=[0])[0].identity
    assert "weights/domain-mnist" in stacked.eval_parts and "data/mnist/train-images-idx3-ubyte" in stacked.parts


@pytest.mark.parametrize("part, words", [
    ("weights/domain-fashion-mnist", "domain classifier weights (fashion-mnist) changed"),
    ("weights/inception-v3-compat", "Inception weights changed"),
    ("data/fashion-mnist/train-images-idx3-ubyte", "dataset file fashion-mnist/train-images-idx3-ubyte changed"),
])
def test_a_changed_weight_or_data_hash_changes_identity_and_says_which(part, words):
    p, m = load_protocol("fashion-zoo-50ep"), load_model("dcgan")
    assets = {"weights/inception-v3-compat": "1" * 64, "weights/domain-fashion-mnist": "2" * 64,
              "data/fashion-mnist/train-images-idx3-ubyte": "3" * 64}
    a, b = identity(p, m, assets), identity(p, m, {**assets, part: "f" * 64})
    assert a.eval_hash != b.eval_hash and identity_changes(a.eval_parts, b.eval_parts) == [words]
    assert b.changes(a) == [words]
    trained_on_it = part.startswith("data/")
    assert (a.hash != b.hash) == trained_on_it and (a.shared_hash != b.shared_hash) == trained_on_it


def test_run_spec_round_trips_its_identity_through_spec_json():
    from ganbench.spec.protocol import runspec_from_dict

    spec = resolve(load_protocol("fashion-smoke"), W, ["dcgan"], [0])[0]
    back = runspec_from_dict(spec.to_dict())
    assert back.identity == spec.identity and back.protocol_hash == spec.protocol_hash
    legacy = {k: v for k, v in spec.to_dict().items()
              if k not in ("identity", "shared_hash", "eval_hash", "eval_identity")}
    assert runspec_from_dict(legacy).protocol_hash == spec.protocol_hash  # older spec.json: hash only
