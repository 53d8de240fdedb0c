"""Diffusion pipelines as generators whose initial noise is given (and so can sit on a sphere).

Pipelines whose __call__ accepts `latents=` get the noise that way. DDPM, DDIM, PNDM and LDM pipelines
draw their own noise, so their loop is run here with the pipeline's public parts: `scheduler.set_timesteps`,
`scheduler.scale_model_input`, `pipe.unet`, `scheduler.step` (and `pipe.vqvae.decode` for LDM), starting
from `z * scheduler.init_noise_sigma`. Images come back in [-1, 1], NCHW.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sphere_plugins.adapter import GeneratorAdapter, check_adapter_options

from sphere_diffusers.recognize import (
    accepts_latents,
    loop_pipeline_class,
    unsupported_message,
)

LOOP_OPTIONS = ("z_shape", "num_inference_steps", "eta")
LATENTS_OPTIONS = ("z_shape", "num_inference_steps")


def _call_defaults(pipe: Any) -> dict[str, Any]:
    """The defaults of the pipeline's own __call__ parameters."""
    return {name: p.default for name, p in inspect.signature(type(pipe).__call__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _accepts(function: Any, argument: str) -> bool:
    return argument in inspect.signature(function).parameters


def _denoiser(pipe: Any) -> Any:
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else getattr(pipe, "transformer", None)


def noise_shape(pipe: Any, options: dict[str, Any]) -> tuple[int, ...]:
    """Per-sample shape of the initial noise: z_shape, or the denoiser's (in_channels, sample_size)."""
    denoiser = _denoiser(pipe)
    config = getattr(denoiser, "config", None)
    channels = None if config is None else config.get("in_channels")
    if options.get("z_shape") is not None:
        shape = tuple(options["z_shape"])
        if channels is not None and shape[0] != channels:
            raise ValueError(f"z_shape must start with the denoiser's {channels} input channels, got {shape!r}")
        return shape
    size = None if config is None else config.get("sample_size")
    if channels is None or size is None:
        raise ValueError(f"cannot tell the noise shape of {type(pipe).__name__} from its unet/transformer config; "
                         "pass z_shape=(C, H, W) to wrap_generator")
    return (int(channels), *((size, size) if isinstance(size, int) else tuple(size)))


def pipeline_modules(pipe: Any) -> nn.ModuleDict:
    """The pipeline's torch components in one module, so the wrapper moves and lists them."""
    return nn.ModuleDict({name: part for name, part in pipe.components.items() if isinstance(part, nn.Module)})


def to_signed_images(images: Any) -> Tensor:
    """A pipeline's output images (tensor NCHW or array NHWC in [0, 1]) as a tensor NCHW in [-1, 1]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images).permute(0, 3, 1, 2)
    if not isinstance(images, Tensor):
        raise ValueError(f"the pipeline returned images of type {type(images).__name__}; expected a tensor "
                         "(output_type='pt') or a numpy array")
    return images * 2 - 1


class DenoisingLoop:
    """Runs an unconditional DDPM/DDIM/PNDM/LDM pipeline's loop from the noise it is given."""

    def __init__(self, pipe: Any, num_inference_steps: int | None = None, eta: float | None = None):
        self.pipe = pipe
        defaults = _call_defaults(pipe)
        train_steps = pipe.scheduler.config.get("num_train_timesteps")
        steps = defaults.get("num_inference_steps")
        if steps is not None and train_steps is not None:
            steps = min(steps, train_steps)  # the pipeline default may exceed a small scheduler's range
        self.num_inference_steps = num_inference_steps if num_inference_steps is not None else steps
        self.eta = eta if eta is not None else defaults.get("eta")
        self.latent_decoder = getattr(pipe, "vqvae", None)

    def _step_kwargs(self, eta: float | None, generator: torch.Generator | None) -> dict[str, Any]:
        step = self.pipe.scheduler.step
        kwargs: dict[str, Any] = {}
        if eta is not None:
            if not _accepts(step, "eta"):
                raise ValueError(f"eta={eta!r} applies to schedulers whose step() takes eta (e.g. DDIMScheduler); "
                                 f"{type(self.pipe.scheduler).__name__} does not")
            kwargs["eta"] = eta
        if generator is not None and _accepts(step, "generator"):
            kwargs["generator"] = generator
        return kwargs

    @torch.no_grad()
    def __call__(self, z: Tensor, num_inference_steps: int | None = None, eta: float | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Denoise from initial noise `z`; `generator` drives the scheduler's own noise (DDPM, DDIM eta > 0).

        Runs without autograd, as the pipelines' own __call__ does.
        """
        scheduler, unet = self.pipe.scheduler, self.pipe.unet
        steps = self.num_inference_steps if num_inference_steps is None else num_inference_steps
        step_kwargs = self._step_kwargs(self.eta if eta is None else eta, generator)
        if _accepts(scheduler.set_timesteps, "device"):
            scheduler.set_timesteps(steps, device=z.device)
        else:
            scheduler.set_timesteps(steps)
        sample = z * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            prediction = unet(scheduler.scale_model_input(sample, t), t).sample
            sample = scheduler.step(prediction, t, sample, **step_kwargs).prev_sample
        if self.latent_decoder is not None:
            sample = self.latent_decoder.decode(sample / self.latent_decoder.config.scaling_factor).sample
        return sample.clamp(-1, 1)


class LatentsCall:
    """Calls a pipeline that accepts `latents=` with the given noise and returns images in [-1, 1]."""

    def __init__(self, pipe: Any, num_inference_steps: int | None = None):
        self.pipe = pipe
        self.defaults = {} if num_inference_steps is None else {"num_inference_steps": num_inference_steps}
        self.takes_batch_size = "batch_size" in inspect.signature(type(pipe).__call__).parameters

    def __call__(self, z: Tensor, **pipeline_kwargs: Any) -> Tensor:
        """Run the pipeline from noise `z`; keyword arguments go to the pipeline (prompt, guidance, ...)."""
        kwargs = {**self.defaults, **pipeline_kwargs}
        if self.takes_batch_size:
            kwargs.setdefault("batch_size", z.shape[0])
        output = self.pipe(latents=z, output_type="pt", return_dict=True, **kwargs)
        return to_signed_images(output.images)


def pipeline_adapter(pipe: Any, options: dict[str, Any]) -> GeneratorAdapter:
    """Describe a diffusion pipeline as a generator whose initial noise comes from the wrapper."""
    name = type(pipe).__name__
    if accepts_latents(type(pipe)):
        check_adapter_options(options, LATENTS_OPTIONS, f"the {name} pipeline")
        generate = LatentsCall(pipe, options.get("num_inference_steps"))
        entry = "initial noise, passed as latents= (the pipeline multiplies it by init_noise_sigma)"
    elif loop_pipeline_class(type(pipe)) is not None:
        check_adapter_options(options, LOOP_OPTIONS, f"the {name} pipeline")
        generate = DenoisingLoop(pipe, options.get("num_inference_steps"), options.get("eta"))
        entry = "initial noise of the denoising loop (times scheduler.init_noise_sigma)"
    else:
        raise ValueError(unsupported_message(f"the pipeline {name}"))
    return GeneratorAdapter(z_shape=noise_shape(pipe, options), generate=generate, module=pipeline_modules(pipe),
                            name=name, latent_entry=entry, accepts_generator=True)
