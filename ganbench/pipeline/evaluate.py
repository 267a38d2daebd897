"""``ganbench eval``: measure any generator's samples under a protocol's evaluation, tracked in MLflow.

Samples come from an .npz, a folder of PNGs, or a generator (``module:function`` factory + a
tensors-only checkpoint, sampled at the protocol's fixed z). The MLflow run lands in the
protocol's experiment (``ganbench/<protocol>``) with the same tags as a training run, so a
leaderboard reads both alike; ``ganbench.source`` says what was evaluated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ganbench.core import track
from ganbench.core.errors import GanbenchError
from ganbench.metrics import MetricResult


@dataclass(frozen=True)
class EvalOutcome:
    run_id: str | None
    results: dict[str, MetricResult]
    eval_time_s: float
    source: str


def eval_protocol(protocol: str, samples: str | None = None, generator: str | None = None,
                  checkpoint: str | None = None, z_dim: int = 100, device: str = "auto",
                  tracking_uri: str | None = None, name: str | None = None, log: bool = True,
                  data_root=None, value_range: tuple[float, float] | None = None) -> EvalOutcome:
    """Evaluate samples (path) or a generator (module:function + checkpoint) under ``protocol``.
    ``value_range``: the range of float samples, e.g. (0, 1) (see ``ganbench.metrics.samples``)."""
    from ganbench.metrics import Sampler, evaluate, mlflow_metrics, mlflow_tags
    from ganbench.metrics.samples import load_generator, load_samples, samples_from_generator
    from ganbench.spec.protocol import identity, load_protocol, to_plain, with_assets
    from ganbench.pipeline.run import resolve_device, versions

    if (samples is None) == (generator is None):
        raise GanbenchError("give exactly one of --samples PATH or --generator module:function (with --checkpoint)")
    if value_range is not None and samples is None:
        raise GanbenchError("--range describes the pixels of --samples; a --generator's outputs are read as [-1, 1]")
    proto = load_protocol(protocol)
    dev = resolve_device(device)
    sampler = None
    if samples is not None:
        images, source = load_samples(samples, proto, value_range), f"samples:{samples}"
    else:
        G = load_generator(generator, checkpoint)
        images, source = samples_from_generator(G, proto, z_dim, dev), f"generator:{generator} checkpoint:{checkpoint}"
        sampler = Sampler(G, z_dim)  # the latent-space metrics (ppl) walk the generator itself
    t0 = time.perf_counter()
    results = evaluate(images, proto, dev, data_root, generator=sampler)
    seconds = time.perf_counter() - t0
    run_id = None
    if log:
        proto_resolved, assets = with_assets(proto)
        ident = identity(proto_resolved, None, assets)  # samples from outside the zoo: the protocol side only
        tracker = track.Tracker(tracking_uri)
        tags = {track.TAG_PROTOCOL: proto.name, **track.identity_tags(ident), track.TAG_MODEL: name or "external",
                track.TAG_SOURCE: source}
        params = {"protocol": to_plain(proto_resolved), "protocol_hash": ident.hash, "source": source,
                  "versions": versions(), "device": str(dev),
                  **({"value_range": f"{value_range[0]:g},{value_range[1]:g}"} if value_range else {})}
        run_id = tracker.start(track.experiment_name(proto.name), f"eval-{name or 'external'}", params, tags)
        tracker.log_metrics(run_id, {**mlflow_metrics(results.values()), "eval_time_s": seconds})
        tracker.set_tags(run_id, mlflow_tags(results.values()))
        tracker.end(run_id, "finished")
    return EvalOutcome(run_id, results, seconds, source)
