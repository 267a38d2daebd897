"""ganbench: reference GANs trained under hashed protocols, measured by one metrics layer, tracked in MLflow."""

__version__ = "0.1.0"

# The plug-in packages fill the registries of ganbench.core.registry (datasets, architectures, losses,
# feature extractors, metrics) when imported: importing any ganbench module imports them first.
from ganbench import data, extractors, losses, metrics, nets  # noqa: E402,F401
