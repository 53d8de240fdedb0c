"""Training for autoencoders: objectives (spherical autoencoder and baselines), the accelerate loop,
fine-tuning an existing autoencoder into a spherical one, and step timing."""

from sphere_plugins.training.batches import ShardedBatches
from sphere_plugins.training.finetune import finetune_autoencoder_to_sae
from sphere_plugins.training.loop import TrainConfig, TrainResult, as_images, train
from sphere_plugins.training.objectives import (
    AEObjective,
    Objective,
    RAEObjective,
    SAEObjective,
    SVAEObjective,
    VAEObjective,
    conv_objective,
)

__all__ = [
    "AEObjective", "Objective", "RAEObjective", "SAEObjective", "SVAEObjective", "ShardedBatches", "TrainConfig",
    "TrainResult", "VAEObjective", "as_images", "conv_objective", "finetune_autoencoder_to_sae", "train",
]
