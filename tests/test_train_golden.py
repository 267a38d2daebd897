"""The layering changed where the code lives, not what it computes: short runs of ten models give the
per-step records, and their generators the samples, that the trainer wrote before the redesign
(tests/golden/, written at commit ebeffcd from the protocols in protocols.json, one thread), and every
shipped (protocol, model) keeps its identity."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ganbench.nets.sampling import generate
from ganbench.pipeline.run import training_images
from ganbench.spec.protocol import evaluation_assets, identity, load_model, load_protocol, resolve
from ganbench.spec.seeds import fixed_z
from ganbench.training import train

GOLDEN = Path(__file__).resolve().parent / "golden"
PROTOCOLS = json.loads((GOLDEN / "protocols.json").read_text())
SAMPLE_SUMS = json.loads((GOLDEN / "samples-sum.json").read_text())


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("model", sorted(PROTOCOLS))
def test_short_run_gives_the_records_and_samples_written_before_the_redesign(tmp_path, model, one_thread):
    path = tmp_path / f"{model}.toml"
    path.write_text(PROTOCOLS[model])
    proto = load_protocol(str(path))
    spec = resolve(proto, "0" * 64, seeds=[0])[0]
    data = training_images(proto)
    res = train(spec, data.images, tmp_path / "run", progress=False, labels=data.labels)
    golden = pd.read_csv(GOLDEN / f"records-{model}.csv")
    assert list(res.records.columns) == list(golden.columns)
    assert len(res.records) == len(golden)
    for col in golden.columns:
        np.testing.assert_allclose(res.records[col].to_numpy(dtype=float), golden[col].to_numpy(dtype=float),
                                   rtol=1e-6, atol=1e-7, err_msg=f"{model}: {col}")
    points = model.endswith("mlp2d")
    samples = generate(res.G_eval, fixed_z(16, spec.model.z_dim, 7), as_uint8=not points)
    if points:
        assert float(samples.double().sum()) == pytest.approx(SAMPLE_SUMS[model], rel=1e-6)
    else:
        assert int(samples.long().sum()) == SAMPLE_SUMS[model]


def test_every_shipped_protocol_and_model_keeps_its_identity():
    golden = json.loads((GOLDEN / "identities.json").read_text())
    now = {}
    for key in golden:
        name, model = key.split("/")
        proto = load_protocol(name)
        ident = identity(proto, load_model(model), evaluation_assets(proto))
        now[key] = {"hash": ident.hash, "shared_hash": ident.shared_hash}
    assert now == golden
