"""ganbench/metrics/translation.py: SSIM against a direct transcription of Wang et al. 2004 written here with
loops over windows, PSNR and L1 in closed form, class preservation and cycle error by hand, and inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganbench.core.errors import GanbenchError
from ganbench.metrics.translation import (class_preservation, cycle_error, mean_l1, psnr, ssim,
                                          translation_scores)


def direct_ssim(x: np.ndarray, y: np.ndarray, L: float = 255.0) -> float:
    """Wang et al. 2004 verbatim: for every position of an 11x11 window that fits inside the image, weights
    w_i of a Gaussian with sigma 1.5 normalised to sum 1 (sec. III-C), mu_x = sum w_i x_i (eq. 14),
    sigma_x = (sum w_i (x_i - mu_x)^2)^(1/2) (eq. 15), sigma_xy = sum w_i (x_i - mu_x)(y_i - mu_y) (eq. 16),
    SSIM by eq. 13 with C1 = (0.01 L)^2, C2 = (0.03 L)^2; MSSIM = the mean over windows (eq. 17).
    Per image and channel, then channels averaged, then images."""
    k = 11
    w = np.array([[math.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * 1.5 ** 2)) for j in range(k)] for i in range(k)])
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    per_image = []
    for xi, yi in zip(x.astype(np.float64), y.astype(np.float64)):
        per_channel = []
        for xc, yc in zip(xi, yi):
            values = []
            for r in range(xc.shape[0] - k + 1):
                for c in range(xc.shape[1] - k + 1):
                    px, py = xc[r:r + k, c:c + k], yc[r:r + k, c:c + k]
                    mx, my = (w * px).sum(), (w * py).sum()
                    vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
                    cov = (w * (px - mx) * (py - my)).sum()
                    values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
            per_channel.append(np.mean(values))
        per_image.append(np.mean(per_channel))
    return float(np.mean(per_image))


def pattern_images(seed: int = 0, n: int = 2, channels: int = 2, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A smooth pattern (stripes and a disc) as x, and y = x with noise and a contrast change, uint8."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[:size, :size]
    base = 127 + 80 * np.sin(r / 2.0) * np.cos(c / 3.0) + 40 * ((r - 8) ** 2 + (c - 8) ** 2 < 20)
    x = np.clip(base[None, None] + rng.normal(0, 10, (n, channels, size, size)), 0, 255).astype(np.uint8)
    y = np.clip(0.8 * x + 20 + rng.normal(0, 25, x.shape), 0, 255).astype(np.uint8)
    return x, y


def test_ssim_equals_the_direct_transcription_of_wang_et_al():
    for seed in range(3):
        x, y = pattern_images(seed)
        expected = direct_ssim(x, y)
        assert 0.2 < expected < 0.95  # a pair that is neither identical nor unrelated
        assert abs(ssim(torch.from_numpy(x), torch.from_numpy(y)) - expected) < 1e-6


def test_ssim_of_an_image_with_itself_is_one_and_drops_with_noise():
    x, y = pattern_images()
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, y) < 1.0


def test_ssim_is_scale_free_with_the_data_range_but_not_shift_free():
    """Images divided by 255 with data range 1 give the same SSIM (statistics and constants scale with L^2);
    shifting both to [-1, 1] does not (the luminance term of eq. 13 reads the means), so score uint8 images."""
    x, y = pattern_images()
    scaled = lambda a: torch.from_numpy(a).double() / 255  # noqa: E731
    assert ssim(scaled(x), scaled(y), data_range=1.0) == pytest.approx(direct_ssim(x, y), abs=1e-9)
    shifted = lambda a: torch.from_numpy(a).double() / 127.5 - 1  # noqa: E731
    assert abs(ssim(shifted(x), shifted(y), data_range=2.0) - direct_ssim(x, y)) > 0.01


def test_psnr_of_a_constant_offset_is_20_log10_of_range_over_offset():
    x = torch.randint(0, 200, (3, 1, 8, 8), dtype=torch.uint8)
    for offset in (1, 5, 40):
        assert psnr(x, x + offset) == pytest.approx(20 * math.log10(255 / offset), abs=1e-12)
    assert psnr(x, x) == math.inf


def test_psnr_averages_per_image_values():
    x = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    y = x.clone()
    y[0] += 1
    y[1] += 10
    assert psnr(x, y) == pytest.approx((20 * math.log10(255) + 20 * math.log10(25.5)) / 2, abs=1e-12)


def test_mean_l1_and_cycle_error_in_closed_form():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    y = x.clone()
    y[0, 0] = 255  # one channel of one image white: 16 of 96 pixels differ by 255
    assert mean_l1(x, y) == pytest.approx(255 * 16 / 96, abs=1e-12)
    assert mean_l1(y, x) == mean_l1(x, y)  # uint8 subtraction must not wrap around
    assert cycle_error(x, y) == mean_l1(x, y) and cycle_error(x, x) == 0.0


def test_class_preservation_is_the_share_of_matching_classes():
    assert class_preservation(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])) == 0.75
    assert class_preservation(np.array([7, 7]), np.array([7, 7])) == 1.0
    with pytest.raises(GanbenchError, match="one predicted class per source label"):
        class_preservation(torch.tensor([1, 2]), torch.tensor([1]))


def test_numpy_uint8_inputs_work_and_equal_torch_inputs():
    x, y = pattern_images()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    assert translation_scores(x, y) == translation_scores(tx, ty)
    assert set(translation_scores(x, y)) == {"l1", "psnr", "ssim"}


def test_bad_inputs_are_refused_with_a_reason():
    x, _ = pattern_images()
    with pytest.raises(GanbenchError, match="torch tensor or a numpy array"):
        mean_l1(x.tolist(), x)
    with pytest.raises(GanbenchError, match="same shape"):
        psnr(x, x[:1])
    with pytest.raises(GanbenchError, match="N x C x H x W"):
        ssim(x[0], x[0])
    with pytest.raises(GanbenchError, match="at least 11x11"):
        ssim(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(GanbenchError, match="numeric"):
        mean_l1(np.array([["a"]]), np.array([["a"]]))
