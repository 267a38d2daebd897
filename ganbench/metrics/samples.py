"""Generated samples from wherever they are: a tensor or array, an .npz, a folder of PNGs, or a
generator (a callable or a module:function factory plus a checkpoint). Everything becomes uint8
N x C x H x W, checked against the protocol, with errors that say what was expected.

Accepted pixel encodings: uint8 in [0, 255]; floating point with its range stated (``value_range``,
``ganbench eval --range``: [0, 1], [-1, 1] or [0, 255]); floating point without a stated range only
when a negative value shows it is [-1, 1] (the models' range). Floats in [0, 1] are not guessed: read
as [-1, 1] they shift every pixel (FID 132 instead of 149 on the same images), so they are refused
with a message that names the encodings.
Accepted layouts: N x C x H x W, N x H x W x C (C = 1 or 3), and N x H x W for grayscale.
Files: .npz (one array, or one named as in ``NPZ_KEYS``), .npy, a folder of .png images.
"""

from __future__ import annotations

import importlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ganbench.core.errors import GanbenchError
from ganbench.nets.sampling import SAMPLE_BATCH, generate, sample_labels
from ganbench.spec.protocol import Protocol
from ganbench.spec.seeds import fixed_z

NPZ_KEYS = ("samples", "images", "x", "arr_0")
MODEL_RANGE = (-1.0, 1.0)  # what ganbench's generators output (tanh), and floats with a negative value are read as
BYTE_RANGE = (0.0, 255.0)
RANGE_SLACK = 1e-6  # of a range's width: float rounding of images scaled into it, not a different encoding
ENCODINGS = ("uint8 pixels in [0, 255], or float pixels with their range given by --range 0,1 | -1,1 | 0,255 "
             "(floats with a negative value are read as [-1, 1] without it)")


def _range_text(r: tuple[float, float]) -> str:
    return f"{r[0]:g},{r[1]:g}"


def to_uint8_nchw(array, channels: int, size: int, what: str,
                  value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Validate and convert one batch of images (see the module docstring for what is accepted).
    ``value_range`` is the range of float pixels, e.g. (0, 1); None: only floats with a negative value
    (read as [-1, 1]) are accepted."""
    x = torch.as_tensor(np.asarray(array)) if not isinstance(array, torch.Tensor) else array.detach().cpu()
    expected = f"N x {channels} x {size} x {size} (or N x {size} x {size} x {channels})"
    if x.dim() == 3 and channels == 1:
        x = x.unsqueeze(1)
    if x.dim() == 4 and tuple(x.shape[1:]) == (size, size, channels) and x.shape[1] != channels:
        x = x.permute(0, 3, 1, 2)
    if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise GanbenchError(f"{what}: expected images {expected}, got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise GanbenchError(f"{what}: holds no images (shape {tuple(x.shape)}); expected at least one image {expected}")
    if x.dtype == torch.uint8:
        if value_range not in (None, BYTE_RANGE):
            raise GanbenchError(f"{what}: uint8 pixels are read as [0, 255]; --range {_range_text(value_range)} "
                                "describes float pixels only: drop it")
        return _standard_layout(x)
    if not x.is_floating_point():
        raise GanbenchError(f"{what}: expected {ENCODINGS}; got {x.dtype}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise GanbenchError(f"{what}: {bad} of {len(x)} images contain NaN or Inf values")
    lo_hi = float(x.min()), float(x.max())
    r = value_range or _float_range(lo_hi, what)
    slack = RANGE_SLACK * (r[1] - r[0])
    if lo_hi[0] < r[0] - slack or lo_hi[1] > r[1] + slack:
        given = f"--range {_range_text(r)}" if value_range else "a negative value: read as [-1, 1], the models' range"
        raise GanbenchError(f"{what}: float pixels must lie in [{r[0]:g}, {r[1]:g}] ({given}), "
                            f"got [{lo_hi[0]:.4g}, {lo_hi[1]:.4g}]; expected {ENCODINGS}")
    scaled = (x.float() - r[0]) * (255.0 / (r[1] - r[0]))
    return _standard_layout(scaled.round_().clamp_(0, 255).to(torch.uint8))


def _float_range(lo_hi: tuple[float, float], what: str) -> tuple[float, float]:
    """The range of floats given without one: [-1, 1] when a value is negative (no other encoding has
    one); anything else could be [0, 1], [-1, 1] or [0, 255] and is refused rather than guessed."""
    lo, hi = lo_hi
    if lo < 0:
        return MODEL_RANGE
    raise GanbenchError(f"{what}: float pixels in [{lo:.4g}, {hi:.4g}] do not say their encoding ([0, 1], [-1, 1] "
                        f"and [0, 255] all fit such values); expected {ENCODINGS}")


def _standard_layout(x: torch.Tensor) -> torch.Tensor:
    """NCHW with the standard strides. NHWC input keeps its strides through the arithmetic (and with one channel
    ``contiguous()`` keeps them too), and the extractors' kernels, hence the last bits of FID, depend on the
    layout: the same images must give the same numbers from any file."""
    return x.clone(memory_format=torch.contiguous_format)


def load_npz(path: Path, channels: int, size: int, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    try:
        with np.load(path, allow_pickle=False) as z:
            key = next((k for k in NPZ_KEYS if k in z.files), z.files[0] if len(z.files) == 1 else None)
            if key is None:
                raise GanbenchError(f"{path}: expected an array named one of {NPZ_KEYS} (or a single array), "
                                    f"found {z.files}")
            array = z[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise GanbenchError(f"{path}: not a readable .npz file without pickles ({err})") from err
    return to_uint8_nchw(array, channels, size, f"{path}[{key}]", value_range)


def load_npy(path: Path, channels: int, size: int, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise GanbenchError(f"{path}: not a readable .npy array without pickles ({err})") from err
    return to_uint8_nchw(array, channels, size, str(path), value_range)


def load_png_folder(path: Path, channels: int, size: int, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise GanbenchError(f"{path}: expected .png files, found none")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
        except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError; so is a truncated file
            raise GanbenchError(f"{f}: not a readable PNG image ({type(err).__name__}: {err}); expected a "
                                f"{size}x{size} PNG: replace or remove it") from err
        if arr.shape[:2] != (size, size):
            raise GanbenchError(f"{f}: expected a {size}x{size} image, got {arr.shape[1]}x{arr.shape[0]}")
        images.append(arr)
    return to_uint8_nchw(np.stack(images), channels, size, str(path), value_range)


def load_generator(factory: str | Callable[[], torch.nn.Module], checkpoint: str | Path | None) -> torch.nn.Module:
    """Build a generator from ``module:function`` (or a callable) and load a checkpoint's weights.
    Checkpoints are read as tensors only: ``torch.load(weights_only=True)`` or safetensors, never a pickle
    of arbitrary objects. A ganbench checkpoint ({"G": ..., "D": ...}) contributes its "G"."""
    if isinstance(factory, str):
        module_name, _, fn_name = factory.partition(":")
        if not module_name or not fn_name:
            raise GanbenchError(f"generator={factory!r}: expected module:function, e.g. mypkg.models:make_generator")
        try:
            factory = getattr(_import_from_cwd(module_name), fn_name)
        except (ImportError, AttributeError) as err:
            raise GanbenchError(f"generator={module_name}:{fn_name}: {err} (modules are looked up in the current "
                                "folder, then on the Python path)") from err
    G = factory()
    if not isinstance(G, torch.nn.Module):
        raise GanbenchError(f"the generator factory returned {type(G).__name__}; expected a torch.nn.Module")
    if checkpoint is not None:
        load_weights(G, read_state_dict(Path(checkpoint)), str(checkpoint), "the generator")
    return G


def _import_from_cwd(module_name: str):
    """Import a module, finding one in the current folder as ``python -m`` would: the ``ganbench`` console
    script does not put the current folder on the path. It is appended (not prepended, as ``python -m``
    does) so that a file in the current folder never shadows an installed module that ganbench imports."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    return importlib.import_module(module_name)


def load_tensors(path: Path):
    """A checkpoint read as tensors only (``torch.load(weights_only=True)``: a pickle of arbitrary objects can
    run code and is refused); errors name the file and what was expected, never torch's advice to load
    untrusted pickles."""
    if not path.is_file():
        raise GanbenchError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if "Unsupported global" in str(err):  # torch's refusal of a pickled object (any other error: not a checkpoint)
            raise GanbenchError(f"{path}: holds pickled Python objects, not only tensors, and ganbench reads tensors "
                                "only (a pickle can run arbitrary code); save model.state_dict() with torch.save, "
                                "or use .safetensors") from None
        raise GanbenchError(f"{path}: not a PyTorch checkpoint ({type(err).__name__}); expected a state_dict saved "
                            "with torch.save, or a .safetensors file") from None


def load_weights(module: torch.nn.Module, state: dict, where: str, what: str) -> None:
    """``module.load_state_dict(state)`` with an error that names the file when the weights do not fit."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GanbenchError(f"{where}: its weights do not fit {what} ({first}); expected a checkpoint of this "
                            "architecture") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise GanbenchError(f"checkpoint {path} does not exist")
        try:
            from safetensors.torch import load_file  # optional: only .safetensors checkpoints need it
        except ImportError as err:
            raise GanbenchError("reading .safetensors needs the safetensors package: pip install safetensors") from err
        try:
            return load_file(str(path))
        except Exception as err:
            raise GanbenchError(f"{path}: not a readable .safetensors file ({type(err).__name__})") from None
    state = load_tensors(path)
    if isinstance(state, dict) and "G" in state and isinstance(state["G"], dict):
        state = state["G"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GanbenchError(f"{path}: expected a state_dict (parameter name -> tensor) or a ganbench checkpoint "
                            f"with one under 'G', got {type(state).__name__}")
    return state


def samples_from_generator(G: torch.nn.Module, protocol: Protocol, z_dim: int, device: torch.device | str = "cpu",
                           num_samples: int | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The protocol's fixed-z samples of G (outputs in [-1, 1], checked), as uint8, drawn through the one
    sampling path (``ganbench.nets.sampling.generate``). A conditional G gets ``labels`` (default: the
    class-balanced fixed labels, as in training's evaluation)."""
    n = num_samples or protocol.eval.num_samples
    z = fixed_z(n, z_dim, protocol.eval.z_seed)
    G = G.to(device).eval()  # left in eval mode for what evaluation does with G after (ppl walks it)
    labels = sample_labels(G, n, labels)
    out = []
    for i in range(0, n, SAMPLE_BATCH):  # checked batch by batch: a float copy of 10k images is not kept
        part = labels[i:i + SAMPLE_BATCH] if labels is not None else None
        out.append(to_uint8_nchw(generate(G, z[i:i + SAMPLE_BATCH], part, as_uint8=False), protocol.data.channels,
                                 protocol.data.image_size, "generator output", MODEL_RANGE))
    return torch.cat(out)


def load_samples(source, protocol: Protocol, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """uint8 N x C x H x W from a tensor/array, an .npz or .npy path, or a folder of PNGs; ``value_range``:
    the range of float pixels (see the module docstring)."""
    c, s = protocol.data.channels, protocol.data.image_size
    if isinstance(source, (torch.Tensor, np.ndarray)):
        return to_uint8_nchw(source, c, s, "samples", value_range)
    path = Path(source)
    if path.is_dir():
        return load_png_folder(path, c, s, value_range)
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path, c, s, value_range)
    if path.suffix == ".npy" and path.is_file():
        return load_npy(path, c, s, value_range)
    if not path.exists():
        raise GanbenchError(f"samples={path}: no such file or folder")
    raise GanbenchError(f"samples={path}: expected an .npz or .npy file or a folder of .png images")
