"""The offline classifier: accuracy, cache reuse and recovery, shape checks, and cached features of fixed sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sphere_plugins.data import ImageSet
from sphere_plugins.metrics import FeatureExtractor, cached_features, classifier_features, fd_label
from sphere_plugins.metrics import features as features_module

from .conftest import FAST_TRAINING


def test_digits_classifier_is_accurate_and_labelled(digits_cnn):
    assert digits_cnn.accuracy > 0.85
    assert digits_cnn.name == "digits-cnn" and fd_label(digits_cnn) == "FD-digits-cnn"
    assert isinstance(digits_cnn, FeatureExtractor)


def test_features_are_float64_rows_per_image(digits, digits_cnn):
    features = digits_cnn(digits.images[:5])
    assert features.dtype == np.float64 and features.shape == (5, 64)


def test_second_request_loads_the_cache_without_training(digits, digits_cnn, cnn_cache, monkeypatch):
    def no_training(*args):
        raise AssertionError("the cached classifier was retrained")

    monkeypatch.setattr(features_module, "_train_classifier", no_training)
    again = classifier_features(digits, cnn_cache, FAST_TRAINING)
    np.testing.assert_array_equal(again(digits.images[:8]), digits_cnn(digits.images[:8]))


def test_cache_records_accuracy_and_data_fingerprint(digits_cnn, cnn_cache):
    (info_file,) = (cnn_cache / "features").glob("digits-cnn-*.json")
    info = json.loads(info_file.read_text())
    assert info["test_accuracy"] == digits_cnn.accuracy and len(info["data_fingerprint"]) == 64


def test_corrupt_cache_is_retrained_with_a_warning(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = ImageSet(torch.rand(40, 1, 8, 8, generator=generator) * 2 - 1, torch.arange(40) % 2, "toy")
    config = type(FAST_TRAINING)(epochs=1)
    first = classifier_features(data, tmp_path, config)
    (weights,) = (tmp_path / "features").glob("*.safetensors")
    weights.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="retraining"):
        second = classifier_features(data, tmp_path, config)
    np.testing.assert_allclose(second(data.images), first(data.images), rtol=1e-5, atol=1e-6)


def test_images_of_another_shape_are_rejected(digits_cnn):
    with pytest.raises(ValueError, match="trained on images of shape"):
        digits_cnn(torch.zeros(2, 1, 16, 16))


def test_fixed_image_features_are_cached_and_reused(tmp_path, digits, digits_cnn):
    images = digits.images[:32]
    first = cached_features(images, digits_cnn, tmp_path)
    (path,) = (tmp_path / "features").glob("*.npy")
    np.save(path, np.full_like(first, 7.0))
    assert (cached_features(images, digits_cnn, tmp_path) == 7.0).all()


def test_corrupt_feature_cache_is_recomputed_with_a_warning(tmp_path, digits, digits_cnn):
    images = digits.images[:32]
    first = cached_features(images, digits_cnn, tmp_path)
    (path,) = (tmp_path / "features").glob("*.npy")
    path.write_bytes(b"broken")
    with pytest.warns(UserWarning, match="recomputing"):
        again = cached_features(images, digits_cnn, tmp_path)
    np.testing.assert_array_equal(again, first)
