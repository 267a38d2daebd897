"""The metric registry's entry type, the result type and the one naming rule of results."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import EXTRACTORS, METRICS


@dataclass(frozen=True)
class MetricResult:
    name: str  # recipe name by metric_name, e.g. fid_10k_test
    value: float | None  # None when unavailable (see ``unavailable``): never a made-up number
    higher_is_better: bool
    num_samples: int
    extractor: str
    weights_sha256: str
    reference: str  # dataset/split the samples were compared with
    std: float | None = None  # KID: standard error over draws of the sets; IS: spread over splits
    floor: float | None = None  # the same recipe on real images of another split: the best one can expect
    floor_reference: str = ""  # what the floor compared, e.g. fashion-mnist/train vs fashion-mnist/test
    unavailable: str | None = None  # why there is no value

    def provenance(self) -> str:
        parts = [f"extractor={self.extractor}", f"weights={self.weights_sha256[:16]}", f"n={self.num_samples}",
                 f"reference={self.reference}", f"higher_is_better={self.higher_is_better}"]
        if self.floor_reference:
            parts.append(f"floor={self.floor_reference}")
        if self.unavailable:
            parts.append(f"unavailable={self.unavailable}")
        return " ".join(parts)


def reads_extractor(extractor: str, dataset: str) -> tuple[str, ...]:
    """What most metrics read: the feature extractor they are asked to use."""
    return (extractor,)


def reads_domain(extractor: str, dataset: str) -> tuple[str, ...]:
    """Metrics measured in the domain classifier's space whatever the protocol's extractor."""
    return ("domain",)


def reads_nothing(extractor: str, dataset: str) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Kind:
    """How a quantity is read. ``lower`` / ``higher``: ranked by that direction. ``target``: best at ``value``
    (density: 1, what real images score against real images, Naeem et al. 2020 sec. 3.2), read as the distance
    to it and never ranked as "more is better". ``test``: a test result, not a ranking: below ``value`` is a
    finding (C_T < -3: copying, Meehan et al. 2020), or with ``value`` None a share tested against its
    real-vs-real floor (suspected copies: a one-sided binomial test), or ``descriptive`` (no better direction:
    the mean nearest-neighbour distance). ``unit_range``: a share in [0, 1] (a regression bound outside it
    cannot fail)."""

    kind: str
    value: float | None = None
    reading: str = ""
    unit_range: bool = False
    descriptive: bool = False
    answer_to: str = ""  # a trivial answer's score on the task (e.g. the mean target image): the quantity it is an answer to

    @property
    def ranked(self) -> bool:
        return self.kind in ("lower", "higher")


def trivial_answer(quantity: str, what: str) -> Kind:
    """The score of a trivial answer to the task (not a model): never ranked or gated; every model's
    ``quantity`` is read against it (a model worse than the trivial answer is said to be)."""
    return Kind("test", reading=f"the trivial answer ({what}): no model, the same for every model; a model should "
                                f"beat it", descriptive=True, answer_to=quantity)


LOWER, HIGHER, SHARE_HIGHER = Kind("lower"), Kind("higher"), Kind("higher", unit_range=True)


@dataclass(frozen=True)
class MetricDef:
    name: str
    higher_is_better: bool
    compute: Callable[..., list[MetricResult]]  # (ctx, extractor) -> results
    # (extractor, dataset) -> the networks whose weights the metric reads: extractor names of
    # ``extractors.EXTRACTORS`` ("domain" = the protocol dataset's classifier) or "domain:<dataset>";
    # a run's identity covers their weight hashes (``ganbench.spec.protocol.evaluation_assets``).
    reads: Callable[[str, str], tuple[str, ...]] = reads_extractor
    # the quantities its result names carry (metric_name's ``quantity``) -> higher is better; {name: ...} if not given
    quantities: dict[str, bool] = field(default_factory=dict)
    # quantities read otherwise than by a direction (target, test) or bounded shares -> their Kind
    kinds: dict[str, Kind] = field(default_factory=dict)
    # a distance of the samples alone to the reference, cheap in a small extractor: allowed in a per-epoch curve
    curve: bool = False
    # it compares the samples with the training split (copies): the reference split must be another one
    held_out: bool = False

    def __post_init__(self):
        if not self.quantities:
            object.__setattr__(self, "quantities", {self.name: self.higher_is_better})

    def kind(self, quantity: str) -> Kind:
        return self.kinds.get(quantity) or (HIGHER if self.quantities[quantity] else LOWER)


def register_metric(name: str, higher_is_better: bool, reads: Callable[[str, str], tuple[str, ...]] = reads_extractor,
                    quantities: dict[str, bool] | None = None, kinds: dict[str, Kind] | None = None,
                    curve: bool = False, held_out: bool = False):
    """Register ``fn(ctx, extractor) -> list[MetricResult]`` under the name protocols list (``eval.metrics``);
    ``reads`` says which networks' weights it reads (part of a run's identity); ``quantities`` maps each
    quantity its results are named after to whether higher is better (``pr`` -> precision, recall), so a
    result name alone tells its direction (:func:`quantity_direction`); ``kinds`` declares the quantities
    that are targets, tests or bounded shares (:class:`Kind`, :func:`quantity_kind`); ``curve``: it may be a
    per-epoch curve metric (``eval.curve``); ``held_out``: it reads the training split, so a protocol's reference
    split must differ from ``data.split``."""

    def wrap(fn: Callable[..., list[MetricResult]]):
        METRICS.register(name, MetricDef(name, higher_is_better, fn, reads, dict(quantities or {}), dict(kinds or {}),
                                           curve, held_out))
        return fn

    return wrap


def count_name(n: int) -> str:
    """10000 -> '10k', 256 -> '256' (as in stylegan3's fid50k)."""
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else str(n)


def metric_name(quantity: str, num_samples: int, reference: str | None = None, k: int | None = None,
                space: str | None = None) -> str:
    """The one naming rule of every metric: ``[<space>_]<quantity>[_k<k>]_<n>[_<reference>]``.

    ``space`` names the feature space when it is not the protocol's Inception (``domain``), ``quantity`` what
    is measured (``fid``, ``precision``, ``modes_pacgan``), ``k`` the neighbourhood size of k-NN metrics,
    ``n`` the sample count (``10k``, ``256``) and ``reference`` the real split compared with (``test``), left out
    for metrics that compare with no split (IS). E.g. ``fid_10k_test``, ``domain_kid_10k_test``,
    ``precision_k3_10k_test``; ``_std`` and ``_floor`` are appended for the spread and the real-vs-real floor.
    """
    parts = [space] if space else []
    parts.append(quantity)
    if k is not None:
        parts.append(f"k{k}")
    parts.append(count_name(num_samples))
    if reference:
        parts.append(reference)
    return "_".join(parts)


SPACES = ("domain",)  # feature spaces other than the protocol's Inception that name a result (metric_name's space)
COMPANION_SUFFIXES = ("_std", "_floor")  # appended to a result's name for its spread and its real-vs-real floor
_NAME = re.compile(rf"^(?:(?P<space>{'|'.join(SPACES)})_)?(?P<quantity>[a-z][a-z0-9_]*?)(?:_k(?P<k>\d+))?"
                   r"_(?P<n>\d+k?)(?:_(?P<reference>[a-z]+))?$")


@dataclass(frozen=True)
class MetricName:
    """The parts of a name made by :func:`metric_name` (``suffix``: "", "_std" or "_floor")."""

    quantity: str
    num_samples: int
    reference: str | None = None
    k: int | None = None
    space: str | None = None
    suffix: str = ""


def _split_suffix(name: str) -> tuple[str, str]:
    """("fid_10k_test", "_floor") for "fid_10k_test_floor"; (name, "") without a companion suffix."""
    suffix = next((s for s in COMPANION_SUFFIXES if name.endswith(s)), "")
    return (name[: len(name) - len(suffix)], suffix) if suffix else (name, "")


def _count(text: str) -> int:
    """The inverse of :func:`count_name`: '10k' -> 10000, '256' -> 256."""
    return int(text[:-1]) * 1000 if text.endswith("k") else int(text)


def parse_metric_name(name: str) -> MetricName | None:
    """The inverse of :func:`metric_name` (companion suffixes allowed); None for a name of another form."""
    base, suffix = _split_suffix(name)
    m = _NAME.match(base)
    if m is None:
        return None
    return MetricName(m["quantity"], _count(m["n"]), m["reference"], None if m["k"] is None else int(m["k"]),
                      m["space"], suffix)


def quantity_direction(name: str) -> bool | None:
    """Whether higher is better for the result ``name`` (by its quantity, from the registry); None when no
    registered metric names that quantity."""
    parsed = parse_metric_name(name)
    if parsed is None:
        return None
    for d in METRICS.values():
        if parsed.quantity in d.quantities:
            return d.quantities[parsed.quantity]
    return None


def quantity_kind(name: str) -> Kind | None:
    """How the result ``name`` is read (:class:`Kind`, by its quantity, from the registry); None when no registered
    metric names that quantity."""
    parsed = parse_metric_name(name)
    if parsed is None:
        return None
    for d in METRICS.values():
        if parsed.quantity in d.quantities:
            return d.kind(parsed.quantity)
    return None


# Result names before the one rule (one pattern per metric) -> their metric_name form. Values did not change,
# only the names, so files and tracking stores that hold an old name are read under the new one.
_LEGACY = [
    (re.compile(r"^(?P<space>domain_)?(?P<q>fid|kid)(?P<n>\d+k?)_(?P<ref>[a-z]+)$"), lambda m: (m["q"], None)),
    (re.compile(r"^(?P<space>domain_)?is(?P<n>\d+k?)$"), lambda m: ("is", None)),
    (re.compile(r"^(?P<space>domain_)?(?:pr|dc)(?P<n>\d+k?)(?P<k>\d)_(?P<ref>[a-z]+)_"
                r"(?P<q>precision|recall|density|coverage)$"), lambda m: (m["q"], int(m["k"]))),
    (re.compile(r"^(?P<space>domain_)ppl(?P<n>\d+k?)_(?P<latent>[wz])$"), lambda m: (f"ppl_{m['latent']}", None)),
    (re.compile(r"^(?P<space>domain_)label_acc(?P<n>\d+k?)$"), lambda m: ("label_acc", None)),
    (re.compile(r"^(?P<space>domain_)intra_fid(?P<n>\d+k?)_(?P<ref>[a-z]+)$"), lambda m: ("intra_fid", None)),
]


def legacy_metric_name(name: str) -> str | None:
    """The current name of a result named by the rules before :func:`metric_name` (``fid256_test`` ->
    ``fid_256_test``, ``domain_pr5003_test_precision`` -> ``domain_precision_k3_500_test``, companion suffixes
    kept); None when ``name`` is not such an old name."""
    base, suffix = _split_suffix(name)
    for pattern, parts in _LEGACY:
        m = pattern.match(base)
        if m:
            quantity, k = parts(m)
            groups = m.groupdict()
            return metric_name(quantity, _count(m["n"]), groups.get("ref"), k,
                               "domain" if groups.get("space") else None) + suffix
    return None


def parse_metric(spec: str, default_extractor: str) -> tuple[MetricDef, str]:
    """``"kid"`` -> (KID, default extractor); ``"fid@domain"`` -> (FID, "domain")."""
    name, _, extractor = spec.partition("@")
    metric = METRICS.get_or_raise(name)
    extractor = extractor or default_extractor
    if extractor not in EXTRACTORS:
        raise GanbenchError(f"metric {spec!r}: unknown feature extractor {extractor!r}. Available: {', '.join(sorted(EXTRACTORS))}")
    return metric, extractor


def mlflow_metrics(results) -> dict[str, float]:
    """Values as MLflow metrics: ``name``, ``name_std`` and ``name_floor``; unavailable ones are left out.
    ``name_std`` is the metric's own standard error where it has one (KID, see ``kid.py``) and the spread
    over splits for IS; ``name_floor`` the same recipe on real images of another split."""
    out = {}
    for r in results:
        if r.value is None:
            continue
        out[r.name] = r.value
        if r.std is not None:
            out[f"{r.name}_std"] = r.std
        if r.floor is not None:
            out[f"{r.name}_floor"] = r.floor
    return out


def mlflow_tags(results) -> dict[str, str]:
    return {f"ganbench.metric.{r.name}": r.provenance() for r in results}
