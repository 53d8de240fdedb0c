"""Frechet and kernel (KID) distances between image sets in a feature space: clean-fid's Inception when its
weight file is present (FID/KID), else an explicitly named offline feature network (FD-<name>/KD-<name>)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from sphere_plugins.data import ImageSet, check_image_tensor, convert_images
from sphere_plugins.metrics.features import (
    FeatureExtractor,
    cached_features,
    fd_label,
    kd_label,
)
from sphere_plugins.metrics.inception import (
    INCEPTION_FILE,
    InceptionFeatures,
    check_inception_weights,
    inception_available,
    inception_weights_path,
)
from sphere_plugins.metrics.record import MetricRecord
from sphere_plugins.metrics.shards import map_sharded
from sphere_plugins.metrics.sources import ImageSource, batch_plan, image_size, iter_image_batches, source_name

FEATURE_CHOICES = "'auto', 'inception', 'classifier' or a FeatureExtractor"


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the squared W2 distance between two Gaussians.

    A non-finite square root (near-singular product) is retried with `eps` added to both diagonals; a small
    imaginary part from round-off is dropped, a large one (> 1e-3 on the diagonal) raises.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"expected mu1, mu2 of shape ({d},) and sigma1, sigma2 of shape ({d}, {d}); got {mu1.shape}, "
            f"{mu2.shape}, {sigma1.shape}, {sigma2.shape}"
        )
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.abs(np.diagonal(covmean).imag).max()
        if imaginary > 1e-3:
            raise ValueError(
                f"matrix square root has an imaginary component of {imaginary:.3g}; covariances are degenerate"
            )
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets [N, D] (each needs N >= D + 1)."""
    features1, features2 = _check_features(features1, "features1"), _check_features(features2, "features2")
    if features1.shape[1] != features2.shape[1]:
        raise ValueError(f"feature dimensions differ: {features1.shape[1]} vs {features2.shape[1]}")
    for name, features in (("features1", features1), ("features2", features2)):
        n, d = features.shape
        if n < max(d + 1, 2):
            raise ValueError(
                f"{name} has n={n} samples of {d}-d features; a Frechet distance needs n >= {max(d + 1, 2)} "
                "for a full-rank covariance"
            )
    return frechet_distance(
        features1.mean(0), np.cov(features1, rowvar=False), features2.mean(0), np.cov(features2, rowvar=False)
    )


def kernel_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """KID: unbiased MMD^2 with the kernel (x.y / D + 1)^3, averaged over random subsets of equal size."""
    features1, features2 = _check_features(features1, "features1"), _check_features(features2, "features2")
    if features1.shape[1] != features2.shape[1]:
        raise ValueError(f"feature dimensions differ: {features1.shape[1]} vs {features2.shape[1]}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(features1.shape[0], features2.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(
            f"a kernel distance needs subsets of >= 2 samples; got n={min(features1.shape[0], features2.shape[0])} "
            f"and max_subset_size={max_subset_size}"
        )
    d = features1.shape[1]
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = features1[rng.choice(features1.shape[0], m, replace=False)]
        y = features2[rng.choice(features2.shape[0], m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        total += within - 2.0 * kxy.mean()
    return float(total / num_subsets)


def _check_features(features: np.ndarray, name: str) -> np.ndarray:
    """A finite float64 [N, D] array, or ValueError naming `name`."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f"{name} must be an array [N, D] with N >= 1, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return features


def resolve_features(
    features: str | FeatureExtractor,
    real: ImageSource | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    inception_dir: str | os.PathLike | None = None,
    metric: str = "FID",
    *,
    resolution: int | None = None,
) -> FeatureExtractor:
    """Pick the feature network: "inception" (or raise MissingWeightsError), "classifier" (trained on the
    labelled images of `real`: an ImageSet, a data spec or a folder with one sub-folder per class), the name
    of a registered offline network (see metrics.networks), or "auto": Inception when its file exists, else
    the first offline network that suits `real`, with a warning naming it. `metric` ("FID", "KID") is the
    one the messages name; an offline network is built for `real` resized to `resolution` when given."""
    from sphere_plugins.metrics.networks import as_image_set, feature_networks, offline_features

    if isinstance(features, FeatureExtractor) and not isinstance(features, str):
        return features
    from sphere_plugins.downloads import downloads_allowed

    if features == "inception" or (features == "auto" and (inception_available(inception_dir)
                                                            or downloads_allowed())):
        if not downloads_allowed():
            check_inception_weights(inception_dir, metric)
        return InceptionFeatures(inception_dir, device)
    names = feature_networks()
    if features != "auto" and features not in names:
        raise ValueError(f"features must be {FEATURE_CHOICES} or a registered network ({', '.join(names)}), "
                         f"got {features!r}")
    real_set = as_image_set(real, resolution)
    if real_set is None:
        if features == "auto":
            check_inception_weights(inception_dir, metric)
        raise ValueError(f"features={features!r} needs `real` as images (an ImageSet, a tensor, a data spec or a "
                         f"folder) to build an offline feature network; got {type(real).__name__}")
    if features == "classifier" and real_set.labels is None:
        raise ValueError(f"features='classifier' needs class labels, and {real_set.name!r} has none (a folder needs "
                         f"one sub-folder per class); use features='auto' or 'digits-cnn', or put "
                         f"{INCEPTION_FILE} in {inception_weights_path(inception_dir).parent} for {metric}")
    extractor = offline_features(real_set, device, cache_dir, None if features == "auto" else features)
    if features == "auto":
        warnings.warn(
            f"{INCEPTION_FILE} is not in {inception_weights_path(inception_dir).parent}: reporting "
            f"{(fd_label if metric == 'FID' else kd_label)(extractor)} ({extractor.description}) instead of {metric}",
            stacklevel=3,
        )
    return extractor


def extract_features(
    source: ImageSource,
    extractor: FeatureExtractor,
    n: int | None = None,
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None,
    name: str = "source",
    *,
    resolution: int | None = None,
    distributed: bool = False,
) -> np.ndarray:
    """Float64 features [N, D] of an image source (see iter_image_batches), its images resized to `resolution`
    first when given; fixed tensors and ImageSets are cached under `cache_dir` when the extractor has a
    fingerprint. distributed=True splits the batches across the processes of the torch.distributed group
    (`accelerate launch`; every process must call) and gathers the features on each: each process reads or
    draws only its batches of tensors, ImageSets, folders and SeededImages, while a `gen(batch)` callable is
    one stream that every process draws whole (a seeded one thus gives one process's images) to featurize
    its share."""
    if isinstance(source, (Tensor, ImageSet)):
        images = source.images if isinstance(source, ImageSet) else source
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ValueError(f"n must be a positive int or None, got {n!r}")
        images = convert_images(check_image_tensor(images, name)[:n], resolution)
        return cached_features(images, extractor, cache_dir, batch_size, distributed)
    plan = batch_plan(source, n, batch_size, name, resolution)
    if plan is None:
        chunks = map_sharded(partial(_features_of, extractor), iter_image_batches(source, n, batch_size, name,
                                                                                  resolution), distributed)
    else:
        chunks = map_sharded(partial(_batch_features, extractor), plan, distributed)
    return np.concatenate(chunks).astype(np.float64)


def _features_of(extractor: FeatureExtractor, images: Tensor) -> np.ndarray:
    return np.asarray(extractor(images), dtype=np.float64)


def _batch_features(extractor: FeatureExtractor, batch: Callable[[], Tensor]) -> np.ndarray:
    return _features_of(extractor, batch())


def common_resolution(real: ImageSource, fake: ImageSource, resolution: int | None, n_real: int | None,
                      n_fake: int | None, batch_size: int) -> tuple[int | None, ImageSource, ImageSource]:
    """The side both sets are compared at (None: as they are) and the sources to read from now on.

    Sets of different sizes are compared at the smaller one, with a warning: a 16x16 model scored against 28x28
    images would otherwise pay for the detail it never had (Fashion-MNIST's own test images downsampled to 16x16
    score FD-fmnist-cnn 57.6 against themselves at 28x28)."""
    if resolution is not None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int or None, got {resolution!r}")
        return resolution, real, fake
    real_size, real = image_size(real, n_real, batch_size, "real")
    fake_size, fake = image_size(fake, n_fake, batch_size, "fake")
    if real_size == fake_size:
        return None, real, fake
    side = min(*real_size, *fake_size)
    warnings.warn(f"real images are {real_size[1]}x{real_size[0]} and fake ones {fake_size[1]}x{fake_size[0]}: both "
                  f"are resized to {side}x{side} before the feature network; pass resolution=N (evaluate "
                  "--resolution N) to choose", stacklevel=3)
    return side, real, fake


def _pair_features(real, fake, features, n_real, n_fake, device, batch_size, cache_dir, inception_dir,
                   metric="FID", resolution=None, distributed=False):
    """Resolve the extractor (from the real images at the compared resolution) and compute features of both sets;
    returns the extractor, both feature sets and the resolution compared at (None: the sets' own)."""
    side, real, fake = common_resolution(real, fake, resolution, n_real, n_fake, batch_size)
    extractor = resolve_features(features, real, device, cache_dir, inception_dir, metric, resolution=side)
    f_real = extract_features(real, extractor, n_real, batch_size, cache_dir, "real", resolution=side,
                              distributed=distributed)
    f_fake = extract_features(fake, extractor, n_fake, batch_size, cache_dir, "fake", resolution=side,
                              distributed=distributed)
    return extractor, f_real, f_fake, side


def compared_at(side: int | None) -> dict[str, str]:
    """The record field saying at what size both sets were compared, when they were resized."""
    return {} if side is None else {"compared_at": f"{side}x{side}"}


def feature_record(metric: str, value: float, extractor: FeatureExtractor, f_real: np.ndarray, f_fake: np.ndarray,
                   real: ImageSource, seed: int | None, **extra: object) -> MetricRecord:
    """A MetricRecord for a value computed between two feature sets (model and prior are left for the caller)."""
    return MetricRecord(
        metric=metric,
        value=value,
        feature_network=getattr(extractor, "description", extractor.name),
        n_samples=int(f_fake.shape[0]),
        seed=seed,
        data=source_name(real),
        extra={
            "n_real": int(f_real.shape[0]),
            "n_fake": int(f_fake.shape[0]),
            "feature_dim": int(f_real.shape[1]),
            **extra,
        },
    )


def compute_fid(
    real: ImageSource,
    fake: ImageSource,
    *,
    features: str | FeatureExtractor = "auto",
    n_real: int | None = None,
    n_fake: int | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    seed: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    inception_dir: str | os.PathLike | None = None,
    resolution: int | None = None,
    distributed: bool = False,
) -> MetricRecord:
    """Frechet distance between two image sources, labelled "FID" only with clean-fid's Inception features.

    Sources: [-1, 1] tensors, ImageSets, folders ("folder:PATH" or a path), SeededImages, or `gen(batch) ->
    images` with `n_fake`/`n_real` images drawn. `seed` is recorded (seed your generator yourself). Both sets
    are compared at `resolution` x `resolution` (default: their own size; the smaller one, with a warning,
    when they differ). distributed=True shares the work among the processes of an `accelerate launch` (see
    extract_features). Set the record's `prior` and `model` with dataclasses.replace.
    """
    extractor, f_real, f_fake, side = _pair_features(
        real, fake, features, n_real, n_fake, device, batch_size, cache_dir, inception_dir, resolution=resolution,
        distributed=distributed,
    )
    value = frechet_distance_from_features(f_real, f_fake)
    return feature_record(fd_label(extractor), value, extractor, f_real, f_fake, real, seed,
                          **compared_at(side))


def compute_kid(
    real: ImageSource,
    fake: ImageSource,
    *,
    features: str | FeatureExtractor = "auto",
    n_real: int | None = None,
    n_fake: int | None = None,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    inception_dir: str | os.PathLike | None = None,
    resolution: int | None = None,
    distributed: bool = False,
) -> MetricRecord:
    """Kernel distance (KID) between two image sources; sources, resolution, processes and labelling as in
    compute_fid."""
    extractor, f_real, f_fake, side = _pair_features(
        real, fake, features, n_real, n_fake, device, batch_size, cache_dir, inception_dir, "KID",
        resolution=resolution, distributed=distributed,
    )
    value = kernel_distance(f_real, f_fake, num_subsets, max_subset_size, seed)
    extra = {"num_subsets": num_subsets, "max_subset_size": max_subset_size, **compared_at(side)}
    return feature_record(kd_label(extractor), value, extractor, f_real, f_fake, real, seed, **extra)
