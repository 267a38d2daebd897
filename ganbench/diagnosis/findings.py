"""What a diagnosis is made of and how it is read: findings (name, severity, step range, evidence, remedies),
the trace detectors read, the diagnosis of a run, and its JSON file and text report.

The remedies in :data:`REMEDIES` are the usual table of the course material (weaken or strengthen D,
WGAN-GP, lower learning rates, larger batch, Adam(2e-4, beta1 = 0.5) from Radford et al. 2016).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ganbench.core.assets import atomic_path

SEVERITIES = ("info", "warning", "failure")

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
    "identity-collapse": ("lower the identity-loss weight (CycleGAN: 0.5 lambda, or 0)",
                          "raise the adversarial weight: nothing pushes the translation into the target domain",
                          "check that sources and targets differ (a task whose truth is its input needs no model)"),
    "cycle-cheating": ("keep the adversarial terms on (a cycle loss alone is satisfied by any invertible mapping)",
                       "lower the cycle weight lambda, or add noise to the translation before F",
                       "check translations against the truth, not only the round trip"),
}


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
    """JSON has no NaN or infinity: a non-finite number is written as null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_diagnosis(diag: Diagnosis, path: Path) -> Path:
    """The diagnosis as JSON, written atomically."""
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
