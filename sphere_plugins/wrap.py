"""wrap_generator / wrap_autoencoder and the spherical wrappers they return."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from sphere_plugins import plugins
from sphere_plugins.errors import UnknownAdapterError
from sphere_plugins.latent import Dims, SphericalLatent, centerize, group_size, slerp, vector_dims
from sphere_plugins.loss import SAELoss
from sphere_plugins.priors import get_prior

# How often `latents()` redraws vectors that centerize to zero before giving up.
_MAX_REDRAWS = 16


@dataclass
class GeneratorAdapter:
    """What a plugin says about a generator: latent shape, expected radius, and how to call it.

    radius=None means sqrt(d) (d = entries of one latent): the norm of N(0, I) latents in high d.
    accepts_generator=True says generate() takes generator=, so sample() hands its torch.Generator
    on and a stochastic sampler (DDPM's per-step noise) reproduces from one seed.
    """

    z_shape: tuple[int, ...]
    generate: Callable[..., Tensor]
    radius: float | None = None
    module: nn.Module | None = None
    name: str = "module"
    output_range: tuple[float, float] = (-1.0, 1.0)
    latent_entry: str = "input"
    accepts_generator: bool = False


@dataclass
class AutoencoderAdapter:
    """What a plugin says about an autoencoder: code shape, radius, and raw encode/decode.

    `encode` returns the code before centerize/spherize; `decode` takes a code on the sphere.
    z_shape=None means "learn it from the first encode". `input_range`, when set, is checked.
    """

    z_shape: tuple[int, ...] | None
    encode: Callable[[Tensor], Tensor]
    decode: Callable[[Tensor], Tensor]
    radius: float | None = None
    module: nn.Module | None = None
    name: str = "module"
    output_range: tuple[float, float] = (-1.0, 1.0)
    input_range: tuple[float, float] | None = None


# sample() runs the model on at most this many latents at once, so a large n never allocates every
# sample's intermediate activations together.
SAMPLE_BATCH = 1024


def _check_count(n: Any, argument: str) -> None:
    if type(n) is not int or n < 1:  # type(), not isinstance: True is an int to Python, not a count
        raise ValueError(f"{argument} must be a positive int, got {n!r}")


def _in_batches(run: Callable[[Tensor], Tensor], z: Tensor, batch_size: int) -> Tensor:
    """run(z) computed batch_size rows at a time, written into one output tensor."""
    if z.shape[0] <= batch_size:
        return run(z)
    first = run(z[:batch_size])
    out = first.new_empty((z.shape[0], *first.shape[1:]))
    out[:batch_size] = first
    for start in range(batch_size, z.shape[0], batch_size):
        out[start:start + batch_size] = run(z[start:start + batch_size])
    return out


class AutoencoderOutput(NamedTuple):
    """forward()'s result: unpacks as (reconstruction, latent)."""

    reconstruction: Tensor
    latent: Tensor


def _options(z_shape: Sequence[int] | None, options: dict[str, Any] | None) -> dict[str, Any]:
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"options must be a dict of adapter options, got {type(options).__name__}")
    merged = dict(options or {})
    if z_shape is not None:
        merged["z_shape"] = _as_shape(z_shape, "z_shape")
    return merged


def _as_shape(shape: Any, argument: str) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"{argument} must be a positive int or a tuple of positive ints, got {shape!r}")
    return shape


class _SphericalBase(nn.Module):
    """Latent handling shared by both wrappers: validation, the constraint, prior draws."""

    def __init__(self, module: nn.Module | None, z_shape: tuple[int, ...] | None, radius: float | None,
                 center: bool, spherize: bool, dims: Dims, prior: str, prior_params: dict[str, Any]):
        super().__init__()
        self.model = module if isinstance(module, nn.Module) else None
        self.z_shape = None if z_shape is None else _as_shape(z_shape, "adapter z_shape")
        self.latent = SphericalLatent(center=center, spherize=spherize, radius=radius, dims=dims)
        # Fail now on an unknown prior or parameter; a private generator keeps the global RNG untouched.
        get_prior(prior).sample((1, 1), generator=torch.Generator(), **prior_params)
        self.prior = prior
        self.prior_params = dict(prior_params)

    def _check_latent(self, z: Tensor, argument: str = "z") -> Tensor:
        if not isinstance(z, Tensor):
            raise ValueError(f"{argument} must be a torch.Tensor, got {type(z).__name__}")
        if not z.is_floating_point():
            raise ValueError(f"{argument} must be a floating-point tensor, got dtype {z.dtype}")
        if z.dim() >= 1 and z.shape[0] == 0:
            raise ValueError(f"{argument} is an empty batch (shape {list(z.shape)}); pass at least one latent")
        if self.z_shape is not None and tuple(z.shape[1:]) != self.z_shape:
            raise ValueError(
                f"{argument} must have shape [N, {', '.join(map(str, self.z_shape))}] for this model, "
                f"got {list(z.shape)}"
            )
        return z

    def _default_device_dtype(self) -> tuple[torch.device, torch.dtype]:
        for tensor in self.parameters():
            if tensor.is_floating_point():
                return tensor.device, tensor.dtype
        return torch.device("cpu"), torch.get_default_dtype()

    def latents(self, n: int, prior: str | None = None, generator: torch.Generator | None = None,
                **prior_params: Any) -> Tensor:
        """Draw n latents from a prior (default: the wrapper's) and put them on the sphere.

        Vectors that centerize to zero (possible for discrete priors in low d) are redrawn.
        """
        _check_count(n, "n")
        if self.z_shape is None:
            raise ValueError("the latent shape is unknown until the first encode(); pass z_shape= to the wrapper")
        name = self.prior if prior is None else prior
        params = {**self.prior_params, **prior_params} if prior is None else prior_params
        device, dtype = self._default_device_dtype()
        draw = get_prior(name)
        z = draw.sample((n, *self.z_shape), generator=generator, device=device, dtype=dtype, **params)
        if self.latent.spherize:
            z = self._redraw_degenerate(z, draw, generator, params)
        return self.latent(z)

    def _redraw_degenerate(self, z: Tensor, draw, generator, params) -> Tensor:
        reduce = vector_dims(z, self.latent.dims)
        for _ in range(_MAX_REDRAWS):
            probe = centerize(z, self.latent.dims) if self.latent.center else z
            bad = (torch.linalg.vector_norm(probe, dim=reduce, keepdim=True) == 0).flatten(1).any(dim=1)
            if not bool(bad.any()):
                return z
            fresh = draw.sample(z.shape, generator=generator, device=z.device, dtype=z.dtype, **params)
            z = torch.where(bad.view(-1, *([1] * (z.dim() - 1))), fresh, z)
        raise ValueError(
            f"prior {draw.name!r} with parameters {params} keeps producing latent vectors that are zero after "
            f"centerize (d={group_size(z.shape, self.latent.dims)}); use a larger latent or another prior"
        )

    def extra_repr(self) -> str:
        return f"z_shape={self.z_shape}, prior={self.prior!r}"


class SphericalGenerator(_SphericalBase):
    """A generator whose latents are centerized and spherized before they enter the model."""

    def __init__(self, adapter: GeneratorAdapter, center: bool = True, spherize: bool = True,
                 radius: float | None = None, dims: Dims = None, prior: str = "normal",
                 prior_params: dict[str, Any] | None = None):
        super().__init__(adapter.module, adapter.z_shape, radius if radius is not None else adapter.radius,
                         center, spherize, dims, prior, prior_params or {})
        self.adapter = adapter

    def adapt(self, z: Tensor) -> Tensor:
        """The latents the model receives for raw latents `z`."""
        return self.latent(self._check_latent(z))

    def forward(self, z: Tensor, **model_kwargs: Any) -> Tensor:
        return self.adapter.generate(self.adapt(z), **model_kwargs)

    def sample(self, n: int, prior: str | None = None, generator: torch.Generator | None = None, *,
               model_kwargs: dict[str, Any] | None = None, batch_size: int = SAMPLE_BATCH,
               **prior_params: Any) -> Tensor:
        """Generate n images from latents drawn from any registered prior, `batch_size` at a time.

        All n latents are drawn first, so a deterministic model's images do not depend on batch_size
        (beyond floating-point rounding that differs between batch shapes).
        The generator seeds the prior draw, and the model's own sampling too when its adapter accepts
        one (a stochastic sampler then draws its noise batch by batch).
        """
        _check_count(batch_size, "batch_size")
        model_kwargs = dict(model_kwargs or {})
        z = self.latents(n, prior, generator, **prior_params)
        if generator is not None and self.adapter.accepts_generator:
            model_kwargs.setdefault("generator", generator)
        return _in_batches(lambda chunk: self.adapter.generate(chunk, **model_kwargs), z, batch_size)

    def interpolate(self, z0: Tensor, z1: Tensor, steps: int, **model_kwargs: Any) -> Tensor:
        """Images along the great circle between the adapted z0 and z1 (both ends included)."""
        if not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an int >= 2, got {steps!r}")
        ends = [self.adapt(z.reshape(1, *z.shape[-len(self.z_shape):])) for z in (z0, z1)]
        t = torch.linspace(0, 1, steps, device=ends[0].device, dtype=ends[0].dtype)
        path = slerp(ends[0].expand(steps, *self.z_shape), ends[1].expand(steps, *self.z_shape), t,
                     self.latent.dims)
        return self.adapter.generate(path, **model_kwargs)


class SphericalAutoencoder(_SphericalBase):
    """An autoencoder whose codes live on a sphere: the spherical autoencoder of eqs. (10)-(11)."""

    def __init__(self, adapter: AutoencoderAdapter, center: bool = True, spherize: bool = True,
                 radius: float | None = None, dims: Dims = None, loss: nn.Module | None = None,
                 prior: str = "normal", prior_params: dict[str, Any] | None = None):
        super().__init__(adapter.module, adapter.z_shape, radius if radius is not None else adapter.radius,
                         center, spherize, dims, prior, prior_params or {})
        self.adapter = adapter
        self.loss_fn = loss if loss is not None else SAELoss()

    def _check_images(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise ValueError(f"x must be a floating-point torch.Tensor of images, got {type(x).__name__}"
                             + (f" of dtype {x.dtype}" if isinstance(x, Tensor) else ""))
        if x.dim() >= 1 and x.shape[0] == 0:
            raise ValueError(f"x is an empty batch (shape {list(x.shape)}); pass at least one image")
        if self.adapter.input_range is not None:
            low, high = self.adapter.input_range
            tolerance = 1e-3 * (high - low)
            x_min, x_max = float(x.min()), float(x.max())
            if x_min < low - tolerance or x_max > high + tolerance or math.isnan(x_min + x_max):
                raise ValueError(
                    f"x must be images in [{low:g}, {high:g}], got values in [{x_min:g}, {x_max:g}] "
                    "(scale 8-bit images with x / 127.5 - 1)"
                )

    def encode(self, x: Tensor, check: bool = True) -> Tensor:
        """Codes of images `x`, centerized and spherized.

        check=False skips the value checks (input range, NaN/zero codes), which read back from the device
        and cost a GPU sync; training loops use it and see a bad batch as a NaN loss instead.
        """
        if check:
            self._check_images(x)
        z = self.adapter.encode(x)
        if self.z_shape is None:
            self.z_shape = tuple(z.shape[1:])
        return self.latent(self._check_latent(z, "encoder output"), check=check)

    def decode(self, z: Tensor) -> Tensor:
        """Images for codes `z` (expected on the sphere: use encode() or latents())."""
        return self.adapter.decode(self._check_latent(z))

    def forward(self, x: Tensor, check: bool = True) -> AutoencoderOutput:
        z = self.encode(x, check)
        return AutoencoderOutput(self.adapter.decode(z), z)

    def loss(self, x: Tensor) -> Tensor:
        """Reconstruction-only loss of eq. (11): the drop-in replacement for a VAE loss."""
        return self.loss_fn(x, self(x).reconstruction)

    def sample(self, n: int, prior: str | None = None, generator: torch.Generator | None = None, *,
               batch_size: int = SAMPLE_BATCH, **prior_params: Any) -> Tensor:
        """Decode n latents drawn from any registered prior and put on the sphere, `batch_size` at a time."""
        _check_count(batch_size, "batch_size")
        return _in_batches(self.adapter.decode, self.latents(n, prior, generator, **prior_params), batch_size)


def wrap_generator(model: Any, spherize: bool = True, center: bool = True, radius: float | None = None,
                   prior: str = "normal", *, z_shape: Sequence[int] | int | None = None, dims: Dims = None,
                   options: dict[str, Any] | None = None, **prior_params: Any) -> SphericalGenerator:
    """Wrap any generator a plugin recognizes so its latents are centerized and spherized.

    radius=None takes the adapter's (sqrt(d) for models trained on N(0, I) latents).
    `options` go to the adapter hook; `prior_params` set the default prior's parameters.
    """
    if isinstance(model, SphericalGenerator):
        raise ValueError("model is already a SphericalGenerator; wrap the raw model instead")
    adapter = plugins.adapt_generator(model, _options(z_shape, options))
    if adapter is None:
        raise UnknownAdapterError(model, "generator", plugins.plugin_names())
    return SphericalGenerator(adapter, center=center, spherize=spherize, radius=radius, dims=dims,
                              prior=prior, prior_params=prior_params)


def wrap_autoencoder(model: Any, spherize: bool = True, center: bool = True, radius: float | None = None,
                     *, z_shape: Sequence[int] | int | None = None, dims: Dims = None,
                     options: dict[str, Any] | None = None, loss: nn.Module | None = None,
                     prior: str = "normal", **prior_params: Any) -> SphericalAutoencoder:
    """Wrap an autoencoder (a module with encode/decode, or an (encoder, decoder) pair, or any model
    a plugin recognizes) into a spherical autoencoder."""
    if isinstance(model, SphericalAutoencoder):
        raise ValueError("model is already a SphericalAutoencoder; wrap the raw model instead")
    adapter = plugins.adapt_autoencoder(model, _options(z_shape, options))
    if adapter is None:
        raise UnknownAdapterError(model, "autoencoder", plugins.plugin_names())
    return SphericalAutoencoder(adapter, center=center, spherize=spherize, radius=radius, dims=dims,
                                loss=loss, prior=prior, prior_params=prior_params)
