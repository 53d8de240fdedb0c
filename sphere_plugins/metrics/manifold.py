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
    return RealManifold(real, ks=(k,)).precision_recall(fake, k)


def density_coverage(real_features: np.ndarray, fake_features: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density: real k-NN balls holding each fake point, summed, divided by k and the number of fake points;
    coverage: share of real points whose k-NN ball holds at least one fake point (Naeem et al. 2020, k = 5)."""
    real, fake = _check_pair(real_features, fake_features, k)
    return RealManifold(real, ks=(k,)).density_coverage(fake, k)


class RealManifold:
    """The real set's k-NN radii, computed once (one pass for every k) and reused for many fake sets: the real
    set's own distances are N x N, the costly part when several fake sets meet one real set."""

    def __init__(self, real_features: np.ndarray | Tensor, ks: tuple[int, ...] = (3, 5)):
        if not ks:
            raise ValueError("ks must name at least one neighbourhood size k")
        for k in ks:
            _check_k(k)
        self.real = _as_features(real_features, "real_features", max(ks))
        self.radii = _kth_neighbours_sq(self.real, tuple(sorted(set(ks))))

    def precision_recall(self, fake_features: np.ndarray | Tensor, k: int = 3) -> tuple[float, float]:
        """(precision, recall) of fake_features against this real set, as `precision_recall`."""
        return self.all(fake_features, pr_k=k, dc_k=None)[:2]

    def density_coverage(self, fake_features: np.ndarray | Tensor, k: int = 5) -> tuple[float, float]:
        """(density, coverage) of fake_features against this real set, as `density_coverage`."""
        return self.all(fake_features, pr_k=None, dc_k=k)[2:]

    def all(self, fake_features: np.ndarray | Tensor, pr_k: int | None = 3,
            dc_k: int | None = 5) -> tuple[float, ...]:
        """(precision, recall, density, coverage) from one pass over the real x fake distances; the values of a
        k given as None are NaN."""
        wanted = [k for k in (pr_k, dc_k) if k is not None]
        if not wanted:
            raise ValueError("pr_k and dc_k are both None; give at least one neighbourhood size")
        for k in wanted:
            if k not in self.radii:
                raise ValueError(f"k = {k} was not prepared; this RealManifold has ks {sorted(self.radii)}")
        fake = _as_features(fake_features, "fake_features", max(wanted))
        if fake.shape[1] != self.real.shape[1]:
            raise ValueError(f"real_features and fake_features must have the same width D, got "
                             f"{self.real.shape[1]} and {fake.shape[1]}")
        fake_radii = _kth_neighbours_sq(fake, (pr_k,))[pr_k] if pr_k is not None else None
        fake_inside = torch.zeros(len(fake), dtype=torch.bool)
        real_inside = torch.zeros(len(self.real), dtype=torch.bool)
        balls_per_fake = torch.zeros(len(fake), dtype=torch.float64)
        covered = torch.zeros(len(self.real), dtype=torch.bool)
        for start, d2 in _row_chunks(self.real, fake):
            rows = slice(start, start + d2.shape[0])
            if pr_k is not None:
                fake_inside |= (d2 <= self.radii[pr_k][rows, None]).any(dim=0)
                real_inside[rows] = (d2 <= fake_radii[None, :]).any(dim=1)
            if dc_k is not None:
                inside = d2 <= self.radii[dc_k][rows, None]
                balls_per_fake += inside.sum(dim=0)
                covered[rows] = inside.any(dim=1)
        nan = float("nan")
        precision, recall = ((fake_inside.double().mean().item(), real_inside.double().mean().item())
                             if pr_k is not None else (nan, nan))
        density, coverage = (((balls_per_fake.sum() / (dc_k * len(fake))).item(), covered.double().mean().item())
                             if dc_k is not None else (nan, nan))
        return precision, recall, density, coverage


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


def _as_features(features: np.ndarray | Tensor, name: str, k: int) -> Tensor:
    """A float64 tensor [N, D] with N > k and finite values, or a ValueError naming the argument."""
    array = np.asarray(features.detach().cpu() if isinstance(features, Tensor) else features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] <= k:
        raise ValueError(f"{name} must be an array [N, D] with N > k = {k}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return torch.from_numpy(array)


def _check_pair(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[Tensor, Tensor]:
    """Both feature sets as float64 tensors [N, D] of equal width, each with more than k rows."""
    _check_k(k)
    real_t, fake_t = _as_features(real, "real_features", k), _as_features(fake, "fake_features", k)
    if real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(
            f"real_features and fake_features must have the same width D, got {real_t.shape[1]} and "
            f"{fake_t.shape[1]}"
        )
    return real_t, fake_t


def _row_chunks(x: Tensor, y: Tensor):
    """(first row, squared distances [rows, len(y)]) for chunks of x's rows, about _CHUNK_BYTES each."""
    rows = max(1, _CHUNK_BYTES // (8 * max(1, len(y))))
    y_sq = (y * y).sum(dim=1)
    for start in range(0, len(x), rows):
        block = x[start : start + rows]
        d2 = (block * block).sum(dim=1, keepdim=True) + y_sq[None, :] - 2.0 * (block @ y.T)
        yield start, d2.clamp_(min=0.0)


def _kth_neighbours_sq(x: Tensor, ks: tuple[int, ...]) -> dict[int, Tensor]:
    """{k: squared distance from each row of x to its k-th nearest other row of x}, from one pass over x x x."""
    radii = {k: torch.empty(len(x), dtype=torch.float64) for k in ks}
    largest = max(ks)
    for start, d2 in _row_chunks(x, x):
        rows = torch.arange(d2.shape[0])
        d2[rows, rows + start] = float("inf")  # the point itself is not its own neighbour
        nearest = d2.topk(largest, dim=1, largest=False).values  # sorted ascending
        for k in ks:
            radii[k][start : start + d2.shape[0]] = nearest[:, k - 1]
    return radii
