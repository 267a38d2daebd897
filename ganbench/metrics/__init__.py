"""One metric API: generated samples + a protocol's reference split -> named, typed results.

Metrics are small registered functions (as in stylegan3's ``metrics/``); the expensive shared
machinery (feature extraction, cached reference features) lives once in ``reference.py`` and
``extractors.py``. Result names say the recipe (``fid10k_test``, ``domain_kid10k_test``), and each
result records whether higher is better, its sample count, the extractor (name + weight hash)
behind it and the real-vs-real floor of the same recipe.

A protocol lists metrics by name (``fid``, ``kid``, ``is``, ``pr``, ``dc``); ``name@extractor``
(e.g. ``fid@domain``) measures with another extractor than the protocol's ``eval.extractor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ganbench.errors import GanbenchError
from ganbench.registry import Registry


@dataclass(frozen=True)
class MetricResult:
    name: str  # recipe name, e.g. fid10k_test
    value: float | None  # None when unavailable (see ``unavailable``): never a made-up number
    higher_is_better: bool
    num_samples: int
    extractor: str
    weights_sha256: str
    reference: str  # dataset/split the samples were compared with
    std: float | None = None  # spread over subsets/splits (KID, IS)
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
class MetricDef:
    name: str
    higher_is_better: bool
    compute: Callable[..., list[MetricResult]]  # (ctx, extractor) -> results
    # (extractor, dataset) -> the networks whose weights the metric reads: extractor names of
    # ``extractors.EXTRACTORS`` ("domain" = the protocol dataset's classifier) or "domain:<dataset>";
    # a run's identity covers their weight hashes (``ganbench.metrics.reads``).
    reads: Callable[[str, str], tuple[str, ...]] = reads_extractor


METRICS: Registry[MetricDef] = Registry("metric")


def register_metric(name: str, higher_is_better: bool, reads: Callable[[str, str], tuple[str, ...]] = reads_extractor):
    def wrap(fn: Callable[..., list[MetricResult]]):
        METRICS.register(name, MetricDef(name, higher_is_better, fn, reads))
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


def parse_metric(spec: str, default_extractor: str) -> tuple[MetricDef, str]:
    """``"kid"`` -> (KID, default extractor); ``"fid@domain"`` -> (FID, "domain")."""
    from ganbench.metrics.extractors import EXTRACTORS

    name, _, extractor = spec.partition("@")
    metric = METRICS.get_or_raise(name)
    extractor = extractor or default_extractor
    if extractor not in EXTRACTORS:
        raise GanbenchError(f"metric {spec!r}: unknown feature extractor {extractor!r}. Available: {', '.join(EXTRACTORS)}")
    return metric, extractor


def mlflow_metrics(results) -> dict[str, float]:
    """Values as MLflow metrics: ``name``, ``name_std`` and ``name_floor``; unavailable ones are left out."""
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


from ganbench.metrics import fid, kid, isc, prdc, modes, memorisation, conditional, ppl  # noqa: E402,F401  (registers metrics)
from ganbench.metrics.api import Sampler, evaluate  # noqa: E402,F401
