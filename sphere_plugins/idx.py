"""MNIST-style idx files (Fashion-MNIST, MNIST): a checked numpy reader and the train/test splits of a folder.

The idx format is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in C order. Both data sets store uint8 images [N, 28, 28] and uint8 labels
[N]. Every check failure raises DataFileError naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sphere_plugins.errors import DataFileError

DATA_ENV = "SPHERE_PLUGINS_DATA"
DEFAULT_DATA_ROOT = Path("/usr/share/datasets")
SPLITS = ("train", "test")
FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = {
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "mnist": tuple(str(d) for d in range(10)),
}
HOW_TO_GET = {
    "fashion-mnist": "install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) "
    "or copy the four idx files there",
    "mnist": "copy MNIST's four idx files there",
}
_UBYTE = 0x08
_IMAGE_SIZE = (28, 28)
# The largest idx file read (bytes of values): EMNIST, the largest MNIST-style set, holds about 0.6 GB.
MAX_IDX_BYTES = 1 << 31
_CHUNK = 1 << 20


def data_folder(dataset: str) -> Path:
    """Where `dataset`'s files are looked for: $SPHERE_PLUGINS_DATA/<dataset>, else /usr/share/datasets/<dataset>."""
    if dataset not in CLASS_NAMES:
        raise ValueError(f"dataset must be one of {sorted(CLASS_NAMES)}, got {dataset!r}")
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT) / dataset


def read_idx(path: str | os.PathLike, ndim: int, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """The uint8 array an idx file holds (gzipped or not), after checking its magic, rank and byte count.

    The header's shape fixes how many bytes are read: a gzip member is decompressed in bounded chunks up to
    that size and no further, so a small file that inflates to gigabytes costs at most `max_bytes`.
    """
    path = Path(path)
    try:
        with _open_idx(path) as stream:
            magic = _read_upto(stream, 4)
            if len(magic) < 4 or magic[:3] != bytes([0, 0, _UBYTE]) or magic[3] != ndim:
                raise DataFileError(
                    f"{str(path)!r} is not an idx file of uint8 with {ndim} dimension(s): "
                    f"expected magic 00 00 08 {ndim:02x}, got {magic.hex(' ') or 'an empty file'}"
                )
            dims = _read_upto(stream, 4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataFileError(f"idx file {str(path)!r} is truncated: {4 + len(dims)} bytes, shorter than its "
                                    f"header ({4 + 4 * ndim} bytes)")
            shape = tuple(int.from_bytes(dims[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
            expected = math.prod(shape)  # Python ints: four uint32 dimensions cannot overflow here
            if expected > max_bytes:
                raise DataFileError(f"idx file {str(path)!r} declares shape {shape}, {expected} bytes of values; "
                                    f"refusing more than {max_bytes} bytes (max_bytes)")
            values = _read_upto(stream, expected)
            header = 4 + 4 * ndim
            if len(values) < expected:
                raise DataFileError(f"idx file {str(path)!r} is truncated: shape {shape} needs {header + expected} "
                                    f"bytes, found {header + len(values)}")
            if stream.read(1):
                raise DataFileError(f"idx file {str(path)!r} is longer than its header says: shape {shape} needs "
                                    f"{header + expected} bytes, found more")
    except MemoryError:
        raise DataFileError(f"idx file {str(path)!r}: not enough memory to hold its values") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"cannot read idx file {str(path)!r}: {err}") from err
    return np.frombuffer(values, dtype=np.uint8).reshape(shape)


def _open_idx(path: Path) -> BinaryIO:
    """The file's byte stream, decompressed on the fly when it starts with the gzip magic."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_upto(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes of `stream`, read in chunks of at most _CHUNK, so memory follows what the file holds."""
    parts, left = [], size
    while left:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def find_split_files(folder: str | os.PathLike, split: str, dataset: str = "fashion-mnist") -> tuple[Path, Path]:
    """The (images, labels) files of `split` in `folder`, plain or .gz; a missing one raises naming it."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = Path(folder)
    found = []
    for stem in FILE_STEMS[split]:
        candidates = [folder / f"{stem}.gz", folder / stem]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DataFileError(
                f"{dataset} file {str(candidates[0])!r} (or {candidates[1].name!r}) is missing; "
                f"expected the four idx files in {str(folder)!r}: {HOW_TO_GET.get(dataset, HOW_TO_GET['mnist'])}"
            )
        found.append(path)
    return found[0], found[1]


def read_split(folder: str | os.PathLike, split: str, dataset: str = "fashion-mnist") -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 28, 28] and uint8 labels [N] of one split, checked against each other."""
    images_path, labels_path = find_split_files(folder, split, dataset)
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[1:] != _IMAGE_SIZE or images.shape[0] == 0:
        raise DataFileError(
            f"idx file {str(images_path)!r} holds images of shape {images.shape[1:]} (N={images.shape[0]}); "
            f"expected N > 0 images of {_IMAGE_SIZE[0]}x{_IMAGE_SIZE[1]}"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataFileError(
            f"idx file {str(labels_path)!r} holds {labels.shape[0]} labels but {images_path.name!r} "
            f"holds {images.shape[0]} images; expected one label per image"
        )
    n_classes = len(CLASS_NAMES.get(dataset, CLASS_NAMES["mnist"]))
    if labels.size and labels.max() >= n_classes:
        raise DataFileError(
            f"idx file {str(labels_path)!r} holds label {int(labels.max())}; expected labels 0..{n_classes - 1}"
        )
    return images, labels
