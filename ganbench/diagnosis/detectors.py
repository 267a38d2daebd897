"""Detectors: pure functions of a run's per-step records (and its sample statistics) and the threshold
table, each registered by name, and :func:`diagnose`, which runs them.

GAN losses say little on their own ("G loss rises while the images get better"); the detectors read a
run the way a practitioner does. Each is a small registered function over a :class:`Trace` that returns
:class:`Finding`s: a name, a severity (info / warning / failure), the step range where it holds, the
numbers that triggered it and the standard remedies. Adding a detector = one decorated function here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import Registry
from ganbench.diagnosis.findings import REMEDIES, SEVERITIES, Diagnosis, Finding, Trace
from ganbench.diagnosis.thresholds import BASE_FLOOR, GAP_FLOOR, THRESHOLDS, Thresholds


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Detector:
    """A registered detector: ``fn(trace, thresholds) -> [Finding]`` and the fields it needs to run."""

    name: str
    fn: Callable[[Trace, Thresholds], list[Finding]]
    needs: tuple[str, ...]  # record columns with finite values
    needs_samples: tuple[str, ...] = ()  # sample-statistics columns with finite values


DETECTORS: Registry[Detector] = Registry("detector")


def detector(name: str, needs: tuple[str, ...] = (), needs_samples: tuple[str, ...] = ()) -> Callable:
    """Register the decorated ``fn(trace, thresholds) -> [Finding]`` as detector ``name``; it runs only when the
    record columns ``needs`` and the sample-statistics columns ``needs_samples`` hold finite values."""

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
        ratio = rolling(r[col], th, "median") / max(base, BASE_FLOOR)
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


def _collapse_signals(s: pd.DataFrame, th: Thresholds) -> dict[str, pd.Series]:
    """Per-probe collapse flags of each signal: diversity, class entropy or modes covered fallen below the
    thresholds' shares (a probe collapses when any of them is set)."""
    div = s["diversity"].astype(float)
    out = {"diversity": (div < th.collapse_own_ratio * div.cummax()) & (div < th.collapse_real_ratio * s["real_diversity"])}
    if "class_entropy" in s and s["class_entropy"].notna().all() and s.get("real_class_entropy") is not None:
        ent = s["class_entropy"].astype(float)
        real_ent, best = th.collapse_entropy_ratio * s["real_class_entropy"], ent.cummax()
        # a collapse falls from a varied state: the run's best entropy must once have reached the same share of
        # the real data's (an early G draws one blurry blob of one class from the start: not learned yet)
        out["class_entropy"] = (ent < th.collapse_entropy_ratio * best) & (ent < real_ent) & (best >= real_ent)
    if _has_modes(s):
        modes = s["modes_covered"].astype(float)
        best = modes.cummax()
        # only while the samples are less spread than the real data: samples scattered wider than the data miss the
        # modes' 3-sigma discs (an early WGAN-GP on grid25: 6 -> 1 modes at 118% of the real diversity), not collapsed
        fell = (modes < th.collapse_modes_ratio * best) & (div < s["real_diversity"])
        if "real_modes_covered" in s and s["real_modes_covered"].notna().all():
            # and from a varied state, as for the class entropy: the run's best must once have reached the same share
            # of the real batch's count (an untrained G on stacked MNIST: 3 -> 1 of the real batch's ~120 modes)
            fell &= best >= th.collapse_modes_ratio * s["real_modes_covered"].astype(float)
        out["modes"] = fell
    return out


def _has_modes(s: pd.DataFrame) -> bool:
    return "modes_covered" in s and bool(s["modes_covered"].notna().all())


def _runs(flags: pd.Series, min_length: int) -> list[tuple[int, int]]:
    """Runs of consecutive True rows as (first index, last index), at least ``min_length`` rows long."""
    out, run = [], []
    for i, f in enumerate(flags.tolist() + [False]):
        if f:
            run.append(i)
        elif run:
            if len(run) >= min_length:
                out.append((run[0], run[-1]))
            run = []
    return out


def _collapse_finding(s: pd.DataFrame, signals: dict[str, pd.Series], a: int, b: int) -> Finding:
    """The finding of probes ``a``..``b`` (row indices): the last probe's statistics against the best before,
    the signals that collapsed in the span first (a span flagged by its modes alone says so, not that its
    diversity 'fell')."""
    div = s["diversity"].astype(float)
    ev = {"diversity": float(div[b]), "diversity_max_before": float(div[: a + 1].max()),
          "real_diversity": float(s["real_diversity"][b])}
    if "class_entropy" in s:
        ev.update(class_entropy=float(s["class_entropy"][b]),
                  real_class_entropy=float(s.get("real_class_entropy", pd.Series([np.nan] * len(s)))[b]))
    fired = {name for name, f in signals.items() if bool(f[a: b + 1].any())}
    diversity = (f"{ev['diversity'] / max(ev['diversity_max_before'], BASE_FLOOR):.0%} of its maximum and "
                 f"{ev['diversity'] / max(ev['real_diversity'], BASE_FLOOR):.0%} of the real data's")
    collapsed, held = [], []
    if "diversity" in fired:
        collapsed.append(f"sample diversity fell to {diversity}")
    else:
        held.append(f"sample diversity at {diversity}")
    if "class_entropy" in fired:
        collapsed.append(f"class entropy fell to {ev['class_entropy']:.3g} "
                         f"(real data: {ev['real_class_entropy']:.3g})")
    if _has_modes(s):
        modes = s["modes_covered"].astype(float)
        ev.update(modes_covered=int(modes[b]), modes_covered_max_before=int(modes[: a + 1].max()))
        text = f"{ev['modes_covered']} (best before: {ev['modes_covered_max_before']})"
        if "modes" in fired:
            collapsed.append(f"modes covered fell to {text}")
        else:
            held.append(f"modes covered {text}")
    summary = "; ".join(collapsed) + ("; " + "; ".join(held) if held else "")
    return Finding("mode-collapse", "failure", int(s["step"][a]), int(s["step"][b]), summary, ev, REMEDIES["collapse"])


@detector("mode-collapse", needs_samples=("diversity", "real_diversity"))
def mode_collapse(t: Trace, th: Thresholds) -> list[Finding]:
    """The fixed batch's diversity drops sharply below its own running maximum and below the real data's,
    or its class entropy (or the modes it covers, where the modes are known) collapses the same way."""
    s = t.samples.sort_values("step").reset_index(drop=True)
    signals = _collapse_signals(s, th)
    flags = functools.reduce(operator.or_, signals.values())  # a probe collapses when any signal is set
    return [_collapse_finding(s, signals, a, b) for a, b in _runs(flags, th.collapse_min_probes)]


def _is_classifier(r: pd.DataFrame) -> bool:
    """Classifier losses (bce) record D accuracy; Wasserstein critics record NaN there and a critic gap."""
    return "d_acc_real" in r and bool(np.isfinite(r["d_acc_real"].astype(float)).any())


def _noise(x: pd.Series, th: Thresholds) -> pd.Series:
    """Windowed step-to-step noise: std of first differences / sqrt(2) (the std of white noise, blind to trends)."""
    return rolling(x.astype(float).diff(), th, "std") / math.sqrt(2)


def _oscillating(r: pd.DataFrame, th: Thresholds) -> tuple[pd.Series, dict[str, pd.Series], Thresholds]:
    """Per-window oscillation flags, the series behind them and the thresholds whose window they used.
    Classifier losses (over ``osc_window`` steps): D-loss noise, or the G loss flipping sign step to step
    (lag-1 autocorrelation ~ -1) with a large amplitude. Critics (whose loss scale is arbitrary): the critic
    gap's noise relative to its level."""
    if _is_classifier(r) or "critic_gap" not in r:
        th = dataclasses.replace(th, window=th.osc_window)
        d_noise, g_std = _noise(r["d_loss"], th), rolling(r["g_loss"], th, "std")
        g = r["g_loss"].astype(float).where(np.isfinite(r["g_loss"].astype(float)))
        ac = g.rolling(th.window - 1, min_periods=th.window - 1).corr(g.shift(1))  # lag-1 autocorrelation
        flags = (d_noise > th.osc_d_noise_max) | ((ac < th.osc_autocorr_min) & (g_std > th.osc_g_std_min))
        return flags, {"d_loss_noise": d_noise, "g_loss_window_std": g_std, "g_loss_lag1_autocorr": ac}, th
    gap = r["critic_gap"].astype(float)
    rel = _noise(gap, th) / rolling(gap.abs(), th).clip(lower=GAP_FLOOR)
    return rel > th.osc_gap_rel_noise, {"critic_gap_relative_noise": rel}, th


@detector("oscillation", needs=("d_loss", "g_loss"))
def oscillation(t: Trace, th: Thresholds) -> list[Finding]:
    """Losses swing beyond the range calibrated on healthy runs."""
    r = t.records
    flags, series, th = _oscillating(r, th)
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
    oscillating, _, _ = _oscillating(r, th)
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


def _translation_finding(name: str, s: pd.DataFrame, a: int, b: int, summary: str) -> Finding:
    row = s.iloc[b]
    evidence = {k: float(row[k]) for k in ("truth_l1", "identity_l1", "target_identity_l1", "trivial_l1", "cycle_l1")
                if k in row}
    severity = "failure" if b == len(s) - 1 else "warning"  # still there at the last probe, or cleared since
    return Finding(name, severity, int(s["step"].iloc[a]), int(row["step"]), summary, evidence, REMEDIES[name])


def _identity_flags(s: pd.DataFrame, th: Thresholds) -> pd.Series:
    return s["identity_l1"] < th.identity_share * s["target_identity_l1"]


@detector("identity-collapse", needs_samples=("identity_l1", "target_identity_l1"))
def identity_collapse(t: Trace, th: Thresholds) -> list[Finding]:
    """An image-to-image model that returns its input: at the held-out probes the translation is closer to its
    own source than ``identity_share`` of the distance between source and truth, on consecutive probes."""
    s = t.samples.sort_values("step").reset_index(drop=True)
    return [_translation_finding("identity-collapse", s, a, b,
                                 "translations stay (almost) their sources while the true targets differ")
            for a, b in _runs(_identity_flags(s, th), th.collapse_min_probes)]


@detector("cycle-cheating", needs_samples=("cycle_l1", "cycle_noisy_l1", "truth_l1", "identity_l1",
                                           "target_identity_l1", "trivial_l1"))
def cycle_cheating(t: Trace, th: Thresholds) -> list[Finding]:
    """CycleGAN's known failure: the round trip F(G(a)) returns the source (the cycle error is below
    ``cheat_cycle_ratio`` of the translation's error to the truth) while the translation G(a) is wrong (no better
    than ``cheat_truth_share`` of the trivial answer, the mean target image), and is not the identity. A failure
    when the round trip also breaks under faint noise on G(a) (``cheat_noise_ratio``): G hides the source in
    low-amplitude patterns for F to read back (Chu et al. 2017). Without that, a warning: the cycle closes on
    visible content while the translations are wrong (early in training, or an invertible but wrong mapping)."""
    s = t.samples.sort_values("step").reset_index(drop=True)
    flags = ((s["cycle_l1"] < th.cheat_cycle_ratio * s["truth_l1"])
             & (s["truth_l1"] > th.cheat_truth_share * s["trivial_l1"]) & ~_identity_flags(s, th))
    out = []
    for a, b in _runs(flags, th.collapse_min_probes):
        row = s.iloc[b]
        hidden = row["cycle_noisy_l1"] > th.cheat_noise_ratio * max(row["cycle_l1"], 1.0)
        f = _translation_finding("cycle-cheating", s, a, b, (
            "G hides the source in faint patterns: the round trip returns it, the translation is wrong and faint "
            "noise on it breaks the cycle" if hidden else
            "the cycle is consistent but the translations are wrong (not hidden in faint patterns: not learned yet, "
            "or an invertible wrong mapping)"))
        out.append(dataclasses.replace(f, severity="failure" if hidden else "warning",
                                       evidence={**f.evidence, "cycle_noisy_l1": float(row["cycle_noisy_l1"])}))
    return out


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
    ratio = term / gap.abs().clip(lower=GAP_FLOOR)
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


def _why_skipped(det: Detector, records: pd.DataFrame, samples: pd.DataFrame, th: Thresholds) -> str | None:
    """Why ``det`` cannot run on this trace (a missing or empty field, no samples, too few steps), or None."""
    why = _usable(records, det.needs) if det.needs else None
    if why is None and det.needs_samples:
        why = _usable(samples, det.needs_samples) if len(samples) else "no sample statistics"
    if why is None and det.needs and len(records) < th.min_span and det.name != "divergence":
        why = f"run too short ({len(records)} steps < {th.min_span})"
    return why


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
        why = _why_skipped(det, records, samples, thresholds)
        if why:
            skipped[name] = why
            continue
        findings.extend(det.fn(trace, thresholds))
    findings.sort(key=lambda f: (f.start_step, -SEVERITIES.index(f.severity), f.name))
    return Diagnosis(tuple(findings), int(records["step"].max()) if len(records) else 0, skipped, feature_space)


