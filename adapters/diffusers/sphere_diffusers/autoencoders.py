"""AutoencoderKL, VQModel and AutoencoderTiny as spherical autoencoders, and their decoders as generators.

Codes are the latents a latent diffusion model sees: (raw - shift_factor) * scaling_factor (shift only
where the config has one). For a trained VAE they have about unit variance per entry, so the default
radius sqrt(d) fits. The spatial latent [C, h, w] is one vector per sample unless the wrapper's `dims`
says otherwise: dims=(1,) puts every position's C-vector on a sphere, dims=(2, 3) every channel's map.

- AutoencoderKL: encode takes the posterior's mode (no sampling, no KL); decode is `vae.decode(...).sample`.
- VQModel: encode gives the pre-quantization latents (`vae.encode(x).latents`); decode goes through
  `vae.decode`, which snaps every position to its nearest codebook vector (straight-through gradient).
- AutoencoderTiny: `vae.encode(x).latents` and `vae.decode(...).sample`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from sphere_plugins.adapter import AutoencoderAdapter, GeneratorAdapter, check_adapter_options

OPTIONS = ("z_shape", "latent_size", "use_scaling_factor")


@dataclass(frozen=True)
class LatentScale:
    """The map between a VAE's raw latents and the scaled latents diffusion models (and we) use."""

    scale: float = 1.0
    shift: float | None = None

    def to_code(self, raw: Tensor) -> Tensor:
        """Raw encoder latents -> scaled codes."""
        if self.shift:
            raw = raw - self.shift
        return raw * self.scale if self.scale != 1.0 else raw

    def to_raw(self, code: Tensor) -> Tensor:
        """Scaled codes -> the raw latents the decoder takes."""
        raw = code / self.scale if self.scale != 1.0 else code
        return raw + self.shift if self.shift else raw


def latent_scale(vae: Any, enabled: bool = True) -> LatentScale:
    """The VAE's scaling (config.scaling_factor, config.shift_factor), or none when disabled."""
    if not enabled:
        return LatentScale()
    scale = vae.config.get("scaling_factor") or 1.0
    return LatentScale(float(scale), vae.config.get("shift_factor"))


def downsampling_factor(vae: Any) -> int:
    """Image pixels per latent position along a side, as diffusers pipelines compute it."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _pair(value: Any, argument: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{argument} must be a positive int or a pair of positive ints, got {value!r}")
    return pair


def latent_shape(vae: Any, options: dict[str, Any]) -> tuple[int, int, int]:
    """The per-sample latent shape [C, h, w]: from z_shape, latent_size, or config.sample_size / factor."""
    channels = int(vae.config.latent_channels)
    name = type(vae).__name__
    if options.get("z_shape") is not None:
        shape = tuple(options["z_shape"])
        if len(shape) != 3 or shape[0] != channels:
            raise ValueError(f"z_shape must be ({channels}, h, w) for this {name} "
                             f"(config.latent_channels={channels}), got {shape!r}")
        return (channels, *_pair(shape[1:], "z_shape[1:]"))
    if options.get("latent_size") is not None:
        return (channels, *_pair(options["latent_size"], "latent_size"))
    sample_size = vae.config.get("sample_size")
    if sample_size is None:
        raise ValueError(f"this {name} has no config.sample_size: pass options={{'latent_size': N}} "
                         f"or z_shape=({channels}, h, w) to say which latent size to use")
    factor = downsampling_factor(vae)
    height, width = _pair(sample_size, "config.sample_size")
    if height % factor or width % factor:
        raise ValueError(f"config.sample_size {sample_size!r} is not a multiple of the downsampling factor "
                         f"{factor}; pass options={{'latent_size': N}}")
    return (channels, height // factor, width // factor)


class VAECodec:
    """One diffusers VAE's encode (images -> scaled codes) and decode (scaled codes -> images)."""

    def __init__(self, vae: Any, kind: str, z_shape: tuple[int, int, int], scale: LatentScale):
        self.vae = vae
        self.kind = kind
        self.scale = scale
        factor = downsampling_factor(vae)
        self.image_size = (z_shape[1] * factor, z_shape[2] * factor)
        self.in_channels = int(vae.config.in_channels)

    def _check_images(self, x: Tensor) -> None:
        name = type(self.vae).__name__
        if x.dim() != 4:
            raise ValueError(f"x must be images [N, C, H, W] for this {name}, got shape {list(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channel(s) for this {name} "
                             f"(config.in_channels), got {x.shape[1]} in shape {list(x.shape)}")
        if tuple(x.shape[2:]) != self.image_size:
            raise ValueError(
                f"x must be {self.image_size[0]}x{self.image_size[1]} images for this wrapper's latent size, got "
                f"{x.shape[2]}x{x.shape[3]}; for another size pass options={{'latent_size': (H // "
                f"{downsampling_factor(self.vae)}, W // {downsampling_factor(self.vae)})}} to wrap_autoencoder"
            )

    def encode(self, x: Tensor) -> Tensor:
        """Scaled codes of images in [-1, 1] (the posterior mode for AutoencoderKL)."""
        self._check_images(x)
        output = self.vae.encode(x)
        raw = output.latent_dist.mode() if self.kind == "AutoencoderKL" else output.latents
        return self.scale.to_code(raw)

    def decode(self, z: Tensor) -> Tensor:
        """Images in about [-1, 1] for scaled codes."""
        return self.vae.decode(self.scale.to_raw(z)).sample


def _codec(vae: Any, kind: str, options: dict[str, Any]) -> tuple[VAECodec, tuple[int, int, int]]:
    check_adapter_options(options, OPTIONS, f"a diffusers {kind}")
    z_shape = latent_shape(vae, options)
    return VAECodec(vae, kind, z_shape, latent_scale(vae, options.get("use_scaling_factor", True))), z_shape


def autoencoder_adapter(vae: Any, kind: str, options: dict[str, Any]) -> AutoencoderAdapter:
    """Describe a supported diffusers VAE as an autoencoder on images in [-1, 1]."""
    codec, z_shape = _codec(vae, kind, options)
    return AutoencoderAdapter(z_shape=z_shape, encode=codec.encode, decode=codec.decode, module=vae, name=kind,
                              input_range=(-1.0, 1.0))


def decoder_adapter(vae: Any, kind: str, options: dict[str, Any]) -> GeneratorAdapter:
    """Describe a supported diffusers VAE's decoder as a generator sampled from a prior."""
    codec, z_shape = _codec(vae, kind, options)
    return GeneratorAdapter(z_shape=z_shape, generate=codec.decode, module=vae, name=f"{kind} decoder",
                            latent_entry="scaled latent (divided by scaling_factor before decode)")
