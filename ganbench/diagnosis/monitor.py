"""The live monitor: during training, probe a fixed batch of samples, re-diagnose the records so far,
announce each new failure once and stop the run when asked (the trainer's ``on_check``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F

from ganbench.core.assets import atomic_path
from ganbench.core.errors import GanbenchError
from ganbench.core.hooks import Growing, RoundTrip
from ganbench.diagnosis.detectors import diagnose
from ganbench.diagnosis.findings import SEVERITIES, Diagnosis
from ganbench.diagnosis.probes import FeatureSpace, feature_space, sample_statistics
from ganbench.diagnosis.thresholds import THRESHOLDS, Thresholds
from ganbench.data import get_dataset
from ganbench.data.translation import TranslationDataset
from ganbench.metrics.translation import cycle_error, mean_l1, task_split
from ganbench.nets.sampling import generate, is_translator, translate
from ganbench.spec.seeds import fixed_z

PROBE_SAMPLES = 128  # fixed-z samples per probe: 8128 pairs for the mean distance, ~0.1 s on 2 CPU cores
SAMPLE_STATS_FILE = "sample_stats.parquet"
# Noise added to CycleGAN's translation before F in the round-trip probe: 2 grey levels (std, in [-1, 1] units),
# below what changes how a translation looks, far above the faint patterns a cheating G hides its source in.
PROBE_NOISE = 2 / 127.5


class ProbeMonitor:
    """The trainer's ``on_check``: probes a fixed batch of samples, re-diagnoses the records so far, announces
    each new failure-level finding once, and returns a stop reason when ``stop_on`` severity is reached."""

    def __init__(self, z: torch.Tensor, real: torch.Tensor | None, space: FeatureSpace,
                 thresholds: Thresholds = THRESHOLDS, stop_on: str | None = None,
                 samples: pd.DataFrame | None = None, as_uint8: bool = True,
                 on_failure: Callable[[int], None] | None = None, pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
                 seed: int = 0):
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
        self.pairs, self.seed = pairs, seed  # image-to-image models: held-out (sources, true targets)

    @property
    def samples(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def save(self, path: Path) -> Path:
        """The sample statistics so far, written atomically (at every checkpoint: a resumed run reads them)."""
        with atomic_path(path) as tmp:
            self.samples.to_parquet(tmp, index=False)
        return path

    def probe(self, step: int, G) -> None:
        """Sample the fixed z and record the batch's statistics with the real reference's at ``step``."""
        if self.pairs is not None and is_translator(G):
            samples = translate(G, self.pairs[0], seed=self.seed)
            extra = translation_probe(G, samples, *self.pairs, self.seed)
        else:
            samples, extra = generate(G, self.z, as_uint8=self.as_uint8), {}  # images | 2D points
        self.record(step, samples, self.real_at(G), extra)

    def record(self, step: int, samples: torch.Tensor, real: dict | None = None, extra: dict | None = None) -> None:
        """Record the statistics of a batch of samples (uint8 images or 2D points) at ``step`` beside the real
        reference's (``real``: at G's current resolution; default the full one)."""
        # a resumed run repeats the steps after its checkpoint: its probes there replace the stale ones
        self.rows = [r for r in self.rows if r["step"] < step]
        real = real if real is not None else self.real
        row = {"step": step, **sample_statistics(samples, self.space), **(extra or {}),
               "real_diversity": real["diversity"], "real_class_entropy": real["class_entropy"]}
        if "modes_covered" in real:
            row["real_modes_covered"] = real["modes_covered"]
        self.rows.append(row)

    def real_at(self, G) -> dict:
        """The real reference at the resolution G draws now. A growing G (ProGAN-lite: ``progress_info``) at 8x8
        is compared with the real images at 8x8 (average-pooled, then upsampled by nearest neighbour as G's
        output is), not with full-resolution ones, whose finer detail is more diverse than any 8x8 image."""
        if self.real_images is None or not isinstance(G, Growing):
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
        self.announce(self.diagnosis, say)
        return self.stop_reason(self.diagnosis)

    def announce(self, diag: Diagnosis, say: Callable[[str], None]) -> None:
        """Say each failure-level finding not said before; report the first bad step whenever it moves earlier."""
        for f in diag.findings:
            if f.severity != "failure" or (f.name, f.start_step) in self.announced:
                continue
            self.announced.add((f.name, f.start_step))
            if self.first_bad_step is None or f.start_step < self.first_bad_step:
                self.first_bad_step = f.start_step
                if self.on_failure:
                    self.on_failure(f.start_step)
            say(f"health {f.severity}: {f.name} from step {f.start_step}: {f.summary}")

    def stop_reason(self, diag: Diagnosis) -> str | None:
        """Why the run stops now (its worst finding reached ``stop_on``), or None."""
        worst = diag.worst
        if not self.stop_on or worst == "none" or SEVERITIES.index(worst) < SEVERITIES.index(self.stop_on):
            return None
        f = next(f for f in diag.findings if f.severity == worst)
        return f"stopped early (--stop-on {self.stop_on}): {f.name} from step {f.start_step}: {f.summary}"


def translation_probe(G, translations: torch.Tensor, sources: torch.Tensor, truths: torch.Tensor,
                      seed: int) -> dict[str, float]:
    """What the translation detectors read: mean L1 (grey levels) of the translations to the truth and to their
    own sources, of the truth to the sources and to its mean image (the trivial answer), and of CycleGAN's
    round trip F(G(a)) to the sources, as it is and with faint noise on G(a) (:data:`PROBE_NOISE`)."""
    nan = float("nan")
    cycle = cycle_error(sources, translate(G, sources, seed=seed, cycle="a")) if isinstance(G, RoundTrip) else nan
    noisy = (cycle_error(sources, translate(G, sources, seed=seed, cycle="a", noise=PROBE_NOISE))
             if isinstance(G, RoundTrip) else nan)
    mean = truths.double().mean(0, keepdim=True).round().to(torch.uint8).expand_as(truths)
    return {"truth_l1": mean_l1(translations, truths), "identity_l1": mean_l1(translations, sources),
            "target_identity_l1": mean_l1(truths, sources), "trivial_l1": mean_l1(mean, truths), "cycle_l1": cycle,
            "cycle_noisy_l1": noisy}


def health_monitor(spec, images: torch.Tensor, run_dir: Path, device, stop_on: str | None = None,
                   resume: bool = False, space: str = "auto",
                   on_failure: Callable[[int], None] | None = None) -> ProbeMonitor:
    """The monitor of one training run: the protocol's fixed z, the first training images as the real
    reference, the dataset's feature space, and on resume the sample statistics recorded so far."""
    ev = spec.protocol.eval
    previous = None
    stats_path = Path(run_dir) / SAMPLE_STATS_FILE
    if resume and stats_path.is_file():
        previous = pd.read_parquet(stats_path)
    pairs = None
    if isinstance(get_dataset(spec.protocol.data.dataset), TranslationDataset):  # held-out pairs of the test split
        test = task_split(spec.protocol.data, ev.reference_split)
        pairs = test.inputs[:PROBE_SAMPLES], test.images[:PROBE_SAMPLES]
        images = test.images  # the real reference of the translations: true targets
    return ProbeMonitor(fixed_z(PROBE_SAMPLES, spec.model.z_dim, ev.z_seed), images[:PROBE_SAMPLES],
                   feature_space(spec.protocol.data.dataset, space, device), stop_on=stop_on, samples=previous,
                   as_uint8=images.dtype == torch.uint8, on_failure=on_failure, pairs=pairs, seed=ev.z_seed)

