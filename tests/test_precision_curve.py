"""``train.precision`` (fp32 | bf16 autocast, part of the identity) and ``eval.curve`` (metrics after every epoch)."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pytest
import torch

from ganbench.core import track
from ganbench.core.errors import GanbenchError
from ganbench.data import load_data
from ganbench.metrics import evaluate, mlflow_metrics
from ganbench.nets.sampling import generate
from ganbench.pipeline.run import run_protocol
from ganbench.spec.protocol import (evaluation_assets, identity, identity_changes, load_model, load_protocol,
                                    resolve)
from ganbench.spec.seeds import fixed_z
from ganbench.training import build_models, train


def _with(protocol, **train_fields):
    return dataclasses.replace(protocol, train=dataclasses.replace(protocol.train, **train_fields))


def _identity(protocol):
    return identity(protocol, load_model("dcgan"), evaluation_assets(protocol))


def test_fp32_keeps_the_identity_and_bf16_is_another_protocol():
    p = load_protocol("fashion-smoke")
    assert _identity(_with(p, precision="fp32")).hash == _identity(p).hash  # the default: every existing hash kept
    bf16 = _identity(_with(p, precision="bf16"))
    assert bf16.hash != _identity(p).hash
    assert identity_changes(_identity(p).parts, bf16.parts) == ["protocol's training changed (data or budget)"]
    assert bf16.eval_hash == _identity(p).eval_hash  # measured the same way


@pytest.mark.parametrize("table,line,key", [
    ("train", 'precision = "fp16"', "train.precision"),
    ("eval", 'curve = ["memorisation"]', "eval.curve"),
    ("eval", 'curve = ["fid"]\ncurve_samples = 999', "eval.curve_samples"),
])
def test_bad_precision_or_curve_is_refused_naming_the_key(tiny_protocol, table, line, key):
    path = tiny_protocol()
    text = open(path).read().replace(f"[{table}]\n", f"[{table}]\n{line}\n")
    open(path, "w").write(text)
    with pytest.raises(GanbenchError, match=key.replace(".", r"\.")):
        load_protocol(path)


def test_bf16_autocast_trains_the_same_model_with_rounded_arithmetic(tiny_protocol, tmp_path):
    """Same seed, same data: bf16 autocast moves the losses (so it is on) by well under a percent at the first
    step (so it computes the same thing), and the weights stay float32."""
    proto = load_protocol(tiny_protocol(subset=64))
    data = load_data(proto.data, "train")
    runs = {}
    for precision in ("fp32", "bf16"):
        spec = resolve(_with(proto, precision=precision), None, ["dcgan"], [0])[0]
        runs[precision] = train(spec, data.images, tmp_path / precision, fast=False)
    first = {k: r.records.iloc[0] for k, r in runs.items()}
    for col in ("d_loss", "g_loss"):
        a, b = first["fp32"][col], first["bf16"][col]
        assert a != b
        assert abs(a - b) / abs(a) < 2e-2, (col, a, b)
    assert all(p.dtype == torch.float32 for p in runs["bf16"].G.parameters())


def test_curve_is_logged_per_epoch_and_its_last_point_is_the_final_evaluation(tiny_protocol):
    """With curve_samples = num_samples the last epoch's curve point and the final evaluation see the same
    generator and the same fixed z: the two paths must agree; and each epoch has its own point."""
    path = tiny_protocol(epochs=2, subset=64, num_samples=64)
    text = open(path).read().replace('metrics = ["fid"]', 'metrics = ["fid@domain"]\ncurve = ["fid@domain", "kid@domain"]\n'
                                     'curve_samples = 64')
    open(path, "w").write(text)
    [out] = run_protocol(path, progress=False)
    client = mlflow.tracking.MlflowClient(track.Tracker(None).uri)
    history = {m.step: m.value for m in client.get_metric_history(out.run_id, "domain_fid_64_test")}
    kid_steps = sorted(m.step for m in client.get_metric_history(out.run_id, "domain_kid_64_test"))
    assert kid_steps == [1, 2]
    assert sorted(history) == [0, 1, 2]  # epochs 1, 2 and the final evaluation (step 0)
    assert history[1] != history[2]
    assert history[2] == pytest.approx(out.metrics["domain_fid_64_test"], rel=1e-9)
    # and an evaluation written here from the final checkpoint's generator gives the same number
    spec = resolve(load_protocol(path), None, ["dcgan"], [0])[0]
    G = out_generator(spec, out.run_dir)
    samples = generate(G, fixed_z(64, spec.model.z_dim, spec.protocol.eval.z_seed))
    again = mlflow_metrics(evaluate(samples, spec.protocol, "cpu").values())["domain_fid_64_test"]
    assert np.isclose(again, history[2], rtol=1e-6)


def out_generator(spec, run_dir):
    G, _ = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))[:2]
    G.load_state_dict(torch.load(run_dir / "final.pt", map_location="cpu", weights_only=True)["G"])
    return G
