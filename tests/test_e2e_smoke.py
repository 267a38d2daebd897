"""The README's main job on the embedded defaults: `ganbench run --protocol fashion-smoke` as a new user runs
it, ending with recognisable garments (the first impression; measured by benchmarks/first_impression.py)."""

import dataclasses
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from ganbench import api
from ganbench.core.track import tracking_uri
from ganbench.extractors.domain import domain_classifier
from ganbench.metrics import evaluate, mlflow_metrics
from ganbench.nets.sampling import generate
from ganbench.spec.protocol import load_protocol
from ganbench.spec.seeds import fixed_z

CONFIDENT = 0.7  # top-class probability of the Fashion-MNIST classifier (real test images: 89% reach it)


@pytest.mark.slow
def test_fashion_smoke_end_to_end_shows_garments(ganbench_home):
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "ganbench.cli", "run", "--protocol", "fashion-smoke"],
                         capture_output=True, text=True, env=dict(os.environ))
    elapsed = time.time() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    client = MlflowClient(tracking_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "ganbench/fashion-smoke"]
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["ganbench.model"] == "dcgan"
    assert {"grids", "checkpoints", "loss_curves.png"} <= {f.path for f in client.list_artifacts(run.info.run_id)}
    # where to look, printed at the end: the grid file, the report command, the MLflow UI
    grid = re.search(r"last grid: (\S+\.png)", res.stdout)
    assert grid and Path(grid[1]).is_file()
    assert "ganbench report --protocol fashion-smoke" in res.stdout and "mlflow ui --backend-store-uri" in res.stdout
    # the grid's 64 images: most classified with confidence, over most classes (uniform noise: 2 classes)
    protocol = load_protocol("fashion-smoke")
    images = generate(api.load(run.info.run_id), fixed_z(protocol.eval.grid_size ** 2, 100, protocol.eval.z_seed))
    probs = domain_classifier("fashion-mnist").logits(images).softmax(1)
    assert float((probs.max(1).values >= CONFIDENT).float().mean()) > 0.5
    assert len(probs.argmax(1).unique()) >= 8
    # and a domain FID far below that of noise
    noise = torch.randint(0, 256, (protocol.eval.num_samples, 1, 28, 28), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    fid_only = dataclasses.replace(protocol, eval=dataclasses.replace(protocol.eval, metrics=("fid@domain",), floor=False))
    noise_fid = mlflow_metrics(evaluate(noise, fid_only, "cpu").values())["domain_fid_256_test"]
    assert run.data.metrics["domain_fid_256_test"] < 0.25 * noise_fid
    print(f"fashion-smoke wall time: {elapsed:.0f} s; domain FID {run.data.metrics['domain_fid_256_test']:.1f} "
          f"(noise {noise_fid:.1f})")
