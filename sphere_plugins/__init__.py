"""sphere-plugins: put the latent variables of generative models on a sphere.

Distribution-robust sampling (centerize + spherize any prior's latents) and spherical
autoencoders, wired into third-party models through pluggy hooks. The top level is the plugin
layer: latent operations, priors, wrappers, losses, plugin functions and errors. Training
(`sphere_plugins.training`), metrics (`sphere_plugins.metrics`) and data (`sphere_plugins.data`)
are subpackages to import by name.
"""

from importlib import import_module

from sphere_plugins.adapter import (
    AutoencoderAdapter,
    CorruptWeightsError,
    GeneratorAdapter,
    MissingWeightsError,
    ModelKwarg,
    ModelScheme,
    SpherePluginsError,
    TrainableGenerator,
    UnknownModelError,
    UnsafePickleError,
    check_adapter_options,
    hookimpl,
    register,
    spec_value,
    unregister,
)
from sphere_plugins.checkpoint import CheckpointError
from sphere_plugins.errors import (
    DataFileError,
    OutputFolderError,
    SavedFolderError,
    UnknownAdapterError,
    UnknownPriorError,
)
from sphere_plugins.fitted_prior import FittedSpherePrior, fit_sphere_prior
from sphere_plugins.latent import SphericalLatent, centerize, centerize_spherize, slerp, spherize
from sphere_plugins.loss import SAELoss, SVAELoss, VAELoss
from sphere_plugins.plugins import get_plugin_manager, plugin_names
from sphere_plugins.priors import get_prior, list_priors, sample_prior
from sphere_plugins.schemes import list_schemes, load_model, save_model, trainable_generators
from sphere_plugins.wrap import AutoencoderOutput, SphericalAutoencoder, SphericalGenerator, wrap_autoencoder, wrap_generator

__version__ = "0.1.0"

__all__ = [
    "AutoencoderAdapter", "AutoencoderOutput", "CheckpointError", "CorruptWeightsError", "DataFileError",
    "FittedSpherePrior", "GeneratorAdapter", "MissingWeightsError", "ModelKwarg", "ModelScheme", "OutputFolderError",
    "SAELoss", "SVAELoss", "SavedFolderError", "SpherePluginsError", "SphericalAutoencoder", "SphericalGenerator",
    "SphericalLatent", "TrainableGenerator", "UnknownAdapterError", "UnknownModelError", "UnknownPriorError",
    "UnsafePickleError", "VAELoss", "centerize", "centerize_spherize", "check_adapter_options", "fit_sphere_prior",
    "get_plugin_manager", "get_prior", "hookimpl", "list_priors", "list_schemes", "load_model", "plugin_names",
    "register", "sample_prior", "save_model", "slerp", "spec_value", "spherize", "trainable_generators", "unregister",
    "wrap_autoencoder", "wrap_generator",
]

_SUBPACKAGES = ("data", "metrics", "training")


def __getattr__(name: str):
    if name in _SUBPACKAGES:  # `import sphere_plugins; sphere_plugins.training.train(...)` keeps working
        return import_module(f"sphere_plugins.{name}")
    raise AttributeError(f"module 'sphere_plugins' has no attribute {name!r}")
