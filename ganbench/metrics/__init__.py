"""One metric API: generated samples + a protocol's reference split -> named, typed results.

Metrics are small registered functions (as in stylegan3's ``metrics/``); the expensive shared
machinery (feature extraction, cached reference statistics) lives once in ``reference.py`` and
``extractors.py``. Result names say the recipe (``fid10k_test``), and each result records whether
higher is better, its sample count and the extractor (name + weight hash) behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ganbench.registry import Registry


@dataclass(frozen=True)
class MetricResult:
    name: str  # recipe name, e.g. fid10k_test
    value: float
    higher_is_better: bool
    num_samples: int
    extractor: str
    weights_sha256: str
    reference: str  # dataset/split the samples were compared with


@dataclass(frozen=True)
class MetricDef:
    name: str
    higher_is_better: bool
    compute: Callable[..., list[MetricResult]]


METRICS: Registry[MetricDef] = Registry("metric")


def register_metric(name: str, higher_is_better: bool):
    def wrap(fn: Callable[..., list[MetricResult]]):
        METRICS.register(name, MetricDef(name, higher_is_better, fn))
        return fn

    return wrap


def count_name(n: int) -> str:
    """10000 -> '10k', 256 -> '256' (as in stylegan3's fid50k)."""
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else str(n)


from ganbench.metrics import fid  # noqa: E402,F401  (registers metrics)
from ganbench.metrics.api import evaluate  # noqa: E402,F401
