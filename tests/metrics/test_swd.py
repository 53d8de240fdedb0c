"""Sliced Wasserstein distance: the 1-D and Gaussian closed forms, scipy's pyramid filter, ProGAN's multi-scale SWD."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, stats

from sphere_plugins.metrics import compute_swd, laplacian_pyramid, sliced_wasserstein
from sphere_plugins.metrics.swd import neighbourhood_descriptors, pyramid_down, pyramid_level_count, pyramid_up


def test_one_dimensional_sliced_distance_is_scipy_wasserstein():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(500, 1, generator=generator, dtype=torch.float64)
    b = 2 * torch.randn(500, 1, generator=generator, dtype=torch.float64) + 0.5
    expected = stats.wasserstein_distance(a[:, 0].numpy(), b[:, 0].numpy())
    assert sliced_wasserstein(a, b, n_projections=4, generator=generator).item() == pytest.approx(expected, rel=1e-9)


def test_sliced_distance_between_one_dimensional_gaussians_of_different_scale():
    generator = torch.Generator().manual_seed(1)
    sigma = 3.0
    a = torch.randn(200_000, 1, generator=generator, dtype=torch.float64)
    b = sigma * torch.randn(200_000, 1, generator=generator, dtype=torch.float64)
    # Quantile coupling of N(0, 1) and N(0, sigma^2): W1 = |1 - sigma| E|Z| = |1 - sigma| sqrt(2 / pi).
    expected = abs(1 - sigma) * math.sqrt(2 / math.pi)
    assert sliced_wasserstein(a, b, 1, generator).item() == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("d", [2, 5])
def test_sliced_distance_between_shifted_gaussians_matches_closed_form(d):
    generator = torch.Generator().manual_seed(d)
    shift = torch.zeros(d, dtype=torch.float64)
    shift[0] = 3.0
    a = torch.randn(4000, d, generator=generator, dtype=torch.float64)
    b = torch.randn(4000, d, generator=generator, dtype=torch.float64) + shift
    # Projections on a unit direction t differ by a shift t.v, so W1 = |t.v|; the mean over uniform t is
    # |v| E|t_1| = |v| Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)).
    expected = 3.0 * math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d + 1) / 2))
    # Monte Carlo over 2048 directions: relative std of the mean of |t_1| is at most about 1.1% (d = 2).
    assert sliced_wasserstein(a, b, 2048, generator).item() == pytest.approx(expected, rel=0.04)


def test_sliced_distance_of_a_set_with_itself_is_zero():
    a = torch.randn(100, 8)
    assert sliced_wasserstein(a, a.clone(), 64).item() == 0.0


def test_sliced_distance_grows_with_mean_shift():
    generator = torch.Generator().manual_seed(2)
    a = torch.randn(2000, 4, generator=generator)
    b = torch.randn(2000, 4, generator=generator)
    shifts = (0.0, 0.5, 1.0, 2.0)
    distances = [sliced_wasserstein(a, b + s, 256, torch.Generator().manual_seed(0)).item() for s in shifts]
    assert distances == sorted(distances) and distances[-1] > 5 * distances[0]


def test_sliced_distance_rejects_sets_of_different_shape():
    with pytest.raises(ValueError, match="same"):
        sliced_wasserstein(torch.zeros(5, 3), torch.zeros(4, 3))


def test_pyramid_down_matches_scipy_mirror_convolution():
    images = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    k = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
    kernel = np.outer(k, k)[None, None]
    expected = ndimage.convolve(images.numpy(), kernel, mode="mirror")[:, :, ::2, ::2]
    np.testing.assert_allclose(pyramid_down(images).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_pyramid_up_matches_scipy_on_zero_inserted_image():
    images = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    k = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
    zero_inserted = np.zeros((1, 1, 16, 16))
    zero_inserted[..., ::2, ::2] = images.numpy()
    expected = ndimage.convolve(zero_inserted, 4 * np.outer(k, k)[None, None], mode="mirror")
    np.testing.assert_allclose(pyramid_up(images, (16, 16)).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_laplacian_bands_of_a_constant_image_are_zero():
    bands = laplacian_pyramid(torch.full((1, 1, 32, 32), 0.3, dtype=torch.float64), 3)
    assert [tuple(b.shape[-2:]) for b in bands] == [(32, 32), (16, 16), (8, 8)]
    assert bands[0].abs().max() < 1e-12 and bands[1].abs().max() < 1e-12
    assert torch.allclose(bands[2], torch.full_like(bands[2], 0.3))


@pytest.mark.parametrize("size, levels", [(8, 1), (16, 1), (32, 2), (64, 3), (1024, 7)])
def test_levels_run_down_to_sixteen_pixels(size, levels):
    assert pyramid_level_count(size) == levels


def test_descriptors_are_image_patches():
    images = torch.arange(2 * 10 * 10, dtype=torch.float32).view(2, 1, 10, 10)
    patches = neighbourhood_descriptors(images, 5, 7, torch.Generator().manual_seed(0))
    assert patches.shape == (10, 1, 7, 7)
    for i, patch in enumerate(patches):
        image = images[i // 5, 0]
        y, x = divmod(int(patch[0, 0, 0].item()) - int(image[0, 0].item()), 10)
        assert torch.equal(patch[0], image[y : y + 7, x : x + 7])


def test_image_swd_of_a_set_with_itself_is_near_zero_and_grows_with_noise(digits):
    real, other = digits.images[:400], digits.images[400:800]
    generator = torch.Generator().manual_seed(0)
    noisy = [(other + s * torch.randn(other.shape, generator=generator)).clamp(-1, 1) for s in (0.3, 1.0)]
    options = dict(nhoods_per_image=16, n_projections=128)
    itself = compute_swd(real, real, **options).value
    same_distribution = compute_swd(real, other, **options).value
    worse = [compute_swd(real, n, **options).value for n in noisy]
    assert itself < same_distribution < worse[0] < worse[1]
    assert itself < 0.2 * worse[1]


def test_swd_reports_each_level_and_their_average_times_a_thousand(digits):
    images = torch.nn.functional.interpolate(digits.images[:64], size=32, mode="bilinear")
    record = compute_swd(images[:32], images[32:], nhoods_per_image=8, n_projections=32, seed=3)
    levels = record.extra["levels_x1e3"]
    assert (record.metric, record.n_samples, record.extra["n_real"]) == ("SWDx1e3", 32, 32)
    assert set(levels) == {"32", "16"}
    assert record.value == pytest.approx((levels["32"] + levels["16"]) / 2)
    assert 1 < record.value < 1e3  # x1e3: raw distances between normalized descriptors lie well below 1


def test_images_smaller_than_the_neighbourhood_are_rejected():
    images = torch.zeros(4, 1, 6, 6)
    with pytest.raises(ValueError, match="7x7"):
        compute_swd(images, images)


def test_the_cpu_sort_gives_torch_sorts_values_ties_and_infinities_included():
    from sphere_plugins.metrics.swd import _sorted_rows

    x = torch.randn(5, 300, generator=torch.Generator().manual_seed(0))
    x[0, :100] = 0.5  # ties
    x[1, 7], x[1, 8] = float("inf"), float("-inf")
    for dtype in (torch.float32, torch.float64):
        got, again = _sorted_rows(x.to(dtype), x.to(dtype).flip(1))
        expected = torch.sort(x.to(dtype), dim=1).values
        assert got.dtype == dtype and torch.equal(got, expected) and torch.equal(again, expected)
