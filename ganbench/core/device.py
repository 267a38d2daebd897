"""Where a run computes and with what software: the device a ``--device`` choice means, its name, and the
versions a run, an evaluation or a baseline records beside its numbers."""

from __future__ import annotations

import platform

import mlflow
import torch
import torch_fidelity

from ganbench.core.errors import GanbenchError
from ganbench.core.version import __version__


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GanbenchError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise GanbenchError(f"--device {device!r}: {err}; use auto, cpu or cuda[:N]") from err


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"


def versions() -> dict[str, str]:
    return {"ganbench": __version__, "torch": torch.__version__, "torch_fidelity": torch_fidelity.__version__,
            "mlflow": mlflow.__version__, "python": platform.python_version()}
