"""``ganbench.Monitor``: the training-health diagnostics of ganbench's own runs, for a loop ganbench did not write.

    mon = ganbench.Monitor("runs/mine", dataset="fashion-mnist")           # 1. before the loop
    for step ...:
        ...                                                                # the user's D and G steps
        mon.step(d_loss=errD, g_loss=errG, d_real=out_real, d_fake=out_fake)  # 2. once per step
    mon.close()                                                            # 3. findings, files, MLflow

A step reports what the loop has, as numbers or tensors (nothing is required beyond the two losses):

- ``d_real`` / ``d_fake``: D's outputs on the real and the generated batch of the D step, per sample (D's
  accuracy on each side then follows) or their mean; ``d_fake_g``: on the generated batch of the G step.
  ``d_outputs`` says what they are: "probabilities" (a D ending in a sigmoid, as in the PyTorch DCGAN
  tutorial), "logits", or "critic" (a Wasserstein critic: the critic gap d_real - d_fake follows);
- ``d_grad_norm`` / ``g_grad_norm`` (:func:`grad_norm` after ``backward()``), ``critic_gap``, ``gp`` (the
  gradient penalty term), ``d_acc_real`` / ``d_acc_fake``, ``d_weight_norm`` / ``g_weight_norm``.

Every ``check_every`` steps the records so far are diagnosed by the same detectors as ganbench's own runs;
each finding at warning or failure level is announced once, when it starts (``on_finding``; ``step``
returns it too). A detector whose signals the loop does not report is skipped, and the diagnosis says why
(``Monitor.skipped``). ``samples(images)`` adds a probe of generated images: their diversity, and for a
dataset ganbench knows its classes or modes, against the real data's (the mode-collapse detector).
Files (with ``out``): ``records.parquet`` at every check; at ``close``, ``sample_stats.parquet``,
``diagnosis.json`` and ``timeline.png``. ``track=True`` logs the run to MLflow, where ``ganbench
diagnose RUN_ID`` reads it again.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from ganbench.core import track as T
from ganbench.core.assets import atomic_path
from ganbench.core.errors import GanbenchError
from ganbench.core.plots import timeline_plot
from ganbench.data import load_split
from ganbench.diagnosis.detectors import diagnose
from ganbench.diagnosis.findings import Diagnosis, Finding, write_diagnosis
from ganbench.diagnosis.monitor import PROBE_SAMPLES, SAMPLE_STATS_FILE, ProbeMonitor
from ganbench.diagnosis.probes import feature_space, pixel_space
from ganbench.diagnosis.thresholds import THRESHOLDS, Thresholds
from ganbench.diagnosis.tracked import DIAGNOSIS_FILE, RECORDS_FILE, TIMELINE_FILE
from ganbench.metrics.samples import to_uint8_nchw

SIGNALS = ("d_loss", "g_loss", "d_real", "d_fake", "d_fake_g", "d_acc_real", "d_acc_fake", "d_grad_norm", "g_grad_norm",
           "critic_gap", "gp", "d_weight_norm", "g_weight_norm")
D_OUTPUTS = ("probabilities", "logits", "critic")
MONITOR_EXPERIMENT = "ganbench/monitor"


def grad_norm(module: torch.nn.Module) -> float:
    """The L2 norm of all of ``module``'s gradients (call it after ``backward()``, before ``zero_grad()``)."""
    norms = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else math.nan


def print_finding(f: Finding) -> None:
    print(f"ganbench: {f.severity} {f.name} from step {f.start_step}: {f.summary}", flush=True)


class Monitor:
    """Health diagnostics for any GAN training loop (see the module docstring)."""

    def __init__(self, out: str | Path | None = None, *, dataset: str | None = None, real: torch.Tensor | None = None,
                 d_outputs: str = "probabilities", check_every: int = 100,
                 on_finding: Callable[[Finding], None] | None = print_finding, thresholds: Thresholds = THRESHOLDS,
                 track: bool = False, tracking_uri: str | None = None, experiment: str = MONITOR_EXPERIMENT,
                 name: str | None = None, data_root: str | Path | None = None):
        if d_outputs not in D_OUTPUTS:
            raise GanbenchError(f"d_outputs={d_outputs!r}: say what D's outputs are, one of {', '.join(D_OUTPUTS)}")
        if check_every < 1:
            raise GanbenchError(f"check_every={check_every}: diagnose every N >= 1 steps")
        self.out = Path(out) if out is not None else None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        self.d_outputs, self.check_every, self.on_finding, self.th = d_outputs, check_every, on_finding, thresholds
        if real is None and dataset is not None:
            real = load_split(dataset, "train", data_root).images[:PROBE_SAMPLES]
        self.real = real
        space = feature_space(dataset) if dataset is not None else pixel_space()
        self.probes = ProbeMonitor(None, real, space, thresholds, as_uint8=real is None or real.dtype == torch.uint8)
        self.rows: list[dict[str, float]] = []
        self.n = 0
        self.seen: set[tuple[str, int]] = set()
        self.diagnosis: Diagnosis | None = None
        self.tracker = T.Tracker(tracking_uri) if track else None
        self.run_id = self.tracker.start(experiment, name or "monitor", {"d_outputs": d_outputs, "dataset": dataset or "",
                                                                         "check_every": check_every},
                                         {T.TAG_SOURCE: "ganbench.Monitor"}) if self.tracker else None
        self.closed = False

    # ------------------------------------------------------------------ per step

    def step(self, d_loss: Any = math.nan, g_loss: Any = math.nan, *, step: int | None = None,
             **signals: Any) -> list[Finding]:
        """Record one training step (see the module docstring for the signals); every ``check_every`` steps,
        diagnose and return the findings that started since the last check (else [])."""
        unknown = sorted(set(signals) - set(SIGNALS))
        if unknown:
            raise GanbenchError(f"Monitor.step: unknown signal(s) {', '.join(unknown)}; known: {', '.join(SIGNALS)}")
        self.n = int(step) if step is not None else self.n + 1
        row = {"step": self.n, "d_loss": _number(d_loss, "d_loss"), "g_loss": _number(g_loss, "g_loss")}
        for side, acc in (("d_real", "d_acc_real"), ("d_fake", "d_acc_fake"), ("d_fake_g", None)):
            if side in signals:
                row.update(self._outputs(signals.pop(side), side, acc))
        row.update({k: _number(v, k) for k, v in signals.items()})
        if self.d_outputs == "critic" and "critic_gap" not in row and {"d_real", "d_fake"} <= set(row):
            row["critic_gap"] = row["d_real"] - row["d_fake"]
        self.rows.append(row)
        return self.check() if self.n % self.check_every == 0 else []

    def _outputs(self, value: Any, side: str, acc: str | None) -> dict[str, float]:
        """D's outputs on one side: their mean (as a probability unless D is a critic) and, per sample, D's accuracy."""
        x = value.detach().float() if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float32)
        if self.d_outputs == "logits":
            x = torch.sigmoid(x)
        out = {side: float(x.mean())}
        if acc and x.numel() > 1 and self.d_outputs != "critic":
            out[acc] = float((x > 0.5).float().mean() if side == "d_real" else (x < 0.5).float().mean())
        return out

    def samples(self, images: torch.Tensor, value_range: tuple[float, float] | None = None,
                step: int | None = None) -> None:
        """Probe a batch of generated images (uint8, or floats in [-1, 1] unless ``value_range`` says otherwise)
        at ``step`` (default: the last step recorded); 2D points are taken as they are."""
        x = images.detach().cpu()
        if x.dim() == 2 and x.shape[1] == 2:  # points of a 2D mixture
            batch = x.float()
        elif self.real is not None and self.real.dim() == 4:
            c, s = self.real.shape[1], self.real.shape[-1]
            batch = to_uint8_nchw(x, c, s, "Monitor.samples", value_range)
        else:
            batch = to_uint8_nchw(x, x.shape[1] if x.dim() == 4 else 1, x.shape[-1], "Monitor.samples", value_range)
        self.probes.record(int(step) if step is not None else self.n, batch[:PROBE_SAMPLES])

    # ------------------------------------------------------------------ diagnosis

    @property
    def records(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    @property
    def skipped(self) -> dict[str, str]:
        """Detectors that could not run on what the loop reports, and why (after a check)."""
        return dict(self.diagnosis.skipped) if self.diagnosis else {}

    def check(self) -> list[Finding]:
        """Diagnose the records so far; announce and return the warning- and failure-level findings not seen
        before (a finding is known by its detector and first step)."""
        if not self.rows:
            return []
        self.diagnosis = diagnose(self.records, self.probes.samples, self.th, self.probes.space.name)
        new = [f for f in self.diagnosis.findings
               if f.severity != "info" and (f.name, f.start_step) not in self.seen]
        for f in new:
            self.seen.add((f.name, f.start_step))
            if self.on_finding:
                self.on_finding(f)
        if self.out is not None:
            with atomic_path(self.out / RECORDS_FILE) as tmp:
                self.records.to_parquet(tmp, index=False)
        if self.tracker:
            last = {k: v for k, v in self.rows[-1].items() if k != "step" and math.isfinite(v)}
            self.tracker.log_metrics(self.run_id, last, step=self.n)
        return new

    def close(self, status: str = "finished") -> Diagnosis:
        """The final diagnosis; writes the files (with ``out``) and ends the MLflow run (with ``track``)."""
        if self.closed:
            return self.diagnosis
        self.check()
        self.closed = True
        diag = self.diagnosis or diagnose(self.records, None, self.th)
        if self.out is None and not self.tracker:
            return diag
        folder = self.out if self.out is not None else Path(tempfile.mkdtemp(prefix="ganbench-monitor-"))
        self.probes.save(folder / SAMPLE_STATS_FILE)
        write_diagnosis(diag, folder / DIAGNOSIS_FILE)
        timeline_plot(self.records, self.probes.samples, diag.findings, folder / TIMELINE_FILE)
        if not (folder / RECORDS_FILE).is_file():
            self.records.to_parquet(folder / RECORDS_FILE, index=False)
        if self.tracker:
            for name in (RECORDS_FILE, SAMPLE_STATS_FILE, DIAGNOSIS_FILE, TIMELINE_FILE):
                self.tracker.log_artifact(self.run_id, folder / name)
            first = diag.first_step("failure")
            self.tracker.set_tags(self.run_id, {T.TAG_HEALTH: diag.worst,
                                                **({T.TAG_FIRST_BAD_STEP: str(first)} if first is not None else {})})
            self.tracker.end(self.run_id, status)
        return diag

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("failed" if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt)
                   else "stopped" if exc_type is not None else "finished")


def _number(value: Any, name: str) -> float:
    """A signal's value as a float: a number, or a one-element tensor (detached, moved to the CPU)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise GanbenchError(f"Monitor.step: {name} must be one number, got a tensor of shape {tuple(value.shape)}")
        return float(value.detach())
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise GanbenchError(f"Monitor.step: {name} must be a number or a one-element tensor, got "
                            f"{type(value).__name__}") from err
