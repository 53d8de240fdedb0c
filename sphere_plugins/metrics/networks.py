"""Named feature networks for image distances, and the order "auto" tries them in.

"auto" takes clean-fid's Inception when its file is on disk (FID/KID); otherwise the first offline network
(lowest `priority`) whose factory accepts the real images: a classifier trained on REAL's own class labels,
then one trained on scikit-learn's digits (any images, resized to its input). Another network (trained on
another data set, say) plugs in with `register_feature_network(name, factory, priority=...)`; its factory
returns None for real images it does not suit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sphere_plugins.data import ImageSet, convert_images, load_images
from sphere_plugins.metrics.features import FeatureExtractor, classifier_features

# factory(real, device, cache_dir) -> a feature extractor, or None when it does not suit `real`.
FeatureFactory = Callable[[ImageSet, "str | torch.device", "str | os.PathLike | None"], "FeatureExtractor | None"]


@dataclass(frozen=True)
class FeatureNetwork:
    """A named offline feature network: how to build it and where it stands in "auto"'s order."""

    name: str
    factory: FeatureFactory
    description: str
    priority: int = 100


_networks: dict[str, FeatureNetwork] = {}


def register_feature_network(name: str, factory: FeatureFactory, description: str, priority: int = 100,
                             replace: bool = False) -> None:
    """Add a feature network by name; replacing an existing name needs replace=True."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in _networks and not replace:
        raise ValueError(f"feature network {name!r} is already registered; pass replace=True to replace it")
    _networks[name] = FeatureNetwork(name, factory, description, priority)


def feature_networks() -> dict[str, FeatureNetwork]:
    """The registered offline feature networks by name, in "auto"'s order."""
    return dict(sorted(_networks.items(), key=lambda item: (item[1].priority, item[0])))


class ResizedFeatures:
    """Any images, converted to the (C, H, W) an extractor was trained on, then its features."""

    def __init__(self, extractor: FeatureExtractor, image_shape: tuple[int, int, int]):
        self.extractor = extractor
        self.image_shape = image_shape
        self.name = extractor.name
        self.description = getattr(extractor, "description", extractor.name)
        self.fingerprint = getattr(extractor, "fingerprint", None)

    def __call__(self, images: Tensor) -> np.ndarray:
        channels, height, _ = self.image_shape
        return self.extractor(convert_images(images, resolution=height, channels=channels))


def _own_labels(real: ImageSet, device, cache_dir) -> FeatureExtractor | None:
    if real.labels is None:
        return None
    return ResizedFeatures(classifier_features(real, cache_dir, device=device), tuple(real.images.shape[1:]))


def _digits(real: ImageSet, device, cache_dir) -> FeatureExtractor:
    channels, height, _ = real.images.shape[1:]
    size = min(max(8, 1 << (int(height) - 1).bit_length()), 32)  # a power of two in [8, 32]
    digits = load_images("digits", resolution=size, channels=int(channels))
    return ResizedFeatures(classifier_features(digits, cache_dir, device=device), (int(channels), size, size))


register_feature_network("classifier", _own_labels, "a small CNN trained on REAL's class labels (sub-folders)", 10)
register_feature_network("digits-cnn", _digits, "a small CNN trained on scikit-learn's digits (any images, "
                         "resized to at most 32x32); a generic, weak feature space", 90)


def as_image_set(source: object, resolution: int | None = None) -> ImageSet | None:
    """An ImageSet for a data spec or folder path (read to see its labels), the set itself, or None; resized to
    `resolution` when given (an idx set's `origin` then names the resolution, so its reference network is
    trained at it)."""
    if isinstance(source, ImageSet):
        return source if resolution is None else resized_set(source, resolution)
    if isinstance(source, Tensor):
        return load_images(source, resolution)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        spec = text if text == "digits" or text.startswith("folder:") else f"folder:{text}"
        return load_images(spec, resolution)
    return None


def resized_set(images: ImageSet, resolution: int) -> ImageSet:
    """`images` resized to `resolution` x `resolution` (a copy; the same set when it already has that size)."""
    if tuple(images.images.shape[-2:]) == (resolution, resolution):
        return images
    origin = {**images.origin, "resolution": resolution} if images.origin else {}
    return ImageSet(convert_images(images.images, resolution), images.labels, images.name,
                    f"{images.description or images.name}, resized to {resolution}x{resolution}",
                    images.class_names, origin)


def offline_features(real: ImageSet, device: str | torch.device = "cpu",
                     cache_dir: str | os.PathLike | None = None, name: str | None = None) -> FeatureExtractor:
    """The named offline network (or, name=None, the first in "auto"'s order that suits `real`)."""
    networks = feature_networks()
    if name is not None:
        if name not in networks:
            raise ValueError(f"unknown feature network {name!r}; registered: {', '.join(networks)}")
        extractor = networks[name].factory(real, device, cache_dir)
        if extractor is None:
            raise ValueError(f"feature network {name!r} ({networks[name].description}) does not apply to "
                             f"{real.name!r}; registered: {', '.join(networks)}")
        return extractor
    for network in networks.values():
        extractor = network.factory(real, device, cache_dir)
        if extractor is not None:
            return extractor
    raise ValueError(f"no offline feature network suits {real.name!r}; registered: {', '.join(networks)}")
