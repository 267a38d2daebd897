"""``ganbench eval``: measure any generator's samples under a protocol's evaluation, tracked in MLflow.

Samples come from an .npz/.npy, a folder of PNGs, an in-memory tensor or array, or a generator
(a ``torch.nn.Module``, or a ``module:function`` factory + a tensors-only checkpoint, sampled at the
protocol's fixed z). The MLflow run lands in the protocol's experiment (``ganbench/<protocol>``) with
the same tags as a training run, so a leaderboard reads both alike; ``ganbench.source`` says what was
evaluated.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ganbench.core import track
from ganbench.core.errors import GanbenchError
from ganbench.metrics import MetricResult, Sampler, evaluate, mlflow_metrics, mlflow_tags, parse_metric
from ganbench.metrics.samples import load_generator, load_samples, samples_from_generator
from ganbench.core.device import resolve_device, versions
from ganbench.spec.protocol import Identity, Protocol, identity, load_protocol, to_plain, with_assets
GENERATOR_RANGE = "--range describes the pixels of --samples; a --generator's outputs are read as [-1, 1]"


@dataclass(frozen=True)
class EvalOutcome:
    run_id: str | None
    results: dict[str, MetricResult]
    eval_time_s: float
    source: str
    identity: Identity | None = None  # the protocol side of the identity (samples from outside the zoo)


def eval_protocol(protocol: str, samples: str | None = None, generator: str | None = None,
                  checkpoint: str | None = None, z_dim: int = 100, device: str = "auto",
                  tracking_uri: str | None = None, name: str | None = None, log: bool = True,
                  data_root=None, value_range: tuple[float, float] | None = None,
                  seed: int | None = None) -> EvalOutcome:
    """Evaluate samples (path) or a generator (module:function + checkpoint) under ``protocol``, as the
    command line names them. ``value_range``: the range of float samples, e.g. (0, 1) (see
    ``ganbench.metrics.samples``)."""
    if (samples is None) == (generator is None):
        raise GanbenchError("give exactly one of --samples PATH or --generator module:function (with --checkpoint)")
    if value_range is not None and samples is None:
        raise GanbenchError(GENERATOR_RANGE)
    if samples is not None:
        return evaluate_source(protocol, samples, f"samples:{samples}", z_dim, device, tracking_uri, name, log,
                               data_root, value_range, seed=seed)
    G = load_generator(generator, checkpoint)
    return evaluate_source(protocol, G, f"generator:{generator} checkpoint:{checkpoint}", z_dim, device,
                           tracking_uri, name, log, data_root, value_range, seed=seed)


def with_metrics(proto: Protocol, metrics: list[str] | tuple[str, ...] | None) -> Protocol:
    """The protocol with only ``metrics`` (names as in its ``eval.metrics``, e.g. "fid", "kid@domain");
    the identity follows, since it holds the metric list."""
    if metrics is None:
        return proto
    if isinstance(metrics, str) or not metrics:
        raise GanbenchError(f"metrics={metrics!r}: expected a non-empty list of metric names, e.g. ['fid', 'kid']")
    for spec in metrics:
        parse_metric(spec, proto.eval.extractor)  # an unknown name is refused with the available ones
    return dataclasses.replace(proto, eval=dataclasses.replace(proto.eval, metrics=tuple(metrics)))


def evaluate_source(protocol: str | Protocol, source_obj, source: str, z_dim: int = 100, device: str = "auto",
                    tracking_uri: str | None = None, name: str | None = None, log: bool = True, data_root=None,
                    value_range: tuple[float, float] | None = None,
                    metrics: list[str] | tuple[str, ...] | None = None, seed: int | None = None) -> EvalOutcome:
    """Evaluate ``source_obj`` (images as a tensor, array or path; or a generator module) under ``protocol``
    (a name, a .toml path or a Protocol); ``source`` labels it in MLflow; ``log``: track an MLflow run;
    ``seed``: the training seed of the generator measured (a baseline's replicates are told apart by it)."""
    proto = with_metrics(load_protocol(protocol) if isinstance(protocol, (str, Path)) else protocol, metrics)
    dev = resolve_device(device)
    images, sampler = _images(proto, source_obj, z_dim, dev, value_range)
    t0 = time.perf_counter()
    results = evaluate(images, proto, dev, data_root, generator=sampler)
    seconds = time.perf_counter() - t0
    proto_resolved, assets = with_assets(proto)
    ident = identity(proto_resolved, None, assets)  # samples from outside the zoo: the protocol side only
    run_id = _track(proto, proto_resolved, ident, results, seconds, source, name, dev, tracking_uri,
                    value_range, seed) if log else None
    return EvalOutcome(run_id, results, seconds, source, ident)


def _images(proto: Protocol, source_obj, z_dim: int, dev: torch.device,
            value_range: tuple[float, float] | None) -> tuple[torch.Tensor, Sampler | None]:
    """uint8 samples to measure, and the generator behind them when there is one (the latent-space
    metrics, ppl, walk the generator itself)."""
    if not isinstance(source_obj, nn.Module):
        return load_samples(source_obj, proto, value_range), None
    if value_range is not None:
        raise GanbenchError(GENERATOR_RANGE)
    return samples_from_generator(source_obj, proto, z_dim, dev), Sampler(source_obj, z_dim)


def _track(proto: Protocol, proto_resolved: Protocol, ident: Identity, results: dict[str, MetricResult],
           seconds: float, source: str, name: str | None, dev: torch.device, tracking_uri: str | None,
           value_range: tuple[float, float] | None, seed: int | None = None) -> str:
    """One finished MLflow run in the protocol's experiment holding the results; its run id."""
    tracker = track.Tracker(tracking_uri)
    tags = {track.TAG_PROTOCOL: proto.name, **track.identity_tags(ident), track.TAG_MODEL: name or "external",
            track.TAG_SOURCE: source, **({track.TAG_SEED: str(int(seed))} if seed is not None else {})}
    params = {"protocol": to_plain(proto_resolved), "protocol_hash": ident.hash, "source": source,
              "versions": versions(), "device": str(dev),
              **({"value_range": f"{value_range[0]:g},{value_range[1]:g}"} if value_range else {})}
    run_id = tracker.start(track.experiment_name(proto.name), f"eval-{name or 'external'}", params, tags)
    tracker.log_metrics(run_id, {**mlflow_metrics(results.values()), "eval_time_s": seconds})
    tracker.set_tags(run_id, mlflow_tags(results.values()))
    tracker.end(run_id, "finished")
    return run_id
