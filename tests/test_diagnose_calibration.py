"""The thresholds against the records of real runs (tests/data/calibration: per-step records, float32, of
the published fashion-smoke DCGANs, 1875 steps each, of the first 20 epochs of a fashion-50ep DCGAN, 9360
steps at batch 128, and of fail-oscillate on fashion-failures). A healthy
run must not be called oscillating anywhere in its run, and the induced failure must be."""

from pathlib import Path

import pandas as pd
import pytest

from ganbench import diagnosis as dg

DATA = Path(__file__).parent / "data" / "calibration"
HEALTHY = sorted(DATA.glob("fashion-smoke-dcgan-seed*.parquet")) + [DATA / "fashion-50ep-dcgan-seed0-first20epochs.parquet"]


def test_the_calibration_records_are_there():
    assert [len(pd.read_parquet(p)) for p in HEALTHY] == [1875, 1875, 1875, 9360]


@pytest.mark.parametrize("path", HEALTHY, ids=lambda p: p.stem)
def test_a_long_healthy_dcgan_does_not_oscillate_and_has_no_failure(path):
    diag = dg.diagnose(pd.read_parquet(path))
    assert [f for f in diag.findings if f.name == "oscillation"] == [], dg.format_report(diag)
    assert diag.worst != "failure", dg.format_report(diag)


def test_the_induced_oscillation_is_named_from_its_first_window():
    diag = dg.diagnose(pd.read_parquet(DATA / "fashion-failures-fail-oscillate-seed0.parquet"))
    (first, *_) = [f for f in diag.findings if f.name == "oscillation"]
    assert first.start_step <= dg.THRESHOLDS.osc_window
    assert first.evidence["d_loss_noise_max"] > dg.THRESHOLDS.osc_d_noise_max
