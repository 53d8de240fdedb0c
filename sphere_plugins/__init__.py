"""sphere-plugins: put the latent variables of generative models on a sphere.

Distribution-robust sampling (centerize + spherize any prior's latents) and spherical
autoencoders, wired into third-party models through pluggy hooks.
"""

from sphere_plugins.data import ImageSet, load_images, save_image_grid, to_uint8
from sphere_plugins.errors import (
    CorruptWeightsError,
    MissingWeightsError,
    SpherePluginsError,
    UnknownAdapterError,
    UnknownModelError,
    UnknownPriorError,
    UnsafePickleError,
)
from sphere_plugins.hookspecs import hookimpl
from sphere_plugins.latent import SphericalLatent, centerize, centerize_spherize, slerp, spherize
from sphere_plugins.checkpoint import CheckpointError
from sphere_plugins.loss import SAELoss, SVAELoss, VAELoss
from sphere_plugins.metrics.record import MetricRecord
from sphere_plugins.plugins import get_plugin_manager, load_model, plugin_names, register, unregister
from sphere_plugins.priors import get_prior, list_priors, sample_prior
from sphere_plugins.schemes import ModelScheme, list_models
from sphere_plugins.training import (
    AEObjective,
    Objective,
    SAEObjective,
    SVAEObjective,
    TrainConfig,
    TrainResult,
    VAEObjective,
    conv_objective,
    finetune_autoencoder_to_sae,
    train,
)
from sphere_plugins.wrap import (
    AutoencoderAdapter,
    AutoencoderOutput,
    GeneratorAdapter,
    SphericalAutoencoder,
    SphericalGenerator,
    wrap_autoencoder,
    wrap_generator,
)

__version__ = "0.1.0"

__all__ = [
    "AEObjective", "CheckpointError", "Objective", "SAEObjective", "SVAELoss", "SVAEObjective", "TrainConfig",
    "TrainResult", "VAEObjective", "conv_objective", "finetune_autoencoder_to_sae", "train",
    "AutoencoderAdapter", "AutoencoderOutput", "GeneratorAdapter", "ImageSet", "MetricRecord",
    "CorruptWeightsError", "MissingWeightsError", "SAELoss", "load_images", "save_image_grid", "to_uint8",
    "SpherePluginsError", "SphericalAutoencoder", "SphericalGenerator", "SphericalLatent",
    "UnknownAdapterError", "UnknownModelError", "UnknownPriorError", "UnsafePickleError", "VAELoss",
    "ModelScheme", "list_models",
    "centerize", "centerize_spherize", "get_plugin_manager", "get_prior", "hookimpl", "list_priors", "load_model",
    "plugin_names", "register", "sample_prior", "slerp", "spherize", "unregister", "wrap_autoencoder",
    "wrap_generator",
]
