"""The small StyleGAN2 the stylegan2 plugin offers for training from scratch (sphere_trainable_generators)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from sphere_plugins.adapter import TrainableGenerator
from sphere_plugins.checkpoint import list_checkpoints
from sphere_stylegan2.configs import tiny_discriminator, tiny_generator
from sphere_stylegan2.train import train_gan


def describe(resolution: int, z_dim: int, width: int, depth: int) -> str:
    return (f"StyleGAN2 (sphere_stylegan2, {resolution}x{resolution}, z_dim {z_dim}, {depth}-layer mapping, "
            f"{width} channels)")


def train(images: Tensor, *, z_dim: int, width: int, depth: int, steps: int, batch: int, lr: float, seed: int,
          device: torch.device | str, checkpoint_dir: Path, checkpoint_every: int,
          callback: Callable[[int], None] | None = None) -> nn.Module:
    """A tiny StyleGAN2 (w_dim = z_dim) trained with N(0, I) latents; returns its EMA generator in eval mode."""
    network = {"resolution": int(images.shape[-1]), "channels": int(images.shape[1]), "z_dim": z_dim,
               "w_dim": z_dim, "channel_max": width, "mapping_layers": depth, "seed": seed}
    result = train_gan(tiny_generator(**network), tiny_discriminator(**network), images, steps, batch, lr=lr,
                       latent="normal", device=device, checkpoint_dir=checkpoint_dir,
                       checkpoint_every=checkpoint_every, seed=seed,
                       callback=None if callback is None else (lambda step, record: callback(step)))
    return result.G_ema.eval()


def completed_steps(checkpoint_dir: Path) -> int:
    """The step of the newest checkpoint train() left in `checkpoint_dir` (0 when none)."""
    folder = Path(checkpoint_dir)
    return max((int(p.name.split("-")[-1]) for p in list_checkpoints(folder)), default=0) if folder.exists() else 0


TRAINABLE = TrainableGenerator(name="stylegan2", describe=describe, train=train, completed_steps=completed_steps)
