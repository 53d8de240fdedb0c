"""Shared fixtures: the digits data at 8x8 and one offline classifier trained per test session."""

from __future__ import annotations

import pytest

from sphere_plugins.data import load_images
from sphere_plugins.metrics.features import ClassifierConfig, classifier_features

FAST_TRAINING = ClassifierConfig(epochs=3)


@pytest.fixture(scope="session")
def digits():
    return load_images("digits")


@pytest.fixture(scope="session")
def cnn_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sphere-cache")


@pytest.fixture(scope="session")
def digits_cnn(digits, cnn_cache):
    return classifier_features(digits, cnn_cache, FAST_TRAINING)
