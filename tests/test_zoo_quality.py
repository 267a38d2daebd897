"""Quality regression tests of the zoo, written with ganbench's own pytest plugin (``ganbench_run``).

Every baseline under ``baselines/`` was written by ``ganbench baseline save`` from the runs published in
``reports/`` (seeds 0, 1, 2 of each model on CPU). For every (baseline, model) one test trains a new seed
and fails when a metric is worse than the baseline's seed spread allows. When the protocol, a model card or
the Inception weights change, the identity changes and the check says to re-save the baseline.
"""

import json
from pathlib import Path

import pytest

BASELINES = sorted((Path(__file__).resolve().parent.parent / "baselines").glob("*.json"))
CASES = [(path, model) for path in BASELINES for model in sorted(json.loads(path.read_text())["models"])]


def test_every_baseline_has_models():
    assert BASELINES and all(any(p == path for p, _ in CASES) for path in BASELINES)


@pytest.mark.slow
@pytest.mark.parametrize("baseline,model", CASES, ids=[f"{p.stem}-{m}" for p, m in CASES])
def test_zoo_model_has_no_quality_regression(ganbench_run, baseline, model):
    protocol = json.loads(baseline.read_text())["protocol"]
    result = ganbench_run(protocol, model=model, seeds=[3], device="cpu").assert_no_regression(baseline)
    assert {r.model for r in result.rows} == {model} and result.rows
