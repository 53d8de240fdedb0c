"""The offline classifier is one network whatever the threads or processes, and Fashion-MNIST/MNIST sets get
their data set's reference network (trained on the train split, tested on the test split)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sphere_plugins.data import load_images
from sphere_plugins.metrics import classifier_features, fd_label
from sphere_plugins.metrics.features import ClassifierConfig

from .test_idx import DEBIAN, write_split

ONE_EPOCH = ClassifierConfig(epochs=1)
TINY_IDX = ClassifierConfig(epochs=1, batch_size=16, width=4, feature_dim=8, test_fraction=0.0)

TRAIN_IN_SUBPROCESS = """
import sys
from sphere_plugins.data import load_images
from sphere_plugins.metrics.features import ClassifierConfig, classifier_features
print(classifier_features(load_images("digits"), sys.argv[1], ClassifierConfig(epochs=1)).fingerprint)
"""


def test_weights_do_not_depend_on_the_thread_count(tmp_path, digits):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = classifier_features(digits, tmp_path / "two", ONE_EPOCH)
        torch.set_num_threads(1)
        one = classifier_features(digits, tmp_path / "one", ONE_EPOCH)
    finally:
        torch.set_num_threads(before)
    assert two.fingerprint == one.fingerprint
    assert torch.get_num_threads() == before


def test_concurrent_processes_share_one_network(tmp_path, digits):
    # what `accelerate launch --num_processes 2` does: two processes, one thread each, one cache folder
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", TRAIN_IN_SUBPROCESS, str(tmp_path)], env=env,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    here = classifier_features(digits, tmp_path / "single", ONE_EPOCH)
    assert outputs == [here.fingerprint, here.fingerprint]
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 1


@pytest.fixture
def tiny_mnist(tmp_path) -> Path:
    write_split(tmp_path, 60, "train", seed=3)
    write_split(tmp_path, 20, "test", seed=4)
    return tmp_path


def test_idx_sets_get_the_reference_network_of_their_train_split(tiny_mnist, tmp_path):
    test_split = load_images(f"mnist:{tiny_mnist}:test")
    network = classifier_features(test_split, tmp_path / "cache", TINY_IDX)
    assert network.name == "mnist-cnn" and fd_label(network) == "FD-mnist-cnn"
    assert network.info["n_train"] == 60 and network.info["n_test"] == 20
    assert "train split" in network.info["data"] and "test split" in network.info["test_data"]
    subset = load_images(f"mnist:{tiny_mnist}", limit=10)
    assert classifier_features(subset, tmp_path / "cache", TINY_IDX).fingerprint == network.fingerprint


def test_padded_sets_get_a_network_for_padded_images(tiny_mnist, tmp_path):
    padded = load_images(f"mnist:{tiny_mnist}", pad=2)
    network = classifier_features(padded, tmp_path, TINY_IDX)
    assert network.image_shape == (1, 32, 32)
    assert network(padded.images[:3]).shape == (3, 8)


@pytest.mark.slow
@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(), reason="no Fashion-MNIST files")
def test_fashion_mnist_network_reaches_90_percent(tmp_path):
    network = classifier_features(load_images("fashion-mnist:test"), tmp_path)
    assert network.name == "fmnist-cnn" and network.info["n_train"] == 60000 and network.info["n_test"] == 10000
    assert network.accuracy >= 0.90
    assert np.isfinite(network(load_images("fashion-mnist:test", limit=4).images)).all()
