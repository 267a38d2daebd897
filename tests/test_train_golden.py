"""The layering changed where the code lives, not what it computes. A GAN's training amplifies float rounding
step by step, so what that means is guarded twice:

- same code, same machine, same numbers: a short run trained twice here gives bit-identical per-step records
  and samples;
- across machines: short runs of ten models give the per-step records, and their generators the samples,
  that the trainer wrote before the redesign (tests/golden/, written at commit ebeffcd on an Intel CPU from
  the protocols in protocols.json, one thread), within tolerances measured between CPUs (below), and a real
  change (a learning rate 10% off, another seed, one more D step) exceeds them many times over.

Identities are guarded in tests/test_identity_portable.py."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ganbench.nets.sampling import generate
from ganbench.pipeline.run import training_images
from ganbench.spec.protocol import load_model, load_protocol, resolve
from ganbench.spec.seeds import fixed_z
from ganbench.training import train

GOLDEN = Path(__file__).resolve().parent / "golden"
PROTOCOLS = json.loads((GOLDEN / "protocols.json").read_text())
SAMPLE_SUMS = json.loads((GOLDEN / "samples-sum.json").read_text())

# Cross-machine tolerances, from measurements: each golden model run here (AMD EPYC, torch 2.14.1, one
# thread) against the golden files (written on an Intel CPU) and, as a stand-in for other reduction orders,
# here with one thread against two. A record is compared relative to its column's scale in the golden file,
# |here - golden| <= RECORDS_TOL x max|golden column| (an absolute tolerance suited to a loss of 1.4 would
# let a gradient norm of 0.003 be 70% off). At step 1 the runs differ by at most 2.8e-5 of a column's scale;
# training amplifies that, in the convolutional models 10x to 1000x within two or three steps and to 0.3-7%
# by step 20, within a factor of 10 of what a 10% learning-rate change does (LSGAN: 6.9% against ~60%).
# So each model is compared over its leading steps in which both measured deviations stay below
# RECORDS_TOL / 10 (a 10x margin); a real change shows from step 1 or 2 on (test below).
RECORDS_TOL = 1e-3
CROSS_MACHINE_STEPS = {  # model: G steps compared; the largest deviation measured in them | at the next step
    "cdcgan": 2,  # 8.0e-5 | 1.3e-4
    "cproj-sngan": 2,  # 3.9e-5 | 1.1e-4
    "dcgan": 1,  # 2.8e-5 | 3.7e-4
    "gan-mlp": 20,  # 1.5e-7 (the whole run)
    "gan-mlp2d": 19,  # 4.1e-6 | 1.0e-3 (step 20 of 20: g_grad_norm 0.003187 vs 0.003192)
    "lsgan": 1,  # 4.9e-6 | 4.9e-4
    "progan-lite": 8,  # 4.3e-7 (the whole run)
    "sngan": 5,  # 7.3e-5 | 6.0e-4
    "stylegan-lite": 2,  # 2.8e-6 | 2.9e-3
    "wgan-gp": 4,  # 8.9e-5 (the whole run)
}
# d_acc_real / d_acc_fake are shares of D's right calls in a batch: a D output within float noise of the
# decision threshold flips one call, a step of 1/32 (none in the compared steps, some in LSGAN's and
# SNGAN's later ones), so they may differ by one call.
ACCURACY = ("d_acc_real", "d_acc_fake")
# Samples come from G after the last step, so they are compared across machines only for the models whose
# records stay close over the whole run (gan-mlp2d's up to its last step). In the others the sum of the 16
# uint8 samples moved by up to 6462 grey levels between one and two threads (stylegan-lite), and LSGAN's by
# 533 while a 10% learning-rate change moves it by 723. Measured |here - golden| of the sum: gan-mlp 1,
# progan-lite 0, wgan-gp 23 grey levels (one thread against two: 1, 0, 12); gan-mlp2d's 2D points 5.7e-4
# (both). Tolerances: 10x the largest, rounded up. The sum is a weak witness (signed differences cancel):
# lr x1.1 moves wgan-gp's by 639 (2.6x the tolerance) and seed 1 gan-mlp's by 1137; the records catch both.
UINT8_SUM_TOL = 250  # grey levels over 16 x 28 x 28 or 16 x 32 x 32 pixels: 0.02 a pixel on average
POINTS_SUM_TOL = 6e-3
SAMPLES_COMPARED = ("gan-mlp", "gan-mlp2d", "progan-lite", "wgan-gp")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def short_run(model: str, tmp_path: Path, seed: int = 0, overrides: dict | None = None,
              steps: int | None = None) -> tuple[pd.DataFrame, torch.Tensor]:
    """(per-step records, samples of 16 fixed latents) of the golden protocol's run of ``model``; with
    ``steps``, the run stops at the first check (every 4 steps) that has made that many."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{model}.toml"
    path.write_text(PROTOCOLS[model])
    proto = load_protocol(str(path))
    spec = resolve(proto, "0" * 64, seeds=[seed], overrides=overrides)[0]
    data = training_images(proto)
    stop = None if steps is None else (lambda step, G, rows, say: "enough steps" if step >= steps else None)
    res = train(spec, data.images, tmp_path / f"run-{seed}", progress=False, labels=data.labels, on_check=stop)
    samples = generate(res.G_eval, fixed_z(16, spec.model.z_dim, 7), as_uint8=not model.endswith("mlp2d"))
    return res.records, samples


def nan_aware_difference(here: np.ndarray, there: np.ndarray) -> np.ndarray:
    """|here - there|, 0 where both are NaN (a value not measured at that step), inf where only one is."""
    diff = np.abs(here - there)
    diff[np.isnan(here) & np.isnan(there)] = 0.0
    diff[np.isnan(here) != np.isnan(there)] = np.inf
    return diff


def records_deviation(records: pd.DataFrame, golden: pd.DataFrame, steps: int) -> pd.Series:
    """Per float column (accuracies aside): the largest |records - golden| over the first ``steps`` steps,
    over the golden column's largest magnitude."""
    cols = [c for c in golden.columns if c not in ("step", "epoch") + ACCURACY]
    scale = np.nanmax(np.abs(golden[cols].to_numpy(float)), axis=0, initial=0.0)
    scale[scale == 0] = 1.0  # a column that is all zero or NaN: absolute
    diff = nan_aware_difference(records[cols].to_numpy(float)[:steps], golden[cols].to_numpy(float)[:steps])
    return pd.Series((diff / scale).max(axis=0), index=cols)


@pytest.mark.parametrize("model", ["dcgan", "gan-mlp2d", "progan-lite"])
def test_same_code_same_machine_gives_bit_identical_records_and_samples(tmp_path, model, one_thread):
    """Nondeterminism (an unseeded draw, a kernel whose reduction order varies from call to call) shows here
    as a differing bit, on any CPU; the cross-machine test below would blur it."""
    first = short_run(model, tmp_path / "a")
    second = short_run(model, tmp_path / "b")
    pd.testing.assert_frame_equal(first[0], second[0], check_exact=True)
    assert torch.equal(first[1], second[1])


@pytest.mark.parametrize("model", sorted(PROTOCOLS))
def test_short_run_gives_the_records_and_samples_written_before_the_redesign(tmp_path, model, one_thread):
    """On any CPU: over the model's compared steps every record within RECORDS_TOL of its column's scale and
    the accuracies within one call; where compared, the samples' sum within its tolerance (see above)."""
    golden = pd.read_csv(GOLDEN / f"records-{model}.csv")
    steps = CROSS_MACHINE_STEPS[model]
    compare_samples = model in SAMPLES_COMPARED
    records, samples = short_run(model, tmp_path, steps=None if compare_samples else steps)
    assert list(records.columns) == list(golden.columns)
    assert (len(records) == len(golden)) if compare_samples else (len(records) >= steps)
    assert records[["step", "epoch"]][:steps].equals(golden[["step", "epoch"]][:steps])
    dev = records_deviation(records, golden, steps)
    assert (dev <= RECORDS_TOL).all(), f"{model}: deviation / column scale over {steps} steps:\n{dev}"
    batch = load_protocol(str(tmp_path / f"{model}.toml")).train.batch_size
    calls = nan_aware_difference(records[list(ACCURACY)].to_numpy(float)[:steps],
                                 golden[list(ACCURACY)].to_numpy(float)[:steps])
    assert (calls <= 1 / batch + 1e-12).all(), f"{model}: more than one of D's calls in a batch changed"
    if compare_samples and model.endswith("mlp2d"):
        assert abs(float(samples.double().sum()) - SAMPLE_SUMS[model]) <= POINTS_SUM_TOL
    elif compare_samples:
        assert abs(int(samples.long().sum()) - SAMPLE_SUMS[model]) <= UINT8_SUM_TOL


def changed(model: str, change: str) -> tuple[int, dict | None]:
    """(seed, overrides) of a small real change to the golden run of ``model``."""
    m = load_model(model)
    return {"lr x1.1": (0, {"optim_g.lr": 1.1 * m.optim_g.lr, "optim_d.lr": 1.1 * m.optim_d.lr}),
            "one more D step": (0, {"n_critic": m.n_critic + 1}),
            "seed 1": (1, None)}[change]


@pytest.mark.parametrize("model, change", [("dcgan", "lr x1.1"), ("cproj-sngan", "lr x1.1"),
                                           ("gan-mlp2d", "lr x1.1"), ("lsgan", "one more D step"),
                                           ("gan-mlp", "seed 1")])
def test_a_real_change_exceeds_the_cross_machine_tolerance_many_times(tmp_path, model, change, one_thread):
    """The tolerance still catches what a refactoring could break. Measured over the compared steps, as
    multiples of RECORDS_TOL: lr x1.1 moves the records 29x (cproj-sngan, the least) to 277x (wgan-gp), an
    lr 1% off 4x to 122x, seed 1 120x to 3055x, one more D step per G step 463x and more; required: 10x."""
    golden = pd.read_csv(GOLDEN / f"records-{model}.csv")
    steps = CROSS_MACHINE_STEPS[model]
    seed, overrides = changed(model, change)
    records, _ = short_run(model, tmp_path, seed=seed, overrides=overrides, steps=steps)
    assert records_deviation(records, golden, steps).max() > 10 * RECORDS_TOL
