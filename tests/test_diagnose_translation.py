"""The image-to-image failures the diagnostics flag, each induced: a translator that returns its input and
a real pix2pix run trained on pairs mis-wired to their own sources, which learns to copy its input (identity
collapse); one that hides its source in a faint pattern for F to read back while its translation is wrong
(cycle cheating, Chu et al. 2017), and a real CycleGAN run trained on the cycle loss alone (Zhu et al. 2017's
"Cycle alone" ablation); a faithful translator and correctly wired runs are not flagged."""

import dataclasses

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.diagnosis import diagnose, health_monitor
from ganbench.metrics.translation import task_split
from ganbench.nets.sampling import to_model_range
from ganbench.nets.translation import CycleTranslator
from ganbench.pipeline.run import training_images
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.training import train

TRANSLATION_DETECTORS = ("identity-collapse", "cycle-cheating")


def spec_for(protocol: str = "mnist-a2b-smoke", overrides=None, epochs: int = 1, subset: int = 512,
             model: str = "cyclegan-lite"):
    base = load_protocol(protocol)
    proto = dataclasses.replace(base, data=dataclasses.replace(base.data, subset=subset),
                                train=dataclasses.replace(base.train, epochs=epochs, batch_size=32, check_every=8))
    return resolve(proto, "0" * 64, [model], [0], overrides=overrides)[0], proto


def probed_findings(G: nn.Module, tmp_path, probes: int = 3):
    """The monitor's held-out probes of G at a few steps, diagnosed: the translation findings by name."""
    spec, proto = spec_for()
    mon = health_monitor(spec, training_images(proto).images, tmp_path, "cpu")
    for step in range(8, 8 * probes + 1, 8):
        mon.probe(step, G)
    diag = diagnose(pd.DataFrame({"step": list(range(1, 8 * probes + 1))}), mon.samples)
    return {f.name: f for f in diag.findings if f.name in TRANSLATION_DETECTORS}, mon.samples


class Same(nn.Module):
    def forward(self, x):
        return x


class Stego(nn.Module):
    """G(a) = c + eps * a: every translation looks like the mean target image c, the source hidden at 1/50 of
    the amplitude; F(b) = (b - c) / eps reads it back exactly."""

    def __init__(self, c: torch.Tensor, eps: float, forward: bool):
        super().__init__()
        self.register_buffer("c", c)
        self.eps, self.forward_direction = eps, forward

    def forward(self, x):
        return self.c + self.eps * x if self.forward_direction else (x - self.c) / self.eps


class TrueT(nn.Module):
    """The true mapping in the model's range: 3x3 maximum filter, then inversion (a2b_transform)."""

    def forward(self, x):
        return -F.max_pool2d(x, 3, stride=1, padding=1)


def test_a_translator_that_returns_its_input_is_an_identity_collapse(tmp_path):
    found, samples = probed_findings(CycleTranslator(Same(), Same()), tmp_path)
    assert set(found) == {"identity-collapse"}
    f = found["identity-collapse"]
    assert f.severity == "failure" and f.evidence["identity_l1"] == 0
    assert f.evidence["target_identity_l1"] > 200  # mnist-a2b: the truth is far from the input


def test_a_translator_hiding_its_source_for_the_round_trip_is_cycle_cheating(tmp_path):
    spec, proto = spec_for()
    c = to_model_range(task_split(proto.data, "train").images).mean(0, keepdim=True)
    found, _ = probed_findings(CycleTranslator(Stego(c, 0.02, True), Stego(c, 0.02, False)), tmp_path)
    assert set(found) == {"cycle-cheating"} and found["cycle-cheating"].severity == "failure"
    ev = found["cycle-cheating"].evidence
    assert ev["cycle_l1"] < 1 and ev["truth_l1"] > 0.75 * ev["trivial_l1"]  # a perfect round trip, a useless translation
    assert ev["cycle_noisy_l1"] > 20  # 2 grey levels of noise on the translation wipe out the hidden source


def test_the_true_mapping_is_not_flagged(tmp_path):
    found, samples = probed_findings(CycleTranslator(TrueT(), TrueT()), tmp_path)
    assert found == {} and samples["truth_l1"].max() == 0


@pytest.mark.slow
def test_a_cyclegan_trained_on_the_cycle_loss_alone_is_flagged_consistent_but_wrong(tmp_path):
    """128 G steps on 1024 pairs (~1 min on 2 CPU cores). Without its adversarial terms CycleGAN finds an
    invertible pair G, F whose round trip keeps improving (cycle L1 70 -> 18 grey levels) while its translations
    stay wrong (truth L1 ~100 against the mean target's 50): flagged, as a warning, since faint noise on G(a) does
    not break the round trip (F reads visible content, not hidden patterns)."""
    overrides = {"loss.options.adversarial_weight": 0.0, "loss.options.identity_weight": 0.0}
    spec, proto = spec_for(overrides=overrides, epochs=4, subset=1024)
    data = training_images(proto)
    mon = health_monitor(spec, data.images, tmp_path, "cpu")
    res = train(spec, data.images, tmp_path, progress=False, sources=data.inputs, on_check=mon)
    found = {f.name: f for f in diagnose(res.records, mon.samples).findings}
    cheat = found["cycle-cheating"]
    assert cheat.severity == "warning" and cheat.end_step == res.steps
    assert cheat.evidence["cycle_l1"] < 0.25 * cheat.evidence["truth_l1"]
    assert cheat.evidence["truth_l1"] > 1.5 * cheat.evidence["trivial_l1"]


def test_a_pix2pix_trained_on_pairs_miswired_to_their_own_sources_is_an_identity_collapse(tmp_path):
    """A loader bug that hands each source digit back as its own target: pix2pix's U-Net (whose outermost skip
    carries the input to the output) learns to copy its input (identity L1 109 -> 17 grey levels in 128 steps,
    5 s). The monitor probes held-out pairs with their true targets (T of the digit, 222 grey levels from the
    input), so the copies are flagged although nothing in the training losses says so. The same run wired
    correctly is not flagged."""
    spec, proto = spec_for(epochs=4, subset=1024, model="pix2pix-lite")
    data = training_images(proto)
    found = {}
    for wiring, targets in (("miswired", data.inputs), ("correct", data.images)):
        mon = health_monitor(spec, targets, tmp_path / wiring, "cpu")
        res = train(spec, targets, tmp_path / wiring, progress=False, sources=data.inputs, on_check=mon)
        found[wiring] = {f.name: f for f in diagnose(res.records, mon.samples).findings}
    collapse = found["miswired"]["identity-collapse"]
    assert collapse.severity == "failure" and collapse.end_step == res.steps
    assert collapse.evidence["identity_l1"] < 0.2 * collapse.evidence["target_identity_l1"]
    assert "identity-collapse" not in found["correct"]
