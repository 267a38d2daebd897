"""Shared fixtures. Tests write runs and MLflow stores into a temporary ganbench home, but share the
real cache (datasets, Inception weights, reference statistics) that `ganbench data fetch` filled."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from ganbench.core.assets import cache_root


@pytest.fixture(scope="session", autouse=True)
def interruptible():
    """A suite started in the background by a non-interactive shell (``cmd &``) inherits SIGINT ignored, and
    so would every process it starts: the Ctrl-C tests would send a signal nobody receives. Python's own
    handler is put back, which the test subprocesses then get at their start, as from a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def seeded_global_generator():
    """torch seeds its global generator at random in every process, so a test whose modules or tensors draw
    from it (nn.Linear's default initialisation, torch.randn without a generator) would see other numbers
    in every run; seeded here, each such test sees the same numbers every run and a failure reproduces.
    Library code takes its own torch.Generator and is not affected."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def ganbench_home(tmp_path, monkeypatch) -> Path:
    cache = cache_root()  # resolved before GANBENCH_HOME moves
    home = tmp_path / "ganbench-home"
    monkeypatch.setenv("GANBENCH_HOME", str(home))
    monkeypatch.setenv("GANBENCH_CACHE", str(cache))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


TINY_PROTOCOL = """
description = "tiny test protocol"
models = {models}
seeds = [0]

[data]
dataset = "fashion-mnist"
split = "train"
subset = {subset}
image_size = 28
channels = 1

[train]
epochs = {epochs}
batch_size = 32
check_every = 4

[eval]
num_samples = {num_samples}
metrics = ["fid"]
grid_size = 4
batch_size = 50
"""


@pytest.fixture
def tiny_protocol(tmp_path):
    """Write a tiny protocol file; returns a function (models, epochs, subset, num_samples) -> path."""

    def make(models=("dcgan",), epochs=1, subset=128, num_samples=20, name="tiny") -> str:
        path = tmp_path / f"{name}.toml"
        path.write_text(TINY_PROTOCOL.format(models=list(models).__repr__().replace("'", '"'), epochs=epochs,
                                             subset=subset, num_samples=num_samples))
        return str(path)

    return make


EVAL_PROTOCOL = """
models = ["dcgan"]
seeds = [0]
[data]
dataset = "fashion-mnist"
[train]
epochs = 1
[eval]
num_samples = {n}
extractor = "{extractor}"
metrics = {metrics}
"""


@pytest.fixture
def eval_protocol(tmp_path):
    """Write an evaluation-only protocol (the metric list on a given extractor); returns a function -> path."""

    def make(n=500, extractor="domain", metrics=("fid", "kid", "is", "pr", "dc"), name="p") -> str:
        path = tmp_path / f"{name}.toml"
        path.write_text(EVAL_PROTOCOL.format(n=n, extractor=extractor, metrics=str(list(metrics)).replace("'", '"')))
        return str(path)

    return make


@pytest.fixture(scope="module")
def one_thread_module():
    """Short runs on a shared 2-core machine: one thread avoids spin-waiting between two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_RING = """
description = "tiny 2D mixture protocol (fast end-to-end runs)"
models = ["gan-mlp2d"]
seeds = [0]

[data]
dataset = "ring8"
subset = {subset}
subset_seed = 0
image_size = 0
channels = 2

[train]
epochs = {epochs}
batch_size = 256
check_every = 25

[eval]
num_samples = 200
metrics = ["modes2d"]
"""


@pytest.fixture
def tiny_ring(tmp_path):
    """Write a tiny ring8 protocol file (MLP GAN on 2D points: a run takes about a second); returns a
    function (epochs, subset, name) -> path."""

    def make(epochs=1, subset=512, name="ring") -> str:
        path = tmp_path / f"{name}.toml"
        path.write_text(TINY_RING.format(epochs=epochs, subset=subset))
        return str(path)

    return make
