"""Images from seeds: one seed, one image, whatever the batch size (what `sphere-plugins sample` and
`interpolate` run), and the files they write (PNGs, a grid, a GIF)."""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sphere_plugins.data import check_image_tensor, save_image_grid, to_uint8
from sphere_plugins.files import atomic_path
from sphere_plugins.wrap import SphericalAutoencoder, SphericalGenerator, module_device_dtype

Wrapper = SphericalGenerator | SphericalAutoencoder
MAX_SEED = 2**32 - 1  # the seeds numpy's RandomState takes, as NVIDIA's scripts use them


def seed_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The torch.Generator seed `seed` (an int in 0..MAX_SEED) stands for: every draw of one image comes from it."""
    value = operator.index(seed) if hasattr(seed, "__index__") and not isinstance(seed, bool) else -1
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"seed must be an int in 0..{MAX_SEED}, got {seed!r}")
    return torch.Generator(device=device).manual_seed(value)


# How a seed becomes a latent: "torch" draws the prior from torch.Generator().manual_seed(seed); "nvlabs" is
# NVIDIA's generate.py: z = np.random.RandomState(seed).randn(1, z_dim), N(0, I) in float64 (cast to the model's dtype).
SEED_CONVENTIONS = ("torch", "nvlabs")


def seed_latents(wrapper: Wrapper, seeds: Sequence[int], prior: str | None = None, convention: str = "torch",
                 **prior_params: Any) -> Tensor:
    """One latent per seed, on the wrapper's sphere: latent i depends on seeds[i] alone.

    convention="nvlabs" draws each z as NVIDIA's generate.py does (np.random.RandomState(seed).randn), N(0, I)
    only; with a wrapper made with center=False, spherize=False the model then sees NVIDIA's z for that seed.
    """
    if convention == "torch":
        return torch.cat([wrapper.latents(1, prior, seed_generator(seed), **prior_params) for seed in seeds])
    if convention != "nvlabs":
        raise ValueError(f"convention must be one of {', '.join(SEED_CONVENTIONS)}, got {convention!r}")
    name = wrapper.prior if prior is None else prior
    params = {**wrapper.prior_params, **prior_params} if prior is None else prior_params
    if name != "normal" or any(params.get(k, v) != v for k, v in (("mean", 0.0), ("std", 1.0))) \
            or set(params) - {"mean", "std"}:
        raise ValueError(f"seed convention 'nvlabs' draws N(0, I) latents as NVIDIA's generate.py does; the prior "
                         f"{name!r} with parameters {params} needs convention 'torch'")
    bad = [seed for seed in seeds if not 0 <= seed <= MAX_SEED]
    if bad:
        raise ValueError(f"seed convention 'nvlabs' takes seeds in 0..{MAX_SEED} (numpy's RandomState), got {bad[:4]}")
    if wrapper.z_shape is None:
        raise ValueError("the latent shape is unknown until the first encode(); pass z_shape= to the wrapper")
    device, dtype = module_device_dtype(wrapper)
    z = np.stack([np.random.RandomState(seed).randn(1, *wrapper.z_shape)[0] for seed in seeds])
    with torch.no_grad():
        return wrapper.latent(torch.from_numpy(z).to(device=device, dtype=dtype))


def _decode(wrapper: Wrapper, z: Tensor, generator: torch.Generator | None, model_kwargs: dict[str, Any]) -> Tensor:
    if isinstance(wrapper, SphericalAutoencoder):
        return wrapper.decode(z)
    kwargs = dict(model_kwargs)
    if generator is not None and wrapper.adapter.accepts_generator:
        kwargs.setdefault("generator", generator)
    return wrapper.adapter.generate(z, **kwargs)


def _own_noise(wrapper: Wrapper, model_kwargs: dict[str, Any]) -> bool:
    return isinstance(wrapper, SphericalGenerator) and wrapper.adapter.draws_noise(model_kwargs)


@torch.no_grad()
def seed_images(wrapper: Wrapper, seeds: Sequence[int], prior: str | None = None,
                model_kwargs: dict[str, Any] | None = None, convention: str = "torch", **prior_params: Any) -> Tensor:
    """Images [len(seeds), C, H, W], image i made from seeds[i] alone: its latent (see seed_latents) and, for a
    model with randomness of its own (diffusion noise, StyleGAN2's noise_mode='random'), its noise too; such
    a model runs one seed at a time."""
    model_kwargs = dict(model_kwargs or {})
    if _own_noise(wrapper, model_kwargs):
        return torch.cat([_decode(wrapper, seed_latents(wrapper, [seed], prior, convention, **prior_params),
                                  seed_generator(seed), model_kwargs) for seed in seeds])
    return _decode(wrapper, seed_latents(wrapper, seeds, prior, convention, **prior_params), None, model_kwargs)


@torch.no_grad()
def sample_seeds(wrapper: Wrapper, seeds: Sequence[int], batch_size: int = 16, prior: str | None = None,
                 model_kwargs: dict[str, Any] | None = None, progress: bool = False, convention: str = "torch",
                 **prior_params: Any) -> Iterator[tuple[int, Tensor]]:
    """Yield (seed, image [C, H, W]) for each seed, made by seed_images `batch_size` seeds at a time."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    step = 1 if _own_noise(wrapper, model_kwargs or {}) else batch_size  # one at a time anyway: count them
    chunks = [list(seeds[i: i + step]) for i in range(0, len(seeds), step)]
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="sampling", unit="batch")
    for chunk in chunks:
        yield from zip(chunk, seed_images(wrapper, chunk, prior, model_kwargs, convention, **prior_params))


@torch.no_grad()
def interpolate_seeds(wrapper: SphericalGenerator, seeds: Sequence[int], steps: int, prior: str | None = None,
                      model_kwargs: dict[str, Any] | None = None, convention: str = "torch",
                      **prior_params: Any) -> Tensor:
    """Great-circle paths through the latents of `seeds` (see seed_latents) in order:
    [len(seeds) - 1, steps, C, H, W]."""
    if len(seeds) < 2:
        raise ValueError(f"seeds must hold at least two seeds to interpolate between, got {list(seeds)}")
    z = seed_latents(wrapper, seeds, prior, convention, **prior_params)
    images = wrapper.interpolate(z[:-1], z[1:], steps, **dict(model_kwargs or {}))
    return images.view(len(seeds) - 1, steps, *images.shape[1:])


def save_png(image: Tensor, path: str | os.PathLike) -> Path:
    """One [-1, 1] image [C, H, W] as a PNG (values outside are clamped, as save_image_grid does)."""
    return save_image_grid(image.unsqueeze(0), path, nrow=1, padding=0)


def save_gif(frames: Tensor, path: str | os.PathLike, duration_ms: int = 80) -> Path:
    """[-1, 1] frames [T, C, H, W] as a looping animated GIF, atomically."""
    from PIL import Image

    pixels = to_uint8(check_image_tensor(frames, "frames", clamp=True)).cpu()
    mode_frames = [Image.fromarray(f[0].numpy() if f.shape[0] == 1 else f.permute(1, 2, 0).numpy()) for f in pixels]
    path = Path(path)
    with atomic_path(path) as tmp:
        mode_frames[0].save(tmp, format="GIF", save_all=True, append_images=mode_frames[1:], duration=duration_ms,
                            loop=0)
    return path
