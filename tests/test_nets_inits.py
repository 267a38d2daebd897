"""Each architecture's initialisation (ganbench.nets.inits): registered with the architecture, overridable
by a zoo card, unknown names refused when the card is loaded, and identities unchanged without an override."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.spec.protocol import evaluation_assets
from ganbench.nets import INITS, NETS
from ganbench.nets.karras import EqualConv2d, EqualLinear
from ganbench.spec.protocol import identity, load_model, load_protocol, resolve, runspec_from_dict
from ganbench.training import build_models

ZOO = Path(__file__).resolve().parents[1] / "zoo"
CPU = torch.device("cpu")


def card_with_init(tmp_path: Path, model: str, init: str) -> Path:
    """The shipped card of ``model`` with ``init`` set for both networks."""
    text = (ZOO / f"{model}.toml").read_text()
    for role in ("generator", "discriminator"):
        text = text.replace(f"[{role}]\n", f"[{role}]\ninit = \"{init}\"\n", 1)
    path = tmp_path / f"{model}-{init}.toml"
    path.write_text(text)
    return path


def with_init(spec, g_init: str | None, d_init: str | None):
    m = spec.model
    return dataclasses.replace(spec, model=dataclasses.replace(
        m, generator=dataclasses.replace(m.generator, init=g_init),
        discriminator=dataclasses.replace(m.discriminator, init=d_init)))


def weighted(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


def torch_fan_in(w: torch.Tensor) -> int:
    """fan_in as torch defines it (dimension 1 times the kernel), written out."""
    return w.shape[1] * (w[0][0].numel() if w.dim() > 2 else 1)


def test_every_architecture_names_a_registered_initialisation():
    assert {"dcgan", "he"} <= set(INITS)
    for name, arch in NETS.items():
        assert arch.init in INITS, name
    # what every model was trained with before the architectures named their own: the DCGAN initialisation
    assert {arch.init for arch in NETS.values()} == {"dcgan"}


@pytest.fixture
def dcgan_spec(tiny_protocol):
    return resolve(load_protocol(tiny_protocol(models=["dcgan"])), "0" * 64, seeds=[0])[0]


def test_default_draws_dcgan_weights_and_he_override_draws_kaiming_weights(dcgan_spec):
    G, D = build_models(dcgan_spec, CPU, torch.Generator().manual_seed(0))
    for layer in weighted(G) + weighted(D):  # Radford et al.: N(0, 0.02); the smallest layer has 1024 weights
        assert layer.weight.std().item() == pytest.approx(0.02, rel=0.1), layer
    G_he, D_he = build_models(with_init(dcgan_spec, "he", "he"), CPU, torch.Generator().manual_seed(0))
    distinct = 0
    for layer in weighted(G_he) + weighted(D_he):  # He et al.: N(0, 2 / fan_in)
        expected = math.sqrt(2.0 / torch_fan_in(layer.weight))
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.1), layer
        distinct += abs(expected - 0.02) > 0.3 * 0.02  # D's last layer (fan_in 4096) happens to sit near 0.02
    assert distinct == 7  # G: dense 0.14, transposed convolutions 0.035, 0.063, 0.35; D: convolutions 0.35, 0.044, 0.042
    bn = [m for m in G_he.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bn and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in bn)  # unit gains, not N(1, 0.02)


def test_override_of_one_network_leaves_the_other_at_its_default(dcgan_spec):
    gen = torch.Generator().manual_seed(0)
    G, D = build_models(with_init(dcgan_spec, "he", None), CPU, gen)
    assert weighted(G)[0].weight.std().item() == pytest.approx(math.sqrt(2.0 / torch_fan_in(weighted(G)[0].weight)), rel=0.1)
    assert all(m.weight.std().item() == pytest.approx(0.02, rel=0.1) for m in weighted(D))


def test_equalised_layers_keep_their_own_unit_weights_under_any_initialisation():
    net = nn.Sequential(EqualConv2d(16, 32, 3), EqualLinear(64, 128))
    for name in INITS:
        INITS[name](net, torch.Generator().manual_seed(0))
        for layer in net:
            assert layer.weight.std().item() == pytest.approx(1.0, rel=0.05), (name, layer)


def test_card_override_loads_changes_the_identity_and_survives_spec_json(tmp_path, tiny_protocol):
    proto = load_protocol(tiny_protocol(models=["dcgan"]))
    plain, he = load_model("dcgan"), load_model(str(card_with_init(tmp_path, "dcgan", "he")))
    assert he.generator.init == "he" and he.discriminator.init == "he" and plain.generator.init is None
    assets = evaluation_assets(proto)
    assert identity(proto, he, assets).hash != identity(proto, plain, assets).hash
    spec = resolve(proto, "0" * 64, seeds=[0])[0]
    spec_he = with_init(spec, "he", "he")
    back = runspec_from_dict(spec_he.to_dict())
    assert back.model.generator.init == "he" and "init" not in spec.to_dict()["model"]["generator"]


def test_unknown_initialisation_is_refused_when_the_card_is_loaded(tmp_path):
    with pytest.raises(GanbenchError, match=r"generator\.init: unknown initialisation 'xavier'; available: dcgan, he"):
        load_model(str(card_with_init(tmp_path, "dcgan", "xavier")))
