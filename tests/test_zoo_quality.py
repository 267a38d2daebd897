"""Quality regression tests of the zoo, written with ganbench's own pytest plugin (``ganbench_run``).

The baseline ``baselines/fashion-smoke.json`` was written by ``ganbench baseline save`` from real
fashion-smoke runs (seeds 0, 1, 2 of each model on CPU). Each test trains one new seed and fails
when its FID is worse than the baseline's seed spread allows. When the protocol, a model card or the
Inception weights change, the protocol hash changes and the check says to re-save the baseline.
"""

from pathlib import Path

import pytest

BASELINE = Path(__file__).resolve().parent.parent / "baselines" / "fashion-smoke.json"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dcgan", "wgan-gp"])
def test_zoo_model_has_no_quality_regression_on_fashion_smoke(ganbench_run, model):
    result = ganbench_run("fashion-smoke", model=model, seeds=[3], device="cpu").assert_no_regression(BASELINE)
    assert {r.model for r in result.rows} == {model} and any(r.metric.startswith("fid") for r in result.rows)
