"""Training-health detectors on synthetic traces with a known answer, sample statistics in closed form,
the live monitor, and the trainer's on_check hook (a stop keeps the artifacts)."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganbench import diagnosis as dg
from ganbench.core.errors import GanbenchError
from ganbench.data import DATASETS, load_split
from ganbench.data import get_dataset
from ganbench.extractors import domain
from ganbench.pipeline.run import training_images
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.training import build_models, train

TH = dg.THRESHOLDS


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread_module):
    """Short runs on a shared 2-core machine (see conftest.one_thread_module)."""


def near(step: int, expected: int, window: int = TH.window) -> bool:
    """Windowed detectors place an onset or an end within one window of the truth."""
    return abs(step - expected) <= window


def healthy_bce(n=200, seed=0) -> pd.DataFrame:
    """An equilibrium trace: D loss ~1.2, accuracy ~0.6 / 0.5, moderate noise, steady gradient norms."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "step": np.arange(1, n + 1), "epoch": 1,
        "d_loss": 1.2 + 0.05 * rng.standard_normal(n), "g_loss": 0.9 + 0.1 * rng.standard_normal(n),
        "d_real": 0.55 + 0.02 * rng.standard_normal(n), "d_fake": 0.45 + 0.02 * rng.standard_normal(n),
        "d_acc_real": np.clip(0.6 + 0.05 * rng.standard_normal(n), 0, 1),
        "d_acc_fake": np.clip(0.5 + 0.05 * rng.standard_normal(n), 0, 1),
        "d_grad_norm": 5 + rng.random(n), "g_grad_norm": 8 + rng.random(n), "d_fake_g": 0.45 + 0.0 * rng.random(n),
    })


def healthy_wgan(n=200, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gap = 5.0 + 0.3 * rng.standard_normal(n)
    gp = 0.05 + 0.01 * rng.random(n)
    return pd.DataFrame({
        "step": np.arange(1, n + 1), "epoch": 1, "d_loss": -gap + 10 * gp, "g_loss": 2 + 0.3 * rng.standard_normal(n),
        "d_real": 2 + 0.1 * rng.standard_normal(n), "d_fake": -3 + 0.1 * rng.standard_normal(n),
        "d_acc_real": np.nan, "d_acc_fake": np.nan, "d_grad_norm": 3 + rng.random(n), "g_grad_norm": 4 + rng.random(n),
        "critic_gap": gap, "gp": gp, "d_fake_g": -3.0,
    })


def names(diag, severity=None):
    return {f.name for f in diag.findings if severity is None or f.severity == severity}


def only(diag, name):
    (f,) = [f for f in diag.findings if f.name == name]
    return f


def test_healthy_traces_give_only_the_equilibrium_info():
    for rec in (healthy_bce(), healthy_wgan()):
        diag = dg.diagnose(rec)
        assert names(diag) == {"healthy-equilibrium"} and diag.worst == "info"
        f = only(diag, "healthy-equilibrium")
        assert f.start_step == 1 and f.end_step == 200 and f.evidence["fraction_of_steps"] == 1.0


def test_d_dominance_with_collapsing_g_gradient_is_a_failure_in_its_step_range():
    rec = healthy_bce()
    late = rec["step"] > 80
    rec.loc[late, ["d_loss", "d_acc_real", "d_acc_fake"]] = [0.01, 1.0, 1.0]
    rec.loc[late, "g_grad_norm"] = 0.05  # 0.6% of its peak: the minimax vanishing gradient
    f = only(dg.diagnose(rec), "d-dominance")
    assert f.severity == "failure" and near(f.start_step, 81) and f.end_step == 200
    assert f.evidence["g_grad_norm_end_over_peak"] == pytest.approx(0.05 / 8.5, rel=0.1)  # peak: windowed median of 8 + U(0, 1)
    assert f.evidence["d_acc_fake_mean"] == 1.0 and "dropout" in " ".join(f.remedies)


def test_d_dominance_severity_follows_the_g_side_evidence():
    rec = healthy_bce()
    late = rec["step"] > 80
    rec.loc[late, ["d_loss", "d_acc_real", "d_acc_fake"]] = [0.05, 1.0, 1.0]
    rec.loc[late, ["g_loss", "d_fake_g"]] = [6.0, math.exp(-6.0)]  # D wins, G still gets gradient: a warning
    assert only(dg.diagnose(rec), "d-dominance").severity == "warning"
    rec.loc[late, ["g_loss", "d_fake_g"]] = [25.0, math.exp(-25.0)]  # D(G(z)) ~ 1e-11: the G loss has climbed
    f = only(dg.diagnose(rec), "d-dominance")
    assert f.severity == "failure" and f.evidence["d_fake_g_median"] == pytest.approx(math.exp(-25.0))


def test_g_dominance_fires_on_a_confused_d_only_over_long_spans():
    rec = healthy_bce()
    rec.loc[rec["step"].between(50, 130), ["d_acc_fake", "d_loss"]] = [0.02, 1.6]
    f = only(dg.diagnose(rec), "g-dominance")
    assert f.severity == "warning" and near(f.start_step, 50) and near(f.end_step, 130)
    assert f.evidence["d_acc_fake_median"] == pytest.approx(0.02)
    short = healthy_bce()
    short.loc[short["step"].between(50, 55), ["d_acc_fake", "d_loss"]] = [0.02, 1.6]  # 6 steps < min_span
    assert "g-dominance" not in names(dg.diagnose(short))


def samples_trace(diversity, entropy=None, real=12.0, real_entropy=2.3, every=10) -> pd.DataFrame:
    n = len(diversity)
    return pd.DataFrame({"step": np.arange(1, n + 1) * every, "diversity": diversity,
                         "class_entropy": entropy if entropy is not None else [np.nan] * n,
                         "real_diversity": real, "real_class_entropy": real_entropy if entropy is not None else np.nan})


def test_mode_collapse_needs_a_drop_against_its_own_history_and_the_real_data():
    rec = healthy_bce()
    collapse = samples_trace([2, 5, 8, 10, 10, 9, 3, 2.5, 2, 2])  # from step 70 on: 30% of its max, 25% of real
    f = only(dg.diagnose(rec, collapse), "mode-collapse")
    assert f.severity == "failure" and (f.start_step, f.end_step) == (70, 100)
    assert f.evidence["diversity"] == 2 and f.evidence["diversity_max_before"] == 10
    assert f.summary.startswith("sample diversity fell to 20% of its maximum and 17% of the real data's")
    # Low from the start (an untrained G) is not a collapse: no drop against its own history.
    assert "mode-collapse" not in names(dg.diagnose(rec, samples_trace([2, 2.2, 2.1, 2, 2.3, 2.2])))
    # A drop that stays above half the real diversity is not a collapse either.
    assert "mode-collapse" not in names(dg.diagnose(rec, samples_trace([12, 14, 13, 6.5, 6.5], real=12.0)))
    # One low probe is noise: two consecutive probes must agree.
    assert "mode-collapse" not in names(dg.diagnose(rec, samples_trace([10, 10, 2, 10, 10])))


def test_mode_collapse_by_class_entropy_alone():
    ent = [1.0, 2.0, 2.2, 2.2, 0.3, 0.2, 0.2]  # one class dominates from step 50
    f = only(dg.diagnose(healthy_bce(), samples_trace([10] * 7, entropy=ent)), "mode-collapse")
    assert (f.start_step, f.end_step) == (50, 70) and f.evidence["class_entropy"] == 0.2
    assert f.summary.startswith("class entropy fell to 0.2 (real data: 2.3); sample diversity at 100% of its maximum")
    # An early G whose blobs all land in one class from the first probe never had varied classes: no collapse
    # (the trace of a wgan-gp at 96 G steps: entropy 0 with one blip of 0.08, real 2.24).
    early = [0.0, 0.08, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert "mode-collapse" not in names(dg.diagnose(healthy_bce(), samples_trace([1.0, 1.7, 1.9, 1.8, 1.7, 1.6, 1.5],
                                                                               entropy=early, real_entropy=2.24)))
    # A drop from half the real entropy counts; from just below it does not.
    assert "mode-collapse" in names(dg.diagnose(healthy_bce(), samples_trace([10] * 5, entropy=[1.15, 1.15, 0.2, 0.2, 0.2])))
    assert "mode-collapse" not in names(dg.diagnose(healthy_bce(), samples_trace([10] * 5, entropy=[1.1, 1.1, 0.2, 0.2, 0.2])))


def test_oscillation_fires_on_period_two_flipping_and_on_large_swings():
    rec = healthy_bce()
    mid = rec["step"].between(60, 120)
    rec.loc[mid, "g_loss"] = 0.9 + 3.0 * np.where(rec.loc[mid, "step"] % 2 == 0, 1, -1)
    f = only(dg.diagnose(rec), "oscillation")
    assert f.severity == "warning" and f.evidence["g_loss_lag1_autocorr_min"] == pytest.approx(-1.0, abs=0.05)
    assert near(f.start_step, 60, TH.osc_window) and near(f.end_step, 120, TH.osc_window)
    swings = healthy_bce()
    swings.loc[swings["step"] > 100, "d_loss"] = 1.2 + 3.0 * np.random.default_rng(1).standard_normal(100)
    assert only(dg.diagnose(swings), "oscillation").evidence["d_loss_noise_max"] > TH.osc_d_noise_max


def test_divergence_on_nan_in_the_middle_and_on_exploding_gradients():
    rec = healthy_bce()
    rec.loc[rec["step"] == 57, "g_loss"] = np.nan
    diag = dg.diagnose(rec)
    f = only(diag, "divergence")
    assert f.severity == "failure" and f.start_step == 57 and f.evidence["non_finite_steps"] == 1
    assert diag.first_step("failure") == 57 and diag.worst == "failure"
    assert "healthy-equilibrium" in names(diag)  # windows around the NaN are skipped, the rest still read
    boom = healthy_bce()
    boom.loc[boom["step"] > 150, "d_grad_norm"] = 1e5
    f = only(dg.diagnose(boom), "divergence")
    assert near(f.start_step, 151) and f.evidence["d_grad_norm_growth"] > TH.div_grad_growth


def test_wgan_critic_gap_explode_collapse_and_dominant_penalty():
    boom = healthy_wgan()
    boom.loc[boom["step"] > 100, "critic_gap"] = 5e3
    f = only(dg.diagnose(boom), "critic-gap-explode")
    assert f.severity == "failure" and near(f.start_step, 101) and f.end_step == 200
    flat = healthy_wgan()
    flat.loc[flat["step"] > 120, "critic_gap"] = -0.2
    assert only(dg.diagnose(flat), "critic-gap-collapse").severity == "warning"
    heavy = healthy_wgan()
    heavy["d_loss"] = -heavy["critic_gap"] + 40.0  # penalty term 40 against a gap of ~5
    f = only(dg.diagnose(heavy), "gp-dominates")
    assert f.evidence["penalty_over_gap_median"] == pytest.approx(8.0, rel=0.1)
    assert "gp-dominates" not in names(dg.diagnose(healthy_wgan()))


def test_edge_cases_short_constant_and_missing_fields():
    short = dg.diagnose(healthy_bce(5))
    assert short.findings == () and "run too short" in short.skipped["oscillation"] and short.worst == "none"
    const = healthy_bce()
    for col in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake"):
        const[col] = const[col].iloc[0]
    assert dg.diagnose(const).worst == "info"  # zero variance: no oscillation, no NaN autocorrelation surprises
    missing = healthy_bce().drop(columns=["d_acc_real", "d_acc_fake"])
    diag = dg.diagnose(missing)
    assert "missing fields: d_acc_real, d_acc_fake" in diag.skipped["d-dominance"]
    assert "no sample statistics" in diag.skipped["mode-collapse"]
    with pytest.raises(GanbenchError, match="'step' column"):
        dg.diagnose(pd.DataFrame({"d_loss": [1.0]}))


def test_thresholds_live_in_one_table_and_change_the_answer():
    rec = healthy_bce()
    rec.loc[rec["step"] > 80, ["d_loss", "d_acc_real", "d_acc_fake", "d_fake_g"]] = [0.05, 1.0, 1.0, 0.0025]
    assert only(dg.diagnose(rec), "d-dominance").severity == "warning"
    strict = dg.thresholds_from({"dom_d_fake_g_max": 0.01})
    assert only(dg.diagnose(rec, thresholds=strict), "d-dominance").severity == "failure"
    with pytest.raises(GanbenchError, match="unknown key 'dom_typo'"):
        dg.thresholds_from({"dom_typo": 1.0})


def translation_trace(identity_l1, cycle_l1, cycle_noisy_l1=None, truth_l1=60.0, trivial_l1=50.0, every=10):
    """Held-out probes of an image-to-image model (grey levels): its distances to its source, the truth and back."""
    n = len(identity_l1)
    return pd.DataFrame({"step": np.arange(1, n + 1) * every, "identity_l1": identity_l1, "target_identity_l1": 80.0,
                         "truth_l1": truth_l1, "trivial_l1": trivial_l1, "cycle_l1": cycle_l1,
                         "cycle_noisy_l1": cycle_noisy_l1 if cycle_noisy_l1 is not None else cycle_l1})


def _set(rec: pd.DataFrame, when, **values) -> pd.DataFrame:
    for k, v in values.items():
        rec.loc[when(rec["step"]), k] = v
    return rec


# Per detector, a trace on which it fires (what the detector-specific tests above induce): the contract test
# checks every detector's findings, not only those of the detectors a generic trace happens to trip.
TRIGGERS = {
    "divergence": lambda: (healthy_bce().assign(d_loss=lambda r: r["d_loss"].where(r["step"] != 40)), None),
    "d-dominance": lambda: (_set(healthy_bce(), lambda s: s > 80, d_loss=0.05, d_acc_real=1.0, d_acc_fake=1.0,
                                 d_fake_g=0.0025), None),
    "g-dominance": lambda: (_set(healthy_bce(), lambda s: s.between(50, 130), d_acc_fake=0.02, d_loss=1.6), None),
    "mode-collapse": lambda: (healthy_bce(), samples_trace([2, 5, 8, 10, 10, 9, 3, 2.5, 2, 2])),
    "oscillation": lambda: (_set(healthy_bce(), lambda s: s > 100,
                                 d_loss=1.2 + 3.0 * np.random.default_rng(1).standard_normal(100)), None),
    "healthy-equilibrium": lambda: (healthy_wgan(), None),
    "critic-gap": lambda: (_set(healthy_wgan(), lambda s: s > 100, critic_gap=5e3), None),
    "gp-dominates": lambda: (healthy_wgan().assign(d_loss=lambda r: -r["critic_gap"] + 40.0), None),
    "identity-collapse": lambda: (healthy_bce(20), translation_trace([40, 30, 5, 4, 3], [20] * 5)),
    "cycle-cheating": lambda: (healthy_bce(20), translation_trace([40] * 5, [30, 30, 2, 1, 1], [30, 30, 40, 40, 40])),
}


@pytest.mark.parametrize("name", sorted(dg.DETECTORS))
def test_detector_contract(name):
    """Every detector fires on its own trace, and what it returns keeps the contract: Finding objects of its own
    name, a known severity, ordered steps inside the run, numeric evidence, remedies when not info."""
    rec, samples = TRIGGERS[name]()  # a detector without a trigger here fails: write one
    diag = dg.diagnose(rec, samples, detectors=[name])
    assert diag.findings, f"{name} did not fire on its trigger trace ({diag.skipped.get(name, 'not skipped')})"
    last = max(rec["step"].max(), samples["step"].max() if samples is not None else 0)
    for f in diag.findings:
        assert isinstance(f, dg.Finding) and f.name.startswith(name) and f.severity in dg.SEVERITIES  # critic-gap-*
        assert rec["step"].min() <= f.start_step <= f.end_step <= last
        assert f.summary and f.evidence and all(isinstance(v, (int, float)) for v in f.evidence.values())
        assert f.severity == "info" or f.remedies
    with pytest.raises(GanbenchError, match="Unknown detector 'nope'. Available:"):
        dg.diagnose(healthy_bce(), detectors=["nope"])


def test_diagnosis_roundtrips_through_json(tmp_path):
    rec = healthy_bce()
    rec.loc[rec["step"] == 57, "g_loss"] = np.inf
    diag = dg.diagnose(rec, feature_space="pixels")
    path = dg.write_diagnosis(diag, tmp_path / "d.json")
    back = dg.Diagnosis.from_dict(json.loads(path.read_text()))
    assert back.worst == "failure" and back.first_step() == 57 and back.feature_space == "pixels"
    assert [f.name for f in back.findings] == [f.name for f in diag.findings]
    text = dg.format_report(diag)
    assert "[FAILURE] divergence  steps 57-200" in text and "try: lower both learning rates" in text


# --------------------------------------------------------------------------- sample statistics


def test_mean_pairwise_distance_and_class_entropy_closed_forms():
    assert dg.mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    tri = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])  # equilateral, side 1
    assert dg.mean_pairwise_distance(tri) == pytest.approx(1.0)
    assert math.isnan(dg.mean_pairwise_distance(torch.zeros(1, 3)))
    uniform = torch.eye(10).repeat(3, 1)  # 30 samples, 3 per class
    assert dg.class_entropy(uniform) == pytest.approx(math.log(10))
    assert dg.class_entropy(torch.eye(10)[[3] * 8]) == 0.0
    assert dg.class_entropy(torch.eye(10)[[1, 2] * 4]) == pytest.approx(math.log(2))


def test_pixel_space_diversity_of_identical_vs_distinct_images():
    space = dg.pixel_space()
    same = torch.full((16, 1, 28, 28), 77, dtype=torch.uint8)
    assert dg.sample_statistics(same, space)["diversity"] == 0.0
    two = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    two[1] = 255  # distance sqrt(784) = 28 in [0, 1] pixels
    stats = dg.sample_statistics(two, space)
    assert stats["diversity"] == pytest.approx(28.0) and math.isnan(stats["class_entropy"])
    with pytest.raises(GanbenchError, match="auto, pixels or domain"):
        dg.feature_space("fashion-mnist", "inception")


class FakeClassifier:
    """Stands in for a trained domain classifier: 3 features, 2 classes."""

    features = staticmethod(lambda x: x.float().flatten(1)[:, :3])
    logits = staticmethod(lambda x: x.float().flatten(1)[:, :2])


def test_domain_space_follows_the_dataset_registry_and_the_classifiers_weights(monkeypatch, tmp_path):
    """A stored, labelled, grayscale dataset registered later can have a domain classifier, and ``auto`` takes it
    exactly when its weight file is there (shipped, or in GANBENCH_DOMAIN_WEIGHTS); nothing is trained."""
    monkeypatch.setitem(DATASETS, "kmnist", dataclasses.replace(DATASETS["mnist"], name="kmnist"))
    built = []
    monkeypatch.setattr(domain, "domain_classifier", lambda ds, device="cpu": built.append(ds) or FakeClassifier())
    monkeypatch.setenv("GANBENCH_DOMAIN_WEIGHTS", str(tmp_path))
    assert dg.has_domain_classifier("kmnist") and not dg.has_domain_classifier("ring8")
    space = dg.feature_space("kmnist", "domain")
    assert space.name == "domain-kmnist" and built == ["kmnist"] and space.logits is FakeClassifier.logits
    assert dg.feature_space("kmnist", "auto").name == "pixels"  # no weights for it: a run never waits for training
    (tmp_path / "domain-kmnist.pt").touch()
    assert dg.feature_space("kmnist", "auto").name == "domain-kmnist"
    monkeypatch.delenv("GANBENCH_DOMAIN_WEIGHTS")
    assert dg.feature_space("fashion-mnist", "auto").name == "domain-fashion-mnist"  # shipped: always there
    with pytest.raises(GanbenchError, match="no domain classifier for 'ring8'"):
        dg.feature_space("ring8", "domain")
    assert built == ["kmnist", "kmnist", "fashion-mnist"]


# --------------------------------------------------------------------------- the live monitor


class ConstantG(nn.Module):
    """A generator whose output does not depend on z: every sample identical (total collapse)."""

    def __init__(self, scale: float):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 1, 28, 28))
        self.scale = scale

    def forward(self, z):
        return torch.tanh(self.bias + self.scale * z[:, :1, None, None] * 0)


def test_monitor_announces_a_failure_once_and_stops_when_asked():
    rows = healthy_bce(60).to_dict(orient="records")
    rows[29]["d_loss"] = float("nan")
    said, logged = [], []
    mon = dg.ProbeMonitor(torch.randn(8, 100, generator=torch.Generator().manual_seed(0)), None, dg.pixel_space(),
                     on_failure=logged.append)
    assert mon(20, ConstantG(1.0), rows[:20], said.append) is None and said == []
    assert mon(40, ConstantG(1.0), rows[:40], said.append) is None  # no stop_on: warn only
    assert len(said) == 1 and "divergence from step 30" in said[0] and mon.first_bad_step == 30
    assert logged == [30]
    mon(60, ConstantG(1.0), rows, said.append)
    assert len(said) == 1  # announced once
    assert list(mon.samples["step"]) == [20, 40, 60] and (mon.samples["diversity"] == 0).all()
    stopper = dg.ProbeMonitor(torch.randn(8, 100), None, dg.pixel_space(), stop_on="failure")
    reason = stopper(40, ConstantG(1.0), rows[:40], said.append)
    assert reason.startswith("stopped early (--stop-on failure): divergence from step 30")
    with pytest.raises(GanbenchError, match="--stop-on"):
        dg.ProbeMonitor(torch.randn(8, 100), None, dg.pixel_space(), stop_on="sometimes")


def test_monitor_compares_a_growing_g_with_the_real_images_at_its_resolution():
    """ProGAN-lite at 8x8 against real 32x32 images looked collapsed (a real run: 39% of the real diversity at
    step 500). The probe's real reference is the real images at G's resolution (avg-pooled, nearest-upsampled)."""
    real = F.interpolate(load_split("fashion-mnist", "train").images[:64].float(), size=32, mode="bilinear").round().to(torch.uint8)
    proto = load_protocol("fashion32-smoke")
    (spec,) = resolve(proto, "0" * 64, models=["progan-lite"], seeds=[0])
    G, _ = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    mon = dg.ProbeMonitor(torch.randn(16, spec.model.z_dim, generator=torch.Generator().manual_seed(0)), real, dg.pixel_space())
    at = {}
    for images_seen, res in ((0, 4), (50_000, 8), (200_000, 32)):
        G.set_progress(images_seen)
        mon.probe(images_seen, G)
        at[res] = mon.samples["real_diversity"].iloc[-1]
    low8 = F.interpolate(F.avg_pool2d(real.float(), 4), scale_factor=4, mode="nearest").round().to(torch.uint8)
    assert math.isclose(at[8], dg.sample_statistics(low8, dg.pixel_space())["diversity"], rel_tol=1e-6)
    assert at[32] == mon.real["diversity"] and at[4] < at[8] < at[32]
    mon.probe(1, ConstantG(1.0))  # a G that does not grow: the full-size reference
    assert mon.samples["real_diversity"].iloc[-1] == mon.real["diversity"]


# --------------------------------------------------------------------------- the trainer's hook


def test_trainer_on_check_stops_the_run_and_keeps_records(tmp_path, tiny_protocol):
    proto = load_protocol(tiny_protocol(epochs=3))  # 128 images, batch 32: 4 steps per epoch, check every 4
    spec = resolve(proto, "0" * 64)[0]
    seen = []

    def on_check(step, G, rows, say):
        seen.append((step, len(rows)))
        return "enough" if step == 8 else None

    res = train(spec, training_images(proto).images, tmp_path, progress=False, on_check=on_check)
    assert res.status == "stopped" and res.message == "enough" and res.steps == 8
    assert seen == [(4, 4), (8, 8)]
    assert len(pd.read_parquet(tmp_path / "records.parquet")) == 8
    assert (tmp_path / "checkpoints" / "last.pt").is_file()  # the epoch-1 checkpoint stays


@pytest.mark.slow
def test_domain_feature_space_sees_classes_and_collapse():
    """With the Fashion-MNIST domain classifier (trained once, cached): real images spread over the 10 classes,
    one image repeated has zero diversity (up to rounding) and zero class entropy."""
    space = dg.feature_space("fashion-mnist", "domain")
    assert space.name == "domain-fashion-mnist"
    real = load_split("fashion-mnist", "test").images[:dg.PROBE_SAMPLES]
    stats = dg.sample_statistics(real, space)
    assert stats["class_entropy"] > 0.9 * math.log(10) and stats["diversity"] > 0
    one = dg.sample_statistics(real[:1].repeat(dg.PROBE_SAMPLES, 1, 1, 1), space)
    # The repeated image's feature rows are bit-identical, but torch.cdist measures more than 25 rows as
    # sqrt(|x|^2 + |y|^2 - 2 x.y) in float64, and what the cancellation leaves depends on the BLAS's
    # summation order: at most ~sqrt(4 D eps64) |f| = 3.4e-7 |f| a pair (D = 128 features; |f| is 10 to 13
    # here, so <= ~4.5e-6, below the 1.2e-5 allowed). Measured as the mean over pairs for five test images
    # (AMD EPYC): 0 to 3.3e-7 (1.06e-8 for this one, where another machine gave 0.0). One distinct image
    # among the 128 would add ~1/64 of a real pair's distance (~0.2).
    assert one["diversity"] < 1e-6 * stats["diversity"] and one["class_entropy"] == 0.0
    assert dg.feature_space("fashion-mnist", "auto").name == "domain-fashion-mnist"  # cached now: auto takes it
    with pytest.raises(GanbenchError, match="no domain classifier"):
        dg.feature_space("ring8", "domain")


class RingG(nn.Module):
    """A 2D 'generator' that puts its samples on some of ring8's modes (an induced collapse when they
    shrink), with the mixture's own sigma."""

    def __init__(self, modes: list[int]):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.modes = torch.tensor(modes)

    def forward(self, z):
        mix = get_dataset("ring8").mixture
        k = self.modes[(z[:, 0].abs() * 1000).long() % len(self.modes)]
        return mix.centers[k].float() + mix.sigma * z[:, 1:3] + 0 * self.w


def test_mode_collapse_from_modes_covered_on_a_mixture_protocol():
    space = dg.feature_space("ring8", "pixels")
    assert space.modes is not None and dg.feature_space("fashion-mnist", "pixels").modes is None
    real = get_dataset("ring8").mixture.sample(128, torch.Generator().manual_seed(1)).images
    mon = dg.ProbeMonitor(torch.randn(128, 3, generator=torch.Generator().manual_seed(0)), real, space, as_uint8=False)
    every, opposite = list(range(8)), [0, 4]  # from step 80: two opposite modes left (diversity stays high)
    for step, modes in zip(range(10, 110, 10), [every] * 7 + [opposite] * 3):
        mon.probe(step, RingG(modes))
    div = mon.samples["diversity"]
    assert div.iloc[-1] > 0.5 * div.max()  # the diversity rule alone would not fire
    assert list(mon.samples["modes_covered"]) == [8] * 7 + [2] * 3
    assert set(mon.samples["real_modes_covered"]) == {8}  # the real batch covers every mode
    f = only(dg.diagnose(healthy_bce(), mon.samples), "mode-collapse")
    assert (f.start_step, f.end_step) == (80, 100)
    assert f.evidence["modes_covered"] == 2 and f.evidence["modes_covered_max_before"] == 8
    # the summary names the signal that collapsed: the modes, not the diversity, which held
    assert "modes covered fell to 2 (best before: 8)" in f.summary
    assert "diversity fell" not in f.summary and "sample diversity at " in f.summary
    # a drop to 5 of 8 modes stays above half of the best: no finding from modes alone
    mon = dg.ProbeMonitor(torch.randn(128, 3, generator=torch.Generator().manual_seed(0)), real, space, as_uint8=False)
    for step, modes in zip(range(10, 110, 10), [every] * 7 + [[0, 1, 3, 4, 6]] * 3):
        mon.probe(step, RingG(modes))
    assert "mode-collapse" not in names(dg.diagnose(healthy_bce(), mon.samples))
    # samples scattered wider than the data (an early WGAN-GP on grid25) hit few 3-sigma discs by chance: a falling
    # count is not a collapse while their diversity exceeds the real data's; the same count with the spread gone is
    trace = pd.DataFrame({"step": [25, 50, 75, 100, 125], "modes_covered": [6, 6, 1, 1, 1], "real_diversity": 3.3,
                          "diversity": [3.9, 3.9, 3.9, 3.9, 3.9]})
    assert "mode-collapse" not in names(dg.diagnose(healthy_bce(), trace))
    trace["diversity"] = [3.9, 3.9, 3.0, 3.0, 3.0]
    assert only(dg.diagnose(healthy_bce(), trace), "mode-collapse").start_step == 75
    # with the real batch's count recorded (the monitor does), a fall counts only from a varied state: 6 of 25 modes
    # was never half of the real data's, 14 was
    trace["real_modes_covered"] = 25.0
    assert "mode-collapse" not in names(dg.diagnose(healthy_bce(), trace))
    trace["modes_covered"] = [14, 14, 1, 1, 1]
    assert only(dg.diagnose(healthy_bce(), trace), "mode-collapse").start_step == 75


def test_spans_reach_back_one_window_keep_the_minimum_length_and_merge_overlaps():
    steps = pd.Series(np.arange(1, 101))
    flags = pd.Series(np.zeros(100, dtype=bool))
    flags[19:39] = True  # steps 20-39: 20 flagged windows
    flags[42:62] = True  # steps 43-62: reaching back a window (to 36) overlaps the first span
    flags[80:85] = True  # steps 81-85: 5 flagged windows, 12 steps with the window: shorter than min_span
    th = dataclasses.replace(TH, window=8, min_span=16)
    assert dg.spans(steps, flags, th) == [(13, 62)]
    assert dg.spans(steps, flags, th, windowed=False) == [(20, 39), (43, 62)]
    flags[:] = False
    flags[0:20] = True  # a span at the start cannot reach back before the first step
    assert dg.spans(steps, flags, th) == [(1, 20)]
