"""sphere-plugins adapter for diffusers: AutoencoderKL / VQModel / AutoencoderTiny and unconditional pipelines."""

from sphere_diffusers.loading import build_tiny_ddpm, build_tiny_vae, load_diffusers

__all__ = ["build_tiny_ddpm", "build_tiny_vae", "load_diffusers"]
