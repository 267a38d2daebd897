"""ganbench: reference GANs trained under hashed protocols, measured by one metrics layer, tracked in MLflow.

The public API (``ganbench.api``): ``evaluate``, ``train``, ``load``, ``diagnose``, ``report`` (and
``compare``, ``show``), with their result types ``Results``, ``Run``, ``Findings``, ``Leaderboard``.
"""

import importlib
import types

from ganbench import api
from ganbench.core.version import __version__
from ganbench.api import (Findings, Leaderboard, Results, Run, RunInfo, compare, evaluate, load, show)


class _StagePackage(types.ModuleType):
    """``train``, ``diagnose`` and ``report`` name both a stage's subpackage (``ganbench.train.loop``,
    ``from ganbench import diagnose as dg``) and the API function of that stage. Binding the function
    to the package's attribute would hide the subpackage from ``from ganbench import diagnose`` and
    ``import ganbench.train.loop as loop``; instead the subpackage itself is made callable, and a call
    is the API function."""

    def __call__(self, *args, **kwargs):
        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def _callable_stage(name: str) -> types.ModuleType:
    package = importlib.import_module(f"{__name__}.{name}")
    package.__class__ = _StagePackage
    return package


train = _callable_stage("train")
diagnose = _callable_stage("diagnose")
report = _callable_stage("report")

__all__ = ["evaluate", "train", "load", "diagnose", "report", "compare", "show",
           "Results", "Run", "Findings", "Leaderboard", "RunInfo", "__version__"]
