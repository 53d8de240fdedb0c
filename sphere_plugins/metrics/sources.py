"""Image sources a metric accepts (tensor, ImageSet, folder, generator callable), read batch by batch."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from sphere_plugins.data import ImageSet, check_image_tensor, list_image_files, read_image_files

ImageSource = Tensor | ImageSet | str | os.PathLike | Callable[[int], Tensor]


def iter_image_batches(
    source: ImageSource, n: int | None = None, batch_size: int = 64, name: str = "source"
) -> Iterator[Tensor]:
    """Yield [-1, 1] image batches: the first `n` images of a tensor, ImageSet or folder ("folder:PATH" or a
    path), or `n` images drawn from a callable `gen(batch) -> [batch, C, H, W]`."""
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(source, ImageSet):
        source = source.images
    if isinstance(source, Tensor):
        images = check_image_tensor(source, name)[:n]
        for i in range(0, images.shape[0], batch_size):
            yield images[i : i + batch_size]
    elif isinstance(source, (str, os.PathLike)):
        files = list_image_files(folder_of(source))[:n]
        for i in range(0, len(files), batch_size):
            yield read_image_files(files[i : i + batch_size])
    elif callable(source):
        if n is None:
            raise ValueError(f"{name} is a generator callable: pass the number of images to draw")
        yield from _generated(source, n, batch_size, name)
    else:
        raise ValueError(
            f"{name} must be an image tensor, an ImageSet, a folder path or a callable gen(batch) -> images; "
            f"got {type(source).__name__}"
        )


def _generated(gen: Callable[[int], Tensor], n: int, batch_size: int, name: str) -> Iterator[Tensor]:
    """Draw `n` images from `gen`, checking each batch."""
    remaining = n
    while remaining > 0:
        size = min(batch_size, remaining)
        with torch.no_grad():
            images = gen(size)
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] != size:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"{name}({size}) must return {size} images [N, C, H, W], got {got}")
        yield check_image_tensor(images.detach(), f"{name}({size})")
        remaining -= size


def folder_of(source: str | os.PathLike) -> Path:
    """The folder a 'folder:PATH' spec or a plain path names."""
    text = os.fspath(source)
    return Path(text[len("folder:"):] if text.startswith("folder:") else text)


def source_name(source: ImageSource) -> str:
    """A short description of an image source for records."""
    if isinstance(source, ImageSet):
        return source.description or source.name
    if isinstance(source, Tensor):
        return f"tensor {tuple(source.shape)}"
    if isinstance(source, (str, os.PathLike)):
        return f"folder {folder_of(source).name}"
    return getattr(source, "__name__", type(source).__name__)
