"""Several distances between two image sources from one pass of feature extraction (`sphere-plugins evaluate`).

Each metric maps (real features, fake features, extractor) to a label, a value and extra fields; "fd" and "kd"
are built in, and another (precision/recall, ...) plugs in with `register_metric(name, fn)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sphere_plugins.metrics.features import FeatureExtractor, fd_label, kd_label
from sphere_plugins.metrics.fid import (_pair_features, compared_at, feature_record, frechet_distance_from_features,
                                        kernel_distance)
from sphere_plugins.metrics.record import MetricRecord
from sphere_plugins.metrics.sources import ImageSource

Metric = Callable[[np.ndarray, np.ndarray, FeatureExtractor], "tuple[str, float, dict[str, Any]]"]


def _fd(f_real: np.ndarray, f_fake: np.ndarray, extractor: FeatureExtractor) -> tuple[str, float, dict[str, Any]]:
    return fd_label(extractor), frechet_distance_from_features(f_real, f_fake), {}


def _kd(f_real: np.ndarray, f_fake: np.ndarray, extractor: FeatureExtractor) -> tuple[str, float, dict[str, Any]]:
    subset = min(1000, len(f_real), len(f_fake))
    extra = {"num_subsets": 100, "max_subset_size": subset}
    return kd_label(extractor), kernel_distance(f_real, f_fake, 100, subset, 0), extra


_manifold_cache: dict[tuple[int, int, str], tuple[float, float]] = {}


def _manifold(which: str, index: int, k: int) -> Metric:
    """Precision/recall (k=3) or density/coverage (k=5) on the same features; each pair is computed once."""
    from sphere_plugins.metrics.manifold import density_coverage, precision_recall

    pair = precision_recall if which == "pr" else density_coverage
    names = ("precision", "recall") if which == "pr" else ("density", "coverage")

    def metric(f_real: np.ndarray, f_fake: np.ndarray, extractor: FeatureExtractor) -> tuple[str, float, dict[str, Any]]:
        key = (id(f_real), id(f_fake), which)
        if key not in _manifold_cache:
            _manifold_cache.clear()  # one pair of feature sets at a time
            _manifold_cache[key] = pair(f_real, f_fake, k=k)
        return f"{names[index]}-{extractor.name}", float(_manifold_cache[key][index]), {"k": k}

    return metric


_metrics: dict[str, Metric] = {"fd": _fd, "kd": _kd, "precision": _manifold("pr", 0, 3), "recall": _manifold("pr", 1, 3),
                               "density": _manifold("dc", 0, 5), "coverage": _manifold("dc", 1, 5)}


def register_metric(name: str, metric: Metric, replace: bool = False) -> None:
    """Add a feature-space metric by name; replacing an existing name needs replace=True."""
    if name in _metrics and not replace:
        raise ValueError(f"metric {name!r} is already registered; pass replace=True to replace it")
    _metrics[name] = metric


def metric_names() -> list[str]:
    """The registered metric names (what `evaluate --metric` accepts)."""
    return sorted(_metrics)


def evaluate(real: ImageSource, fake: ImageSource, metrics: Sequence[str] = ("fd", "kd"), *,
             features: str | FeatureExtractor = "auto", n_real: int | None = None, n_fake: int | None = None,
             device: str | torch.device = "cpu", batch_size: int = 64, seed: int | None = None,
             cache_dir: str | os.PathLike | None = None, inception_dir: str | os.PathLike | None = None,
             resolution: int | None = None, distributed: bool = False) -> list[MetricRecord]:
    """One labelled MetricRecord per metric (FID/KID with Inception, else FD-<net>/KD-<net> and a warning).

    Both sets are compared at `resolution` (default: their own size, the smaller one with a warning when they
    differ); distributed=True shares feature extraction among the processes of an `accelerate launch`, each of
    which must call and gets the same records (see metrics.fid.extract_features)."""
    unknown = [m for m in metrics if m not in _metrics]
    if unknown or not metrics:
        raise ValueError(f"metrics must be some of {', '.join(metric_names())}, got {list(metrics)}")
    extractor, f_real, f_fake, side = _pair_features(real, fake, features, n_real, n_fake, device, batch_size,
                                                     cache_dir, inception_dir, resolution=resolution,
                                                     distributed=distributed)
    records = []
    for name in metrics:
        label, value, extra = _metrics[name](f_real, f_fake, extractor)
        records.append(feature_record(label, value, extractor, f_real, f_fake, real, seed, **extra,
                                      **compared_at(side)))
    return records
