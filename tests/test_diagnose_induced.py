"""Induced failures, the real test of the detectors: each zoo ``fail-*`` card trains briefly on the
``fashion-failures`` data and must trip its detector from its first steps; the healthy references
(``dcgan``, ``wgan-gp``) must produce no failure-level finding. Budgets are cut to 16-32 G steps
(benchmarks/diagnose_calibration.py runs the full 2-epoch protocol and prints the confusion table)."""

import dataclasses

import pytest

from ganbench import diagnosis as dg
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.pipeline.run import training_images
from ganbench.training import train

# model -> (training images, epochs, [(detector, severity, latest onset step)]); None = a healthy reference.
# Budgets: batch 32 over a prefix of the 2048 images; 16 to 32 G steps per run.
CASES = {
    "dcgan": (1024, 1, None),  # 32 steps
    "wgan-gp": (1600, 2, None),  # n_critic 5: 2 x 10 steps
    "fail-strong-d": (2048, 1, [("d-dominance", "failure", 8)]),  # n_critic 2: 32 steps
    "fail-minimax": (2048, 1, [("d-dominance", "failure", 8)]),  # 64 steps: D(G(z)) reaches ~1e-9 by step 25
    "fail-g-lr": (1024, 1, [("mode-collapse", "failure", 12), ("d-dominance", "failure", 8)]),
    "fail-weak-d": (1024, 1, [("g-dominance", "warning", 12)]),
    "fail-wgan-no-gp": (1600, 2, [("critic-gap-explode", "failure", 8), ("divergence", "failure", 8)]),
    "fail-wgan-heavy-gp": (1600, 2, [("gp-dominates", "warning", 8)]),
    "fail-oscillate": (2048, 1, [("oscillation", "warning", 12)]),  # 64 steps; onset at step 2-8 for seeds 0-2
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread_module):
    """Short runs on a shared 2-core machine (see conftest.one_thread_module)."""


@pytest.fixture(scope="module")
def failures_data():
    proto = load_protocol("fashion-failures")
    return proto, training_images(proto).images


def diagnose_model(model, subset, epochs, proto, images, run_dir):
    proto = dataclasses.replace(proto, train=dataclasses.replace(proto.train, epochs=epochs))
    spec = resolve(proto, "0" * 64, models=[model])[0]
    monitor = dg.health_monitor(spec, images[:subset], run_dir, "cpu", space="pixels")
    res = train(spec, images[:subset], run_dir, progress=False, on_check=monitor)
    assert res.status == "finished" and res.steps >= 16
    return dg.diagnose(res.records, monitor.samples, monitor.th, monitor.space.name), monitor


@pytest.mark.slow
@pytest.mark.parametrize("model", list(CASES))
def test_detector_fires_on_its_induced_failure_and_not_on_healthy_runs(model, failures_data, tmp_path):
    proto, images = failures_data
    subset, epochs, expected = CASES[model]
    diag, monitor = diagnose_model(model, subset, epochs, proto, images, tmp_path)
    failures = [f for f in diag.findings if f.severity == "failure"]
    if expected is None:
        assert failures == [], dg.format_report(diag)
        assert monitor.first_bad_step is None  # nothing was announced live either
        return
    for name, severity, latest_onset in expected:
        hits = [f for f in diag.findings if f.name == name and f.severity == severity]
        assert hits, f"{name} ({severity}) did not fire on {model}:\n{dg.format_report(diag)}"
        assert hits[0].start_step <= latest_onset, dg.format_report(diag)
    if any(sev == "failure" for _, sev, _ in expected):
        assert monitor.first_bad_step is not None and monitor.first_bad_step <= max(o for *_, o in expected)


def test_each_failure_card_expects_the_findings_its_induced_run_is_tested_for():
    """The cards' ``expected_findings`` (what the published check protocols judge by) are the findings this file
    induces and asserts, and every zoo card that induces a failure says which."""
    from ganbench.spec.protocol import available, load_model

    for name in available("zoo"):
        card = load_model(name)
        expected = CASES.get(name, (None, None, None))[2]
        assert list(card.expected_findings) == [n for n, _, _ in expected or []], name
        assert name.startswith("fail-") == bool(card.expected_findings), name
