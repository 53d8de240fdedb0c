"""Training objectives on one encoder/decoder architecture: the spherical autoencoder and the paper's
baselines (Gaussian VAE, S-VAE with a von Mises-Fisher posterior, plain autoencoder), and a regularized
deterministic autoencoder in the spirit of RAE (Ghosh et al., 2020).

Every objective is an nn.Module whose forward(batch) returns (loss, logs); `loss` is an alias, and
the training loop calls the module itself so DistributedDataParallel sees the forward pass. Inference:
`codes(x)` (the deterministic codes used for t-SNE), `reconstruct(x)`, and `sample(n, prior)`.
Sampling follows each method: the spherical autoencoder and the S-VAE centerize and spherize the prior
draw (Algorithm 1 of the paper; radius 1 for the S-VAE, whose codes live on the unit sphere); the VAE
and the plain autoencoder decode the raw prior draw, which is the baseline behaviour the paper compares.
Training noise (VAE, S-VAE) comes from torch's global RNG, which the loop seeds and checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sphere_plugins.latent import centerize_spherize
from sphere_plugins.loss import (SAELoss, SVAELoss, VAELoss, gaussian_kl, reconstruction_error, reparameterize,
                                 uniformity_loss)
from sphere_plugins.nets import ConvDecoder, ConvEncoder
from sphere_plugins.priors import redraw_degenerate, sample_prior
from sphere_plugins.vmf import kl_to_uniform, sample_vmf
from sphere_plugins.wrap import SphericalAutoencoder, check_latent_noise, module_device_dtype, wrap_autoencoder

Logs = dict[str, Tensor]
KINDS = ("sae", "vae", "svae", "ae", "rae")


class Objective(nn.Module):
    """Base class: forward(batch) -> (scalar loss, detached logs); inference helpers in subclasses."""

    def loss(self, batch: Tensor) -> tuple[Tensor, Logs]:
        """The training loss and its logged parts for a batch of images in [-1, 1]."""
        return self(batch)

    def codes(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def reconstruct(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, prior: str = "normal", generator: torch.Generator | None = None,
               **prior_params: Any) -> Tensor:
        raise NotImplementedError

    def _prior_draw(self, n: int, z_shape: Sequence[int] | None, prior: str, generator: torch.Generator | None,
                    prior_params: dict[str, Any]) -> Tensor:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if z_shape is None:
            raise ValueError("the latent shape is unknown until the first forward pass; pass z_shape= to the objective")
        device, dtype = module_device_dtype(self)
        return sample_prior(prior, (n, *z_shape), generator=generator, device=device, dtype=dtype, **prior_params)


def _mse(x: Tensor, x_rec: Tensor) -> Tensor:
    with torch.no_grad():
        return reconstruction_error(x, x_rec.to(x.dtype)).mean()


def _as_shape(z_shape: Sequence[int] | int | None, decoder: nn.Module) -> tuple[int, ...] | None:
    if z_shape is None:
        z_dim = getattr(decoder, "z_dim", None)
        return (z_dim,) if isinstance(z_dim, int) else None
    return (z_shape,) if isinstance(z_shape, int) else tuple(z_shape)


class SAEObjective(Objective):
    """The spherical autoencoder (eq. 11): any SphericalAutoencoder, trained on its reconstruction loss only.

    With check_batches=False (the default) a training step skips the wrapper's per-batch input-range
    and zero-norm checks, which read values back from the device (a GPU sync per step); the loop checks
    the whole data set once instead, and a degenerate code shows up as a NaN loss. The step applies the
    wrapper's forward with check=False, so its output equals wrapper(x).

    latent_noise=SIGMA (None: the wrapper's own, 0 by default) decodes codes perturbed on the sphere in
    training mode (SphericalAutoencoder.perturb); the target stays the clean image. uniformity=WEIGHT (0,
    off, by default) adds WEIGHT * uniformity_loss(codes, uniformity_t) over each batch's clean codes.
    """

    def __init__(self, wrapper: SphericalAutoencoder, check_batches: bool = False,
                 latent_noise: float | None = None, uniformity: float = 0.0, uniformity_t: float = 2.0):
        super().__init__()
        if not isinstance(wrapper, SphericalAutoencoder):
            raise ValueError("wrapper must be a SphericalAutoencoder (from sphere_plugins.wrap_autoencoder), "
                             f"got {type(wrapper).__name__}")
        self.wrapper = wrapper
        self.check_batches = check_batches
        self.latent_noise = None if latent_noise is None else check_latent_noise(latent_noise)
        self.uniformity = check_latent_noise(uniformity, "uniformity")
        uniformity_loss(torch.zeros(1, 2), uniformity_t)  # fails now on a bad t
        self.uniformity_t = float(uniformity_t)

    def forward(self, x: Tensor) -> tuple[Tensor, Logs]:
        x_rec, z = self.wrapper(x, check=self.check_batches, latent_noise=self.latent_noise)
        loss = self.wrapper.loss_fn(x, x_rec)
        loss = loss if loss.dim() == 0 else loss.mean()
        if not self.uniformity:
            return loss, {"loss": loss.detach(), "mse": _mse(x, x_rec)}
        spread = uniformity_loss(z, self.uniformity_t)
        total = loss + self.uniformity * spread
        return total, {"loss": total.detach(), "mse": _mse(x, x_rec), "uniformity": spread.detach()}

    def codes(self, x: Tensor) -> Tensor:
        """The codes on the sphere."""
        return self.wrapper.encode(x)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.wrapper(x).reconstruction

    def sample(self, n: int, prior: str = "normal", generator: torch.Generator | None = None,
               **prior_params: Any) -> Tensor:
        """Decode prior draws after centerize and spherize (the wrapper's own constraint and radius)."""
        return self.wrapper.sample(n, prior, generator, **prior_params)


class VAEObjective(Objective):
    """The Gaussian VAE baseline: the encoder's output splits along dim 1 into (mu, logvar)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, beta: float = 1.0, p: float = 2.0,
                 z_shape: Sequence[int] | int | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.loss_fn = VAELoss(beta=beta, p=p)
        self.z_shape = _as_shape(z_shape, decoder)

    def _posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.encoder(x).float()
        if out.shape[1] % 2:
            raise ValueError(
                f"the VAE encoder must output 2 * z entries along dim 1 (mu, logvar), got {list(out.shape)}")
        mu, logvar = out.chunk(2, dim=1)
        if self.z_shape is None:
            self.z_shape = tuple(mu.shape[1:])
        return mu, logvar

    def forward(self, x: Tensor) -> tuple[Tensor, Logs]:
        mu, logvar = self._posterior(x)
        x_rec = self.decoder(reparameterize(mu, logvar))
        loss = self.loss_fn(x, x_rec, mu, logvar)
        with torch.no_grad():
            kl = gaussian_kl(mu, logvar).mean()
        return loss, {"loss": loss.detach(), "mse": _mse(x, x_rec), "kl": kl}

    def codes(self, x: Tensor) -> Tensor:
        """The posterior means."""
        return self._posterior(x)[0]

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self.codes(x))

    def sample(self, n: int, prior: str = "normal", generator: torch.Generator | None = None,
               **prior_params: Any) -> Tensor:
        """Decode raw prior draws (no centerize, no spherize: the baseline)."""
        return self.decoder(self._prior_draw(n, self.z_shape, prior, generator, prior_params))


class SVAEObjective(Objective):
    """The S-VAE baseline: vMF posterior (mean direction, kappa = softplus + 1) with a uniform prior on S^{d-1}.

    The encoder outputs [N, d + 1]: d entries normalized to the mean direction, one for the concentration.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, beta: float = 1.0, p: float = 2.0):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.loss_fn = SVAELoss(beta=beta, p=p)
        self.z_dim: int | None = getattr(decoder, "z_dim", None)

    def _posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.encoder(x).float()
        if out.dim() != 2 or out.shape[1] < 3:
            raise ValueError(f"the S-VAE encoder must output [N, d + 1] with d >= 2, got {list(out.shape)}")
        if self.z_dim is None:
            self.z_dim = out.shape[1] - 1
        mu = F.normalize(out[:, :-1], dim=1)
        kappa = F.softplus(out[:, -1]) + 1.0
        return mu, kappa

    def forward(self, x: Tensor) -> tuple[Tensor, Logs]:
        mu, kappa = self._posterior(x)
        x_rec = self.decoder(sample_vmf(mu, kappa))
        loss = self.loss_fn(x, x_rec, mu, kappa)
        with torch.no_grad():
            kl = kl_to_uniform(kappa, mu.shape[1]).mean()
        return loss, {"loss": loss.detach(), "mse": _mse(x, x_rec), "kl": kl, "kappa": kappa.detach().mean()}

    def codes(self, x: Tensor) -> Tensor:
        """The posterior mean directions (unit vectors)."""
        return self._posterior(x)[0]

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self.codes(x))

    def sample(self, n: int, prior: str = "normal", generator: torch.Generator | None = None,
               **prior_params: Any) -> Tensor:
        """Decode prior draws centerized and spherized onto the unit sphere; draws that centerize to zero
        (discrete priors in low d) are redrawn, as the spherical autoencoder's wrapper does."""
        z_shape = None if self.z_dim is None else (self.z_dim,)
        z = redraw_degenerate(self._prior_draw(n, z_shape, prior, generator, prior_params),
                              lambda k: self._prior_draw(k, z_shape, prior, generator, prior_params),
                              what=f"prior {prior!r} with parameters {prior_params}")
        return self.decoder(centerize_spherize(z))


class AEObjective(Objective):
    """A plain autoencoder: reconstruction loss, unconstrained codes."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, p: float = 2.0,
                 z_shape: Sequence[int] | int | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.loss_fn = SAELoss(p=p)
        self.z_shape = _as_shape(z_shape, decoder)

    def forward(self, x: Tensor) -> tuple[Tensor, Logs]:
        z = self.encoder(x)
        if self.z_shape is None:
            self.z_shape = tuple(z.shape[1:])
        x_rec = self.decoder(z)
        loss = self.loss_fn(x, x_rec)
        return loss, {"loss": loss.detach(), "mse": _mse(x, x_rec)}

    def codes(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    def sample(self, n: int, prior: str = "normal", generator: torch.Generator | None = None,
               **prior_params: Any) -> Tensor:
        """Decode raw prior draws (no centerize, no spherize: the baseline)."""
        return self.decoder(self._prior_draw(n, self.z_shape, prior, generator, prior_params))


class RAEObjective(AEObjective):
    """A regularized deterministic autoencoder (RAE-L2 of Ghosh et al., 2020): reconstruction, plus
    code_penalty * |z|^2 / 2 per code entry (the codes stay near the origin without a KL term), plus
    decoder_decay * the sum of the decoder's squared weights (a smoother decoder). Sampled like the plain
    autoencoder; the paper pairs it with a density fitted to the codes after training."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, code_penalty: float = 1e-3,
                 decoder_decay: float = 1e-6, p: float = 2.0, z_shape: Sequence[int] | int | None = None):
        super().__init__(encoder, decoder, p=p, z_shape=z_shape)
        self.code_penalty = check_latent_noise(code_penalty, "code_penalty")
        self.decoder_decay = check_latent_noise(decoder_decay, "decoder_decay")

    def forward(self, x: Tensor) -> tuple[Tensor, Logs]:
        z = self.encoder(x)
        if self.z_shape is None:
            self.z_shape = tuple(z.shape[1:])
        x_rec = self.decoder(z)
        rec = self.loss_fn(x, x_rec)
        code = 0.5 * z.float().square().mean()
        decay = sum(w.square().sum() for name, w in self.decoder.named_parameters() if name.endswith("weight"))
        loss = rec + self.code_penalty * code + self.decoder_decay * decay
        return loss, {"loss": loss.detach(), "mse": _mse(x, x_rec), "code": code.detach(), "decay": decay.detach()}


def conv_objective(kind: str, *, channels: int = 1, resolution: int = 16, z_dim: int = 10, width: int = 32,
                   beta: float = 1.0, p: float = 2.0, radius: float | None = None,
                   latent_noise: float = 0.0, uniformity: float = 0.0, code_penalty: float = 1e-3,
                   decoder_decay: float = 1e-6) -> Objective:
    """One of "sae", "vae", "svae", "ae", "rae" on the built-in ConvEncoder/ConvDecoder of the given size.

    The encoders differ only in their last layer's output count (z, 2z, z + 1, z, z); `radius`,
    `latent_noise` and `uniformity` (see SAEObjective) are the spherical autoencoder's (radius None: sqrt(z_dim));
    `code_penalty` and `decoder_decay` the regularized autoencoder's (see RAEObjective).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    for name, value in (("latent_noise", latent_noise), ("uniformity", uniformity)):
        if kind != "sae" and check_latent_noise(value, name):
            raise ValueError(f"{name} applies to the spherical autoencoder (kind 'sae') only, got kind {kind!r}")
    size = {"channels": channels, "resolution": resolution, "z_dim": z_dim, "width": width}
    decoder = ConvDecoder(**size)
    if kind == "sae":
        wrapper = wrap_autoencoder((ConvEncoder(**size), decoder), radius=radius, z_shape=(z_dim,),
                                   loss=SAELoss(p=p), latent_noise=latent_noise)
        return SAEObjective(wrapper, uniformity=uniformity)
    if kind == "vae":
        return VAEObjective(ConvEncoder(**size, heads=2), decoder, beta=beta, p=p)
    if kind == "svae":
        return SVAEObjective(ConvEncoder(**size, extra=1), decoder, beta=beta, p=p)
    if kind == "rae":
        return RAEObjective(ConvEncoder(**size), decoder, code_penalty=code_penalty, decoder_decay=decoder_decay, p=p)
    return AEObjective(ConvEncoder(**size), decoder, p=p)
