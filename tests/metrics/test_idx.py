"""Fashion-MNIST and MNIST from idx files: exact pixels, checked headers, the data folder and its override."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from sphere_plugins.data import load_images
from sphere_plugins.errors import DataFileError
from sphere_plugins.idx import DATA_ENV, data_folder, read_idx

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "t10k-images-idx3-ubyte.gz").is_file(), reason="Debian's dataset-fashion-mnist is not installed"
)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """An idx file written from the format's definition: 00 00 08 ndim, big-endian dims, uint8 values."""
    body = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


def write_split(folder: Path, n: int, split: str = "train", compress: bool = False, seed: int = 0) -> tuple:
    """n random 28x28 images and labels as the split's two idx files in `folder`."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if compress else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_path_reads_pixels_and_labels_exactly(tmp_path, compress):
    images, labels = write_split(tmp_path, 7, compress=compress)
    data = load_images(f"mnist:{tmp_path}")
    assert data.images.shape == (7, 1, 28, 28) and data.images.dtype == torch.float32
    assert torch.equal(data.images[:, 0], torch.from_numpy(images.astype(np.float32)) / 127.5 - 1)
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == labels.tolist()
    assert data.class_names == tuple("0123456789") and data.name == "mnist"


def test_splits_are_chosen_by_suffix(tmp_path):
    train, _ = write_split(tmp_path, 5, "train", seed=1)
    test, _ = write_split(tmp_path, 3, "test", seed=2)
    assert len(load_images(f"fashion-mnist:{tmp_path}")) == 5
    assert len(load_images(f"fashion-mnist:{tmp_path}:train")) == 5
    got = load_images(f"fashion-mnist:{tmp_path}:test")
    assert len(got) == 3 and got.images[0, 0, 5, 7].item() == pytest.approx(test[0, 5, 7] / 127.5 - 1)
    assert got.class_names[0] == "T-shirt/top" and got.class_names[9] == "Ankle boot"


def test_environment_variable_overrides_the_default_folder(tmp_path, monkeypatch):
    write_split(tmp_path / "fashion-mnist", 4, "test")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_folder("fashion-mnist") == tmp_path / "fashion-mnist"
    assert len(load_images("fashion-mnist:test")) == 4
    monkeypatch.delenv(DATA_ENV)
    assert data_folder("fashion-mnist") == DEBIAN


def test_options_pad_resize_limit_and_channels_apply(tmp_path):
    images, _ = write_split(tmp_path, 6)
    padded = load_images(f"mnist:{tmp_path}", pad=2, limit=4)
    assert padded.images.shape == (4, 1, 32, 32)
    assert (padded.images[:, :, :2] == -1).all() and (padded.images[:, :, :, -2:] == -1).all()
    assert torch.equal(padded.images[:, 0, 2:-2, 2:-2], torch.from_numpy(images[:4].astype(np.float32)) / 127.5 - 1)
    assert load_images(f"mnist:{tmp_path}", resolution=16, channels=3).images.shape == (6, 3, 16, 16)


def test_missing_folder_names_the_file_and_how_to_get_it(tmp_path):
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte.*dataset-fashion-mnist"):
        load_images(f"fashion-mnist:{tmp_path / 'nowhere'}")


def test_truncated_file_is_named_with_the_expected_size(tmp_path):
    write_split(tmp_path, 5)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataFileError, match=rf"{path.name}.* truncated: shape \(5, 28, 28\) needs 3936 bytes, found 3926"):
        load_images(f"mnist:{tmp_path}")


def test_corrupt_gzip_is_named(tmp_path):
    write_split(tmp_path, 5, compress=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:12])
    with pytest.raises(DataFileError, match="cannot read idx file.*train-labels-idx1-ubyte.gz"):
        load_images(f"mnist:{tmp_path}")


def test_bad_magic_is_rejected(tmp_path):
    write_split(tmp_path, 5)
    # a labels file where images belong: rank 1 instead of 3
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(DataFileError, match=r"expected magic 00 00 08 03, got 00 00 08 01"):
        load_images(f"mnist:{tmp_path}")


def test_label_count_must_match_image_count(tmp_path):
    write_split(tmp_path, 5)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataFileError, match="holds 4 labels but 'train-images-idx3-ubyte' holds 5 images"):
        load_images(f"mnist:{tmp_path}")


def test_images_of_another_size_are_rejected(tmp_path):
    write_split(tmp_path, 2)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(DataFileError, match=r"shape \(32, 32\).*expected N > 0 images of 28x28"):
        load_images(f"mnist:{tmp_path}")


@needs_debian
def test_fashion_mnist_test_split_is_the_idx_file_exactly():
    raw = gzip.decompress((DEBIAN / "t10k-images-idx3-ubyte.gz").read_bytes())
    expected = np.frombuffer(raw[16:], np.uint8).reshape(10000, 28, 28)
    labels = np.frombuffer(gzip.decompress((DEBIAN / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:], np.uint8)
    data = load_images("fashion-mnist:test")
    assert data.images.shape == (10000, 1, 28, 28) and data.images.dtype == torch.float32
    pixels = ((data.images[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    assert np.array_equal(pixels, expected)
    assert torch.equal(data.images[:, 0], torch.from_numpy(expected.astype(np.float32)) / 127.5 - 1)
    assert np.array_equal(data.labels.numpy(), labels) and np.bincount(labels).tolist() == [1000] * 10


@needs_debian
def test_fashion_mnist_default_is_the_train_split():
    data = load_images("fashion-mnist", limit=3)
    labels = np.frombuffer(gzip.decompress((DEBIAN / "train-labels-idx1-ubyte.gz").read_bytes())[8:], np.uint8)
    assert len(labels) == 60000 and data.labels.tolist() == labels[:3].tolist()


def test_check_idx_files_reads_the_named_split_or_each_given_one(tmp_path, idx_folder):
    from sphere_plugins.data import check_idx_files
    from sphere_plugins.errors import DataFileError

    idx_folder(tmp_path)
    test_images = tmp_path / "t10k-images-idx3-ubyte"
    test_images.write_bytes(test_images.read_bytes()[:-10])
    check_idx_files(f"fashion-mnist:{tmp_path}")  # the train split, which is sound
    for spec, splits in ((f"fashion-mnist:{tmp_path}:test", None), (f"fashion-mnist:{tmp_path}", ("train", "test"))):
        with pytest.raises(DataFileError, match="t10k-images-idx3-ubyte"):
            check_idx_files(spec, splits)


def test_a_gzip_that_inflates_past_its_header_is_refused_without_inflating_it(tmp_path):
    write_split(tmp_path, 10)
    body = (tmp_path / "train-images-idx3-ubyte").read_bytes() + bytes(64 << 20)  # 64 MB of zeros after 10 images
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(body, compresslevel=9))
    (tmp_path / "train-images-idx3-ubyte").unlink()
    tracemalloc.start()
    try:
        with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte.gz.* longer than its header says"):
            load_images(f"mnist:{tmp_path}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert bomb.stat().st_size < 1 << 20 and peak < 8 << 20


def test_a_header_declaring_more_than_the_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(100))
    with pytest.raises(DataFileError, match=r"declares shape \(4294967295, 4294967295, 4294967295\).* refusing more"):
        read_idx(path, 3)


def test_running_out_of_memory_while_reading_is_our_error(tmp_path, monkeypatch):
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(5, np.uint8), compress=True)

    def no_memory(*args):
        raise MemoryError

    monkeypatch.setattr(gzip.GzipFile, "read", no_memory)
    with pytest.raises(DataFileError, match="labels-idx1-ubyte.*not enough memory"):
        read_idx(path, 1)
