"""ganbench: reference GANs trained under hashed protocols, measured by one metrics layer, tracked in MLflow."""

__version__ = "0.1.0"
