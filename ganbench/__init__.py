"""ganbench: reference GANs trained under hashed protocols, measured by one metrics layer, tracked in MLflow.

The public API (``ganbench.api``): ``evaluate``, ``train``, ``load``, ``diagnose``, ``report`` (and
``compare``, ``show``), ``Monitor`` (health diagnostics for a training loop of one's own, with ``grad_norm``), the quality gate
(``save_baseline``, ``check``, ``assert_no_regression``), with their result types ``Results``, ``Run``, ``Findings``, ``Leaderboard``.
Importing ganbench imports its plug-in packages, which fill the registries of ``ganbench.core.registry``
(datasets, architectures, losses, feature extractors, metrics).
"""

from ganbench.core.version import __version__  # noqa: F401
from ganbench import data, extractors, losses, metrics, nets  # noqa: E402,F401  (fill the registries)
from ganbench.api import (Findings, Leaderboard, Monitor, Results, Run, RunInfo, assert_no_regression,  # noqa: E402
                          check, compare, diagnose, evaluate, format_report, grad_norm, load, report, save_baseline,
                          show, train)

__all__ = ["evaluate", "train", "load", "diagnose", "report", "compare", "show", "Monitor", "grad_norm",
           "save_baseline", "check", "assert_no_regression",
           "format_report", "Results", "Run", "Findings", "Leaderboard", "RunInfo", "__version__"]
