"""Generated samples from wherever they are: a tensor or array, an .npz, a folder of PNGs, or a
generator (a callable or a module:function factory plus a checkpoint). Everything becomes uint8
N x C x H x W, checked against the protocol, with errors that say what was expected.

Accepted pixel encodings: uint8 in [0, 255], or floating point in [-1, 1] (the models' range).
Accepted layouts: N x C x H x W, N x H x W x C (C = 1 or 3), and N x H x W for grayscale.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganbench.errors import GanbenchError
from ganbench.protocol import Protocol

NPZ_KEYS = ("samples", "images", "x", "arr_0")


def to_uint8_nchw(array, channels: int, size: int, what: str) -> torch.Tensor:
    """Validate and convert one batch of images (see the module docstring for what is accepted)."""
    x = torch.as_tensor(np.asarray(array)) if not isinstance(array, torch.Tensor) else array.detach().cpu()
    expected = f"N x {channels} x {size} x {size} (or N x {size} x {size} x {channels})"
    if x.dim() == 3 and channels == 1:
        x = x.unsqueeze(1)
    if x.dim() == 4 and tuple(x.shape[1:]) == (size, size, channels) and x.shape[1] != channels:
        x = x.permute(0, 3, 1, 2)
    if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise GanbenchError(f"{what}: expected images {expected}, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return _standard_layout(x)
    if not x.is_floating_point():
        raise GanbenchError(f"{what}: expected uint8 pixels in [0, 255] or floats in [-1, 1], got {x.dtype}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise GanbenchError(f"{what}: {bad} of {len(x)} images contain NaN or Inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
        raise GanbenchError(f"{what}: float pixels must lie in [-1, 1] (the models' range), got [{lo:.4g}, {hi:.4g}]; "
                            f"pass uint8 in [0, 255] or rescale")
    return _standard_layout(((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8))


def _standard_layout(x: torch.Tensor) -> torch.Tensor:
    """NCHW with the standard strides. NHWC input keeps its strides through the arithmetic (and with one channel
    ``contiguous()`` keeps them too), and the extractors' kernels, hence the last bits of FID, depend on the
    layout: the same images must give the same numbers from any file."""
    return x.clone(memory_format=torch.contiguous_format)


def load_npz(path: Path, channels: int, size: int) -> torch.Tensor:
    try:
        with np.load(path, allow_pickle=False) as z:
            key = next((k for k in NPZ_KEYS if k in z.files), z.files[0] if len(z.files) == 1 else None)
            if key is None:
                raise GanbenchError(f"{path}: expected an array named one of {NPZ_KEYS} (or a single array), "
                                    f"found {z.files}")
            array = z[key]
    except (ValueError, OSError) as err:
        raise GanbenchError(f"{path}: not a readable .npz file without pickles ({err})") from err
    return to_uint8_nchw(array, channels, size, f"{path}[{key}]")


def load_png_folder(path: Path, channels: int, size: int) -> torch.Tensor:
    from PIL import Image

    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise GanbenchError(f"{path}: expected .png files, found none")
    images = []
    for f in files:
        with Image.open(f) as im:
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
        if arr.shape[:2] != (size, size):
            raise GanbenchError(f"{f}: expected a {size}x{size} image, got {arr.shape[1]}x{arr.shape[0]}")
        images.append(arr)
    return to_uint8_nchw(np.stack(images), channels, size, str(path))


def load_generator(factory: str | Callable[[], torch.nn.Module], checkpoint: str | Path | None) -> torch.nn.Module:
    """Build a generator from ``module:function`` (or a callable) and load a checkpoint's weights.
    Checkpoints are read as tensors only: ``torch.load(weights_only=True)`` or safetensors, never a pickle
    of arbitrary objects. A ganbench checkpoint ({"G": ..., "D": ...}) contributes its "G"."""
    if isinstance(factory, str):
        module_name, _, fn_name = factory.partition(":")
        if not module_name or not fn_name:
            raise GanbenchError(f"--generator {factory!r}: expected module:function, e.g. mypkg.models:make_generator")
        try:
            factory = getattr(importlib.import_module(module_name), fn_name)
        except (ImportError, AttributeError) as err:
            raise GanbenchError(f"--generator {module_name}:{fn_name}: {err}") from err
    G = factory()
    if not isinstance(G, torch.nn.Module):
        raise GanbenchError(f"the generator factory returned {type(G).__name__}; expected a torch.nn.Module")
    if checkpoint is not None:
        G.load_state_dict(read_state_dict(Path(checkpoint)))
    return G


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise GanbenchError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise GanbenchError("reading .safetensors needs the safetensors package: pip install safetensors") from err
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickled objects are refused by weights_only
        raise GanbenchError(f"{path}: not a tensors-only checkpoint (torch.load weights_only=True refused it: "
                            f"{type(err).__name__}); save a state_dict or use safetensors") from err
    if isinstance(state, dict) and "G" in state and isinstance(state["G"], dict):
        state = state["G"]
    if not isinstance(state, dict):
        raise GanbenchError(f"{path}: expected a state_dict (name -> tensor), got {type(state).__name__}")
    return state


def samples_from_generator(G: torch.nn.Module, protocol: Protocol, z_dim: int, device: torch.device | str = "cpu",
                           num_samples: int | None = None) -> torch.Tensor:
    """The protocol's fixed-z samples of G (outputs in [-1, 1], checked), as uint8."""
    from ganbench.train import fixed_z

    n = num_samples or protocol.eval.num_samples
    z = fixed_z(n, z_dim, protocol.eval.z_seed)
    G = G.to(device).eval()
    out = []
    with torch.no_grad():
        for i in range(0, n, 500):
            out.append(to_uint8_nchw(G(z[i:i + 500].to(device)).float().cpu(), protocol.data.channels,
                                     protocol.data.image_size, "generator output"))
    return torch.cat(out)


def load_samples(source, protocol: Protocol) -> torch.Tensor:
    """uint8 N x C x H x W from a tensor/array, an .npz path, or a folder of PNGs."""
    c, s = protocol.data.channels, protocol.data.image_size
    if isinstance(source, (torch.Tensor, np.ndarray)):
        return to_uint8_nchw(source, c, s, "samples")
    path = Path(source)
    if path.is_dir():
        return load_png_folder(path, c, s)
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path, c, s)
    if not path.exists():
        raise GanbenchError(f"--samples {path}: no such file or folder")
    raise GanbenchError(f"--samples {path}: expected an .npz file or a folder of .png images")
