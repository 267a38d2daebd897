"""The one sampling path (ganbench.nets.sampling): labels reach a conditional generator on every caller,
and training grids, evaluation and `ganbench sample` give the same images for the same z."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.metrics.samples import samples_from_generator
from ganbench.nets.layers import ConditionalGenerator
from ganbench.nets.sampling import generate
from ganbench.pipeline.use import sample
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.spec.seeds import fixed_labels, fixed_z
from ganbench.training import build_models

CLASSES, Z_DIM, SIDE = 10, 8, 28


def by_hand_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 255] written out independently of the library (in float64: a pixel at a rounding
    tie of the library's float32 arithmetic may land one level apart)."""
    return torch.clamp(torch.round((x.double() + 1.0) / 2.0 * 255.0), 0, 255).to(torch.uint8)


def same_pixels(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to one level at float32 rounding ties (measured: 1 pixel of 23,520 in the first test, 0 of 156,800 elsewhere)."""
    diff = (a.int() - b.int()).abs()
    return a.shape == b.shape and int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3


def conditional_g() -> nn.Module:
    """A tiny conditional generator whose output depends strongly on its label (one-hot joined to z)."""
    torch.manual_seed(1)
    inner = nn.Sequential(nn.Linear(Z_DIM + CLASSES, SIDE * SIDE), nn.Tanh(), nn.Unflatten(1, (1, SIDE, SIDE)))
    with torch.no_grad():
        inner[0].weight[:, Z_DIM:] *= 20.0  # the label moves every pixel
    return ConditionalGenerator(inner, CLASSES, "onehot")


def test_evaluation_path_gives_a_conditional_generator_the_labels_it_was_given(tiny_protocol):
    proto = load_protocol(tiny_protocol(num_samples=30))
    G = conditional_g()
    labels = torch.full((30,), 3, dtype=torch.int64)
    got = samples_from_generator(G, proto, Z_DIM, labels=labels)
    z = fixed_z(30, Z_DIM, proto.eval.z_seed)
    with torch.no_grad():
        expected = by_hand_uint8(G(z, labels))
        balanced = by_hand_uint8(G(z, fixed_labels(30, CLASSES)))
    assert same_pixels(got, expected)
    assert (got != balanced).float().mean() > 0.5  # the labels matter: they were not replaced or dropped
    # without labels: the class-balanced fixed labels, as training's evaluation draws
    assert same_pixels(samples_from_generator(G, proto, Z_DIM), balanced)


def test_labels_for_an_unconditional_generator_or_of_the_wrong_count_are_refused():
    G = nn.Sequential(nn.Linear(Z_DIM, 4), nn.Tanh())
    with pytest.raises(GanbenchError, match="unconditional"):
        generate(G, torch.zeros(3, Z_DIM), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(GanbenchError, match="one label per sample"):
        generate(conditional_g(), torch.zeros(3, Z_DIM), torch.zeros(2, dtype=torch.int64))


def test_generate_batches_and_restores_training_mode():
    G = conditional_g().train()
    z, y = torch.randn(7, Z_DIM), torch.arange(7) % CLASSES
    whole = generate(G, z, y, batch_size=7, as_uint8=False)
    assert torch.allclose(generate(G, z, y, batch_size=2, as_uint8=False), whole, atol=1e-6) and G.training
    with torch.no_grad():
        assert torch.allclose(whole, G(z, y), atol=1e-6)


@pytest.mark.parametrize("model", ["dcgan", "cdcgan"])
def test_training_grids_evaluation_and_sample_give_identical_images(tiny_protocol, tmp_path, model):
    proto = load_protocol(tiny_protocol(models=[model], num_samples=12))
    spec = resolve(proto, "0" * 64, seeds=[0])[0]
    G, D = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(3))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.json").write_text(json.dumps(spec.to_dict()))
    torch.save({"G": G.state_dict(), "D": D.state_dict()}, run_dir / "final.pt")
    n, z_dim = 12, spec.model.z_dim
    grid = generate(G, fixed_z(n, z_dim, proto.eval.z_seed))  # what the training loop's grids draw
    evaluation = samples_from_generator(G, proto, z_dim, num_samples=n)
    sampled = sample(str(run_dir), n=n, out=tmp_path / "s.png").images
    assert torch.equal(grid, evaluation) and torch.equal(grid, sampled)
    with torch.no_grad():  # and what they agree on is G's own output for the fixed z (and labels)
        G.eval()
        z = fixed_z(n, z_dim, proto.eval.z_seed)
        out = G(z, fixed_labels(n, CLASSES)) if model == "cdcgan" else G(z)
    assert same_pixels(grid, by_hand_uint8(out))
