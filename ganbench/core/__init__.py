"""Foundations: errors, pinned assets, registries, MLflow I/O, locks and thread shares, image files."""
