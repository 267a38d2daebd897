"""Protocol and model specifications: TOML files -> frozen, fully explicit dataclasses -> identity.

A protocol (``protocols/<name>.toml``) fixes the data, the training budget, the seeds and the
evaluation; a zoo card (``zoo/<model>.toml``) fixes a model's architecture, loss, optimisers and
tricks. ``resolve`` turns both into a :class:`RunSpec` with every default written out.

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
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ganbench.core.errors import GanbenchError
from ganbench.core.options import from_mapping
from ganbench.core.registry import DATASETS, EXTRACTORS, INITS, LOSSES, METRICS, NETS, check_net_pair

PRECISIONS = ("fp32", "bf16")  # train.precision: the training step's arithmetic
CURVE_METRICS = ("fid", "kid")  # eval.curve: distances of the samples to the reference, cheap in a small extractor

# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class DataSpec:
    dataset: str
    split: str = "train"
    subset: int | None = None  # None = the whole split; else a seeded random subset of this size
    subset_seed: int = 0
    image_size: int = 28
    channels: int = 1


@dataclass(frozen=True)
class TrainSpec:
    epochs: int
    batch_size: int = 128
    drop_last: bool = True  # BatchNorm statistics of a tiny last batch are noise
    check_every: int = 50  # steps between NaN/Inf checks and log lines
    precision: str = "fp32"  # "bf16": the training step under bfloat16 autocast (part of the identity)


@dataclass(frozen=True)
class EvalSpec:
    num_samples: int
    reference_split: str = "test"
    reference_seed: int = 0  # which reference images when num_samples < split size
    metrics: tuple[str, ...] = ("fid",)
    extractor: str = "inception-v3-compat"
    extractor_weights_sha256: str | None = None  # filled in when the run starts
    grid_size: int = 8
    z_seed: int = 20240  # the fixed z of grids and evaluation samples, shared by every run
    batch_size: int = 100
    floor: bool = True  # also report each metric's real-vs-real floor (the other split, same sample count)
    curve: tuple[str, ...] = ()  # metrics measured after every epoch (MLflow step = epoch), e.g. ("fid@domain",)
    curve_samples: int = 2000  # the samples of each epoch's curve point (the first of the fixed z)


@dataclass(frozen=True)
class Protocol:
    name: str
    data: DataSpec
    train: TrainSpec
    eval: EvalSpec
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    version: int = 1
    description: str = ""
    report: str = "leaderboard"  # "check": smoke and induced-failure protocols publish pass/fail, never a ranking


@dataclass(frozen=True)
class NetSpec:
    arch: str
    options: dict[str, Any] = field(default_factory=dict)
    init: str | None = None  # a name in ganbench.nets.INITS; None: the architecture's own default


@dataclass(frozen=True)
class LossSpec:
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimSpec:
    name: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TricksSpec:
    """Stabilisation tricks any model can switch on. Every default means "off", so a model without
    tricks hashes exactly as before this table existed (see ``_model_for_hash``)."""

    label_noise: float = 0.0  # D targets drawn uniformly in [1 - a, 1] (real) and [0, a] (fake) (Salimans et al. 2016 sec. 3.4 / course tips)
    label_flip: float = 0.0  # probability of swapping a sample's real/fake target for D (course tips table)
    instance_noise: float = 0.0  # sigma of Gaussian noise on every D input, annealed linearly to 0 (Sonderby et al. 2017)
    instance_noise_steps: int | None = None  # G steps over which the noise anneals (None: the whole run)
    ema: float = 0.0  # decay of an exponential moving average of G's weights (Karras et al. 2018; 0.999 is usual)
    ema_rampup: float = 0.0  # the EMA's half-life in images is at most ema_rampup x images seen (StyleGAN2-ADA: 0.05); 0 = off
    minibatch_std: bool = False  # D sees the batch's feature standard deviation (Karras et al. 2018 sec. 3)
    spectral_norm: bool = False  # spectral normalisation of every D weight (Miyato et al. 2018)
    feature_matching: float = 0.0  # weight of ||E f(x) - E f(G(z))||^2 on D's penultimate features (Salimans et al. 2016 sec. 3.1)
    unrolled_steps: int = 0  # D steps unrolled on a copy for each G update (Metz et al. 2017; first-order)


@dataclass(frozen=True)
class ConditionalSpec:
    """Class-conditional generation: how the label enters G and D (None on a ModelSpec: unconditional)."""

    g_input: str = "onehot"  # "onehot" | "embedding": y joins z as a one-hot vector or a learned embedding
    d_input: str = "planes"  # "planes": one-hot maps concatenated to the input channels; "embedding": a learned
    # embedding concatenated to the flattened input (Mirza & Osindero 2014); "projection": <embed(y), phi(x)>
    # added to the output (Miyato & Koyama 2018)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    generator: NetSpec
    discriminator: NetSpec
    loss: LossSpec
    optim_g: OptimSpec
    optim_d: OptimSpec
    z_dim: int = 100
    n_critic: int = 1
    paper: str = ""
    description: str = ""
    results: dict[str, Any] = field(default_factory=dict)  # the model card's measured numbers
    tricks: TricksSpec = field(default_factory=TricksSpec)
    conditional: ConditionalSpec | None = None
    expected_findings: tuple[str, ...] = ()  # an induced-failure card: the findings its diagnosis must name (any one)


REPORTS = ("leaderboard", "check")  # Protocol.report

# --------------------------------------------------------------------------- strict loading


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise GanbenchError(f"{path}: not valid TOML ({err})") from err


# --------------------------------------------------------------------------- finding files


def spec_dirs(kind: str) -> list[Path]:
    """Folders searched for ``protocols`` or ``zoo`` files: ``GANBENCH_<KIND>_PATH``, then the shipped ones."""
    assert kind in ("protocols", "zoo")
    dirs = [Path(p) for p in os.environ.get(f"GANBENCH_{kind.upper()}_PATH", "").split(os.pathsep) if p]
    shipped = resources.files("ganbench").joinpath(f"_{kind}")  # installed wheel: package data
    if shipped.is_dir():
        dirs.append(Path(str(shipped)))
    repo = Path(__file__).resolve().parents[2] / kind  # source checkout / editable install
    if repo.is_dir():
        dirs.append(repo)
    return dirs


def available(kind: str) -> list[str]:
    return sorted({p.stem for d in spec_dirs(kind) for p in d.glob("*.toml")})


def find_spec_file(kind: str, name_or_path: str) -> Path:
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise GanbenchError(f"{kind[:-1] if kind == 'protocols' else 'model'} file {path} does not exist")
        return path
    for d in spec_dirs(kind):
        if (d / f"{name_or_path}.toml").is_file():
            return d / f"{name_or_path}.toml"
    what = "protocol" if kind == "protocols" else "model"
    raise GanbenchError(f"Unknown {what} {name_or_path!r}. Available: {', '.join(available(kind)) or 'none'}")


def _load(kind: str, cls: type, validate, name_or_path: str):
    """A protocol or zoo card by name or path: parsed strictly (named after its file unless it says) and validated."""
    path = find_spec_file(kind, name_or_path)
    raw = _read_toml(path)
    raw.setdefault("name", path.stem)
    spec = from_mapping(cls, raw, str(path))
    validate(spec, path)
    return spec


def load_protocol(name_or_path: str) -> Protocol:
    return _load("protocols", Protocol, _validate_protocol, name_or_path)


def load_model(name_or_path: str) -> ModelSpec:
    return _load("zoo", ModelSpec, _validate_model, name_or_path)


def _validate_protocol(p: Protocol, path: Path) -> None:
    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise GanbenchError(f"{path}: {key}: expected {expected}")

    if p.data.dataset not in DATASETS:
        raise GanbenchError(f"{path}: data.dataset: Unknown dataset {p.data.dataset!r}. Available: {', '.join(sorted(DATASETS))}")
    ds = DATASETS[p.data.dataset]
    need(p.data.split in ds.splits, "data.split", f"one of {list(ds.splits)}")
    need(p.eval.reference_split in ds.splits, "eval.reference_split", f"one of {list(ds.splits)}")
    need(p.data.subset is None or p.data.subset > 0, "data.subset", "a positive number of images")
    if not ds.points:
        need(p.data.channels == ds.channels, "data.channels", f"{ds.channels} (the channels of {ds.name}'s images)")
        need(8 <= p.data.image_size <= 256, "data.image_size", "a size in [8, 256] (images are resized to it)")
    need(p.train.epochs > 0, "train.epochs", "a positive integer")
    need(p.train.batch_size > 0, "train.batch_size", "a positive integer")
    need(p.report in REPORTS, "report", f"one of {list(REPORTS)}, got {p.report!r}")
    need(p.train.precision in PRECISIONS, "train.precision", f"one of {list(PRECISIONS)}, got {p.train.precision!r}")
    need(p.eval.num_samples >= 2, "eval.num_samples", "at least 2 samples")
    need(len(p.models) > 0, "models", "at least one zoo model name")
    need(len(p.seeds) > 0, "seeds", "at least one seed")
    need(len(set(p.seeds)) == len(p.seeds), "seeds", "distinct seeds")
    extractors = sorted(EXTRACTORS)
    need(p.eval.extractor in EXTRACTORS, "eval.extractor", f"one of {extractors}, got {p.eval.extractor!r}")
    for m in p.eval.metrics:
        name, _, extractor = m.partition("@")
        need(name in METRICS and extractor in ("", *EXTRACTORS), "eval.metrics",
             f"names from {sorted(METRICS)}, optionally as name@extractor with an extractor from {extractors}, got {m!r}")
    for m in p.eval.curve:
        name, _, extractor = m.partition("@")
        need(name in CURVE_METRICS and extractor in ("", *EXTRACTORS), "eval.curve",
             f"names from {list(CURVE_METRICS)} (metrics of the samples alone, cheap enough for every epoch), "
             f"optionally as name@extractor, got {m!r}")
    need(not p.eval.curve or 2 <= p.eval.curve_samples <= p.eval.num_samples, "eval.curve_samples",
         f"a sample count in [2, eval.num_samples = {p.eval.num_samples}]")
    if any(m.partition("@")[0] == "memorisation" for m in p.eval.metrics):  # it calibrates on held-out images
        need(p.eval.reference_split != p.data.split, "eval.reference_split",
             f"a split other than data.split ({p.data.split!r}, the images memorisation searches for copies)")
    for m in p.models:
        find_spec_file("zoo", m)


def _validate_model(m: ModelSpec, path: Path) -> None:
    for role, net in (("generator", m.generator), ("discriminator", m.discriminator)):
        if net.arch not in NETS:
            raise GanbenchError(f"{path}: {role}.arch: unknown architecture {net.arch!r}; available: {', '.join(sorted(NETS))}")
        if net.init is not None and net.init not in INITS:
            raise GanbenchError(f"{path}: {role}.init: unknown initialisation {net.init!r}; available: {', '.join(sorted(INITS))}")
    if m.loss.name not in LOSSES:
        raise GanbenchError(f"{path}: loss.name: unknown loss {m.loss.name!r}; available: {', '.join(sorted(LOSSES))}")
    for role, opt in (("optim_g", m.optim_g), ("optim_d", m.optim_d)):
        if opt.name not in ("adam", "rmsprop"):
            raise GanbenchError(f"{path}: {role}.name: expected 'adam' or 'rmsprop', got {opt.name!r}")
        if not opt.lr > 0:
            raise GanbenchError(f"{path}: {role}.lr: expected a positive learning rate, got {opt.lr}")
    if m.n_critic < 1 or m.z_dim < 1:
        raise GanbenchError(f"{path}: n_critic and z_dim must be positive integers")
    _validate_tricks(m, path)
    # Options are checked by the plug-ins themselves (unknown keys are errors there too).
    try:
        NETS[m.generator.arch].resolve_options(m.generator.options)
        NETS[m.discriminator.arch].resolve_options(m.discriminator.options)
        LOSSES[m.loss.name].resolve_options(m.loss.options)
        check_net_pair(m.generator.arch, NETS[m.generator.arch].options(m.generator.options),
                   m.discriminator.arch, NETS[m.discriminator.arch].options(m.discriminator.options))
    except GanbenchError as err:
        raise GanbenchError(f"{path}: {err}") from err


def _validate_tricks(m: ModelSpec, path: Path | str) -> None:
    t, c = m.tricks, m.conditional

    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise GanbenchError(f"{path}: {key}: expected {expected}")

    need(0.0 <= t.label_noise < 0.5, "tricks.label_noise", "a value in [0, 0.5)")
    need(0.0 <= t.label_flip < 0.5, "tricks.label_flip", "a probability in [0, 0.5)")
    need(t.instance_noise >= 0.0, "tricks.instance_noise", "a non-negative sigma")
    need(t.instance_noise_steps is None or t.instance_noise_steps > 0, "tricks.instance_noise_steps", "a positive number of G steps")
    need(0.0 <= t.ema < 1.0, "tricks.ema", "a decay in [0, 1)")
    need(t.ema_rampup >= 0.0 and (t.ema or not t.ema_rampup), "tricks.ema_rampup",
         "a non-negative fraction, with tricks.ema set")
    need(t.feature_matching >= 0.0, "tricks.feature_matching", "a non-negative weight")
    need(t.unrolled_steps >= 0, "tricks.unrolled_steps", "a non-negative number of D steps")
    if (t.label_noise or t.label_flip) and m.loss.name not in ("bce", "ls"):
        raise GanbenchError(f"{path}: tricks.label_noise/label_flip change D's targets; loss {m.loss.name!r} has none "
                            "(use them with the bce or ls loss)")
    if c is not None:
        need(c.g_input in ("onehot", "embedding"), "conditional.g_input", "'onehot' or 'embedding'")
        need(c.d_input in ("planes", "embedding", "projection"), "conditional.d_input", "'planes', 'embedding' or 'projection'")


def apply_overrides(m: ModelSpec, overrides: dict[str, Any]) -> ModelSpec:
    """Dotted overrides from the command line, e.g. ``{"tricks.ema": 0.999, "optim_d.lr": 4e-4}``.

    Values are checked like the zoo file's (unknown keys and wrong types are errors); the result is a
    new ModelSpec, so the run's identity follows the override."""
    if not overrides:
        return m
    raw = to_plain(m)
    for key, value in overrides.items():
        parts = key.split(".")
        node = raw
        for part in parts[:-1]:
            if node.get(part) is None and part == "conditional":
                node[part] = {}
            if not isinstance(node.get(part), dict):
                raise GanbenchError(f"--set {key}: {part!r} is not a table of model {m.name!r}")
            node = node[part]
        node[parts[-1]] = value
    spec = from_mapping(ModelSpec, raw, f"model {m.name} with --set")
    _validate_model(spec, f"model {m.name} with --set")
    return spec


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["tricks.ema=0.999", "n_critic=5"]`` -> a dict; values are parsed as TOML (strings may be bare)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise GanbenchError(f"--set {item!r}: expected KEY=VALUE, e.g. tricks.ema=0.999")
        try:
            out[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = text
    return out


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


# --------------------------------------------------------------------------- resolution + hash


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
        return {"protocol": to_plain(self.protocol), "model": _model_for_hash(self.model),
                "seed": self.seed, "protocol_hash": self.identity.hash, "shared_hash": self.identity.shared_hash,
                "identity": dict(self.identity.parts), "eval_hash": self.identity.eval_hash,
                "eval_identity": dict(self.identity.eval_parts)}


def to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in sorted(obj.items())}
    return obj


def _model_for_hash(m: ModelSpec) -> dict:
    """A model's explicit hyper-parameters: options with plug-in defaults filled in, card results left out."""
    full = dataclasses.replace(
        m,
        generator=NetSpec(m.generator.arch, NETS[m.generator.arch].resolve_options(m.generator.options), m.generator.init),
        discriminator=NetSpec(m.discriminator.arch, NETS[m.discriminator.arch].resolve_options(m.discriminator.options),
                              m.discriminator.init),
        loss=LossSpec(m.loss.name, LOSSES[m.loss.name].resolve_options(m.loss.options)),
    )
    plain = to_plain(full)
    for key in ("results", "paper", "description", "expected_findings"):  # what the card says, not how it trains
        plain.pop(key)
    # Tricks off and no conditioning leave the hash of every model made before these tables unchanged.
    plain["tricks"] = {k: v for k, v in plain["tricks"].items() if v != getattr(TricksSpec, k)} or None
    for key in ("tricks", "conditional"):
        if plain[key] is None:
            plain.pop(key)
    for role in ("generator", "discriminator"):  # no init override: the hash of a card without one is unchanged
        if plain[role]["init"] is None:
            plain[role].pop("init")
    return plain


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _protocol_fields(protocol: Protocol) -> dict:
    """The protocol's own fields: not its seeds (replicates), description (prose) or model list (other
    conditions), nor the Inception weight hash (an asset part of its own)."""
    plain = to_plain(protocol)
    for key in ("seeds", "description", "models", "report"):
        plain.pop(key)
    plain["eval"].pop("extractor_weights_sha256")
    if plain["train"]["precision"] == TrainSpec.precision:  # fp32: the key is left out, as before it existed
        plain["train"].pop("precision")
    return plain


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
        training["model"] = content_hash(_model_for_hash(model))
    evaluation = {"evaluation": content_hash(evaluation_fields(protocol)), **dict(sorted(assets.items()))}
    return Identity(content_hash(training), shared, training, content_hash(evaluation), evaluation)


# Why two identities differ, in words, by part name (prefixes for the asset families).
PART_NAMES = {"training": "protocol's training changed (data or budget)",
              "evaluation": "protocol's evaluation changed (metrics, sample count, reference split or curve)",
              "protocol": "protocol changed (data, training budget or evaluation)", "model": "model card changed",
              "weights/inception-v3-compat": "Inception weights changed"}


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
    plain["models"] = {name: _model_for_hash(models[name]) for name in protocol.models}
    return content_hash(plain)


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
        protocol.eval, extractor_weights_sha256=assets.get("weights/inception-v3-compat"))), assets


def resolve(protocol: Protocol, assets: dict[str, str] | str | None = None,
            models: list[str] | None = None, seeds: list[int] | None = None,
            overrides: dict[str, Any] | None = None) -> list[RunSpec]:
    """Expand a protocol into one RunSpec per (model, seed), optionally restricted by ``models``/``seeds``;
    ``overrides`` (dotted keys, see :func:`apply_overrides`) change every chosen model.

    ``assets``: the asset hashes of :func:`identity`; None looks them up (only the files this
    protocol's evaluation reads); a string stands in for every weight hash (tests that never evaluate)."""
    for m in models or []:
        if m not in protocol.models:
            raise GanbenchError(f"model {m!r} is not part of protocol {protocol.name!r}; its models: {', '.join(protocol.models)}")
    protocol, assets = with_assets(protocol, assets)
    chosen = models or protocol.models
    specs = {name: apply_overrides(load_model(name), overrides or {}) for name in chosen}
    idents = {name: identity(protocol, spec, assets) for name, spec in specs.items()}
    chosen_seeds = tuple(seeds) if seeds else protocol.seeds
    return [RunSpec(protocol=protocol, model=specs[m], seed=s, identity=idents[m]) for m in chosen for s in chosen_seeds]
