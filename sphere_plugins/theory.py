"""The paper's theory, computed: Theorem 1 (volume concentration), Lemma 1 (distance between two
random points on a sphere, in log-gamma), Theorem 2 (exact 2-Wasserstein distance of point sets)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaln, poch

ArrayLike = np.ndarray | torch.Tensor | float


def _check_dimension(d: int) -> int:
    if not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(f"d (the dimension of the space) must be an int >= 2, got {d!r}")
    return int(d)


def _check_radius(r: float) -> float:
    if not (r > 0 and math.isfinite(r)):
        raise ValueError(f"r (the sphere's radius) must be positive and finite, got {r!r}")
    return float(r)


def inner_volume_fraction(eps: float | np.ndarray, d: int) -> float | np.ndarray:
    """Theorem 1: V((1 - eps) r) / V(r) = (1 - eps)^d, the share of a d-ball inside radius (1 - eps) r."""
    d = _check_dimension(d) if d != 1 else 1
    eps = np.asarray(eps, dtype=np.float64)
    if np.any((eps < 0) | (eps > 1)):
        raise ValueError(f"eps must lie in [0, 1], got {eps}")
    result = np.exp(d * np.log1p(-eps)) if np.all(eps < 1) else (1 - eps) ** d
    return float(result) if result.ndim == 0 else result


def shell_width_holding(fraction: float, d: int) -> float:
    """The relative width eps of the outer shell that holds `fraction` of a d-ball's volume."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    return float(-np.expm1(np.log1p(-fraction) / _check_dimension(d)))


def _log_c(d: int) -> float:
    return 0.5 * math.log(math.pi) + gammaln((d - 1) / 2) - gammaln(d / 2)


def lemma1_pdf(xi: ArrayLike, d: int, r: float = 1.0) -> np.ndarray:
    """Lemma 1: density of the distance between two independent uniform points on the sphere of
    radius r in R^d, evaluated in log space (the Gamma values overflow for large d)."""
    d, r = _check_dimension(d), _check_radius(r)
    xi = np.asarray(xi.detach().cpu() if isinstance(xi, torch.Tensor) else xi, dtype=np.float64)
    inside = (xi > 0) & (xi < 2 * r)
    safe = np.where(inside, xi, r)
    log_pdf = ((d - 2) * np.log(safe) - _log_c(d) - (d - 1) * math.log(r)
               + (d - 3) / 2 * np.log1p(-(safe / (2 * r)) ** 2))
    return np.where(inside, np.exp(log_pdf), 0.0)


def lemma1_mean(d: int, r: float = 1.0) -> float:
    """Lemma 1: mean distance 2^(d-1) r Gamma(d/2)^2 / (sqrt(pi) Gamma(d - 1/2)).

    Legendre's duplication formula turns it into sqrt(2) r Gamma(x)^2 / (Gamma(x - 1/4) Gamma(x + 1/4)),
    x = d/2: two Gamma ratios that stay accurate where log-gamma differences lose digits.
    """
    d, r = _check_dimension(d), _check_radius(r)
    x = d / 2
    return math.sqrt(2) * r * float(poch(x - 0.25, 0.25) / poch(x, 0.25))


def lemma1_std(d: int, r: float = 1.0) -> float:
    """Lemma 1: standard deviation sqrt(2) r sqrt(1 - mean^2 / (2 r^2)) (E[xi^2] = 2 r^2 exactly)."""
    mean = lemma1_mean(d, r)
    return math.sqrt(2) * r * math.sqrt(max(0.0, 1 - mean**2 / (2 * r**2)))


def lemma1_mean_asymptotic(d: int, r: float = 1.0) -> float:
    """Large-d form of the mean distance: sqrt(2) r (1 - 1/(8d))."""
    return math.sqrt(2) * _check_radius(r) * (1 - 1 / (8 * _check_dimension(d)))


def lemma1_std_asymptotic(d: int, r: float = 1.0) -> float:
    """Large-d form of the standard deviation: r / sqrt(2d)."""
    return _check_radius(r) / math.sqrt(2 * _check_dimension(d))


def uniform_on_sphere(n: int, d: int, r: float = 1.0, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """n points drawn uniformly on the sphere of radius r in R^d (normalized Gaussians)."""
    z = torch.randn(n, _check_dimension(d), generator=generator, dtype=dtype)
    return z * (_check_radius(r) / torch.linalg.vector_norm(z, dim=1, keepdim=True))


def _as_points(z: ArrayLike, argument: str) -> np.ndarray:
    array = np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z, dtype=np.float64)
    if array.ndim < 2:
        raise ValueError(f"{argument} must be a set of points [n, ...], got shape {array.shape}")
    array = array.reshape(array.shape[0], -1)
    if not np.isfinite(array).all():
        raise ValueError(f"{argument} must hold finite values")
    return array


def wasserstein2(z1: ArrayLike, z2: ArrayLike) -> float:
    """Theorem 2's exact 2-Wasserstein distance between two equal-size point sets (eqs. 8-9):
    sqrt of the SUM of squared distances over the optimal one-to-one assignment, so two random sets
    on a sphere of radius r in high d give about sqrt(2n) r."""
    a, b = _as_points(z1, "z1"), _as_points(z2, "z2")
    if a.shape != b.shape:
        raise ValueError(f"z1 and z2 must hold as many points of one dimension, got {a.shape} and {b.shape}")
    cost = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    cost = np.maximum(cost, 0.0)
    rows, cols = linear_sum_assignment(cost)
    return float(math.sqrt(cost[rows, cols].sum()))


def wasserstein2_asymptote(n: int, r: float = 1.0) -> float:
    """Theorem 2's limit sqrt(2n) r as d grows."""
    return math.sqrt(2 * n) * _check_radius(r)
