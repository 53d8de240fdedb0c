"""The von Mises-Fisher distribution on the unit sphere S^{d-1}: Bessel ratios, KL to uniform, and a
reparameterized sampler, for the S-VAE baseline.

Density: q(z | mu, kappa) = C_d(kappa) exp(kappa mu^T z), C_d(kappa) = kappa^v / ((2 pi)^{d/2} I_v(kappa)),
v = d/2 - 1. The sampler draws w = mu^T z with Wood's (1994) rejection sampler and a uniform tangent
direction, then reflects e_1 onto mu (Householder). Gradients with respect to kappa go through w by
*implicit reparameterization* (Figurnov et al., 2018): dw/dkappa = -(dF/dkappa)(w) / p(w), F the CDF
of w, evaluated by quadrature. That is the exact pathwise derivative of the accepted sample, so no
score-function correction for the rejection step is needed (differentiating through the accepted
proposal instead is biased for d != 3). Bessel functions come from scipy in float64 on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special
from torch import Tensor

# Quadrature for dw/dkappa: Gauss-Legendre nodes over the part of the integrand within
# exp(-_LEVEL) of its largest value, found by bisection on the (unimodal) log-integrand.
_NODES, _WEIGHTS = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(96))
_LEVEL = 50.0
_BISECTIONS = 60


def _check_dim(d: int) -> int:
    if not isinstance(d, int) or d < 2:
        raise ValueError(f"d must be an int >= 2 (the sphere S^(d-1) lives in R^d), got {d!r}")
    return d


def _log_ive_numpy(v: float, k: np.ndarray) -> np.ndarray:
    """log(I_v(k) e^{-k}) in float64; where scipy underflows (small k, large v), the whole power series summed
    in log space (its leading term alone is off by up to a factor e^(k^2 / 4(v+1)): 2x at v = 255, k = 10)."""
    with np.errstate(divide="ignore"):
        out = np.log(special.ive(v, k))
    small = ~np.isfinite(out)
    if small.any():
        out[small] = _log_iv_series(v, k[small]) - k[small]
    return out


def _log_iv_series(v: float, k: np.ndarray) -> np.ndarray:
    """log I_v(k) = log sum_m (k/2)^(2m+v) / (m! Gamma(m+v+1)), every term in log space (no under/overflow).

    Term m+1 / term m = (k/2)^2 / ((m+1)(m+v+1)), so the terms peak near m = (k/2)^2 / v and fall faster
    than geometrically after it; summing to a few times that peak (and at least 64 terms) is exact to
    float64 rounding."""
    half = np.log(k / 2)
    peak = float(np.max((k / 2) ** 2)) / (v + 1)
    m = np.arange(int(min(64 + 4 * peak, 100_000)), dtype=np.float64)
    terms = (2 * m + v) * half[:, None] - special.gammaln(m + 1) - special.gammaln(m + v + 1)
    return special.logsumexp(terms, axis=1)


def _bessel_ratio_numpy(v: float, k: np.ndarray) -> np.ndarray:
    """I_{v+1}(k) / I_v(k) in float64; Amos' lower bound k / (v+1 + sqrt((v+1)^2 + k^2)) where scipy underflows."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = special.ive(v + 1, k) / special.ive(v, k)
    bad = ~np.isfinite(ratio) | (ratio <= 0)
    if bad.any():
        kb = k[bad]
        ratio[bad] = kb / (v + 1 + np.sqrt((v + 1) ** 2 + kb**2))
    return ratio


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _like(a: np.ndarray, t: Tensor) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=t.device, dtype=t.dtype)


class _LogIve(torch.autograd.Function):
    """log(I_v(k) e^{-k}); d/dk = I_{v+1}/I_v + v/k - 1."""

    @staticmethod
    def forward(ctx, kappa: Tensor, v: float) -> Tensor:
        ctx.save_for_backward(kappa)
        ctx.v = v
        return _like(_log_ive_numpy(v, _numpy(kappa)), kappa)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (kappa,) = ctx.saved_tensors
        slope = _like(_bessel_ratio_numpy(ctx.v, _numpy(kappa)), kappa) + ctx.v / kappa - 1.0
        return grad * slope, None


class _MeanResultant(torch.autograd.Function):
    """A_d(k) = I_{d/2}(k) / I_{d/2-1}(k); A' = 1 - A^2 - (d-1) A / k."""

    @staticmethod
    def forward(ctx, kappa: Tensor, d: int) -> Tensor:
        a = _like(_bessel_ratio_numpy(d / 2 - 1, _numpy(kappa)), kappa)
        ctx.save_for_backward(kappa, a)
        ctx.d = d
        return a

    @staticmethod
    def backward(ctx, grad: Tensor):
        kappa, a = ctx.saved_tensors
        return grad * (1.0 - a.square() - (ctx.d - 1) * a / kappa), None


def _check_kappa(kappa: Tensor) -> Tensor:
    if not isinstance(kappa, Tensor) or not kappa.is_floating_point():
        raise ValueError(f"kappa must be a floating-point tensor, got {type(kappa).__name__}")
    return kappa


def log_ive(v: float, kappa: Tensor) -> Tensor:
    """log of the exponentially scaled modified Bessel function, log(I_v(kappa) e^{-kappa}), differentiable in kappa."""
    return _LogIve.apply(_check_kappa(kappa), float(v))


def mean_resultant_length(kappa: Tensor, d: int) -> Tensor:
    """E[mu^T z] under vMF(mu, kappa) on S^{d-1}: A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa)."""
    return _MeanResultant.apply(_check_kappa(kappa), _check_dim(d))


def log_sphere_area(d: int) -> float:
    """log of the surface area of the unit sphere S^{d-1} in R^d: 2 pi^{d/2} / Gamma(d/2)."""
    _check_dim(d)
    return math.log(2.0) + d / 2 * math.log(math.pi) - math.lgamma(d / 2)


def log_normalizer(kappa: Tensor, d: int) -> Tensor:
    """log C_d(kappa), the vMF density's log normalizing constant (with respect to surface measure)."""
    _check_dim(d)
    k = _check_kappa(kappa).double()
    v = d / 2 - 1
    out = v * torch.log(k) - d / 2 * math.log(2 * math.pi) - (log_ive(v, k) + k)
    return out.to(kappa.dtype)


def kl_to_uniform(kappa: Tensor, d: int) -> Tensor:
    """KL( vMF(mu, kappa) || Uniform(S^{d-1}) ) = kappa A_d(kappa) + log C_d(kappa) + log|S^{d-1}|.

    It does not depend on mu; its derivative in kappa is kappa A_d'(kappa).
    """
    _check_dim(d)
    k = _check_kappa(kappa).double()
    kl = k * mean_resultant_length(k, d) + log_normalizer(k, d) + log_sphere_area(d)
    return kl.to(kappa.dtype)


def log_prob(z: Tensor, mu: Tensor, kappa: Tensor) -> Tensor:
    """log density of unit vectors z [N, d] under vMF(mu [N, d], kappa [N])."""
    d = _check_dim(z.shape[-1])
    return (kappa * (mu * z).sum(dim=-1) + log_normalizer(kappa, d).to(z.dtype))


def _sample_w(kappa: Tensor, d: int, generator: torch.Generator | None) -> Tensor:
    """Wood's (1994) rejection sampler for w = mu^T z, in float64 (kappa float64 [N])."""
    c = d - 1.0
    b = c / (2 * kappa + torch.sqrt(4 * kappa.square() + c * c))
    x0 = (1 - b) / (1 + b)
    const = kappa * x0 + c * torch.log1p(-x0.square())
    w = torch.empty_like(kappa)
    pending = torch.ones_like(kappa, dtype=torch.bool)
    alpha = torch.full_like(kappa, c / 2)
    while bool(pending.any()):
        idx = pending.nonzero().squeeze(1)
        g1 = torch._standard_gamma(alpha[idx], generator=generator)
        g2 = torch._standard_gamma(alpha[idx], generator=generator)
        beta = g1 / (g1 + g2)
        u = torch.rand(idx.shape, generator=generator, device=kappa.device, dtype=kappa.dtype)
        bi, x0i, ki = b[idx], x0[idx], kappa[idx]
        proposal = (1 - (1 + bi) * beta) / (1 - (1 - bi) * beta)
        accept = ki * proposal + c * torch.log1p(-x0i * proposal) - const[idx] >= torch.log(u)
        w[idx[accept]] = proposal[accept]
        pending[idx[accept]] = False
    return w


def _log_integrand(theta: Tensor, kappa: Tensor, w: Tensor, d: int) -> Tensor:
    """log of the w-density at cos(theta) (per d theta) divided by the w-density at w."""
    out = kappa * (torch.cos(theta) - w)
    if d > 2:
        out = out + (d - 2) * torch.log(torch.sin(theta).clamp_min(1e-300))
    if d != 3:
        out = out - (d - 3) / 2 * torch.log((1 - w.square()).clamp_min(1e-300))
    return out


def _level_end(lo: Tensor, hi: Tensor, target: Tensor, kappa: Tensor, w: Tensor, d: int,
               rising: bool) -> Tensor:
    """Where the log-integrand crosses `target` between lo and hi (monotone there), by bisection."""
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        above = _log_integrand(mid, kappa, w, d) >= target
        if rising:
            hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
        else:
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    return (lo + hi) / 2


def dw_dkappa(w: Tensor, kappa: Tensor, d: int) -> Tensor:
    """Implicit reparameterization gradient of Wood's w: -(dF/dkappa)(w | kappa) / p(w | kappa).

    dF/dkappa(w) = -int_w^1 (t - A) p(t) dt = -int_{-1}^w (A - t) p(t) dt with A = E[w]; the tail on the
    far side of A from w is integrated, so the integrand keeps one sign (no cancellation). Float64 [N].
    """
    a = _like(_bessel_ratio_numpy(d / 2 - 1, _numpy(kappa)), kappa)
    theta_w = torch.arccos(w.clamp(-1.0, 1.0))
    upper = w > a  # integrate t in [w, 1], i.e. theta in [0, theta_w]
    lo = torch.where(upper, torch.zeros_like(w), theta_w)
    hi = torch.where(upper, theta_w, torch.full_like(w, math.pi))
    # The log-integrand is unimodal in theta with its mode where kappa sin^2 = (d - 2) cos.
    cos_mode = 2 * kappa / ((d - 2) + torch.sqrt((d - 2) ** 2 + 4 * kappa.square()))
    peak = torch.minimum(torch.maximum(torch.arccos(cos_mode.clamp(-1.0, 1.0)), lo), hi)
    top = _log_integrand(peak, kappa, w, d)
    target = top - _LEVEL
    left = torch.where(_log_integrand(lo, kappa, w, d) >= target, lo,
                       _level_end(lo, peak, target, kappa, w, d, rising=True))
    right = torch.where(_log_integrand(hi, kappa, w, d) >= target, hi,
                        _level_end(peak, hi, target, kappa, w, d, rising=False))
    nodes = _NODES.to(w.device)
    weights = _WEIGHTS.to(w.device)
    half = ((right - left) / 2).unsqueeze(1)
    theta = (left + right).unsqueeze(1) / 2 + half * nodes
    log_f = _log_integrand(theta, kappa.unsqueeze(1), w.unsqueeze(1), d) - top.unsqueeze(1)
    integral = (half * weights * (torch.cos(theta) - a.unsqueeze(1)).abs() * torch.exp(log_f)).sum(dim=1)
    return integral * torch.exp(top)


class _ImplicitW(torch.autograd.Function):
    """Pass a sampled w through with the implicit gradient dw/dkappa (computed only when needed)."""

    @staticmethod
    def forward(ctx, kappa: Tensor, w: Tensor, d: int) -> Tensor:
        ctx.save_for_backward(kappa, w)
        ctx.d = d
        return w.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        kappa, w = ctx.saved_tensors
        return grad * dw_dkappa(w, kappa, ctx.d), None, None


def _householder_from_e1(x: Tensor, mu: Tensor) -> Tensor:
    """Reflect each x by the Householder map that sends e_1 to mu (identity where mu = e_1)."""
    e1 = torch.zeros_like(mu)
    e1[:, 0] = 1
    u = e1 - mu
    norm = torch.linalg.vector_norm(u, dim=1, keepdim=True)
    safe = norm > 1e-6
    u = torch.where(safe, u / norm.clamp_min(1e-6), torch.zeros_like(u))
    return x - 2 * (u * x).sum(dim=1, keepdim=True) * u


def sample_vmf(mu: Tensor, kappa: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Reparameterized draws z ~ vMF(mu, kappa): mu [N, d] unit vectors, kappa [N] or [N, 1] positive.

    Gradients reach mu (through the reflection) and kappa (implicit reparameterization of w).
    """
    if not isinstance(mu, Tensor) or mu.dim() != 2 or not mu.is_floating_point():
        raise ValueError(f"mu must be a float tensor [N, d] of unit vectors, got {getattr(mu, 'shape', mu)!r}")
    d = _check_dim(mu.shape[1])
    kappa = _check_kappa(kappa)
    if kappa.shape not in ((mu.shape[0],), (mu.shape[0], 1)):
        raise ValueError(f"kappa must have shape [{mu.shape[0]}] or [{mu.shape[0]}, 1], got {list(kappa.shape)}")
    kappa = kappa.reshape(-1)
    if not bool((kappa > 0).all()) or not bool(torch.isfinite(kappa).all()):
        raise ValueError("kappa must be positive and finite")
    k64 = kappa.double()
    w = _ImplicitW.apply(k64, _sample_w(k64.detach(), d, generator), d).to(mu.dtype).unsqueeze(1)
    tangent = torch.randn(mu.shape[0], d - 1, generator=generator, device=mu.device, dtype=mu.dtype)
    tangent = tangent / torch.linalg.vector_norm(tangent, dim=1, keepdim=True)
    x = torch.cat([w, torch.sqrt((1 - w.square()).clamp_min(0)) * tangent], dim=1)
    return _householder_from_e1(x, mu)
