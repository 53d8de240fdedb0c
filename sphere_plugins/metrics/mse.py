"""Per-image mean squared error, measured on the [0, 1] pixel scale (the paper's MSE values are in that scale)."""

from __future__ import annotations

from torch import Tensor

from sphere_plugins.data import check_image_tensor
from sphere_plugins.metrics.record import MetricRecord


def mse_per_image(x: Tensor, y: Tensor) -> Tensor:
    """Mean over C, H, W of the squared difference of [-1, 1] images mapped to [0, 1]: mean((x - y)^2) / 4."""
    check_image_tensor(x, "x")
    check_image_tensor(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return ((x - y) / 2).square().flatten(1).mean(dim=1)


def compute_mse(x: Tensor, y: Tensor, seed: int | None = None) -> MetricRecord:
    """Mean of per-image MSE on the [0, 1] scale, as a record labelled "MSE"."""
    values = mse_per_image(x, y)
    return MetricRecord(
        metric="MSE",
        value=float(values.mean()),
        feature_network=None,
        n_samples=int(x.shape[0]),
        seed=seed,
        extra={"scale": "[0, 1] pixels", "std": float(values.std()) if values.numel() > 1 else 0.0},
    )
