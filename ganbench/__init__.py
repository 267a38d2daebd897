"""ganbench: reference GANs trained under hashed protocols, measured by one metrics layer, tracked in MLflow.

The public API (``ganbench.api``): ``evaluate``, ``train``, ``load``, ``diagnose``, ``report`` (and
``compare``, ``show``), with their result types ``Results``, ``Run``, ``Findings``, ``Leaderboard``.
Importing ganbench imports its plug-in packages, which fill the registries of ``ganbench.core.registry``
(datasets, architectures, losses, feature extractors, metrics).
"""

from ganbench.core.version import __version__  # noqa: F401
from ganbench import data, extractors, losses, metrics, nets  # noqa: E402,F401  (fill the registries)
from ganbench.api import (Findings, Leaderboard, Results, Run, RunInfo, compare, diagnose, evaluate, load,  # noqa: E402
                          report, show, train)

__all__ = ["evaluate", "train", "load", "diagnose", "report", "compare", "show",
           "Results", "Run", "Findings", "Leaderboard", "RunInfo", "__version__"]
