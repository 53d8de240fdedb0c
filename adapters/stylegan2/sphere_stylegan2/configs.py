"""Small random StyleGAN2 configurations for tests, quick benchmarks and training on toy data."""

from __future__ import annotations

from typing import Any

import torch

from sphere_stylegan2.discriminator import Discriminator
from sphere_stylegan2.generator import Generator

# rgb_scale multiplies the initial ToRGB weights: at StyleGAN's own init (1.0) an untrained network's pixels
# have std about 1 and reach +-6; 0.1 keeps a random tiny network's images inside [-1, 1], the range trained
# StyleGAN images have, so tests and benchmarks can treat them like real samples.
TINY_DEFAULTS: dict[str, Any] = dict(resolution=16, channels=3, z_dim=64, w_dim=64, c_dim=0, architecture="skip",
                                     channel_max=32, mapping_layers=2, rgb_scale=0.1, seed=None)


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(TINY_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown tiny-config options {unknown}; expected some of {sorted(TINY_DEFAULTS)}")
    merged = {**TINY_DEFAULTS, **options}
    resolution = merged["resolution"]
    if not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution!r}")
    for name in ("channels", "z_dim", "w_dim", "channel_max", "mapping_layers"):
        if not isinstance(merged[name], int) or merged[name] < 1:
            raise ValueError(f"{name} must be a positive int, got {merged[name]!r}")
    if not isinstance(merged["rgb_scale"], (int, float)) or not merged["rgb_scale"] > 0:
        raise ValueError(f"rgb_scale must be a positive number, got {merged['rgb_scale']!r}")
    return merged


def tiny_generator_kwargs(**options: Any) -> dict[str, Any]:
    """Generator init kwargs: every block has `channel_max` channels, a `mapping_layers`-layer mapping."""
    o = _options(options)
    return dict(z_dim=o["z_dim"], c_dim=o["c_dim"], w_dim=o["w_dim"], img_resolution=o["resolution"],
                img_channels=o["channels"], mapping_kwargs=dict(num_layers=o["mapping_layers"]),
                synthesis_kwargs=dict(channel_base=o["channel_max"] * o["resolution"],
                                      channel_max=o["channel_max"], architecture=o["architecture"]))


def tiny_discriminator_kwargs(**options: Any) -> dict[str, Any]:
    """Discriminator init kwargs matching tiny_generator_kwargs (resnet D, as StyleGAN2's config F)."""
    o = _options(options)
    return dict(c_dim=o["c_dim"], img_resolution=o["resolution"], img_channels=o["channels"],
                channel_base=o["channel_max"] * o["resolution"], channel_max=o["channel_max"],
                mapping_kwargs=dict(num_layers=o["mapping_layers"]))


def _build(cls: type, kwargs: dict[str, Any], seed: int | None) -> Any:
    """Construct cls(**kwargs); with a seed, from that seed without touching the global random state."""
    if seed is None:
        return cls(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)


def tiny_generator(**options: Any) -> Generator:
    """A small random generator (defaults: 16x16 RGB, z_dim = w_dim = 64, 32 channels); `seed` fixes its weights."""
    G = _build(Generator, tiny_generator_kwargs(**options), options.get("seed"))
    scale = _options(options)["rgb_scale"]
    with torch.no_grad():
        for name, parameter in G.named_parameters():
            if name.endswith("torgb.weight"):
                parameter.mul_(scale)
    return G


def tiny_discriminator(**options: Any) -> Discriminator:
    """A small random discriminator for the same images as tiny_generator(**options)."""
    return _build(Discriminator, tiny_discriminator_kwargs(**options), options.get("seed"))
