"""wrap_generator / wrap_autoencoder and the spherical wrappers they return."""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from sphere_plugins import plugins
from sphere_plugins.adapter import AutoencoderAdapter, GeneratorAdapter
from sphere_plugins.errors import UnknownAdapterError
from sphere_plugins.fitted_prior import FittedSpherePrior, fit_sphere_prior
from sphere_plugins.latent import Dims, SphericalLatent, group_size, slerp
from sphere_plugins.loss import SAELoss
from sphere_plugins.priors import get_prior, redraw_degenerate
from sphere_plugins.schemes import load_model, save_model



def module_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where and in what float type `module` computes: its first floating-point parameter's, else the CPU and
    torch's default dtype (latents are drawn there so they need no copy)."""
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


# The prior name that draws from a spherical autoencoder's fit_prior() result instead of the registry.
FITTED = "fitted"


# sample() runs the model on at most this many latents at once, so a large n never allocates every
# sample's intermediate activations together.
SAMPLE_BATCH = 1024


def _check_count(n: Any, argument: str) -> None:
    if type(n) is not int or n < 1:  # type(), not isinstance: True is an int to Python, not a count
        raise ValueError(f"{argument} must be a positive int, got {n!r}")


def grad_mode(grad: Any) -> contextlib.AbstractContextManager:
    """torch.no_grad() unless grad=True: what sample/latents/interpolate run under. Their results are end
    products, and a graph through a generator keeps every activation alive (about 3x the memory)."""
    if not isinstance(grad, bool):
        raise ValueError(f"grad must be True or False, got {grad!r}")
    return contextlib.nullcontext() if grad else torch.no_grad()


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

    def latents(self, n: int, prior: str | None = None, generator: torch.Generator | None = None, *,
                grad: bool = False, **prior_params: Any) -> Tensor:
        """Draw n latents from a prior (default: the wrapper's) and put them on the sphere.

        Vectors that centerize to zero (possible for discrete priors in low d) are redrawn.
        prior="fitted" draws from a spherical autoencoder's fit_prior() result. Runs without autograd unless
        grad=True (gradients to a fitted prior's parameters).
        """
        with grad_mode(grad):
            return self._latents(n, prior, generator, prior_params)

    def _latents(self, n: int, prior: str | None, generator: torch.Generator | None,
                 prior_params: dict[str, Any]) -> Tensor:
        _check_count(n, "n")
        if self.z_shape is None:
            raise ValueError("the latent shape is unknown until the first encode(); pass z_shape= to the wrapper")
        name = self.prior if prior is None else prior
        params = {**self.prior_params, **prior_params} if prior is None else prior_params
        device, dtype = module_device_dtype(self)
        if name == FITTED:
            return self.latent(self._fitted_draws(n, generator, params, device, dtype))
        draw = get_prior(name)
        z = draw.sample((n, *self.z_shape), generator=generator, device=device, dtype=dtype, **params)
        if self.latent.spherize:
            z = redraw_degenerate(
                z, lambda k: draw.sample((k, *self.z_shape), generator=generator, device=device, dtype=dtype, **params),
                self.latent.dims, self.latent.center, what=f"prior {draw.name!r} with parameters {params}")
        return self.latent(z)

    def _fitted_draws(self, n: int, generator: torch.Generator | None, params: dict[str, Any],
                      device: torch.device, dtype: torch.dtype) -> Tensor:
        fitted = getattr(self, "fitted_prior", None)
        if fitted is None:
            raise ValueError(f"prior {FITTED!r} needs a prior fitted to the codes: call "
                             "fit_prior(images or codes, kind='vmf' or 'gmm', components=K) on the spherical "
                             "autoencoder first")
        if params:
            raise ValueError(f"prior {FITTED!r} takes no parameters, got {sorted(params)}")
        return fitted.sample(n, generator, device=device, dtype=dtype)

    def extra_repr(self) -> str:
        noise = getattr(self, "latent_noise", 0.0)
        return f"z_shape={self.z_shape}, prior={self.prior!r}" + (f", latent_noise={noise:g}" if noise else "")

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the wrapper's settings (JSON) and its model (through its plugin) to `folder`.

        `sphere_plugins.load_model(folder)` or `from_pretrained(folder)` returns it with identical outputs.
        """
        save_model(self, folder)  # the built-in "saved" scheme writes wrappers
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **load_options: Any) -> _SphericalBase:
        """The wrapper save_pretrained wrote to `folder`; `load_options` go to the model's loader."""
        wrapper = load_model(f"saved:{os.fspath(folder)}", **load_options)
        if not isinstance(wrapper, cls):
            raise ValueError(f"{str(folder)!r} holds a {type(wrapper).__name__}, not a {cls.__name__}")
        return wrapper

    def __reduce_ex__(self, protocol: int):
        raise TypeError(f"a {type(self).__name__} cannot be pickled (torch.save): its adapter holds functions of "
                        "the model. Use wrapper.save_pretrained(DIR) and sphere_plugins.load_model(DIR)")

    def __deepcopy__(self, memo: dict) -> _SphericalBase:
        return copy._reconstruct(self, memo, *object.__reduce_ex__(self, 4))


class SphericalGenerator(_SphericalBase):
    """A generator whose latents are centerized and spherized before they enter the model."""

    def __init__(self, adapter: GeneratorAdapter, *, center: bool = True, spherize: bool = True,
                 radius: float | None = None, dims: Dims = None, prior: str = "normal",
                 prior_params: dict[str, Any] | None = None):
        super().__init__(adapter.module, adapter.z_shape, radius if radius is not None else adapter.radius,
                         center, spherize, dims, prior, prior_params or {})
        self.adapter = adapter

    def adapt(self, z: Tensor) -> Tensor:
        """The latents the model receives for raw latents `z`."""
        return self.latent(self._check_latent(z))

    def extra_repr(self) -> str:
        low, high = self.adapter.output_range
        return f"{super().extra_repr()}, latent enters at: {self.adapter.latent_entry}, output range [{low:g}, {high:g}]"

    def forward(self, z: Tensor, **model_kwargs: Any) -> Tensor:
        return self.adapter.generate(self.adapt(z), **model_kwargs)

    def sample(self, n: int, prior: str | None = None, generator: torch.Generator | None = None, *,
               model_kwargs: dict[str, Any] | None = None, batch_size: int = SAMPLE_BATCH, grad: bool = False,
               **prior_params: Any) -> Tensor:
        """Generate n images from latents drawn from any registered prior, `batch_size` at a time.

        All n latents are drawn first, so a deterministic model's images do not depend on batch_size
        (beyond floating-point rounding that differs between batch shapes). The generator seeds the
        prior draw, and the model's own sampling too when its adapter accepts one (diffusers' per-step
        noise, StyleGAN2's noise_mode='random'; a stochastic sampler then draws its noise batch by
        batch): one seed reproduces everything. A generator given only in model_kwargs seeds the prior
        draw as well. Runs without autograd (the images carry no graph) unless grad=True, for a loss that
        backpropagates through the samples.
        """
        _check_count(batch_size, "batch_size")
        model_kwargs = dict(model_kwargs or {})
        if generator is None and isinstance(model_kwargs.get("generator"), torch.Generator):
            generator = model_kwargs["generator"]
        with grad_mode(grad):
            z = self._latents(n, prior, generator, prior_params)
            if generator is not None and self.adapter.accepts_generator:
                model_kwargs.setdefault("generator", generator)
            return _in_batches(lambda chunk: self.adapter.generate(chunk, **model_kwargs), z, batch_size)

    def interpolate(self, z0: Tensor, z1: Tensor, steps: int, *, grad: bool = False, **model_kwargs: Any) -> Tensor:
        """Images along the great circle between the adapted z0 and z1 (both ends included).

        z0 and z1 are one latent each ([d] or [1, d]) or N pairs [N, d]; the result holds `steps` images per
        pair, pair by pair ([N * steps, C, H, W]). Without autograd unless grad=True.
        """
        if not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an int >= 2, got {steps!r}")
        with grad_mode(grad):
            return self._interpolate(z0, z1, steps, model_kwargs)

    def _interpolate(self, z0: Tensor, z1: Tensor, steps: int, model_kwargs: dict[str, Any]) -> Tensor:
        ends = [self.adapt(self._endpoint(z, name)) for z, name in ((z0, "z0"), (z1, "z1"))]
        if ends[0].shape[0] != ends[1].shape[0]:
            raise ValueError(f"z0 and z1 must hold as many latents, got {ends[0].shape[0]} and {ends[1].shape[0]}")
        pairs = ends[0].shape[0]
        t = torch.linspace(0, 1, steps, device=ends[0].device, dtype=ends[0].dtype).repeat(pairs)
        a, b = (end.repeat_interleave(steps, dim=0) for end in ends)
        return self.adapter.generate(slerp(a, b, t, self.latent.dims), **model_kwargs)

    def _endpoint(self, z: Tensor, name: str) -> Tensor:
        if isinstance(z, Tensor) and self.z_shape is not None and tuple(z.shape) == self.z_shape:
            return z.unsqueeze(0)
        return self._check_latent(z, name)


class SphericalAutoencoder(_SphericalBase):
    """An autoencoder whose codes live on a sphere: the spherical autoencoder of eqs. (10)-(11)."""

    def __init__(self, adapter: AutoencoderAdapter, *, center: bool = True, spherize: bool = True,
                 radius: float | None = None, dims: Dims = None, prior: str = "normal",
                 prior_params: dict[str, Any] | None = None, loss: nn.Module | None = None, latent_noise: float = 0.0):
        super().__init__(adapter.module, adapter.z_shape, radius if radius is not None else adapter.radius,
                         center, spherize, dims, prior, prior_params or {})
        self.adapter = adapter
        self.loss_fn = loss if loss is not None else SAELoss()
        self.latent_noise = check_latent_noise(latent_noise)
        self.fitted_prior: FittedSpherePrior | None = None
        self.register_load_state_dict_pre_hook(_restore_fitted_prior)

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

    def forward(self, x: Tensor, check: bool = True, latent_noise: float | None = None) -> AutoencoderOutput:
        """Reconstruct `x`; `latent` is the clean code.

        In training mode (module.train()) with latent noise (`latent_noise`, None: the wrapper's own) the
        decoder sees perturb(code) instead of the code; in eval mode it never does.
        """
        z = self.encode(x, check)
        sigma = self.latent_noise if latent_noise is None else check_latent_noise(latent_noise)
        decoded = self.perturb(z, sigma) if self.training and sigma > 0 else z
        return AutoencoderOutput(self.adapter.decode(decoded), z)

    def perturb(self, z: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
        """Codes moved by Gaussian noise on the sphere: the wrapper's constraint applied to z + noise.

        Each noise vector has i.i.d. entries of std sigma * radius / sqrt(d), so its expected norm is
        sigma * radius whatever d is (the angle it turns a code by is about atan(sigma)). Projecting
        through the wrapper's own constraint keeps the result on the sphere and, for a centering wrapper,
        in the same zero-mean subspace as the codes. Gradients flow to z; the noise comes from
        `generator` or torch's global RNG (which the training loop seeds and checkpoints).
        """
        sigma = check_latent_noise(sigma, "sigma")
        if sigma == 0:
            return z
        std = sigma * self.latent.radius_for(z) / math.sqrt(group_size(z.shape, self.latent.dims))
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        return self.latent(z + std * noise, check=False)

    def loss(self, x: Tensor) -> Tensor:
        """Reconstruction-only loss of eq. (11): the drop-in replacement for a VAE loss.

        With latent_noise > 0 and the wrapper in training mode, the reconstruction comes from the
        perturbed code (see forward); the target is always the clean `x`.
        """
        return self.loss_fn(x, self(x).reconstruction)

    def sample(self, n: int, prior: str | None = None, generator: torch.Generator | None = None, *,
               batch_size: int = SAMPLE_BATCH, grad: bool = False, **prior_params: Any) -> Tensor:
        """Decode n latents drawn from any registered prior (or "fitted", see fit_prior) and put on the
        sphere, `batch_size` at a time; without autograd unless grad=True."""
        _check_count(batch_size, "batch_size")
        with grad_mode(grad):
            return _in_batches(self.adapter.decode, self._latents(n, prior, generator, prior_params), batch_size)

    def fit_prior(self, x: Tensor, kind: str = "vmf", components: int = 1, *, codes: bool | None = None,
                  batch_size: int = 256, seed: int = 0, max_iter: int = 100, covariance: str = "full",
                  reg_covar: float = 1e-6) -> FittedSpherePrior:
        """Fit a mixture to the codes of images `x` (or to codes `x`) and keep it as `fitted_prior`, so that
        sample(n, prior="fitted") and latents(n, prior="fitted") draw from it.

        kind "vmf": a mixture of von Mises-Fisher distributions on the sphere; "gmm": a Gaussian mixture whose
        draws are centerized and spherized like any prior's. codes=None takes `x` as codes when its shape is
        [N, *z_shape], as images otherwise (encoded in eval mode, `batch_size` at a time). The prior is
        part of state_dict(), so load_state_dict() restores it. See sphere_plugins.fitted_prior.
        """
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor of images or codes, got {type(x).__name__}")
        if codes is None:
            codes = self.z_shape is not None and tuple(x.shape[1:]) == self.z_shape
        if codes:
            if self.z_shape is None or tuple(x.shape[1:]) != self.z_shape:
                expected = "unknown until the first encode()" if self.z_shape is None else \
                    f"[N, {', '.join(map(str, self.z_shape))}]"
                raise ValueError(f"codes must have shape {expected}, got {list(x.shape)}")
            bad = (~torch.isfinite(x.flatten(1))).any(dim=1).nonzero().flatten().tolist()
            if bad:
                raise ValueError(f"codes must be finite; samples {bad[:8]}{' ...' if len(bad) > 8 else ''} "
                                 "hold NaN or Inf")
            z = self.latent(x.detach())
        else:
            z = self._encode_all(x, batch_size)
        whole = self.latent.center and group_size((1, *self.z_shape), self.latent.dims) == z[0].numel()
        fitted = fit_sphere_prior(z, kind, components, subspace=whole, seed=seed, max_iter=max_iter,
                                  covariance=covariance, reg_covar=reg_covar)
        self.fitted_prior = fitted.to(z.device)
        return self.fitted_prior

    def _encode_all(self, x: Tensor, batch_size: int) -> Tensor:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return torch.cat([self.encode(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
        finally:
            self.train(training)


def _restore_fitted_prior(module: SphericalAutoencoder, state_dict: dict[str, Tensor], prefix: str,
                          local_metadata: dict, strict: bool, *_: Any) -> None:
    """load_state_dict pre-hook: make `fitted_prior` match the state's (built from it, or dropped under strict)."""
    key = prefix + "fitted_prior."
    state = {k[len(key):]: v for k, v in state_dict.items() if k.startswith(key)}
    if not state:
        if strict:
            module.fitted_prior = None
        return
    config = FittedSpherePrior.config_from_state(state)
    if module.fitted_prior is None or module.fitted_prior.config() != config:
        device = next(iter(state.values())).device
        module.fitted_prior = FittedSpherePrior(**config).to(device)


def check_latent_noise(sigma: Any, argument: str = "latent_noise") -> float:
    """`sigma` (a noise std relative to the radius, or another weight) as a float; ValueError unless finite >= 0."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"{argument} must be a finite number >= 0, got {sigma!r}")
    return float(sigma)


def wrap_generator(model: Any, *, center: bool = True, spherize: bool = True, radius: float | None = None,
                   dims: Dims = None, prior: str = "normal", z_shape: Sequence[int] | int | None = None,
                   options: dict[str, Any] | None = None, **prior_params: Any) -> SphericalGenerator:
    """Wrap any generator a plugin recognizes so its latents are centerized and spherized.

    Everything after the model is by keyword. radius=None takes the adapter's (sqrt(d) for models trained
    on N(0, I) latents). `options` go to the adapter hook; `prior_params` set the default prior's parameters.
    """
    if isinstance(model, SphericalGenerator):
        raise ValueError("model is already a SphericalGenerator; wrap the raw model instead")
    adapter = plugins.adapt_generator(model, _options(z_shape, options))
    if adapter is None:
        raise UnknownAdapterError(model, "generator", plugins.plugin_names())
    wrapper = SphericalGenerator(adapter, center=center, spherize=spherize, radius=radius, dims=dims,
                                 prior=prior, prior_params=prior_params)
    return _remember_source(wrapper, model, options)


def wrap_autoencoder(model: Any, *, center: bool = True, spherize: bool = True, radius: float | None = None,
                     dims: Dims = None, prior: str = "normal", z_shape: Sequence[int] | int | None = None,
                     options: dict[str, Any] | None = None, loss: nn.Module | None = None,
                     latent_noise: float = 0.0, **prior_params: Any) -> SphericalAutoencoder:
    """Wrap an autoencoder (a module with encode/decode, or an (encoder, decoder) pair, or any model
    a plugin recognizes) into a spherical autoencoder. Everything after the model is by keyword, in
    wrap_generator's order.

    latent_noise=SIGMA (off by default) trains the decoder on codes perturbed on the sphere (see
    SphericalAutoencoder.perturb), so that it also decodes the space between codes where prior draws land.
    """
    if isinstance(model, SphericalAutoencoder):
        raise ValueError("model is already a SphericalAutoencoder; wrap the raw model instead")
    adapter = plugins.adapt_autoencoder(model, _options(z_shape, options))
    if adapter is None:
        raise UnknownAdapterError(model, "autoencoder", plugins.plugin_names())
    wrapper = SphericalAutoencoder(adapter, center=center, spherize=spherize, radius=radius, dims=dims,
                                   prior=prior, prior_params=prior_params, loss=loss, latent_noise=latent_noise)
    return _remember_source(wrapper, model, options)


def _remember_source(wrapper: _SphericalBase, model: Any, options: dict[str, Any] | None) -> _SphericalBase:
    """Keep what was wrapped and the adapter options, for save_pretrained (not as a submodule: no new state)."""
    wrapper.__dict__["_source"] = model
    wrapper.__dict__["adapter_options"] = dict(options or {})
    return wrapper
