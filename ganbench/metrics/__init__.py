"""One metric API: generated samples + a protocol's reference split -> named, typed results.

Metrics are small registered functions (as in stylegan3's ``metrics/``); the expensive shared
machinery (feature extraction, cached reference features) lives once in ``reference.py`` and
``extractors.py``. Result names follow one rule, :func:`metric_name` (``fid_10k_test``,
``domain_kid_10k_test``, ``precision_k3_10k_test``), and each result records whether higher is better,
its sample count, the extractor (name + weight hash) behind it and the real-vs-real floor of the same recipe.

A protocol lists metrics by name (``fid``, ``kid``, ``is``, ``pr``, ``dc``); ``name@extractor``
(e.g. ``fid@domain``) measures with another extractor than the protocol's ``eval.extractor``.
"""

from ganbench.core.registry import METRICS  # noqa: F401
from ganbench.metrics.base import (COMPANION_SUFFIXES, Kind, MetricDef, quantity_kind, MetricName, MetricResult, SPACES, count_name, legacy_metric_name, metric_name, mlflow_metrics, mlflow_tags, parse_metric, parse_metric_name, quantity_direction, reads_domain, reads_extractor, reads_nothing, register_metric)  # noqa: F401
from ganbench.metrics import fid, kid, isc, prdc, modes, memorisation, conditional, ppl, translation  # noqa: E402,F401  (registers metrics)
from ganbench.metrics.api import Sampler, evaluate  # noqa: E402,F401
