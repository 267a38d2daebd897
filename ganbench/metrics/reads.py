"""What a protocol's evaluation reads, and the SHA-256 of each file: the asset parts of a run's identity.

Each metric declares in the registry which networks it reads (``MetricDef.reads``); the protocol's
metric list thus says which weights matter: the Inception weights only when a metric measures in
Inception's space, a domain classifier when a metric measures in its space (``metric@domain``, the
conditional metrics, memorisation's feature copies, mode coverage, PPL). The dataset files are
those the training data and the reference split come from, by their pinned hashes. A protocol that
reads no Inception never opens the Inception file, so a damaged one cannot block it.
"""

from __future__ import annotations

from ganbench.spec.protocol import Protocol

INCEPTION = "inception-v3-compat"


def networks_read(protocol: Protocol) -> list[tuple[str, str]]:
    """(extractor, dataset) of every network the protocol's metrics read, in first-use order:
    ("inception-v3-compat", "") or ("domain", <dataset of the classifier>)."""
    from ganbench.metrics import parse_metric

    out: list[tuple[str, str]] = []
    for spec in protocol.eval.metrics:
        metric, extractor = parse_metric(spec, protocol.eval.extractor)
        for name in metric.reads(extractor, protocol.data.dataset):
            kind, _, dataset = name.partition(":")
            key = (kind, "") if kind == INCEPTION else (kind, dataset or protocol.data.dataset)
            if key not in out:
                out.append(key)
    return out


def weights_part(extractor: str, dataset: str) -> str:
    return f"weights/{INCEPTION}" if extractor == INCEPTION else f"weights/domain-{dataset}"


def weights_sha256(extractor: str, dataset: str) -> str:
    """The content hash the metric results record for these weights (read from the cache; a missing
    domain classifier is trained once, missing Inception weights are fetched)."""
    if extractor == INCEPTION:
        from ganbench.extractors import inception_weights

        return inception_weights().features_sha256
    from ganbench.extractors.domain import domain_classifier

    return domain_classifier(dataset).weights_sha256


def evaluation_assets(protocol: Protocol, stand_in: str | None = None) -> dict[str, str]:
    """"weights/<network>" and "data/<dataset>/<file>" -> SHA-256 for everything the protocol reads.
    ``stand_in``: a hash used for every weight file instead of reading it (tests that never evaluate)."""
    from ganbench.data import data_files

    weights = {weights_part(e, d): stand_in or weights_sha256(e, d) for e, d in networks_read(protocol)}
    return {**weights, **data_files(protocol.data.dataset)}
