"""Fine-tune an existing autoencoder (e.g. a diffusers AutoencoderKL) into a spherical autoencoder.

The model is wrapped with wrap_autoencoder, which puts the spherical constraint on its latent; the
objective is reconstruction only, so a VAE's KL term is simply not part of it. Training starts from
the model's own weights.
"""

from __future__ import annotations

import os
from typing import Any

from sphere_plugins.data import load_images
from sphere_plugins.training.loop import TrainConfig, TrainResult, train
from sphere_plugins.training.objectives import SAEObjective
from sphere_plugins.wrap import SphericalAutoencoder, wrap_autoencoder


def finetune_autoencoder_to_sae(model: Any, data: Any, config: TrainConfig, *, resolution: int | None = None,
                                channels: int | None = None, accelerator: Any = None, callbacks=(),
                                **wrap_options: Any) -> TrainResult:
    """Wrap `model` as a spherical autoencoder and train it on reconstruction alone.

    `data` is a tensor, an ImageSet or a spec ('digits', 'folder:PATH'); a spec is loaded at `resolution`
    and `channels`. `wrap_options` go to wrap_autoencoder (radius, dims, options, loss, ...). The result's
    `objective.wrapper` is the fine-tuned SphericalAutoencoder.
    """
    if isinstance(data, (str, os.PathLike)):
        data = load_images(os.fspath(data), resolution=resolution, channels=channels)
    already = isinstance(model, SphericalAutoencoder) and not wrap_options
    wrapper = model if already else wrap_autoencoder(model, **wrap_options)
    return train(SAEObjective(wrapper), data, config, accelerator=accelerator, callbacks=callbacks)
