"""Shared test settings: deterministic, small, and quiet about thread oversubscription."""

import struct

import numpy as np
import pytest
import torch
from hypothesis import settings

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
settings.register_profile("project", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("project")


IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def write_idx_folder(folder, counts=(12, 8), seed=0) -> dict:
    """Fashion-MNIST's four plain idx files (uint8 images [N, 28, 28], labels [N]) written by hand from the
    format's description, not by the reader under test; returns the pixels of each split."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = {}
    for split, n in zip(IDX_FILES, counts):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        images_name, labels_name = IDX_FILES[split]
        (folder / images_name).write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", n, 28, 28) + images.tobytes())
        (folder / labels_name).write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", n) + labels.tobytes())
        pixels[split] = images
    return pixels


@pytest.fixture
def one_thread():
    """One intra-op thread for this test: tiny models run as fast on one as on two, and do not thrash when the
    machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def idx_folder():
    """The writer of a small Fashion-MNIST-format folder (see write_idx_folder)."""
    return write_idx_folder
