"""pytest plugin (entry point ``pytest11``): quality regression tests in any repository.

    def test_quality(ganbench_run):
        ganbench_run("fashion-smoke", model="dcgan").assert_no_regression("baselines/fashion-smoke.json")

``ganbench_run`` trains and evaluates a protocol's zoo model(s) with ``ganbench.pipeline.run.run_protocol`` into the
tracking store (``--ganbench-tracking-uri``, else the usual default) and returns the runs; the
assertion is ``ganbench check`` against a baseline written by ``ganbench baseline save``. A relative
baseline path is looked up from the working directory, then from pytest's root directory. A generator of
one's own is gated through its evaluations: ``ganbench.evaluate(..., track=True)`` and
``ganbench.assert_no_regression`` (README, "Your own GAN").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ganbench.pipeline.run import run_protocol
from ganbench.api import raise_on_regression
from ganbench.reporting.gate import check


@dataclass(frozen=True)
class GanbenchRuns:
    protocol: str
    run_ids: list[str]
    statuses: list[str]
    tracking_uri: str | None
    rootdir: Path

    def check(self, baseline: str | Path, confidence: float | None = None, allow_protocol_change: bool = False):
        path = Path(baseline)
        if not path.is_absolute() and not path.is_file() and (self.rootdir / path).is_file():
            path = self.rootdir / path
        return check(self.run_ids, path, self.tracking_uri, confidence, allow_protocol_change)

    def assert_no_regression(self, baseline: str | Path, confidence: float | None = None,
                             allow_protocol_change: bool = False):
        """Fail with the check's table when a metric regressed or a run did not finish (see ``ganbench check``)."""
        return raise_on_regression(self.check(baseline, confidence, allow_protocol_change), baseline)


def pytest_addoption(parser):
    group = parser.getgroup("ganbench")
    group.addoption("--ganbench-tracking-uri", default=None, help="MLflow tracking URI for runs made by ganbench_run")
    group.addoption("--ganbench-device", default="auto", help="device for runs made by ganbench_run (auto, cpu, cuda)")


@pytest.fixture
def ganbench_run(request):
    """Returns ``run(protocol, model=None, models=None, seeds=None, device=None) -> GanbenchRuns``."""
    uri = request.config.getoption("--ganbench-tracking-uri")

    def run(protocol: str, model: str | None = None, models: list[str] | None = None,
            seeds: list[int] | None = None, device: str | None = None) -> GanbenchRuns:
        chosen = ([model] if model else []) + list(models or [])
        outcomes = run_protocol(protocol, chosen or None, seeds, device or request.config.getoption("--ganbench-device"),
                                tracking_uri=uri, progress=False)
        return GanbenchRuns(protocol, [o.run_id for o in outcomes], [o.status for o in outcomes], uri,
                            Path(str(request.config.rootpath)))

    return run
