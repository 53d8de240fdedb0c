"""Image sources a metric accepts (tensor, ImageSet, folder, images made one per seed, generator callable), read
batch by batch, resized on request."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from sphere_plugins.data import ImageSet, check_image_tensor, convert_images, list_image_files, read_image_files


@dataclass(frozen=True)
class SeededImages:
    """Images made one per seed: `draw(seeds)` returns [len(seeds), C, H, W], image i depending on seeds[i] alone,
    so any split of the seeds into batches or processes gives the same images (see metrics.shards)."""

    draw: Callable[[Sequence[int]], Tensor]
    seeds: Sequence[int]
    name: str = "images from seeds"


ImageSource = Tensor | ImageSet | str | os.PathLike | SeededImages | Callable[[int], Tensor]


def iter_image_batches(
    source: ImageSource, n: int | None = None, batch_size: int = 64, name: str = "source",
    resolution: int | None = None,
) -> Iterator[Tensor]:
    """Yield [-1, 1] image batches: the first `n` images of a tensor, ImageSet, folder ("folder:PATH" or a path) or
    SeededImages, or `n` images drawn from a callable `gen(batch) -> [batch, C, H, W]`; resized to
    `resolution` x `resolution` when given."""
    plan = batch_plan(source, n, batch_size, name, resolution)
    if plan is not None:
        yield from (batch() for batch in plan)
    else:
        yield from (convert_images(images, resolution) for images in _generated(source, n, batch_size, name))


def batch_plan(
    source: ImageSource, n: int | None = None, batch_size: int = 64, name: str = "source",
    resolution: int | None = None,
) -> list[Callable[[], Tensor]] | None:
    """One function per batch of iter_image_batches, each reading its own images, so batches can be computed in
    any order or process; None for a `gen(batch)` callable, whose batches come from one stream in order."""
    _check_counts(n, batch_size)
    if isinstance(source, ImageSet):
        source = source.images
    if isinstance(source, Tensor):
        images = check_image_tensor(source, name)[:n]
        return [partial(_resized, images[i: i + batch_size], resolution) for i in range(0, images.shape[0], batch_size)]
    if isinstance(source, (str, os.PathLike)):
        files = list_image_files(folder_of(source))[:n]
        return [partial(read_image_files, files[i: i + batch_size], resolution)
                for i in range(0, len(files), batch_size)]
    if isinstance(source, SeededImages):
        seeds = list(source.seeds)[:n]
        return [partial(_seeded, source, seeds[i: i + batch_size], resolution, name)
                for i in range(0, len(seeds), batch_size)]
    if callable(source):
        if n is None:
            raise ValueError(f"{name} is a generator callable: pass the number of images to draw")
        return None
    raise ValueError(
        f"{name} must be an image tensor, an ImageSet, a folder path, SeededImages or a callable gen(batch) -> images; "
        f"got {type(source).__name__}"
    )


def _check_counts(n: int | None, batch_size: int) -> None:
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _resized(images: Tensor, resolution: int | None) -> Tensor:
    return convert_images(images, resolution)


def _seeded(source: SeededImages, seeds: list[int], resolution: int | None, name: str) -> Tensor:
    with torch.no_grad():
        images = source.draw(seeds)
    return convert_images(_checked_batch(images, len(seeds), f"{name}.draw({len(seeds)} seeds)"), resolution)


def _checked_batch(images: object, size: int, call: str) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] != size:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{call} must return {size} images [N, C, H, W], got {got}")
    return check_image_tensor(images.detach(), call)


def _generated(gen: Callable[[int], Tensor], n: int, batch_size: int, name: str) -> Iterator[Tensor]:
    """Draw `n` images from `gen`, checking each batch."""
    remaining = n
    while remaining > 0:
        size = min(batch_size, remaining)
        with torch.no_grad():
            images = gen(size)
        yield _checked_batch(images, size, f"{name}({size})")
        remaining -= size


def image_size(source: ImageSource, n: int | None = None, batch_size: int = 64,
               name: str = "source") -> tuple[tuple[int, int], ImageSource]:
    """(height, width) of the source's images, and the source to read from now on: a `gen(batch)` callable is
    replaced by one that hands back the batch drawn to look (no image is drawn twice, none skipped)."""
    if isinstance(source, ImageSet):
        return tuple(source.images.shape[-2:]), source
    if isinstance(source, Tensor):
        return tuple(check_image_tensor(source, name).shape[-2:]), source
    if isinstance(source, (str, os.PathLike)):
        from PIL import Image

        first = list_image_files(folder_of(source))[0]
        with Image.open(first) as image:
            return (image.height, image.width), source
    if isinstance(source, SeededImages):  # one image of its first seed
        if not len(source.seeds):
            raise ValueError(f"{name} holds no seeds; pass at least one")
        return tuple(_seeded(source, list(source.seeds)[:1], None, name).shape[-2:]), source
    batch_plan(source, n, batch_size, name)  # raises for anything but a callable with a count
    first = next(_generated(source, min(batch_size, n), batch_size, name))
    return tuple(first.shape[-2:]), _Replay(source, first)


class _Replay:
    """A gen(batch) callable whose first call returns a batch already drawn."""

    def __init__(self, gen: Callable[[int], Tensor], first: Tensor):
        self.gen, self.first = gen, first
        self.__name__ = getattr(gen, "__name__", type(gen).__name__)

    def __call__(self, batch: int) -> Tensor:
        if self.first is not None and batch == self.first.shape[0]:
            first, self.first = self.first, None
            return first
        return self.gen(batch)


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
    if isinstance(source, SeededImages):
        return source.name
    return getattr(source, "__name__", type(source).__name__)
