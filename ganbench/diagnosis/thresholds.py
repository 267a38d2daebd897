"""The one table of training-health thresholds: every number a detector compares against, each with
the run it was calibrated on (benchmarks/diagnose_calibration.py prints the measured ranges)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ganbench.spec.protocol import from_mapping

# Numerical floors of divisions, not thresholds: they only keep a ratio finite when its base is ~0.
BASE_FLOOR = 1e-12  # a first window's median, a running maximum, a real-data diversity
GAP_FLOOR = 1e-6  # a critic gap's magnitude (Wasserstein critic values are O(1)-O(100))


@dataclass(frozen=True)
class Thresholds:
    """Every number a detector compares against. Calibration: the healthy references (zoo ``dcgan`` and
    ``wgan-gp``) and the induced failures (zoo ``fail-*``) on the ``fashion-failures`` protocol (Fashion-MNIST,
    2k-image subset, batch 32, seed 0); see benchmarks/diagnose_calibration.py for the measured ranges."""

    # Windows. 8 generator steps: short enough for the 64-step calibration runs, long enough that one
    # noisy batch does not decide (a full 50-epoch run has ~23k steps, so spans are still merged runs).
    window: int = 8
    min_span: int = 16  # a condition must hold over this many steps (two windows) to become a finding

    # D dominance (Arjovsky & Bottou 2017: a perfect D leaves G without gradient). The healthy DCGAN also
    # has D near-perfect in its first ~100 steps (calibration: windowed D loss 0.03-0.1, accuracy 1.0), so
    # winning alone is a warning; it is a failure when G's gradient collapses or G's loss keeps climbing.
    dom_d_loss_max: float = 0.1  # windowed mean D loss below this (chance level is ln 4 = 1.39)
    dom_acc_min: float = 0.95  # windowed mean D accuracy on real AND on fake above this
    dom_g_grad_collapse: float = 0.1  # G grad norm at the span's end / its peak before (healthy: 0.35-1.1; minimax: 1e-6)
    # median D(G(z)) seen by the G step in the span; either G objective saturates there (healthy dcgan: 2e-3 to
    # 3e-3, i.e. a non-saturating G loss of 5.8-6.2; strong D: 4e-6; minimax G against a strong D: 1e-9)
    dom_d_fake_g_max: float = 1e-4

    # G dominance / confused D: D calls fakes real for a long span while its loss stays high.
    gdom_acc_fake_max: float = 0.1  # windowed mean D accuracy on fakes below this
    gdom_d_loss_min: float = 1.0  # windowed mean D loss above this (healthy DCGAN: 0.05-0.9)

    # Mode collapse (sample statistics, checked at each probe).
    collapse_modes_ratio: float = 0.5  # modes covered by the probe batch / the run's own running maximum below this,
    # while the samples' diversity is below the real data's, after the run's best reached this share of the real batch's count
    # (protocols with known modes; the same "half of its best" rule as diversity, not calibrated separately)
    collapse_own_ratio: float = 0.5  # diversity / the run's own running maximum below this ...
    collapse_real_ratio: float = 0.5  # ... and diversity / the real data's diversity below this
    collapse_entropy_ratio: float = 0.5  # class entropy / real class entropy (and / own maximum) below this, after the
    # own maximum once reached this share of the real entropy (a wgan-gp at 96 G steps draws one blob classified as
    # one class from the first probe, entropy max 0.08 vs real 2.24: not learned yet, and not a collapse)
    collapse_min_probes: int = 2  # consecutive probes that must agree

    # Oscillation: step-to-step noise (std of first differences / sqrt 2, blind to trends) of the D loss, and
    # lag-1 autocorrelation of the G loss (period-2 flipping gives -1, white noise ~0). Critic losses have no
    # fixed scale, so for them the critic gap's noise is taken relative to its level (over `window` steps).
    # Calibrated on long healthy runs (tests/data/calibration): the 3 healthy DCGANs of fashion-smoke (1875 steps
    # each, batch 32) and the first 20 epochs of a fashion-50ep DCGAN (9360 steps, batch 128). Over 8 steps
    # the smoke runs' G-loss autocorrelation fell below -0.6 in 16-17 % of the windows and their D-loss noise
    # reached 3.1 in the first few hundred steps: a healthy run "oscillated" 18-20 % of the time (the 50-epoch
    # run: 61 warnings over 15 % of its steps). Over 32 steps a lag-1 autocorrelation of white noise has a
    # standard error of ~0.18 instead of ~0.38; even so a healthy DCGAN's G loss see-saws (median -0.65 over
    # 32 steps at batch 128, at times below -0.9 with a window std of 1.0-1.3), so flipping counts only with
    # a large amplitude.
    osc_window: int = 32
    osc_d_noise_max: float = 2.5  # healthy dcgan: <= 1.47 (batch 32), <= 1.99 (batch 128); fail-oscillate: 3.56
    osc_autocorr_min: float = -0.9  # together with a windowed G-loss std above osc_g_std_min
    osc_g_std_min: float = 2.0  # healthy dcgan: windowed G-loss std <= 2.8, <= 1.34 where its autocorrelation < -0.9
    osc_gap_rel_noise: float = 0.5  # healthy wgan-gp: <= 0.3

    # Divergence: non-finite values, or losses / gradient norms far beyond anything a healthy run shows.
    div_loss_abs_max: float = 1e3  # |windowed loss| (healthy bce: < 20; healthy wgan-gp: < 100)
    div_grad_growth: float = 1e3  # windowed median grad norm / median of the first window (healthy: < 50)
    div_weight_growth: float = 5.0  # windowed weight norm / first window's (healthy: <= 1.3; G lr 0.1: > 10)

    # Healthy equilibrium (info): D accuracy near chance with bounded oscillation (the course's
    # "buen equilibrio" row); for critics: a positive, bounded gap and a penalty that does not dominate.
    healthy_acc_low: float = 0.3
    healthy_acc_high: float = 0.8

    # WGAN critics (Gulrajani et al. 2017). The critic gap E[f(x)] - E[f(G(z))] estimates the Wasserstein
    # distance: it should be positive and bounded. Healthy wgan-gp: windowed gap 0.5-40.
    wgan_gap_collapse: float = 0.0  # windowed gap at or below this: the critic no longer separates
    wgan_gap_explode: float = 500.0  # windowed gap above this: the critic is unconstrained
    wgan_gp_ratio_max: float = 2.0  # penalty term (d_loss + gap) / |gap| above this (healthy: < 0.6)

    # Image-to-image models (probes of 128 held-out test pairs: mean L1 in grey levels of the translation to the
    # truth and to its own source, and of the truth to the source and to its mean image, the trivial answer).
    # Calibration: tests/test_diagnose_translation.py (the induced failures and a healthy pix2pix/CycleGAN).
    # Identity collapse: the translation stays closer to its source than this share of the truth's distance.
    identity_share: float = 0.2
    # Cycle cheating (Chu et al. 2017, "CycleGAN, a master of steganography"): the round trip F(G(a)) returns
    # the source within this share of the translation's error to the truth ...
    cheat_cycle_ratio: float = 0.25
    # ... while the translation is no better than this share of the trivial answer (the mean target image).
    cheat_truth_share: float = 0.75
    # Hidden in faint patterns: 2 grey levels of noise on G(a) multiply the round-trip error by more than this
    # (a source hidden at 1/50 of the amplitude: 0 -> 42 grey levels; trained CycleGANs of 128 steps: 1.00).
    cheat_noise_ratio: float = 2.0


THRESHOLDS = Thresholds()


def thresholds_from(overrides: dict | None) -> Thresholds:
    """The default table with some entries replaced (unknown names are errors)."""
    base = dataclasses.asdict(THRESHOLDS)
    return from_mapping(Thresholds, {**base, **(overrides or {})}, "diagnose thresholds")
