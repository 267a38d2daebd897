"""Training-health diagnostics: per-step records + sample statistics -> findings.

GAN losses say little on their own ("G loss rises while the images get better"); this module reads
a run the way a practitioner does. Each detector is a small registered function over a
:class:`Trace` (the trainer's per-step records, plus periodic statistics of a fixed batch of
samples) that returns :class:`Finding`s: a name, a severity (info / warning / failure), the step
range where it holds, the numbers that triggered it and the standard remedies.

Every threshold lives in :class:`Thresholds` (one table, each with how it was calibrated); the
remedies in :data:`REMEDIES` are the usual table of the course material (weaken or strengthen D,
WGAN-GP, lower learning rates, larger batch, Adam(2e-4, beta1 = 0.5) from Radford et al. 2016).

Sample statistics follow the usual mode-collapse evidence: the diversity of a fixed batch of
samples (mean pairwise distance in a feature space, as in the "diversity" score of Karras et al.
2018 and the MS-SSIM diversity of Odena et al. 2017) and the entropy of the classes a domain
classifier predicts for them (the class-histogram test of Srivastava et al. 2017, VEEGAN).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import Registry

SEVERITIES = ("info", "warning", "failure")
LOSS_FIELDS = ("d_loss", "g_loss")


# --------------------------------------------------------------------------- the one threshold table


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
    # while the samples' diversity is below the real data's
    # (protocols with known modes; the same "half of its best" rule as diversity, not calibrated separately)
    collapse_own_ratio: float = 0.5  # diversity / the run's own running maximum below this ...
    collapse_real_ratio: float = 0.5  # ... and diversity / the real data's diversity below this
    collapse_entropy_ratio: float = 0.5  # class entropy / real class entropy (and / own maximum) below this, after the
    # own maximum once reached this share of the real entropy (a wgan-gp at 96 G steps draws one blob classified as
    # one class from the first probe, entropy max 0.08 vs real 2.24: not learned yet, and not a collapse)
    collapse_min_probes: int = 2  # consecutive probes that must agree

    # Oscillation: step-to-step noise (std of first differences / sqrt 2, blind to trends) of the D loss, and
    # lag-1 autocorrelation of the G loss (period-2 flipping gives -1, white noise ~0). Critic losses have no
    # fixed scale, so for them the critic gap's noise is taken relative to its level.
    osc_d_noise_max: float = 0.8  # healthy dcgan: <= 0.45
    osc_autocorr_min: float = -0.6  # together with a windowed G-loss std above osc_g_std_min
    osc_g_std_min: float = 1.0
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


THRESHOLDS = Thresholds()


def thresholds_from(overrides: dict | None) -> Thresholds:
    """The default table with some entries replaced (unknown names are errors)."""
    from ganbench.spec.protocol import from_mapping

    base = dataclasses.asdict(THRESHOLDS)
    return from_mapping(Thresholds, {**base, **(overrides or {})}, "diagnose thresholds")


REMEDIES: dict[str, tuple[str, ...]] = {
    "weaken-d": ("weaken D: more dropout in D", "lower D's learning rate", "fewer filters in D",
                 "label noise or flipping / one-sided label smoothing (real_label = 0.9)",
                 "use a non-saturating or Wasserstein loss (WGAN-GP)"),
    "strengthen-d": ("strengthen D: less dropout, more filters", "raise D's learning rate or take more D steps",
                     "lower G's learning rate"),
    "collapse": ("WGAN-GP (or another loss with a gradient everywhere)", "lower both learning rates",
                 "larger batch", "Adam(2e-4, beta1 = 0.5)", "minibatch discrimination / feature matching"),
    "oscillation": ("lower both learning rates", "larger batch", "Adam(2e-4, beta1 = 0.5)"),
    "divergence": ("lower both learning rates (G's especially)", "Adam(2e-4, beta1 = 0.5)",
                   "gradient penalty (WGAN-GP)", "resume from the last finite checkpoint"),
    "healthy": (),
    "critic-collapse": ("more critic steps (n_critic) or a higher critic learning rate", "check the gradient-penalty weight"),
    "critic-explode": ("add the gradient penalty (lambda = 10) or weight clipping", "lower the critic learning rate"),
    "gp-dominates": ("lower the penalty weight lambda (10 is the paper's)", "Adam(1e-4, betas = (0.5, 0.9)) as in WGAN-GP"),
}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Finding:
    name: str
    severity: str  # info | warning | failure
    start_step: int
    end_step: int
    summary: str
    evidence: dict[str, float] = field(default_factory=dict)
    remedies: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "remedies": list(self.remedies),
                "evidence": {k: _json_float(v) for k, v in self.evidence.items()}}


@dataclass(frozen=True)
class Trace:
    """What detectors read: per-step records (one row per G step) and sample statistics (one row per probe:
    ``step``, ``diversity``, ``class_entropy``, ``real_diversity``, ``real_class_entropy``)."""

    records: pd.DataFrame
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class Diagnosis:
    findings: tuple[Finding, ...]
    steps: int
    skipped: dict[str, str]  # detector -> why it could not run
    feature_space: str | None = None

    @property
    def worst(self) -> str:
        """The most severe finding's severity, "none" without findings."""
        ranks = [SEVERITIES.index(f.severity) for f in self.findings]
        return SEVERITIES[max(ranks)] if ranks else "none"

    def first_step(self, severity: str = "failure") -> int | None:
        steps = [f.start_step for f in self.findings if f.severity == severity]
        return min(steps) if steps else None

    def to_dict(self) -> dict:
        return {"worst": self.worst, "steps": self.steps, "feature_space": self.feature_space,
                "first_failure_step": self.first_step("failure"),
                "findings": [f.to_dict() for f in self.findings], "skipped": self.skipped}

    @classmethod
    def from_dict(cls, d: dict) -> "Diagnosis":
        findings = tuple(Finding(**{**f, "remedies": tuple(f["remedies"])}) for f in d["findings"])
        return cls(findings, d["steps"], d.get("skipped", {}), d.get("feature_space"))


def _json_float(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Detector:
    name: str
    fn: Callable[[Trace, Thresholds], list[Finding]]
    needs: tuple[str, ...]  # record columns with finite values
    needs_samples: tuple[str, ...] = ()  # sample-statistics columns with finite values


DETECTORS: Registry[Detector] = Registry("detector")


def detector(name: str, needs: tuple[str, ...] = (), needs_samples: tuple[str, ...] = ()):
    def deco(fn):
        DETECTORS.register(name, Detector(name, fn, needs, needs_samples))
        return fn

    return deco


def rolling(series: pd.Series, th: Thresholds, how: str = "mean") -> pd.Series:
    """Trailing windows of ``th.window`` steps; a window with a missing or non-finite value is NaN."""
    clean = series.astype(float).where(np.isfinite(series.astype(float)))
    return getattr(clean.rolling(th.window, min_periods=th.window), how)()


def spans(steps: pd.Series, flags: pd.Series, th: Thresholds, windowed: bool = True) -> list[tuple[int, int]]:
    """Runs of True in ``flags`` as (first step, last step), at least ``th.min_span`` steps long. A flag on a
    trailing window ending at step t covers steps t - window + 1 .. t; spans that then overlap are merged."""
    out, start, prev = [], None, None
    back = th.window - 1 if windowed else 0
    for s, f in zip(steps.tolist(), flags.fillna(False).astype(bool).tolist()):
        if f and start is None:
            start = s
        if not f and start is not None:
            out.append((start, prev))
            start = None
        prev = s
    if start is not None:
        out.append((start, prev))
    first = int(steps.iloc[0]) if len(steps) else 0
    merged: list[tuple[int, int]] = []
    for a, b in ((max(first, a - back), b) for a, b in out):
        if b - a + 1 < th.min_span:
            continue
        if merged and a <= merged[-1][1] + 1:  # reaching back a window can overlap the previous span: one finding
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(int(a), int(b)) for a, b in merged]


def _between(df: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    return df[(df["step"] >= a) & (df["step"] <= b)]


# --------------------------------------------------------------------------- detectors


@detector("divergence", needs=("d_loss", "g_loss"))
def divergence(t: Trace, th: Thresholds) -> list[Finding]:
    """NaN/Inf in a loss, or losses, gradient norms or weight norms exploding far beyond a healthy run's range."""
    r = t.records
    cols = [c for c in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm") if c in r]
    bad = ~np.isfinite(r[cols].astype(float)).all(axis=1)
    if bad.any():
        first = int(r["step"][bad].iloc[0])
        which = [c for c in cols if not math.isfinite(float(r.loc[bad.idxmax(), c]))]
        return [Finding("divergence", "failure", first, int(r["step"].iloc[-1]),
                        f"non-finite {', '.join(which)} from step {first}",
                        {"first_non_finite_step": first, "non_finite_steps": int(bad.sum())}, REMEDIES["divergence"])]
    out = []
    for col in ("d_loss", "g_loss"):
        w = rolling(r[col], th).abs()
        for a, b in spans(r["step"], w > th.div_loss_abs_max, th):
            out.append(Finding("divergence", "failure", a, b, f"|{col}| above {th.div_loss_abs_max:g} (windowed mean)",
                               {f"max_abs_{col}": float(w.max()), "threshold": th.div_loss_abs_max}, REMEDIES["divergence"]))
    growth = {"d_grad_norm": th.div_grad_growth, "g_grad_norm": th.div_grad_growth,
              "d_weight_norm": th.div_weight_growth, "g_weight_norm": th.div_weight_growth}
    for col, limit in growth.items():
        if col not in r or len(r) < th.window:
            continue
        base = float(r[col].iloc[: th.window].median())
        ratio = rolling(r[col], th, "median") / max(base, 1e-12)
        for a, b in spans(r["step"], ratio > limit, th):
            out.append(Finding("divergence", "failure", a, b, f"{col} grew {float(ratio.max()):.3g}x over its first window",
                               {f"{col}_growth": float(ratio.max()), f"{col}_first_window": base, "threshold": limit},
                               REMEDIES["divergence"]))
    return out


@detector("d-dominance", needs=("d_loss", "d_acc_real", "d_acc_fake", "g_loss", "g_grad_norm"))
def d_dominance(t: Trace, th: Thresholds) -> list[Finding]:
    """D wins outright: D loss -> 0 and D accuracy ~1 on both sides. A failure when G's gradient collapses or
    D(G(z)) at the G step is ~0 (where the minimax G loss has no gradient and the non-saturating one has
    climbed past 9 nats): the vanishing-gradient regime of Arjovsky & Bottou 2017."""
    r = t.records
    d_loss, acc_r, acc_f, g_loss = (rolling(r[c], th) for c in ("d_loss", "d_acc_real", "d_acc_fake", "g_loss"))
    g_grad = rolling(r["g_grad_norm"], th, "median")
    flags = (d_loss < th.dom_d_loss_max) & (acc_r > th.dom_acc_min) & (acc_f > th.dom_acc_min)
    out = []
    for a, b in spans(r["step"], flags, th):
        inside = _between(r, a, b)
        # G's gradient at the end of the span (windowed median) against its largest value up to the span's
        # first full window, raw: a D that wins from the first steps leaves no earlier window to compare with
        peak = float(r["g_grad_norm"][r["step"] <= a + th.window - 1].astype(float).max())
        grad_ratio = float(g_grad[r["step"] <= b].iloc[-1]) / peak if peak > 0 else float("nan")
        g_median = float(inside["g_loss"].median())
        d_fake_g = float(inside["d_fake_g"].median()) if "d_fake_g" in inside else float("nan")
        collapsed = grad_ratio < th.dom_g_grad_collapse
        saturated = d_fake_g < th.dom_d_fake_g_max
        severity = "failure" if (collapsed or saturated) else "warning"
        why = " and ".join(w for w, on in ((f"G's gradient fell to {grad_ratio:.1%} of its peak", collapsed),
                                             (f"D(G(z)) ~ {d_fake_g:.2g} at the G step", saturated)) if on)
        out.append(Finding(
            "d-dominance", severity, a, b,
            f"D wins outright (D loss {float(inside['d_loss'].median()):.3g}, accuracy ~1 on real and fake); "
            + (why if why else "G still gets gradient"),
            {"d_loss_median": float(inside["d_loss"].median()), "d_acc_real_mean": float(inside["d_acc_real"].mean()),
             "d_acc_fake_mean": float(inside["d_acc_fake"].mean()), "g_loss_median": g_median,
             "d_fake_g_median": d_fake_g,
             "g_grad_norm_end_over_peak": grad_ratio, "d_grad_norm_median": float(inside["d_grad_norm"].median())
             if "d_grad_norm" in inside else float("nan")}, REMEDIES["weaken-d"]))
    return out


@detector("g-dominance", needs=("d_loss", "d_acc_fake"))
def g_dominance(t: Trace, th: Thresholds) -> list[Finding]:
    """D is confused: it calls the fakes real for a long span while its loss stays high."""
    r = t.records
    acc_f, d_loss = rolling(r["d_acc_fake"], th), rolling(r["d_loss"], th)
    flags = (acc_f < th.gdom_acc_fake_max) & (d_loss > th.gdom_d_loss_min)
    return [Finding("g-dominance", "warning", a, b, "D calls the fakes real for a long span and its loss stays high",
                    {"d_acc_fake_median": float(_between(r, a, b)["d_acc_fake"].median()),
                     "d_loss_median": float(_between(r, a, b)["d_loss"].median())}, REMEDIES["strengthen-d"])
            for a, b in spans(r["step"], flags, th)]


@detector("mode-collapse", needs_samples=("diversity", "real_diversity"))
def mode_collapse(t: Trace, th: Thresholds) -> list[Finding]:
    """The fixed batch's diversity drops sharply below its own running maximum and below the real data's,
    or its class entropy collapses the same way."""
    s = t.samples.sort_values("step").reset_index(drop=True)
    div = s["diversity"].astype(float)
    low_div = (div < th.collapse_own_ratio * div.cummax()) & (div < th.collapse_real_ratio * s["real_diversity"])
    flags = low_div
    if "class_entropy" in s and s["class_entropy"].notna().all() and s.get("real_class_entropy") is not None:
        ent = s["class_entropy"].astype(float)
        real_ent, best = th.collapse_entropy_ratio * s["real_class_entropy"], ent.cummax()
        # a collapse falls from a varied state: the run's best entropy must once have reached the same share of
        # the real data's (an early G draws one blurry blob of one class from the start: not learned yet)
        low_ent = (ent < th.collapse_entropy_ratio * best) & (ent < real_ent) & (best >= real_ent)
        flags = flags | low_ent
    has_modes = "modes_covered" in s and s["modes_covered"].notna().all()
    if has_modes:
        modes = s["modes_covered"].astype(float)
        # only while the samples are less spread than the real data: samples scattered wider than the data miss the
        # modes' 3-sigma discs (an early WGAN-GP on grid25: 6 -> 1 modes at 118% of the real diversity), not collapsed
        flags = flags | ((modes < th.collapse_modes_ratio * modes.cummax()) & (div < s["real_diversity"]))
    out, run = [], []
    for i, f in enumerate(flags.tolist() + [False]):
        if f:
            run.append(i)
        elif run:
            if len(run) >= th.collapse_min_probes:
                a, b = run[0], run[-1]
                ev = {"diversity": float(div[b]), "diversity_max_before": float(div[: a + 1].max()),
                      "real_diversity": float(s["real_diversity"][b])}
                if "class_entropy" in s:
                    ev.update(class_entropy=float(s["class_entropy"][b]),
                              real_class_entropy=float(s.get("real_class_entropy", pd.Series([np.nan] * len(s)))[b]))
                summary = (f"sample diversity fell to {ev['diversity'] / max(ev['diversity_max_before'], 1e-12):.0%} of "
                           f"its maximum and {ev['diversity'] / max(ev['real_diversity'], 1e-12):.0%} of the real data's")
                if has_modes:
                    ev.update(modes_covered=int(modes[b]), modes_covered_max_before=int(modes[: a + 1].max()))
                    summary += f"; modes covered {ev['modes_covered']} (best before: {ev['modes_covered_max_before']})"
                out.append(Finding("mode-collapse", "failure", int(s["step"][a]), int(s["step"][b]), summary,
                                   ev, REMEDIES["collapse"]))
            run = []
    return out


def _is_classifier(r: pd.DataFrame) -> bool:
    """Classifier losses (bce) record D accuracy; Wasserstein critics record NaN there and a critic gap."""
    return "d_acc_real" in r and bool(np.isfinite(r["d_acc_real"].astype(float)).any())


def _noise(x: pd.Series, th: Thresholds) -> pd.Series:
    """Windowed step-to-step noise: std of first differences / sqrt(2) (the std of white noise, blind to trends)."""
    return rolling(x.astype(float).diff(), th, "std") / math.sqrt(2)


def _oscillating(r: pd.DataFrame, th: Thresholds) -> tuple[pd.Series, dict[str, pd.Series]]:
    """Per-window oscillation flags and the series behind them. Classifier losses: D-loss noise, or the G loss
    flipping sign step to step (lag-1 autocorrelation ~ -1) with a large amplitude. Critics (whose loss scale
    is arbitrary): the critic gap's noise relative to its level."""
    if _is_classifier(r) or "critic_gap" not in r:
        d_noise, g_std = _noise(r["d_loss"], th), rolling(r["g_loss"], th, "std")
        g = r["g_loss"].astype(float).where(np.isfinite(r["g_loss"].astype(float)))
        ac = g.rolling(th.window - 1, min_periods=th.window - 1).corr(g.shift(1))  # lag-1 autocorrelation
        flags = (d_noise > th.osc_d_noise_max) | ((ac < th.osc_autocorr_min) & (g_std > th.osc_g_std_min))
        return flags, {"d_loss_noise": d_noise, "g_loss_window_std": g_std, "g_loss_lag1_autocorr": ac}
    gap = r["critic_gap"].astype(float)
    rel = _noise(gap, th) / rolling(gap.abs(), th).clip(lower=1e-6)
    return rel > th.osc_gap_rel_noise, {"critic_gap_relative_noise": rel}


@detector("oscillation", needs=("d_loss", "g_loss"))
def oscillation(t: Trace, th: Thresholds) -> list[Finding]:
    """Losses swing beyond the range calibrated on healthy runs."""
    r = t.records
    flags, series = _oscillating(r, th)
    out = []
    for a, b in spans(r["step"], flags, th):
        inside = (r["step"] >= a) & (r["step"] <= b)
        ev = {f"{k}_{'min' if 'autocorr' in k else 'max'}": float(v[inside].min() if "autocorr" in k else v[inside].max())
              for k, v in series.items()}
        out.append(Finding("oscillation", "warning", a, b, "losses oscillate beyond the range of healthy runs", ev,
                           REMEDIES["oscillation"]))
    return out


@detector("healthy-equilibrium", needs=("d_loss", "g_loss"))
def healthy_equilibrium(t: Trace, th: Thresholds) -> list[Finding]:
    """Info: D accuracy near chance (classifier losses) or a positive, bounded critic gap (Wasserstein ones),
    with bounded oscillation; one finding from the first to the last such step."""
    r = t.records
    oscillating, _ = _oscillating(r, th)
    bounded = ~oscillating.fillna(True).astype(bool)
    if _is_classifier(r):
        acc = rolling((r["d_acc_real"] + r["d_acc_fake"]) / 2, th)
        flags = bounded & (acc >= th.healthy_acc_low) & (acc <= th.healthy_acc_high)
        what = "D accuracy near chance"
    elif "critic_gap" in r:
        gap = rolling(r["critic_gap"], th)
        flags = bounded & (gap > th.wgan_gap_collapse) & (gap < th.wgan_gap_explode)
        what = "critic gap positive and bounded"
    else:
        return []
    found = spans(r["step"], flags, th)
    if not found:
        return []
    covered = sum(b - a + 1 for a, b in found)
    return [Finding("healthy-equilibrium", "info", found[0][0], found[-1][1],
                    f"{what} with bounded oscillation over {covered} of {len(r)} steps",
                    {"fraction_of_steps": covered / max(len(r), 1), "spans": len(found)}, REMEDIES["healthy"])]


@detector("critic-gap", needs=("critic_gap",))
def critic_gap(t: Trace, th: Thresholds) -> list[Finding]:
    """WGAN critics: the gap E[f(x)] - E[f(G(z))] collapsing to <= 0 or exploding."""
    r = t.records
    gap = rolling(r["critic_gap"], th)
    out = [Finding("critic-gap-collapse", "warning", a, b, "the critic no longer separates real from fake (gap <= 0)",
                   {"critic_gap_mean": float(_between(r, a, b)["critic_gap"].mean())}, REMEDIES["critic-collapse"])
           for a, b in spans(r["step"], gap <= th.wgan_gap_collapse, th)]
    out += [Finding("critic-gap-explode", "failure", a, b, f"the critic gap exploded above {th.wgan_gap_explode:g}",
                    {"critic_gap_max": float(_between(r, a, b)["critic_gap"].max()), "threshold": th.wgan_gap_explode},
                    REMEDIES["critic-explode"])
            for a, b in spans(r["step"], gap > th.wgan_gap_explode, th)]
    return out


@detector("gp-dominates", needs=("critic_gap", "gp", "d_loss"))
def gp_dominates(t: Trace, th: Thresholds) -> list[Finding]:
    """WGAN-GP: the penalty term (d_loss + gap = lambda * gp) dwarfs the gap it regularises."""
    r = t.records
    term, gap = rolling(r["d_loss"] + r["critic_gap"], th), rolling(r["critic_gap"], th)
    ratio = term / gap.abs().clip(lower=1e-6)
    return [Finding("gp-dominates", "warning", a, b, "the gradient-penalty term dominates the critic loss",
                    {"penalty_over_gap_median": float(_between(r.assign(w=ratio), a, b)["w"].median()),
                     "threshold": th.wgan_gp_ratio_max}, REMEDIES["gp-dominates"])
            for a, b in spans(r["step"], ratio > th.wgan_gp_ratio_max, th)]


# --------------------------------------------------------------------------- the one entry point


def _usable(df: pd.DataFrame, cols: tuple[str, ...]) -> str | None:
    missing = [c for c in cols if c not in df]
    if missing:
        return f"missing fields: {', '.join(missing)}"
    empty = [c for c in cols if not np.isfinite(df[c].astype(float)).any()]
    return f"no finite values in: {', '.join(empty)}" if empty else None


def diagnose(records: pd.DataFrame, samples: pd.DataFrame | None = None, thresholds: Thresholds = THRESHOLDS,
             feature_space: str | None = None, detectors: list[str] | None = None) -> Diagnosis:
    """Run the detectors over a run's per-step records (and sample statistics); findings sorted by step."""
    samples = samples if samples is not None else pd.DataFrame()
    if "step" not in records:
        raise GanbenchError("per-step records need a 'step' column (the trainer's records.parquet has one)")
    records = records.sort_values("step").reset_index(drop=True)
    trace = Trace(records, samples)
    findings, skipped = [], {}
    for name in detectors or list(DETECTORS):
        det = DETECTORS.get_or_raise(name)
        why = _usable(records, det.needs) if det.needs else None
        if why is None and det.needs_samples:
            why = _usable(samples, det.needs_samples) if len(samples) else "no sample statistics"
        if why is None and det.needs and len(records) < thresholds.min_span and name != "divergence":
            why = f"run too short ({len(records)} steps < {thresholds.min_span})"
        if why:
            skipped[name] = why
            continue
        findings.extend(det.fn(trace, thresholds))
    findings.sort(key=lambda f: (f.start_step, -SEVERITIES.index(f.severity), f.name))
    return Diagnosis(tuple(findings), int(records["step"].max()) if len(records) else 0, skipped, feature_space)


# --------------------------------------------------------------------------- sample statistics


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean Euclidean distance over all distinct pairs of rows."""
    f = features.double().flatten(1)
    n = len(f)
    if n < 2:
        return float("nan")
    d = torch.cdist(f, f)
    return float(d.sum() / (n * (n - 1)))


def class_entropy(logits: torch.Tensor) -> float:
    """Entropy (nats) of the histogram of predicted classes: ln(10) for a uniform 10-class batch, 0 for one class."""
    counts = torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum()) + 0.0  # + 0.0: no "-0.0" for a single class


@dataclass
class FeatureSpace:
    """How samples are measured: ``features(x) -> N x D``, optional ``logits(x) -> N x K``."""

    name: str
    features: Callable[[torch.Tensor], torch.Tensor]
    logits: Callable[[torch.Tensor], torch.Tensor] | None = None
    modes: Callable[[torch.Tensor], int] | None = None  # modes covered by a batch (protocols with known modes)


def mode_counter(dataset: str, device: torch.device | str = "cpu") -> Callable[[torch.Tensor], int] | None:
    """Modes covered by a batch, for datasets whose modes are known: the 2D mixtures (PacGAN's rule) and
    stacked MNIST (the MNIST classifier on each channel, the count corrected for its confusion); None elsewhere."""
    from ganbench.data.synthetic import MIXTURES

    if dataset in MIXTURES:
        from ganbench.metrics.modes import mixture_modes

        mix = MIXTURES[dataset]()
        return lambda points: int(mixture_modes(points, mix.centers, mix.sigma)["modes"])
    if dataset == "stacked-mnist":
        from ganbench.extractors.domain import domain_classifier
        from ganbench.metrics.modes import stacked_modes

        clf = domain_classifier("mnist", device=device)
        return lambda images: int(stacked_modes(images, clf)["modes_corrected"])  # PacGAN's count reads errors as modes
    return None


def pixel_space() -> FeatureSpace:
    """Pixels in [0, 1] (uint8 images) or raw coordinates (2D points); no class predictions."""
    return FeatureSpace("pixels", lambda x: (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()).flatten(1))


def feature_space(dataset: str, choice: str = "auto", device: torch.device | str = "cpu") -> FeatureSpace:
    """``pixels``; ``domain`` (the dataset's domain classifier: penultimate features + class predictions);
    ``auto``: domain when that classifier is already trained and cached, else pixels (so that a run never
    waits minutes for a classifier; the diagnosis records which space it used)."""
    if choice not in ("auto", "pixels", "domain"):
        raise GanbenchError(f"feature space must be auto, pixels or domain, got {choice!r}")
    if choice == "pixels":
        return dataclasses.replace(pixel_space(), modes=mode_counter(dataset, device))
    try:
        from ganbench.extractors import domain
    except ImportError:
        domain = None
    has = domain is not None and dataset in getattr(domain, "DOMAIN_DATASETS", ("mnist", "fashion-mnist"))
    if choice == "domain" and not has:
        raise GanbenchError(f"no domain classifier for {dataset!r}; use --features pixels")
    if choice == "auto" and not (has and _domain_cached(domain, dataset)):
        return dataclasses.replace(pixel_space(), modes=mode_counter(dataset, device))
    clf = domain.domain_classifier(dataset, device=device)
    return FeatureSpace(f"domain-{dataset}", clf.features, clf.logits, mode_counter(dataset, device))


def _domain_cached(domain, dataset: str) -> bool:
    """Whether the default domain classifier of ``dataset`` is already in the cache (same file name as
    ``ganbench.extractors.domain`` writes)."""
    from ganbench.core.assets import cache_dir

    try:
        key = domain.cache_key(dataset, domain.DomainRecipe())
    except (AttributeError, GanbenchError):
        return False
    return (cache_dir("domain") / f"{dataset}-{key[:24]}.pt").is_file()


def sample_statistics(images: torch.Tensor, space: FeatureSpace) -> dict[str, float]:
    """Diversity (mean pairwise feature distance) and, with a classifier, class entropy of a batch."""
    stats = {"diversity": mean_pairwise_distance(space.features(images))}
    stats["class_entropy"] = class_entropy(space.logits(images)) if space.logits else float("nan")
    if space.modes is not None:
        stats["modes_covered"] = float(space.modes(images))
    return stats


# --------------------------------------------------------------------------- live monitoring


class Monitor:
    """The trainer's ``on_check``: probes a fixed batch of samples, re-diagnoses the records so far, announces
    each new failure-level finding once, and returns a stop reason when ``stop_on`` severity is reached."""

    def __init__(self, z: torch.Tensor, real: torch.Tensor | None, space: FeatureSpace,
                 thresholds: Thresholds = THRESHOLDS, stop_on: str | None = None,
                 samples: pd.DataFrame | None = None, as_uint8: bool = True,
                 on_failure: Callable[[int], None] | None = None):
        if stop_on not in (None, "failure", "warning"):
            raise GanbenchError(f"--stop-on must be 'failure' or 'warning', got {stop_on!r}")
        self.z, self.space, self.th, self.stop_on, self.as_uint8 = z, space, thresholds, stop_on, as_uint8
        self.real = sample_statistics(real, space) if real is not None else {"diversity": float("nan"), "class_entropy": float("nan")}
        self.real_images = real if real is not None and as_uint8 else None
        self.real_by_resolution: dict[int, dict] = {}
        self.rows: list[dict] = samples.to_dict(orient="records") if samples is not None and len(samples) else []
        self.announced: set[tuple[str, int]] = set()
        self.on_failure = on_failure  # called with the first bad step whenever it moves earlier (MLflow tag)
        self.first_bad_step: int | None = None
        self.diagnosis: Diagnosis | None = None

    @property
    def samples(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def save(self, path: Path) -> Path:
        """The sample statistics so far, written atomically (at every checkpoint: a resumed run reads them)."""
        from ganbench.core.assets import atomic_path

        with atomic_path(path) as tmp:
            self.samples.to_parquet(tmp, index=False)
        return path

    def probe(self, step: int, G) -> None:
        from ganbench.train.loop import generate

        # a resumed run repeats the steps after its checkpoint: its probes there replace the stale ones
        self.rows = [r for r in self.rows if r["step"] < step]
        samples = generate(G, self.z) if self.as_uint8 else generate(G, self.z, as_uint8=False)  # images | 2D points
        stats = sample_statistics(samples, self.space)
        real = self.real_at(G)
        self.rows.append({"step": step, **stats, "real_diversity": real["diversity"],
                          "real_class_entropy": real["class_entropy"]})

    def real_at(self, G) -> dict:
        """The real reference at the resolution G draws now. A growing G (ProGAN-lite: ``progress_info``) at 8x8
        is compared with the real images at 8x8 (average-pooled, then upsampled by nearest neighbour as G's
        output is), not with full-resolution ones, whose finer detail is more diverse than any 8x8 image."""
        if self.real_images is None or not hasattr(G, "progress_info"):
            return self.real
        size, res = self.real_images.shape[-1], int(G.progress_info()["resolution"])
        if res >= size:
            return self.real
        if res not in self.real_by_resolution:
            k = size // res
            low = F.interpolate(F.avg_pool2d(self.real_images.float(), k), scale_factor=k, mode="nearest")
            self.real_by_resolution[res] = sample_statistics(low.round().clamp(0, 255).to(torch.uint8), self.space)
        return self.real_by_resolution[res]

    def __call__(self, step: int, G, rows: list[dict], say: Callable[[str], None]) -> str | None:
        self.probe(step, G)
        self.diagnosis = diagnose(pd.DataFrame(rows), self.samples, self.th, self.space.name)
        stop = None
        for f in self.diagnosis.findings:
            if f.severity != "failure" or (f.name, f.start_step) in self.announced:
                continue
            self.announced.add((f.name, f.start_step))
            if self.first_bad_step is None or f.start_step < self.first_bad_step:
                self.first_bad_step = f.start_step
                if self.on_failure:
                    self.on_failure(f.start_step)
            say(f"health {f.severity}: {f.name} from step {f.start_step}: {f.summary}")
        worst = self.diagnosis.worst
        if self.stop_on and worst != "none" and SEVERITIES.index(worst) >= SEVERITIES.index(self.stop_on):
            f = next(f for f in self.diagnosis.findings if f.severity == worst)
            stop = f"stopped early (--stop-on {self.stop_on}): {f.name} from step {f.start_step}: {f.summary}"
        return stop


# --------------------------------------------------------------------------- reading and writing


def write_diagnosis(diag: Diagnosis, path: Path) -> Path:
    from ganbench.core.assets import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(diag.to_dict(), indent=2, sort_keys=True))
    return path


def format_report(diag: Diagnosis, title: str = "") -> str:
    """The findings as a readable report: worst severity, then each finding with evidence and remedies."""
    lines = [f"{title}health: {diag.worst}  ({diag.steps} steps, sample features: {diag.feature_space or 'none'})"]
    if not diag.findings:
        lines.append("  no findings")
    for f in diag.findings:
        lines.append(f"  [{f.severity.upper():7s}] {f.name}  steps {f.start_step}-{f.end_step}: {f.summary}")
        if f.evidence:
            lines.append("      evidence: " + ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                                                   for k, v in f.evidence.items()))
        for rem in f.remedies:
            lines.append(f"      try: {rem}")
    for name, why in diag.skipped.items():
        lines.append(f"  (skipped {name}: {why})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- training runs and MLflow

PROBE_SAMPLES = 128  # fixed-z samples per probe: 8128 pairs for the mean distance, ~0.1 s on 2 CPU cores
SAMPLE_STATS_FILE = "sample_stats.parquet"
DIAGNOSIS_FILE = "diagnosis.json"
TIMELINE_FILE = "timeline.png"


def health_monitor(spec, images: torch.Tensor, run_dir: Path, device, stop_on: str | None = None,
                   resume: bool = False, space: str = "auto",
                   on_failure: Callable[[int], None] | None = None) -> Monitor:
    """The monitor of one training run: the protocol's fixed z, the first training images as the real
    reference, the dataset's feature space, and on resume the sample statistics recorded so far."""
    from ganbench.train.loop import fixed_z

    ev = spec.protocol.eval
    previous = None
    stats_path = Path(run_dir) / SAMPLE_STATS_FILE
    if resume and stats_path.is_file():
        previous = pd.read_parquet(stats_path)
    return Monitor(fixed_z(PROBE_SAMPLES, spec.model.z_dim, ev.z_seed), images[:PROBE_SAMPLES],
                   feature_space(spec.protocol.data.dataset, space, device), stop_on=stop_on, samples=previous,
                   as_uint8=images.dtype == torch.uint8, on_failure=on_failure)


def record_health(tracker, run_id: str, run_dir: Path, result, monitor: Monitor, title: str = "") -> Diagnosis:
    """Diagnose a finished (or stopped, or diverged) run; write and log the findings (JSON), the sample
    statistics and the timeline plot, and tag the worst severity and the first bad step."""
    from ganbench.core import track
    from ganbench.core.plots import timeline_plot

    run_dir = Path(run_dir)
    samples = monitor.samples
    monitor.save(run_dir / SAMPLE_STATS_FILE)
    diag = diagnose(result.records, samples, monitor.th, monitor.space.name)
    write_diagnosis(diag, run_dir / DIAGNOSIS_FILE)
    timeline_plot(result.records, samples, diag.findings, run_dir / TIMELINE_FILE, title)
    for name in (DIAGNOSIS_FILE, SAMPLE_STATS_FILE, TIMELINE_FILE):
        tracker.log_artifact(run_id, run_dir / name)
    tags = {track.TAG_HEALTH: diag.worst}
    bad = [s for s in (diag.first_step("failure"), monitor.first_bad_step, result.first_bad_step) if s is not None]
    if bad:
        tags[track.TAG_FIRST_BAD_STEP] = str(min(bad))
    if result.status == "stopped":
        tags[track.TAG_STOP_REASON] = result.message
    tracker.set_tags(run_id, tags)
    return diag


def diagnose_run(run_id: str, tracking_uri: str | None = None, thresholds: Thresholds = THRESHOLDS) -> Diagnosis:
    """Re-diagnose a tracked run from its logged artifacts (records, sample statistics) with ``thresholds``."""
    import tempfile

    from ganbench.core.track import Tracker

    tracker = Tracker(tracking_uri)
    try:
        run = tracker.get(run_id)
    except Exception as err:
        raise GanbenchError(f"no run {run_id!r} in {tracker.uri} ({type(err).__name__}); see `ganbench show`") from err
    logged = set(tracker.artifacts(run.info.run_id))
    if "records.parquet" not in logged:
        raise GanbenchError(f"run {run_id} has no records.parquet artifact (it ended before its first records were "
                            "written); nothing to diagnose")
    with tempfile.TemporaryDirectory() as tmp:
        records = pd.read_parquet(tracker.download(run_id, "records.parquet", Path(tmp)))
        samples = pd.read_parquet(tracker.download(run_id, SAMPLE_STATS_FILE, Path(tmp))) \
            if SAMPLE_STATS_FILE in logged else None
        space = None
        if DIAGNOSIS_FILE in logged:
            space = json.loads(tracker.download(run_id, DIAGNOSIS_FILE, Path(tmp)).read_text()).get("feature_space")
    return diagnose(records, samples, thresholds, space)
