"""The specifications as data: frozen dataclasses of a protocol (data, training budget, evaluation) and of a zoo
card (networks, loss, optimisers, tricks, conditioning), with every default explicit; parsed by
:mod:`ganbench.spec.protocol`, hashed by :mod:`ganbench.spec.identity`.

A field's ``metadata["identity"]`` says how the identity treats it: ``OMIT`` (what a spec says rather than how it
trains or measures: prose, seeds, the model list, a card's results) is left out; ``NEW`` (added after identities
existed) is left out at its default, so that every spec that leaves it alone keeps its identity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

OMIT = {"identity": "omit"}
NEW = {"identity": "omit-default"}

# The feature extractor of FID, KID and IS unless a protocol names another; a protocol records its weights' hash in
# ``eval.extractor_weights_sha256`` when a run starts.
INCEPTION = "inception-v3-compat"
PRECISIONS = ("fp32", "bf16")  # train.precision: the training step's arithmetic



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
    precision: str = field(default="fp32", metadata=NEW)  # "bf16": the training step under bfloat16 autocast


@dataclass(frozen=True)
class EvalSpec:
    num_samples: int
    reference_split: str = "test"
    reference_seed: int = 0  # which reference images when num_samples < split size
    metrics: tuple[str, ...] = ("fid",)
    extractor: str = INCEPTION
    extractor_weights_sha256: str | None = field(default=None, metadata=OMIT)  # filled in when the run starts (an asset part of the identity)
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
    models: tuple[str, ...] = field(metadata=OMIT)  # other conditions, each with its own identity
    seeds: tuple[int, ...] = field(metadata=OMIT)  # replicates of one condition
    version: int = 1
    description: str = field(default="", metadata=OMIT)
    report: str = field(default="leaderboard", metadata=OMIT)  # "check": smoke and induced-failure protocols publish pass/fail, never a ranking


@dataclass(frozen=True)
class NetSpec:
    arch: str
    options: dict[str, Any] = field(default_factory=dict)
    init: str | None = field(default=None, metadata=NEW)  # a name in ganbench.nets.INITS; None: the architecture's own default


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
    tricks hashes exactly as before this table existed (every field is ``NEW``)."""

    label_noise: float = field(default=0.0, metadata=NEW)  # D targets drawn uniformly in [1 - a, 1] (real) and [0, a] (fake) (Salimans et al. 2016 sec. 3.4 / course tips)
    label_flip: float = field(default=0.0, metadata=NEW)  # probability of swapping a sample's real/fake target for D (course tips table)
    instance_noise: float = field(default=0.0, metadata=NEW)  # sigma of Gaussian noise on every D input, annealed linearly to 0 (Sonderby et al. 2017)
    instance_noise_steps: int | None = field(default=None, metadata=NEW)  # G steps over which the noise anneals (None: the whole run)
    ema: float = field(default=0.0, metadata=NEW)  # decay of an exponential moving average of G's weights (Karras et al. 2018; 0.999 is usual)
    ema_rampup: float = field(default=0.0, metadata=NEW)  # the EMA's half-life in images is at most ema_rampup x images seen (StyleGAN2-ADA: 0.05); 0 = off
    minibatch_std: bool = field(default=False, metadata=NEW)  # D sees the batch's feature standard deviation (Karras et al. 2018 sec. 3)
    spectral_norm: bool = field(default=False, metadata=NEW)  # spectral normalisation of every D weight (Miyato et al. 2018)
    feature_matching: float = field(default=0.0, metadata=NEW)  # weight of ||E f(x) - E f(G(z))||^2 on D's penultimate features (Salimans et al. 2016 sec. 3.1)
    unrolled_steps: int = field(default=0, metadata=NEW)  # D steps unrolled on a copy for each G update (Metz et al. 2017; first-order)


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
    paper: str = field(default="", metadata=OMIT)
    description: str = field(default="", metadata=OMIT)
    results: dict[str, Any] = field(default_factory=dict, metadata=OMIT)  # the model card's measured numbers
    tricks: TricksSpec = field(default_factory=TricksSpec, metadata=NEW)
    conditional: ConditionalSpec | None = field(default=None, metadata=NEW)
    expected_findings: tuple[str, ...] = field(default=(), metadata=OMIT)  # an induced-failure card: the findings its diagnosis must name (any one)


REPORTS = ("leaderboard", "check")  # Protocol.report


def to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in sorted(obj.items())}
    return obj


def identity_fields(obj: Any) -> Any:
    """``obj`` as plain data for an identity hash: fields marked ``OMIT`` left out, ``NEW`` ones left out at their
    default; dict keys sorted."""
    if dataclasses.is_dataclass(obj):
        return {f.name: identity_fields(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not _left_out(f, getattr(obj, f.name))}
    if isinstance(obj, (list, tuple)):
        return [identity_fields(v) for v in obj]
    if isinstance(obj, dict):
        return {k: identity_fields(v) for k, v in sorted(obj.items())}
    return obj


def _left_out(f: dataclasses.Field, value: Any) -> bool:
    how = f.metadata.get("identity")
    if how != NEW["identity"]:
        return how == OMIT["identity"]
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return value == default
