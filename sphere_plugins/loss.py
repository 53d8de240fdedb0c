"""Losses: the spherical autoencoder's reconstruction-only loss (eq. 11), an optional uniformity term on its
codes, and the VAE and S-VAE baselines'."""

from __future__ import annotations

import math

from typing import Literal

import torch
from torch import Tensor, nn

from sphere_plugins.vmf import kl_to_uniform

Reduction = Literal["mean", "sum", "none"]


def _check_pair(x: Tensor, x_rec: Tensor) -> None:
    if not isinstance(x, Tensor) or not isinstance(x_rec, Tensor):
        raise ValueError(f"x and x_rec must be tensors, got {type(x).__name__} and {type(x_rec).__name__}")
    if x.shape != x_rec.shape:
        raise ValueError(f"x and x_rec must share a shape, got {list(x.shape)} and {list(x_rec.shape)}")


def reconstruction_error(x: Tensor, x_rec: Tensor, p: float = 2.0) -> Tensor:
    """Per-sample mean of |x - x_rec|^p over all non-batch entries."""
    _check_pair(x, x_rec)
    diff = (x - x_rec).abs()
    per_entry = diff.square() if p == 2 else diff.pow(p)
    return per_entry.flatten(1).mean(dim=1)


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(per_sample: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


class SAELoss(nn.Module):
    """The spherical autoencoder's loss: reconstruction only, no KL, no sampling (eq. 11).

    p=2 gives the squared error averaged over pixels (MSE); p=1 the absolute error. An optional
    perceptual term (any module mapping (x, x_rec) to per-sample distances, e.g. LPIPS) is added
    with `perceptual_weight`. Drop it in where a VAE loss was: `loss = SAELoss()(x, x_rec)`.
    """

    def __init__(self, p: float = 2.0, reduction: Reduction = "mean", perceptual: nn.Module | None = None,
                 perceptual_weight: float = 1.0):
        super().__init__()
        if not p > 0:
            raise ValueError(f"p must be positive, got {p!r}")
        _check_reduction(reduction)
        self.p = float(p)
        self.reduction = reduction
        self.perceptual = perceptual
        self.perceptual_weight = float(perceptual_weight)

    def forward(self, x: Tensor, x_rec: Tensor) -> Tensor:
        per_sample = reconstruction_error(x, x_rec, self.p)
        if self.perceptual is not None:
            per_sample = per_sample + self.perceptual_weight * self.perceptual(x, x_rec).reshape(x.shape[0])
        return _reduce(per_sample, self.reduction)

    def extra_repr(self) -> str:
        return f"p={self.p:g}, reduction={self.reduction!r}, perceptual={self.perceptual is not None}"


def uniformity_loss(z: Tensor, t: float = 2.0) -> Tensor:
    """Uniformity of codes on their sphere (Wang and Isola, 2020): log of the mean of exp(-t |u_i - u_j|^2)
    over all pairs of a batch, u the codes scaled to unit norm.

    Lowest when the codes spread over the whole sphere; a weighted term that pulls a spherical autoencoder's
    codes apart, so prior draws land nearer to them. A batch with fewer than two codes has no pairs: 0.
    """
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0 or not math.isfinite(t):
        raise ValueError(f"t must be a positive finite number, got {t!r}")
    if z.shape[0] < 2:
        return z.sum() * 0
    u = z.flatten(1)
    u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
    squared = torch.pdist(u).square()
    return torch.logsumexp(-t * squared, dim=0) - math.log(squared.numel())


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-sample KL( N(mu, exp(logvar)) || N(0, I) ), summed over latent entries."""
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must share a shape, got {list(mu.shape)} and {list(logvar.shape)}")
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(dim=1)


class _PriorRegularizedLoss(nn.Module):
    """Reconstruction + beta * (a prior's divergence) / (entries per image): what the baselines share."""

    def __init__(self, beta: float = 1.0, p: float = 2.0, reduction: Reduction = "mean"):
        super().__init__()
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        _check_reduction(reduction)
        self.beta = float(beta)
        self.reconstruction = SAELoss(p=p, reduction="none")
        self.reduction = reduction

    def _combine(self, x: Tensor, x_rec: Tensor, divergence: Tensor) -> Tensor:
        per_sample = self.reconstruction(x, x_rec) + self.beta * divergence / x[0].numel()
        return _reduce(per_sample, self.reduction)


class VAELoss(_PriorRegularizedLoss):
    """The Gaussian VAE baseline: reconstruction + beta * KL / (entries per image).

    The KL is divided by the number of image entries so that beta weighs it against the per-pixel
    reconstruction term the same way at every resolution (beta=1 with p=2 is a Gaussian ELBO up to
    the decoder variance).
    """

    def forward(self, x: Tensor, x_rec: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        return self._combine(x, x_rec, gaussian_kl(mu, logvar))


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A draw from N(mu, exp(logvar)) that gradients flow through (the VAE's reparameterization)."""
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * noise


class SVAELoss(_PriorRegularizedLoss):
    """The S-VAE baseline: reconstruction + beta * KL(vMF(mu, kappa) || Uniform(S^{d-1})) / (entries per image).

    The KL depends on kappa and d only; it is scaled like VAELoss's so the two baselines weigh their
    priors the same way.
    """

    def forward(self, x: Tensor, x_rec: Tensor, mu: Tensor, kappa: Tensor) -> Tensor:
        if mu.dim() != 2 or kappa.reshape(-1).shape[0] != mu.shape[0]:
            raise ValueError(f"mu must be [N, d] and kappa hold N values, got {list(mu.shape)} and {list(kappa.shape)}")
        return self._combine(x, x_rec, kl_to_uniform(kappa.reshape(-1), mu.shape[1]))
