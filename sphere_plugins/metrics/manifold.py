"""Precision/recall (Kynkaanniemi et al., NeurIPS 2019) and density/coverage (Naeem et al., ICML 2020) from
k-nearest-neighbour balls in feature space: FD mixes fidelity and diversity, these report them apart.

Each point's ball has the Euclidean distance to its k-th nearest neighbour in its own set (the point itself
excluded) as radius; a point counts as inside a ball on or within its boundary (the papers' <=). Distances are
computed in float64 in row chunks, so memory is O(chunk x M) rather than the N x M matrices of the `prdc`
package, and 10,000 x 10,000 features need a few tens of MB.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_CHUNK_BYTES = 32 * 2**20


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Precision: share of fake points inside some real point's k-NN ball; recall: share of real points inside
    some fake point's k-NN ball (Kynkaanniemi et al. 2019, k = 3 by default)."""
    real, fake = _check_pair(real_features, fake_features, k)
    real_radii, fake_radii = _kth_neighbour_sq(real, k), _kth_neighbour_sq(fake, k)
    fake_inside = torch.zeros(len(fake), dtype=torch.bool)
    real_inside = torch.zeros(len(real), dtype=torch.bool)
    for start, d2 in _row_chunks(real, fake):
        rows = slice(start, start + d2.shape[0])
        fake_inside |= (d2 <= real_radii[rows, None]).any(dim=0)
        real_inside[rows] = (d2 <= fake_radii[None, :]).any(dim=1)
    return fake_inside.double().mean().item(), real_inside.double().mean().item()


def density_coverage(real_features: np.ndarray, fake_features: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density: real k-NN balls holding each fake point, summed, divided by k and the number of fake points;
    coverage: share of real points whose k-NN ball holds at least one fake point (Naeem et al. 2020, k = 5)."""
    real, fake = _check_pair(real_features, fake_features, k)
    real_radii = _kth_neighbour_sq(real, k)
    balls_per_fake = torch.zeros(len(fake), dtype=torch.float64)
    covered = torch.zeros(len(real), dtype=torch.bool)
    for start, d2 in _row_chunks(real, fake):
        inside = d2 <= real_radii[start : start + d2.shape[0], None]
        balls_per_fake += inside.sum(dim=0)
        covered[start : start + d2.shape[0]] = inside.any(dim=1)
    return (balls_per_fake.sum() / (k * len(fake))).item(), covered.double().mean().item()


def _check_pair(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[Tensor, Tensor]:
    """Both feature sets as float64 tensors [N, D] of equal width, each with more than k rows."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    tensors = []
    for name, features in (("real_features", real), ("fake_features", fake)):
        array = np.asarray(features.detach().cpu() if isinstance(features, Tensor) else features, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] <= k:
            raise ValueError(f"{name} must be an array [N, D] with N > k = {k}, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or Inf values")
        tensors.append(torch.from_numpy(array))
    if tensors[0].shape[1] != tensors[1].shape[1]:
        raise ValueError(
            f"real_features and fake_features must have the same width D, got {tensors[0].shape[1]} and "
            f"{tensors[1].shape[1]}"
        )
    return tensors[0], tensors[1]


def _row_chunks(x: Tensor, y: Tensor):
    """(first row, squared distances [rows, len(y)]) for chunks of x's rows, about _CHUNK_BYTES each."""
    rows = max(1, _CHUNK_BYTES // (8 * max(1, len(y))))
    y_sq = (y * y).sum(dim=1)
    for start in range(0, len(x), rows):
        block = x[start : start + rows]
        d2 = (block * block).sum(dim=1, keepdim=True) + y_sq[None, :] - 2.0 * (block @ y.T)
        yield start, d2.clamp_(min=0.0)


def _kth_neighbour_sq(x: Tensor, k: int) -> Tensor:
    """Squared distance from each row of x to its k-th nearest other row of x."""
    radii = torch.empty(len(x), dtype=torch.float64)
    for start, d2 in _row_chunks(x, x):
        rows = torch.arange(d2.shape[0])
        d2[rows, rows + start] = float("inf")  # the point itself is not its own neighbour
        radii[start : start + d2.shape[0]] = d2.kthvalue(k, dim=1).values
    return radii
