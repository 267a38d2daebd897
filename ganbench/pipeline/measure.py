"""What the protocol's evaluation measures of a trained generator, and the numbers it logs: the final
evaluation of a run (training and ``ganbench reevaluate`` both measure through :func:`evaluate_final`) and the
per-epoch curve point; the samples are decided in one place (:func:`samples_of`)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from ganbench.core import track
from ganbench.core.assets import atomic_write_bytes
from ganbench.core.plots import save_grid
from ganbench.data import is_points
from ganbench.metrics import Sampler, evaluate, mlflow_metrics, mlflow_tags
from ganbench.metrics.translation import translation_samples
from ganbench.nets.sampling import generate, is_translator
from ganbench.spec.protocol import RunSpec
from ganbench.spec.seeds import fixed_labels, fixed_z
from ganbench.training import num_classes


def samples_of(G, spec: RunSpec, n: int, data_root=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the protocol's evaluation measures of G, decided here once: the translations of the first ``n`` test
    sources (an image-to-image model), else G at the first ``n`` fixed z, with class-balanced labels for a
    conditional model, as float points (a 2D mixture) or uint8 images; and the labels."""
    if is_translator(G):
        return translation_samples(G, spec.protocol, n, data_root), None
    classes = num_classes(spec)
    labels = fixed_labels(n, classes) if classes else None
    z = fixed_z(n, spec.model.z_dim, spec.protocol.eval.z_seed)
    return generate(G, z, as_uint8=not is_points(spec.protocol.data.dataset), labels=labels), labels


def curve_point(G, spec: RunSpec, device: torch.device, data_root=None) -> dict[str, float]:
    """The protocol's ``eval.curve`` metrics of G now, on its first ``eval.curve_samples`` fixed-z samples (no
    floor), named by the one naming rule (``domain_fid_2k_test``): the per-epoch curve of a run."""
    ev = spec.protocol.eval
    if not ev.curve or is_translator(G):
        return {}
    samples, labels = samples_of(G, spec, ev.curve_samples, data_root)
    protocol = dataclasses.replace(spec.protocol, eval=dataclasses.replace(
        ev, num_samples=ev.curve_samples, metrics=ev.curve, floor=False))
    return mlflow_metrics(list(evaluate(samples, protocol, device, data_root, labels=labels).values()))


def evaluate_final(G, spec: RunSpec, device: torch.device, tracker: track.Tracker, run_id: str, run_dir: Path,
                   data_root=None) -> dict[str, float]:
    """The protocol's evaluation of a run's final generator ``G``: samples at the fixed z (class-balanced
    labels; an image-to-image model translates the test sources), every metric with its floor, the metrics'
    provenance tags and by-products (under ``eval/``); returns the MLflow metrics, ``eval_time_s`` included.
    Training and re-evaluation (:mod:`ganbench.pipeline.reevaluate`) both measure through it."""
    ev = spec.protocol.eval
    t0, c0 = time.perf_counter(), time.process_time()
    samples, labels = samples_of(G, spec, ev.num_samples, data_root)
    holder: dict = {}
    sampler = Sampler(G, spec.model.z_dim)  # the latent-space metrics (ppl) walk G itself
    results = list(evaluate(samples, spec.protocol, device, data_root, context=holder, labels=labels,
                            generator=sampler).values())
    metrics = mlflow_metrics(results)  # value, _std, _floor; unavailable ones are left out
    tracker.set_tags(run_id, mlflow_tags(results))
    for path in write_extras(holder["ctx"].extras, run_dir / "eval"):
        tracker.log_artifact(run_id, path, "eval")
    metrics.update(eval_time_s=time.perf_counter() - t0, eval_cpu_time_s=time.process_time() - c0)
    return metrics


def write_extras(extras: dict, folder: Path) -> list[Path]:
    """The metrics' non-scalar by-products as files: image tensors as PNG grids, the rest as JSON."""
    paths = []
    for name, value in extras.items():
        if isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 4:
            paths.append(save_grid(value, folder / f"{name}.png", nrow=8))
        else:
            path = folder / f"{name}.json"
            atomic_write_bytes(path, json.dumps(value, indent=1, default=float).encode())
            paths.append(path)
    return paths
