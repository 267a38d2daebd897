"""Using a trained generator: ``ganbench sample`` and ``ganbench interpolate``.

A run is named by its MLflow run id or its run folder. The generator is rebuilt from the run's
``spec.json`` (older runs: from the zoo card, refused when the card changed since, i.e. the protocol
hash differs) and the weights of its final checkpoint (``last.pt`` for a run that did not finish),
read from the local run folder when it is there and from MLflow's artifacts otherwise. Checkpoints
are loaded tensors-only (``weights_only=True``).

Interpolation walks the great circle between two latent vectors (slerp, Shoemake 1985), which
keeps intermediate z at the typical norm of a Gaussian sample where a straight line would pass
through the low-density centre (White 2016, "Sampling Generative Networks", sec. 2.1).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganbench.core import track
from ganbench.core.assets import atomic_path
from ganbench.core.errors import GanbenchError
from ganbench.core.plots import save_grid, scatter_2d
from ganbench.data import get_dataset, is_points
from ganbench.metrics.samples import load_tensors, load_weights
from ganbench.nets.stylegan import set_truncation
from ganbench.core.device import resolve_device
from ganbench.spec.protocol import Identity, RunSpec, load_protocol, resolve, runspec_from_dict
from ganbench.metrics.translation import task_split
from ganbench.nets.sampling import generate, is_translator, triplets
from ganbench.spec.seeds import fixed_z, slerp
from ganbench.training import CHECKPOINT_DIR, FINAL_WEIGHTS, LAST_CHECKPOINT, build_models, run_dir_for


# --------------------------------------------------------------------------- locating a run


@dataclass(frozen=True)
class RunHandle:
    run_id: str | None
    run_dir: Path  # the local run folder (default home of sample files)
    spec: RunSpec
    state: dict  # the checkpoint's state dicts ("G", "D", optionally "G_ema")
    checkpoint: str  # where the weights came from


def _spec_from_tags(tags: dict[str, str], what: str) -> RunSpec:
    """An older run without spec.json: re-resolve its zoo card and refuse when the hash moved."""
    try:
        name, model, seed, phash = (tags[k] for k in (track.TAG_PROTOCOL, track.TAG_MODEL, track.TAG_SEED,
                                                      track.TAG_PROTOCOL_HASH))
    except KeyError as err:
        raise GanbenchError(f"{what} has no spec.json and no tag {err.args[0]}: it is not a `ganbench run` run") from err
    (spec,) = resolve(load_protocol(name), None, [model], [int(seed)])
    if spec.protocol_hash != phash:
        old = json.loads(tags.get(track.TAG_IDENTITY, "{}"))
        why = "; ".join(spec.identity.changes(Identity(phash, "", old))) if old else "the zoo card or protocol changed"
        raise GanbenchError(f"{what} has no spec.json, and protocol {name!r} with model {model!r} now has identity "
                            f"{spec.protocol_hash[:12]}, not the run's {phash[:12]}: {why} since the run, so its "
                            "generator cannot be rebuilt faithfully")
    return spec


def _load_state(path: Path) -> dict:
    """A ganbench checkpoint (``final.pt`` or ``checkpoints/last.pt``): the networks' state dicts under "G",
    "D" and optionally "G_ema"; anything else is refused with the file's name."""
    state = load_tensors(path)
    if not (isinstance(state, dict) and isinstance(state.get("G"), dict)):
        found = sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__
        raise GanbenchError(f"{path}: not a ganbench checkpoint: expected the generator's weights under 'G' (as "
                            f"`ganbench run` writes final.pt and checkpoints/last.pt), found {found}")
    return state


def open_run(run: str, tracking_uri: str | None = None) -> RunHandle:
    """Find a run by MLflow run id or run folder: its RunSpec and checkpoint. Local files come first;
    MLflow is asked only for what the run folder lacks."""
    folder = Path(run)
    if folder.is_dir():
        run_dir: Path | None = folder
        id_file = folder / "mlflow_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else None
    else:
        run_dir, run_id = None, run
    remote: dict = {}

    def mlflow() -> dict:
        """The run's tracker, tags and artifact paths, fetched once on first use."""
        if not remote:
            if run_id is None:
                raise GanbenchError(f"{folder} lacks spec.json or a checkpoint and has no mlflow_run_id to fetch them by")
            tracker = track.Tracker(tracking_uri)
            try:
                tags = tracker.get(run_id).data.tags
            except Exception as err:  # MLflow's own exception types stay inside track.py
                raise GanbenchError(f"{run!r} is neither a run folder nor a run id in {tracker.uri} "
                                    f"({type(err).__name__}); see `ganbench show` or a run folder's mlflow_run_id") from err
            remote.update(tracker=tracker, tags=tags, arts=set(tracker.artifacts(run_id)))
        return remote

    with tempfile.TemporaryDirectory(prefix="ganbench-use-") as tmp:
        if run_dir is not None and (run_dir / "spec.json").is_file():
            spec = runspec_from_dict(json.loads((run_dir / "spec.json").read_text()))
        elif "spec.json" in mlflow()["arts"]:
            spec = runspec_from_dict(json.loads(remote["tracker"].download(run_id, "spec.json", Path(tmp)).read_text()))
        else:
            spec = _spec_from_tags(remote["tags"], f"run {run}")
        if run_dir is None:
            run_dir = run_dir_for(spec)
            id_file = run_dir / "mlflow_run_id"
            local = run_dir if id_file.is_file() and id_file.read_text().strip() == run_id else None  # else another run's
        else:
            local = run_dir
        for name in (FINAL_WEIGHTS, LAST_CHECKPOINT):
            if local is not None and (local / name).is_file():
                return RunHandle(run_id, run_dir, spec, _load_state(local / name), str(local / name))
        for art in (f"{CHECKPOINT_DIR}/{FINAL_WEIGHTS}", LAST_CHECKPOINT):
            if art in mlflow()["arts"]:
                path = remote["tracker"].download(run_id, art, Path(tmp))
                return RunHandle(run_id, run_dir, spec, _load_state(path), f"MLflow run {run_id}: {art}")
    raise GanbenchError(f"run {run} has no checkpoint (final.pt or checkpoints/last.pt), locally or in MLflow")


def _generator(handle: RunHandle, ema: bool, device: str | torch.device) -> nn.Module:
    spec = handle.spec
    key = "G_ema" if ema else "G"
    if key not in handle.state:
        why = (f"model {spec.model.name!r} was trained without the EMA trick (tricks.ema = {spec.model.tricks.ema}); "
               "train it with `--set tricks.ema=0.999` to keep an averaged generator" if not spec.model.tricks.ema > 0
               else f"its checkpoint ({handle.checkpoint}) holds no averaged weights")
        raise GanbenchError(f"--ema: run {handle.run_id or handle.run_dir} has no G_ema: {why}")
    G, _ = build_models(spec, resolve_device(str(device)), torch.Generator().manual_seed(0))  # weights overwritten below
    load_weights(G, handle.state[key], handle.checkpoint, f"the generator of model {spec.model.name!r}")
    return G.eval()


def load_generator_from_run(run: str, tracking_uri: str | None = None, ema: bool = False,
                            device: str | torch.device = "cpu") -> tuple[RunSpec, nn.Module]:
    """The RunSpec and generator (eval mode, on ``device``) of a run id or run folder; ``ema``: the
    exponential-moving-average weights (models trained with ``tricks.ema > 0``)."""
    handle = open_run(run, tracking_uri)
    return handle.spec, _generator(handle, ema, device)


# --------------------------------------------------------------------------- sample / interpolate


@dataclass(frozen=True)
class Samples:
    png: Path
    npz: Path | None
    images: torch.Tensor  # uint8 N x C x H x W (float N x 2 for 2D-point protocols)
    labels: torch.Tensor | None  # int64 class labels of a conditional model
    checkpoint: str


def _labels(G: nn.Module, spec: RunSpec, n: int, label: int | None, per: int = 1) -> torch.Tensor | None:
    """Labels of a conditional model (``label`` for all, else classes in turn, each ``per`` times)."""
    if spec.model.conditional is None:
        if label is not None:
            raise GanbenchError(f"label={label}: model {spec.model.name!r} is unconditional; it takes no class label")
        return None
    k = int(G.num_classes)
    if label is not None and not 0 <= label < k:
        raise GanbenchError(f"label={label}: model {spec.model.name!r} has classes 0..{k - 1}")
    if label is not None:
        return torch.full((n,), label, dtype=torch.int64)
    return (torch.arange(n) // per) % k


def _default_out(handle: RunHandle, kind: str, seed: int | None, label: int | None, ema: bool) -> Path:
    name = f"{kind}_seed{seed}" if seed is not None else f"{kind}_fixedz{handle.spec.protocol.eval.z_seed}"
    name += (f"_label{label}" if label is not None else "") + ("_ema" if ema else "")
    return handle.run_dir / "samples" / f"{name}.png"


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def sample(run: str, n: int = 64, label: int | None = None, seed: int | None = None, ema: bool = False,
           npz: bool = False, out: str | Path | None = None, tracking_uri: str | None = None,
           device: str = "cpu", truncation: float | None = None) -> Samples:
    """A PNG grid (ceil(sqrt(n)) columns) of ``n`` samples of a run's generator. z comes from
    ``torch.Generator().manual_seed(seed)``, or with ``seed=None`` is the protocol's fixed z (the grids
    the run logged). 2D-point protocols get a scatter plot over the true modes instead of a grid.
    ``truncation``: psi of the truncation trick (style-based generators, ``ganbench.nets.stylegan``)."""
    if n < 1:
        raise GanbenchError(f"n={n}: expected a positive number of samples")
    handle = open_run(run, tracking_uri)
    spec, G = handle.spec, _generator(handle, ema, device)
    if is_translator(G):
        return _translation_samples(handle, G, n, seed, npz, out, ema)
    if truncation is not None:
        set_truncation(G, truncation)
    zd = spec.model.z_dim
    z = fixed_z(n, zd, spec.protocol.eval.z_seed if seed is None else seed)
    labels = _labels(G, spec, n, label)
    png = Path(out) if out else _default_out(handle, "sample", seed, label, ema)
    if out is None and truncation is not None:
        png = png.with_name(f"{png.stem}_psi{truncation:g}{png.suffix}")
    dataset = spec.protocol.data.dataset
    if is_points(dataset):
        images = generate(G, z, as_uint8=False, labels=labels)
        scatter_2d(images, get_dataset(dataset).mixture, png, f"{spec.model.name} seed {spec.seed}: {n} samples")
    else:
        images = generate(G, z, labels=labels)
        save_grid(images, png, nrow=math.ceil(math.sqrt(n)))
    npz_path = None
    if npz:
        key = "points" if is_points(dataset) else "images"
        extra = {"labels": labels.numpy()} if labels is not None else {}
        npz_path = _write_npz(png.with_suffix(".npz"), **{key: images.numpy()}, **extra)
    return Samples(png, npz_path, images, labels, handle.checkpoint)


def _translation_samples(handle: RunHandle, G: nn.Module, n: int, seed: int | None, npz: bool, out, ema: bool) -> Samples:
    """An image-to-image model's sample: a grid of (source | translation | target) triplets of the first n test
    sources (CycleGAN: source | translation | reconstruction); ``seed`` seeds pix2pix's test-time dropout."""
    ev = handle.spec.protocol.eval
    test = task_split(handle.spec.protocol.data, ev.reference_split)
    images, columns = triplets(G, test.inputs[:n], test.images[:n], seed=ev.z_seed if seed is None else seed)
    png = Path(out) if out else _default_out(handle, "sample", seed, None, ema)
    save_grid(images, png, nrow=columns)
    npz_path = _write_npz(png.with_suffix(".npz"), triplets=images.numpy()) if npz else None
    return Samples(png, npz_path, images, None, handle.checkpoint)


def interpolate(run: str, pairs: int = 8, steps: int = 10, seed: int = 0, ema: bool = False, label: int | None = None,
                out: str | Path | None = None, tracking_uri: str | None = None, device: str = "cpu") -> Samples:
    """A grid with one row per random pair (z0, z1) and ``steps`` columns of ``slerp(z0, z1, t)``,
    t evenly spaced in [0, 1]. A conditional model keeps one class per row (``label``, else 0, 1, ...)."""
    if pairs < 1 or steps < 2:
        raise GanbenchError(f"pairs={pairs}, steps={steps}: expected at least 1 pair and 2 steps")
    handle = open_run(run, tracking_uri)
    spec = handle.spec
    if is_points(spec.protocol.data.dataset):
        raise GanbenchError(f"interpolate draws image grids; protocol {spec.protocol.name!r} generates 2D points "
                            f"({spec.protocol.data.dataset}): use `ganbench sample` for a scatter plot")
    G = _generator(handle, ema, device)
    z0, z1 = torch.randn(2, pairs, 1, spec.model.z_dim, generator=torch.Generator().manual_seed(seed))
    t = torch.linspace(0.0, 1.0, steps).view(1, steps, 1)
    z = slerp(z0, z1, t).reshape(pairs * steps, spec.model.z_dim)  # row-major: one row of the grid per pair
    labels = _labels(G, spec, pairs * steps, label, per=steps)
    images = generate(G, z, labels=labels)
    png = Path(out) if out else _default_out(handle, "interpolate", seed, label, ema)
    save_grid(images, png, nrow=steps)
    return Samples(png, None, images, labels, handle.checkpoint)
