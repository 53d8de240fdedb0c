"""Image metrics with provenance: FID/KID (clean-fid Inception) or FD-<name> (offline classifier), SWD, LPIPS, MSE,
precision/recall and density/coverage."""

from sphere_plugins.metrics.features import (
    ClassifierConfig,
    ClassifierFeatures,
    FeatureExtractor,
    cached_features,
    classifier_features,
    default_cache_dir,
    fd_label,
    kd_label,
)
from sphere_plugins.metrics.fid import (
    compute_fid,
    compute_kid,
    extract_features,
    frechet_distance,
    frechet_distance_from_features,
    kernel_distance,
    resolve_features,
)
from sphere_plugins.metrics.inception import (
    INCEPTION_FILE,
    INCEPTION_URL,
    InceptionFeatures,
    check_inception_weights,
    inception_available,
    inception_weights_path,
)
from sphere_plugins.metrics.manifold import RealManifold, density_coverage, precision_recall
from sphere_plugins.metrics.mse import compute_mse, mse_per_image
from sphere_plugins.metrics.perceptual import LPIPS, compute_lpips, lpips_backbone_path
from sphere_plugins.metrics.record import MetricRecord, library_versions
from sphere_plugins.metrics.sources import ImageSource, SeededImages, iter_image_batches
from sphere_plugins.metrics.swd import compute_swd, laplacian_pyramid, sliced_wasserstein

__all__ = [
    "ClassifierFeatures",
    "FeatureExtractor",
    "ImageSource",
    "INCEPTION_FILE",
    "INCEPTION_URL",
    "InceptionFeatures",
    "LPIPS",
    "MetricRecord",
    "RealManifold",
    "SeededImages",
    "ClassifierConfig",
    "cached_features",
    "check_inception_weights",
    "classifier_features",
    "compute_fid",
    "compute_kid",
    "compute_lpips",
    "compute_mse",
    "compute_swd",
    "default_cache_dir",
    "density_coverage",
    "extract_features",
    "fd_label",
    "frechet_distance",
    "frechet_distance_from_features",
    "inception_available",
    "inception_weights_path",
    "iter_image_batches",
    "kd_label",
    "kernel_distance",
    "laplacian_pyramid",
    "library_versions",
    "lpips_backbone_path",
    "mse_per_image",
    "precision_recall",
    "resolve_features",
    "sliced_wasserstein",
]
