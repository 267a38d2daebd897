"""The package version, at the bottom layer: run parameters, baselines and reports record it."""

__version__ = "0.1.0"  # the same as pyproject.toml's [project] version
