"""The README's main job on the embedded defaults: `ganbench run --protocol fashion-smoke` as a user runs it."""

import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from ganbench.core.track import tracking_uri


@pytest.mark.slow
def test_fashion_smoke_end_to_end(ganbench_home):
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "ganbench.cli", "run", "--protocol", "fashion-smoke"],
                         capture_output=True, text=True, env=dict(os.environ))
    elapsed = time.time() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    client = MlflowClient(tracking_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "ganbench/fashion-smoke"]
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["ganbench.model"] for r in runs) == ["dcgan", "wgan-gp"]
    for r in runs:
        assert r.info.status == "FINISHED"
        assert 0 < r.data.metrics["fid_256_test"] < 1000
        arts = {f.path for f in client.list_artifacts(r.info.run_id)}
        assert {"grids", "checkpoints", "loss_curves.png"} <= arts
    print(f"fashion-smoke wall time: {elapsed:.0f} s")
