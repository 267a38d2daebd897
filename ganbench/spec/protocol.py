"""Protocol and model specifications: TOML files -> frozen, fully explicit dataclasses (:mod:`ganbench.spec.types`),
validated against the registries -> one :class:`RunSpec` per (model, seed) with its identity
(:mod:`ganbench.spec.identity`).

A protocol (``protocols/<name>.toml``) fixes the data, the training budget, the seeds and the
evaluation; a zoo card (``zoo/<model>.toml``) fixes a model's architecture, loss, optimisers and
tricks. ``resolve`` turns both into a :class:`RunSpec` with every default written out. What a name may be
(a dataset, architecture, initialisation, loss, optimizer, metric, conditioning input) the registries say,
filled by the plug-ins that implement them.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ganbench.core.errors import GanbenchError
from ganbench.core.options import from_mapping
from ganbench.core.registry import (CONDITIONAL_INPUTS, DATASETS, EXTRACTORS, INITS, LOSSES, METRICS, NETS, OPTIMIZERS,
                                    check_net_pair)
# The spec layer's names, re-exported: most modules read protocols, specs and identities from here.
from ganbench.spec.identity import (Identity, RunSpec, board_hash, content_hash, evaluation_assets,  # noqa: F401
                                    identity, identity_changes, legacy_protocol_hash, networks_read,
                                    runspec_from_dict, with_assets)
from ganbench.spec.types import (PRECISIONS, REPORTS, ConditionalSpec, DataSpec, EvalSpec, LossSpec,  # noqa: F401
                                 ModelSpec, NetSpec, OptimSpec, Protocol, TrainSpec, TricksSpec, to_plain)


# --------------------------------------------------------------------------- strict loading


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise GanbenchError(f"{path}: not valid TOML ({err})") from err


# --------------------------------------------------------------------------- finding files


def spec_dirs(kind: str) -> list[Path]:
    """Folders searched for ``protocols`` or ``zoo`` files: ``GANBENCH_<KIND>_PATH``, then the shipped ones."""
    assert kind in ("protocols", "zoo")
    dirs = [Path(p) for p in os.environ.get(f"GANBENCH_{kind.upper()}_PATH", "").split(os.pathsep) if p]
    shipped = resources.files("ganbench").joinpath(f"_{kind}")  # installed wheel: package data
    if shipped.is_dir():
        dirs.append(Path(str(shipped)))
    repo = Path(__file__).resolve().parents[2] / kind  # source checkout / editable install
    if repo.is_dir():
        dirs.append(repo)
    return dirs


def available(kind: str) -> list[str]:
    return sorted({p.stem for d in spec_dirs(kind) for p in d.glob("*.toml")})


def find_spec_file(kind: str, name_or_path: str) -> Path:
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise GanbenchError(f"{kind[:-1] if kind == 'protocols' else 'model'} file {path} does not exist")
        return path
    for d in spec_dirs(kind):
        if (d / f"{name_or_path}.toml").is_file():
            return d / f"{name_or_path}.toml"
    what = "protocol" if kind == "protocols" else "model"
    raise GanbenchError(f"Unknown {what} {name_or_path!r}. Available: {', '.join(available(kind)) or 'none'}")


def _load(kind: str, cls: type, validate, name_or_path: str):
    """A protocol or zoo card by name or path: parsed strictly (named after its file unless it says) and validated."""
    path = find_spec_file(kind, name_or_path)
    raw = _read_toml(path)
    raw.setdefault("name", path.stem)
    spec = from_mapping(cls, raw, str(path))
    validate(spec, path)
    return spec


def load_protocol(name_or_path: str) -> Protocol:
    return _load("protocols", Protocol, _validate_protocol, name_or_path)


def load_model(name_or_path: str) -> ModelSpec:
    return _load("zoo", ModelSpec, _validate_model, name_or_path)


def _validate_protocol(p: Protocol, path: Path) -> None:
    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise GanbenchError(f"{path}: {key}: expected {expected}")

    if p.data.dataset not in DATASETS:
        raise GanbenchError(f"{path}: data.dataset: Unknown dataset {p.data.dataset!r}. Available: {', '.join(sorted(DATASETS))}")
    ds = DATASETS[p.data.dataset]
    need(p.data.split in ds.splits, "data.split", f"one of {list(ds.splits)}")
    need(p.eval.reference_split in ds.splits, "eval.reference_split", f"one of {list(ds.splits)}")
    need(p.data.subset is None or p.data.subset > 0, "data.subset", "a positive number of images")
    if not ds.points:
        need(p.data.channels == ds.channels, "data.channels", f"{ds.channels} (the channels of {ds.name}'s images)")
        need(8 <= p.data.image_size <= 256, "data.image_size", "a size in [8, 256] (images are resized to it)")
    need(p.train.epochs > 0, "train.epochs", "a positive integer")
    need(p.train.batch_size > 0, "train.batch_size", "a positive integer")
    need(p.report in REPORTS, "report", f"one of {list(REPORTS)}, got {p.report!r}")
    need(p.train.precision in PRECISIONS, "train.precision", f"one of {list(PRECISIONS)}, got {p.train.precision!r}")
    need(p.eval.num_samples >= 2, "eval.num_samples", "at least 2 samples")
    need(len(p.models) > 0, "models", "at least one zoo model name")
    need(len(p.seeds) > 0, "seeds", "at least one seed")
    need(len(set(p.seeds)) == len(p.seeds), "seeds", "distinct seeds")
    extractors = sorted(EXTRACTORS)
    need(p.eval.extractor in EXTRACTORS, "eval.extractor", f"one of {extractors}, got {p.eval.extractor!r}")
    for m in p.eval.metrics:
        name, _, extractor = m.partition("@")
        need(name in METRICS and extractor in ("", *EXTRACTORS), "eval.metrics",
             f"names from {sorted(METRICS)}, optionally as name@extractor with an extractor from {extractors}, got {m!r}")
    curve_metrics = sorted(name for name, metric in METRICS.items() if metric.curve)
    for m in p.eval.curve:
        name, _, extractor = m.partition("@")
        need(name in curve_metrics and extractor in ("", *EXTRACTORS), "eval.curve",
             f"names from {curve_metrics} (metrics of the samples alone, cheap enough for every epoch), "
             f"optionally as name@extractor, got {m!r}")
    need(not p.eval.curve or 2 <= p.eval.curve_samples <= p.eval.num_samples, "eval.curve_samples",
         f"a sample count in [2, eval.num_samples = {p.eval.num_samples}]")
    for m in p.eval.metrics:
        if METRICS[m.partition("@")[0]].held_out:  # it compares samples with the training images
            need(p.eval.reference_split != p.data.split, "eval.reference_split",
                 f"a split other than data.split ({p.data.split!r}, the images {m} searches for copies)")
    for m in p.models:
        find_spec_file("zoo", m)


def _validate_model(m: ModelSpec, path: Path) -> None:
    for role, net in (("generator", m.generator), ("discriminator", m.discriminator)):
        if net.arch not in NETS:
            raise GanbenchError(f"{path}: {role}.arch: unknown architecture {net.arch!r}; available: {', '.join(sorted(NETS))}")
        if net.init is not None and net.init not in INITS:
            raise GanbenchError(f"{path}: {role}.init: unknown initialisation {net.init!r}; available: {', '.join(sorted(INITS))}")
    if m.loss.name not in LOSSES:
        raise GanbenchError(f"{path}: loss.name: unknown loss {m.loss.name!r}; available: {', '.join(sorted(LOSSES))}")
    for role, opt in (("optim_g", m.optim_g), ("optim_d", m.optim_d)):
        if opt.name not in OPTIMIZERS:
            raise GanbenchError(f"{path}: {role}.name: expected one of {sorted(OPTIMIZERS)}, got {opt.name!r}")
        if not opt.lr > 0:
            raise GanbenchError(f"{path}: {role}.lr: expected a positive learning rate, got {opt.lr}")
    if m.n_critic < 1 or m.z_dim < 1:
        raise GanbenchError(f"{path}: n_critic and z_dim must be positive integers")
    _validate_tricks(m, path)
    # Options are checked by the plug-ins themselves (unknown keys are errors there too).
    try:
        NETS[m.generator.arch].resolve_options(m.generator.options)
        NETS[m.discriminator.arch].resolve_options(m.discriminator.options)
        LOSSES[m.loss.name].resolve_options(m.loss.options)
        check_net_pair(m.generator.arch, NETS[m.generator.arch].options(m.generator.options),
                   m.discriminator.arch, NETS[m.discriminator.arch].options(m.discriminator.options))
    except GanbenchError as err:
        raise GanbenchError(f"{path}: {err}") from err


def _validate_tricks(m: ModelSpec, path: Path | str) -> None:
    t, c = m.tricks, m.conditional

    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise GanbenchError(f"{path}: {key}: expected {expected}")

    need(0.0 <= t.label_noise < 0.5, "tricks.label_noise", "a value in [0, 0.5)")
    need(0.0 <= t.label_flip < 0.5, "tricks.label_flip", "a probability in [0, 0.5)")
    need(t.instance_noise >= 0.0, "tricks.instance_noise", "a non-negative sigma")
    need(t.instance_noise_steps is None or t.instance_noise_steps > 0, "tricks.instance_noise_steps", "a positive number of G steps")
    need(0.0 <= t.ema < 1.0, "tricks.ema", "a decay in [0, 1)")
    need(t.ema_rampup >= 0.0 and (t.ema or not t.ema_rampup), "tricks.ema_rampup",
         "a non-negative fraction, with tricks.ema set")
    need(t.feature_matching >= 0.0, "tricks.feature_matching", "a non-negative weight")
    need(t.unrolled_steps >= 0, "tricks.unrolled_steps", "a non-negative number of D steps")
    if (t.label_noise or t.label_flip) and not LOSSES[m.loss.name].targets:
        with_targets = " or ".join(sorted(name for name, loss in LOSSES.items() if loss.targets))
        raise GanbenchError(f"{path}: tricks.label_noise/label_flip change D's targets; loss {m.loss.name!r} has none "
                            f"(use them with the {with_targets} loss)")
    if c is not None:
        for key in ("g_input", "d_input"):
            need(getattr(c, key) in CONDITIONAL_INPUTS[key], f"conditional.{key}",
                 f"one of {list(CONDITIONAL_INPUTS[key])}")


def apply_overrides(m: ModelSpec, overrides: dict[str, Any]) -> ModelSpec:
    """Dotted overrides from the command line, e.g. ``{"tricks.ema": 0.999, "optim_d.lr": 4e-4}``.

    Values are checked like the zoo file's (unknown keys and wrong types are errors); the result is a
    new ModelSpec, so the run's identity follows the override."""
    if not overrides:
        return m
    raw = to_plain(m)
    for key, value in overrides.items():
        parts = key.split(".")
        node = raw
        for part in parts[:-1]:
            if node.get(part) is None and part == "conditional":
                node[part] = {}
            if not isinstance(node.get(part), dict):
                raise GanbenchError(f"--set {key}: {part!r} is not a table of model {m.name!r}")
            node = node[part]
        node[parts[-1]] = value
    spec = from_mapping(ModelSpec, raw, f"model {m.name} with --set")
    _validate_model(spec, f"model {m.name} with --set")
    return spec


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["tricks.ema=0.999", "n_critic=5"]`` -> a dict; values are parsed as TOML (strings may be bare)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise GanbenchError(f"--set {item!r}: expected KEY=VALUE, e.g. tricks.ema=0.999")
        try:
            out[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = text
    return out


def resolve(protocol: Protocol, assets: dict[str, str] | str | None = None,
            models: list[str] | None = None, seeds: list[int] | None = None,
            overrides: dict[str, Any] | None = None) -> list[RunSpec]:
    """Expand a protocol into one RunSpec per (model, seed), optionally restricted by ``models``/``seeds``;
    ``overrides`` (dotted keys, see :func:`apply_overrides`) change every chosen model.

    ``assets``: the asset hashes of :func:`identity`; None looks them up (only the files this
    protocol's evaluation reads); a string stands in for every weight hash (tests that never evaluate)."""
    for m in models or []:
        if m not in protocol.models:
            raise GanbenchError(f"model {m!r} is not part of protocol {protocol.name!r}; its models: {', '.join(protocol.models)}")
    protocol, assets = with_assets(protocol, assets)
    chosen = models or protocol.models
    specs = {name: apply_overrides(load_model(name), overrides or {}) for name in chosen}
    idents = {name: identity(protocol, spec, assets) for name, spec in specs.items()}
    chosen_seeds = tuple(seeds) if seeds else protocol.seeds
    return [RunSpec(protocol=protocol, model=specs[m], seed=s, identity=idents[m]) for m in chosen for s in chosen_seeds]
