"""The identity of a run, computed in one place: what its weights were trained under (the training identity)
and what its numbers were measured under (the evaluation identity), as SHA-256 hashes over named parts, and the
files the evaluation reads (networks by their weights, datasets by their pinned files).

A run's :class:`Identity` is that of one (protocol, model) pair, computed by :func:`identity` only:
the protocol's own fields (not its seeds, description or model list), the one model's explicit
hyper-parameters, and the SHA-256 of every weight file and dataset file its evaluation reads
(:func:`evaluation_assets`). Seeds are replicates of one condition, and the protocol's other
models are other conditions: neither is part of it. Results are compared only between runs of
equal identity; the identity's parts say what changed when two differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ganbench.core.options import from_mapping
from ganbench.core.registry import DATASETS, EXTRACTORS, LOSSES, METRICS, NETS
from ganbench.spec.types import INCEPTION, LossSpec, ModelSpec, NetSpec, Protocol, identity_fields, to_plain


@dataclass(frozen=True)
class Identity:
    """What a run was trained and its numbers measured under (see :func:`identity`).

    ``hash``: the training identity, over ``parts`` ("training", "model", "data/<dataset>/<file>"): the run's
    folder and sweep cell; ``shared_hash``: the same without the model (what every model of one protocol
    trains under). ``eval_hash``: the evaluation identity, over ``eval_parts`` ("evaluation",
    "weights/<network>", "data/<dataset>/<file>"). A leaderboard ranks runs of one ``shared_hash`` and one
    ``eval_hash``; a changed evaluation re-evaluates a run's final weights (``ganbench reevaluate``)."""

    hash: str
    shared_hash: str
    parts: dict[str, str]
    eval_hash: str = ""
    eval_parts: dict[str, str] = field(default_factory=dict)

    @property
    def board_hash(self) -> str:
        """The identity of a leaderboard: the shared training identity and the evaluation identity."""
        return board_hash(self.shared_hash, self.eval_hash)

    def changes(self, other: "Identity") -> list[str]:
        """What differs from ``other`` (training parts, then evaluation parts), in words."""
        words = identity_changes(other.parts, self.parts)
        if other.eval_parts or self.eval_parts:
            words += identity_changes(other.eval_parts, self.eval_parts)
        return list(dict.fromkeys(words))  # a dataset file is a part of both


def board_hash(shared_hash: str, eval_hash: str) -> str:
    """A leaderboard's hash: its rows' shared training identity and their evaluation identity."""
    return content_hash({"training": shared_hash, "evaluation": eval_hash})


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one training run, with every default filled in."""

    protocol: Protocol
    model: ModelSpec
    seed: int
    identity: Identity

    @property
    def protocol_hash(self) -> str:
        """The run's identity hash (the historical name of the tag and folder level that carry it)."""
        return self.identity.hash

    def to_dict(self) -> dict:
        return {"protocol": to_plain(self.protocol), "model": model_fields(self.model),
                "seed": self.seed, "protocol_hash": self.identity.hash, "shared_hash": self.identity.shared_hash,
                "identity": dict(self.identity.parts), "eval_hash": self.identity.eval_hash,
                "eval_identity": dict(self.identity.eval_parts)}


def model_fields(m: ModelSpec) -> dict:
    """A model's explicit hyper-parameters: options with plug-in defaults filled in; what the card says rather than
    how it trains (results, paper, description, expected findings) left out, tricks and conditioning (``NEW``)
    left out when off."""
    return identity_fields(dataclasses.replace(
        m,
        generator=NetSpec(m.generator.arch, NETS[m.generator.arch].resolve_options(m.generator.options), m.generator.init),
        discriminator=NetSpec(m.discriminator.arch, NETS[m.discriminator.arch].resolve_options(m.discriminator.options),
                              m.discriminator.init),
        loss=LossSpec(m.loss.name, LOSSES[m.loss.name].resolve_options(m.loss.options)),
    ))


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _protocol_fields(protocol: Protocol) -> dict:
    """The protocol's own fields: not its seeds (replicates), description (prose) or model list (other
    conditions), nor the Inception weight hash (an asset part of its own)."""
    return identity_fields(protocol)


def training_fields(protocol: Protocol) -> dict:
    """What determines the trained weights: the protocol's name, version, data and training budget."""
    plain = _protocol_fields(protocol)
    plain.pop("eval")
    return plain


def evaluation_fields(protocol: Protocol) -> dict:
    """What determines the numbers measured of trained weights: the evaluation recipe (metrics, sample count,
    reference split, fixed z, per-epoch curve), with the protocol's name so that two protocols never share one."""
    return {"name": protocol.name, "eval": _protocol_fields(protocol)["eval"]}


def identity(protocol: Protocol, model: ModelSpec | None, assets: dict[str, str]) -> Identity:
    """The identity of (``protocol``, ``model``): the one place it is computed. ``assets`` maps
    "weights/..." and "data/..." names to the SHA-256 of every file the evaluation reads
    (:func:`evaluation_assets`). ``model`` None: samples from outside the zoo
    (``ganbench eval``), identified by the evaluation side alone.

    Two identities, so that a new metric never orphans a trained run: the training identity (``hash``:
    the protocol's data and budget, the model card, the dataset files) names the weights a run trains;
    the evaluation identity (``eval_hash``: the evaluation recipe, every weight file it reads, the dataset
    files it reads its reference from) names the numbers measured of them. Seeds are replicates of a
    condition, not part of either."""
    data = {k: v for k, v in sorted(assets.items()) if k.startswith("data/")}
    training = {"training": content_hash(training_fields(protocol)), **data}
    shared = content_hash(training)
    if model is not None:
        training["model"] = content_hash(model_fields(model))
    evaluation = {"evaluation": content_hash(evaluation_fields(protocol)), **dict(sorted(assets.items()))}
    return Identity(content_hash(training), shared, training, content_hash(evaluation), evaluation)


# Why two identities differ, in words, by part name (prefixes for the asset families).
PART_NAMES = {"training": "protocol's training changed (data or budget)",
              "evaluation": "protocol's evaluation changed (metrics, sample count, reference split or curve)",
              "protocol": "protocol changed (data, training budget or evaluation)", "model": "model card changed",
              f"weights/{INCEPTION}": "Inception weights changed"}


def _part_words(name: str) -> str:
    if name in PART_NAMES:
        return PART_NAMES[name]
    if name.startswith("weights/domain-"):
        return f"domain classifier weights ({name[len('weights/domain-'):]}) changed"
    if name.startswith("data/"):
        return f"dataset file {name[len('data/'):]} changed"
    return f"{name} changed"


def identity_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """What differs between two identities' parts, in words (empty when the parts are equal)."""
    if not old or not new:
        return ["identity parts unknown (made before identities recorded them): re-run or re-save"]
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            out.append(f"now also reads {name}")
        elif name not in new:
            out.append(f"no longer reads {name}")
        elif old[name] != new[name]:
            out.append(_part_words(name))
    return out


def legacy_protocol_hash(protocol: Protocol, models: dict[str, ModelSpec]) -> str:
    """The hash of format-1 baselines and runs made before identities: the protocol with its Inception
    weight hash filled in and every one of its models. Kept only to verify what is migrated."""
    plain = to_plain(protocol)
    plain.pop("seeds")
    plain.pop("description")
    plain.pop("report")
    plain["models"] = {name: model_fields(models[name]) for name in protocol.models}
    return content_hash(plain)


def runspec_from_dict(d: dict) -> "RunSpec":
    """Rebuild a :class:`RunSpec` from ``RunSpec.to_dict()`` (a run folder's ``spec.json``). Older files
    carry the hash only, without its parts."""
    model = dict(d["model"])
    model.setdefault("tricks", {})
    parts = d.get("identity") or {}
    ident = Identity(d["protocol_hash"], d.get("shared_hash", ""), dict(parts), d.get("eval_hash", ""),
                     dict(d.get("eval_identity") or {}))
    return RunSpec(protocol=from_mapping(Protocol, d["protocol"], "spec.json protocol"),
                   model=from_mapping(ModelSpec, model, "spec.json model"), seed=int(d["seed"]), identity=ident)


# --------------------------------------------------------------------------- what the evaluation reads
# Each metric declares in the registry which networks it reads (``MetricDef.reads``); the protocol's
# metric list thus says which weights matter: the Inception weights only when a metric measures in
# Inception's space, a domain classifier when a metric measures in its space (``metric@domain``, the
# conditional metrics, memorisation's feature copies, mode coverage, PPL). The dataset files are
# those the training data and the reference split come from, by their pinned hashes. A protocol that
# reads no Inception never opens the Inception file, so a damaged one cannot block it.


def networks_read(protocol: Protocol) -> list[tuple[str, str]]:
    """(extractor, dataset) of every network the protocol's metrics read, in first-use order:
    ("inception-v3-compat", "") or ("domain", <dataset of the classifier>)."""
    out: list[tuple[str, str]] = []
    for spec in protocol.eval.metrics:
        name, _, extractor = spec.partition("@")
        for read in METRICS[name].reads(extractor or protocol.eval.extractor, protocol.data.dataset):
            kind, _, dataset = read.partition(":")
            key = (kind, dataset or protocol.data.dataset) if EXTRACTORS[kind].per_dataset else (kind, "")
            if key not in out:
                out.append(key)
    return out


def evaluation_assets(protocol: Protocol, stand_in: str | None = None) -> dict[str, str]:
    """"weights/<network>" and "data/<dataset>/<file>" -> SHA-256 for everything the protocol reads.
    ``stand_in``: a hash used for every weight file instead of reading it (tests that never evaluate);
    otherwise a missing domain classifier is trained once, missing Inception weights are fetched."""
    weights = {EXTRACTORS[e].weights_part(d): stand_in or EXTRACTORS[e].weights_sha256(d) for e, d in networks_read(protocol)}
    return {**weights, **DATASETS[protocol.data.dataset].files()}


def with_assets(protocol: Protocol, assets: dict[str, str] | str | None = None) -> tuple[Protocol, dict[str, str]]:
    """The protocol with its Inception weight hash filled in, and the asset hashes of :func:`identity`
    (looked up when None; a string stands in for every weight hash, see :func:`resolve`)."""
    if not isinstance(assets, dict):
        assets = evaluation_assets(protocol, stand_in=assets)
    return dataclasses.replace(protocol, eval=dataclasses.replace(
        protocol.eval, extractor_weights_sha256=assets.get(EXTRACTORS[INCEPTION].weights_part("")))), assets
