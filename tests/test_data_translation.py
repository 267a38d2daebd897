"""ganbench/data/translation.py: the edge operator on hand-made images, the a2b transform T on a hand-made
stroke, and the seeded, disjoint, reproducible A/B split of mnist_a2b."""

from __future__ import annotations

import pytest
import torch

from ganbench.core.errors import GanbenchError
from ganbench.data.translation import (EDGE_THRESHOLD, A2BSplit, a2b_transform, edges, edges2fashion_pairs,
                                       mnist_a2b, sobel_magnitude)


def digits(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(n) % 10


def test_edges_of_a_constant_image_are_zero_borders_included():
    for value in (0, 128, 255):
        img = torch.full((2, 1, 12, 12), value, dtype=torch.uint8)
        assert sobel_magnitude(img).abs().max() == 0
        assert edges(img).max() == 0


def test_edges_of_a_step_lie_on_the_step():
    img = torch.zeros(1, 1, 10, 10, dtype=torch.uint8)
    img[..., 5:] = 200  # a vertical step between columns 4 and 5
    # Sobel by hand: Gx = (1 + 2 + 1) * 200 = 800 on the two columns beside the step, 0 elsewhere; Gy = 0.
    mag = sobel_magnitude(img)[0, 0]
    assert torch.equal(mag[:, 4], torch.full((10,), 800.0)) and torch.equal(mag[:, 5], torch.full((10,), 800.0))
    assert mag[:, :4].abs().max() == 0 and mag[:, 6:].abs().max() == 0
    e = edges(img)[0, 0]
    assert e.dtype == torch.uint8 and set(e.unique().tolist()) == {0, 255}
    assert (e == 255).nonzero()[:, 1].unique().tolist() == [4, 5]


def test_a_step_below_the_threshold_is_no_edge():
    step = int(EDGE_THRESHOLD / 4)  # the Sobel magnitude beside a step of h is 4h
    for h, expected in ((step - 1, 0), (step, 255)):
        img = torch.zeros(1, 1, 6, 6, dtype=torch.uint8)
        img[..., 3:] = h
        assert edges(img).max() == expected


def test_edges_of_colour_images_use_the_channel_mean():
    img = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    img[:, 0, :, 4:] = 255  # red step: the channel mean steps by 85, above the 64-level threshold
    assert edges(img).shape == (1, 1, 8, 8) and edges(img).max() == 255


def test_edges2fashion_pairs_are_edges_and_the_image():
    imgs, _ = digits()
    inputs, targets = edges2fashion_pairs(imgs)
    assert torch.equal(inputs, edges(imgs)) and targets is imgs


def test_t_widens_a_one_pixel_stroke_to_three_and_inverts():
    img = torch.zeros(1, 1, 9, 9, dtype=torch.uint8)
    img[..., 2:7, 4] = 255  # a vertical 1-pixel stroke, rows 2..6, column 4
    out = a2b_transform(img)[0, 0]
    ink = out == 0  # inverted: the stroke is now black on white
    assert ink.nonzero()[:, 1].unique().tolist() == [3, 4, 5]  # 3 pixels wide
    assert ink.nonzero()[:, 0].unique().tolist() == [1, 2, 3, 4, 5, 6, 7]  # one pixel longer at both ends
    assert out[0, 0] == 255 and out[8, 8] == 255  # background 0 -> 255


def test_t_is_a_max_filter_then_inversion_on_grey_levels():
    imgs, _ = digits()
    x = imgs.int()
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=0)  # 0 pads: the maximum of uint8 is never below 0
    windows = torch.stack([padded[..., i:i + 8, j:j + 8] for i in range(3) for j in range(3)])
    assert torch.equal(a2b_transform(imgs), (255 - windows.max(0).values).to(torch.uint8))
    assert a2b_transform(torch.zeros(1, 1, 4, 4, dtype=torch.uint8)).unique().tolist() == [255]
    assert a2b_transform(torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)).unique().tolist() == [0]


def test_mnist_a2b_is_deterministic_and_the_seed_changes_the_split():
    imgs, labels = digits()
    s1, s2, s3 = mnist_a2b(imgs, labels, seed=3), mnist_a2b(imgs, labels, seed=3), mnist_a2b(imgs, labels, seed=4)
    for field in ("a", "a_labels", "a_index", "b", "b_labels", "b_index"):
        assert torch.equal(getattr(s1, field), getattr(s2, field))
    assert not torch.equal(s1.a_index, s3.a_index)


def test_mnist_a2b_halves_are_disjoint_and_b_is_t_of_its_digits():
    imgs, labels = digits(41)
    s = mnist_a2b(imgs, labels, seed=0)
    a, b = set(s.a_index.tolist()), set(s.b_index.tolist())
    assert not a & b and a | b == set(range(41)) and len(a) == 20 and len(b) == 21
    assert torch.equal(s.a, imgs[s.a_index]) and torch.equal(s.a_labels, labels[s.a_index])
    assert torch.equal(s.b, a2b_transform(imgs[s.b_index])) and torch.equal(s.b_labels, labels[s.b_index])
    assert torch.equal(A2BSplit.true_translation(imgs[:5]), a2b_transform(imgs[:5]))


def test_wrong_inputs_are_refused():
    imgs, labels = digits()
    with pytest.raises(GanbenchError, match="uint8"):
        edges(imgs.float())
    with pytest.raises(GanbenchError, match="N x C x H x W"):
        a2b_transform(imgs[0])
    with pytest.raises(GanbenchError, match="labels"):
        mnist_a2b(imgs, labels[:-1], seed=0)
