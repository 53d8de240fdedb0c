"""MSE is measured on the [0, 1] pixel scale."""

from __future__ import annotations

import pytest
import torch

from sphere_plugins.metrics import compute_mse, mse_per_image


def test_opposite_extremes_have_unit_error_on_the_unit_scale():
    assert mse_per_image(-torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4)).tolist() == [1.0]


def test_error_is_per_image_and_matches_hand_computation():
    x = torch.zeros(2, 1, 2, 2)
    y = torch.stack([torch.full((1, 2, 2), 0.5), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])])
    # [0, 1] scale: first image differs by 0.25 everywhere -> 0.0625; second by 0.5 in one of 4 pixels -> 0.0625.
    assert mse_per_image(x, y).tolist() == pytest.approx([0.0625, 0.0625])


def test_record_reports_the_mean_and_its_scale():
    record = compute_mse(torch.zeros(3, 1, 2, 2), torch.full((3, 1, 2, 2), 0.5))
    assert record.metric == "MSE" and record.value == pytest.approx(0.0625)
    assert record.n_samples == 3 and "[0, 1]" in record.extra["scale"]


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        mse_per_image(torch.zeros(1, 1, 2, 2), torch.zeros(2, 1, 2, 2))
