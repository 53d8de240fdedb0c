"""Image sources for the benchmarks: built-in digits, a folder of image files, or a tensor; plus PNG grids."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sphere_plugins.files import atomic_path

ACCEPTED_SPECS = (
    "'digits' (scikit-learn's 8x8 handwritten digits, shipped with scikit-learn), "
    "'folder:PATH' (a folder of PNG/JPEG/... files; sub-folder names become class labels), "
    "'fashion-mnist' or 'mnist' with an optional ':PATH' (a folder with the four idx files) and ':train' or "
    "':test' (default train), "
    "or a float tensor [N, C, H, W] with values in [-1, 1]"
)
_RANGE_TOLERANCE = 1e-4
# A folder data set is held in memory whole: these bound it (environment variables raise them).
MAX_FOLDER_IMAGES_ENV, MAX_FOLDER_IMAGES = "SPHERE_PLUGINS_MAX_FOLDER_IMAGES", 1_000_000
MAX_FOLDER_BYTES_ENV, MAX_FOLDER_BYTES = "SPHERE_PLUGINS_MAX_FOLDER_BYTES", 4 << 30


@dataclass
class ImageSet:
    """Images in [-1, 1] (float32, NCHW), optional integer class labels, and a name for reports; `origin` says how
    an idx data set was loaded (dataset, folder, split, pad, resolution, channels) so its reference feature
    network can be rebuilt from the train split whatever subset this is."""

    images: Tensor
    labels: Tensor | None
    name: str
    description: str = ""
    class_names: tuple[str, ...] = ()
    origin: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]


def load_images(
    spec: str | os.PathLike | Tensor,
    resolution: int | None = None,
    channels: int | None = None,
    limit: int | None = None,
    pad: int = 0,
) -> ImageSet:
    """Load a benchmark image set from a spec string or a tensor, padded, resized and limited on request.

    `pad` adds that many background (-1) pixels on every side before any resize: `pad=2` turns Fashion-MNIST's
    28x28 into the 32x32 StyleGAN2 needs without resampling; `resolution=32` would resize (bilinear) instead.
    """
    _check_options(resolution, channels, limit)
    if not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be an int >= 0, got {pad!r}")
    if isinstance(spec, Tensor):
        images = check_image_tensor(spec, "spec")
        if limit is not None:
            images = images[:limit]
        images = convert_images(images, resolution, channels, pad)
        return ImageSet(images.float(), None, "tensor", f"{images.shape[0]} images given as a tensor")
    if isinstance(spec, str) and spec.partition(":")[0] in IDX_DATASETS:
        return _load_idx(spec, resolution, channels, limit, pad)
    if pad:
        image_set = load_images(spec, None, channels, limit)
        image_set.images = convert_images(image_set.images, resolution, None, pad)
        image_set.description += f", padded by {pad} to {image_set.images.shape[-1]}x{image_set.images.shape[-2]}"
        return image_set
    if isinstance(spec, str) and spec == "digits":
        return _load_digits(resolution, channels, limit)
    if isinstance(spec, str) and spec.startswith("folder:"):
        return _load_folder(Path(spec[len("folder:"):]), resolution, channels, limit)
    raise ValueError(f"unknown data spec {spec!r}; expected {ACCEPTED_SPECS}")


def check_image_tensor(images: Tensor, name: str = "images", clamp: bool = False) -> Tensor:
    """Return `images` unchanged after checking it is a finite float [N, C, H, W] batch in [-1, 1].

    clamp=True clamps values outside [-1, 1] instead (a generator's raw output overshoots), warning once.
    """
    if not isinstance(images, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of images, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[0] == 0 or images.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape [N>0, C in (1, 3), H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    low, high = images.min().item(), images.max().item()
    if (low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE) and clamp:
        _warn_clamp_once(name, low, high)
        return images.clamp(-1, 1)
    if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise ValueError(
            f"{name} must have values in [-1, 1], got min {low:.4g} and max {high:.4g} "
            "(map [0, 1] images with x * 2 - 1, uint8 images with x / 127.5 - 1)"
        )
    return images


_clamp_warned = False


def _warn_clamp_once(name: str, low: float, high: float) -> None:
    global _clamp_warned
    if not _clamp_warned:
        _clamp_warned = True
        warnings.warn(f"{name} has values in [{low:.4g}, {high:.4g}]; clamped to [-1, 1] for saving (warned once)",
                      stacklevel=3)


def convert_images(
    images: Tensor, resolution: int | None = None, channels: int | None = None, pad: int = 0
) -> Tensor:
    """Pad by `pad` background (-1) pixels per side, resize to `resolution` x `resolution` (bilinear,
    antialiased) and convert to `channels` (1 or 3)."""
    if pad:
        images = F.pad(images, (pad, pad, pad, pad), value=-1.0)
    if resolution is not None and tuple(images.shape[-2:]) != (resolution, resolution):
        images = F.interpolate(
            images, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
        ).clamp(-1, 1)
    if channels is not None and channels != images.shape[1]:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
        else:
            weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images * weights).sum(dim=1, keepdim=True)
    return images


def _check_options(resolution: int | None, channels: int | None, limit: int | None) -> None:
    """Reject option values that cannot describe an image set."""
    if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
        raise ValueError(f"resolution must be a positive int or None, got {resolution!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")


def _load_digits(resolution: int | None, channels: int | None, limit: int | None) -> ImageSet:
    """scikit-learn's digits (values 0..16) mapped linearly to [-1, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32)).unsqueeze(1) / 8.0 - 1.0
    labels = torch.from_numpy(digits.target.astype(np.int64))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    images = convert_images(images, resolution, channels)
    size = images.shape[-1]
    resized = f", resized from 8x8 to {size}x{size}" if size != 8 else ""
    return ImageSet(
        images,
        labels,
        "digits",
        f"scikit-learn digits: {images.shape[0]} images{resized}, 10 classes",
        tuple(str(d) for d in range(10)),
    )


IDX_DATASETS = ("fashion-mnist", "mnist")


def parse_idx_spec(spec: str) -> tuple[str, Path, str]:
    """('fashion-mnist' | 'mnist', folder, 'train' | 'test') of a spec such as 'fashion-mnist:PATH:test'."""
    from sphere_plugins.idx import SPLITS, data_folder

    dataset, _, rest = spec.partition(":")
    split = "train"
    for name in SPLITS:
        if rest == name or rest.endswith(f":{name}"):
            split, rest = name, rest[: -len(name)].rstrip(":")
            break
    return dataset, Path(rest).expanduser() if rest else data_folder(dataset), split


def idx_dataset(spec: str) -> str | None:
    """'fashion-mnist' or 'mnist' when the data spec names one of those idx data sets, else None."""
    name = spec.partition(":")[0]
    return name if name in IDX_DATASETS else None


def check_idx_files(spec: str, splits: Sequence[str] | None = None) -> None:
    """Read and check the idx files of an idx data set spec: the split it names, or each of `splits`. A missing,
    truncated or corrupt file raises DataFileError (or OSError) naming it, before any work uses the data."""
    from sphere_plugins.idx import read_split

    dataset, folder, split = parse_idx_spec(spec)
    for name in splits or (split,):
        read_split(folder, name, dataset)


def _load_idx(spec: str, resolution: int | None, channels: int | None, limit: int | None, pad: int) -> ImageSet:
    """A split of Fashion-MNIST or MNIST from its idx files, as pixel / 127.5 - 1."""
    from sphere_plugins.idx import CLASS_NAMES, read_split

    dataset, folder, split = parse_idx_spec(spec)
    pixels, targets = read_split(folder, split, dataset)
    if limit is not None:
        pixels, targets = pixels[:limit], targets[:limit]
    images = torch.from_numpy(pixels.astype(np.float32)).unsqueeze(1) / 127.5 - 1.0
    images = convert_images(images, resolution, channels, pad)
    h, w = images.shape[-2:]
    changes = f", padded by {pad}" if pad else ""
    changes += f", resized to {w}x{h}" if resolution is not None and resolution != 28 + 2 * pad else ""
    origin = {"dataset": dataset, "folder": str(folder), "split": split,
              "resolution": resolution, "channels": channels, "pad": pad}
    return ImageSet(
        images,
        torch.from_numpy(targets.astype(np.int64)),
        dataset,
        f"{dataset} {split} split from {folder}: {images.shape[0]} images, 28x28{changes}, 10 classes",
        CLASS_NAMES[dataset],
        origin,
    )


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Every image file under `folder` (recursively), in sorted order; errors name the folder."""
    from PIL import Image

    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"image folder {str(folder)!r} is a file, expected a folder of images")
    extensions = {ext.lower() for ext in Image.registered_extensions()}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise ValueError(
            f"image folder {str(folder)!r} contains no image files "
            f"(looked for {', '.join(sorted(extensions)[:8])}, ...)"
        )
    return files


def read_image_files(
    files: Sequence[Path], resolution: int | None = None, channels: int | None = None, max_bytes: int | None = None
) -> Tensor:
    """Decode image files into one [N, C, H, W] tensor in [-1, 1]; errors name the offending files.

    max_bytes bounds the decoded pixels (as decoded, before resizing): the file that passes it raises.
    """
    arrays, held = [], 0
    for path in files:
        arrays.append(_read_one(path, channels))
        held += arrays[-1].nbytes
        if max_bytes is not None and held > max_bytes:
            raise ValueError(
                f"the {len(files)} image files decode to more than {max_bytes} bytes (passed at {str(path)!r}, "
                f"file {len(arrays)}); load fewer (limit=N) or raise {MAX_FOLDER_BYTES_ENV} if the data set is meant "
                "to be held in memory"
            )
    if channels is None:
        channels = 3 if any(a.ndim == 3 for a in arrays) else 1
    tensors = []
    first_size: tuple[Path, tuple[int, int]] | None = None
    for path, array in zip(files, arrays):
        image = torch.from_numpy(array)
        image = image.float().div(127.5).sub(1.0) if image.dtype == torch.uint8 else image.mul(2.0).sub(1.0)
        image = image.unsqueeze(0) if image.dim() == 2 else image.permute(2, 0, 1)
        image = convert_images(image.unsqueeze(0), resolution, channels)
        if first_size is None:
            first_size = (path, tuple(image.shape[-2:]))
        elif tuple(image.shape[-2:]) != first_size[1]:
            (h1, w1), (h2, w2) = first_size[1], image.shape[-2:]
            raise ValueError(
                f"images have different sizes: {first_size[0].name!r} is {w1}x{h1} but {path.name!r} is {w2}x{h2}; "
                "pass resolution=N (--resolution N on the command line) to resize them all to NxN"
            )
        tensors.append(image)
    return torch.cat(tensors)


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _read_one(path: Path, channels: int | None) -> np.ndarray:
    """Decode one file to HW (grey) or HWC (RGB): uint8 for 8-bit files, float32 in [0, 1] for 16-bit ones
    (scaled by 65535, their true depth); a file Pillow cannot read, or one whose pixel count exceeds Pillow's
    decompression-bomb limit, raises a one-line ValueError naming it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                grey = img.mode in ("1", "L", "LA", "I", "F", *_SIXTEEN_BIT) if channels is None else channels == 1
                if img.mode in _SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):
                    array = np.asarray(img, dtype=np.float32) / 65535.0
                    if array.min() < 0 or array.max() > 1:
                        raise ValueError(f"16-bit pixel values outside [0, 65535] (mode {img.mode})")
                    return array if grey else np.repeat(array[..., None], 3, axis=-1)
                if img.mode in ("I", "F"):
                    raise ValueError(f"{img.mode!r}-mode images (32-bit integer or float pixels) have no fixed range; "
                                     "save them as 8- or 16-bit images")
                return np.asarray(img.convert("L" if grey else "RGB"), dtype=np.uint8).copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"image file {str(path)!r} is too large to decode safely ({err}); a decompression "
                         "bomb? Raise PIL.Image.MAX_IMAGE_PIXELS if it is genuine".replace("\n", " ")) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"cannot read image file {str(path)!r}: {err}") from err


def _folder_limit(variable: str, default: int) -> int:
    """The limit an environment variable sets (a positive int), else `default`."""
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{variable} must be a positive int, got {text!r}")
    return value


def _load_folder(folder: Path, resolution: int | None, channels: int | None, limit: int | None) -> ImageSet:
    """Images of a folder; class labels from first-level sub-folder names when every image lies in one."""
    files = list_image_files(folder)
    if limit is not None:
        files = files[:limit]
    max_images = _folder_limit(MAX_FOLDER_IMAGES_ENV, MAX_FOLDER_IMAGES)
    if len(files) > max_images:
        raise ValueError(
            f"image folder {str(folder)!r} holds {len(files)} image files, more than the {max_images} a data set "
            f"held in memory may have; load fewer (limit=N) or raise {MAX_FOLDER_IMAGES_ENV}"
        )
    images = read_image_files(files, resolution, channels, _folder_limit(MAX_FOLDER_BYTES_ENV, MAX_FOLDER_BYTES))
    parts = [p.relative_to(folder).parts for p in files]
    labels, class_names = None, ()
    if all(len(p) > 1 for p in parts):
        class_names = tuple(sorted({p[0] for p in parts}))
        index = {name: i for i, name in enumerate(class_names)}
        labels = torch.tensor([index[p[0]] for p in parts], dtype=torch.int64)
    classes = f", {len(class_names)} classes" if labels is not None else ""
    size = images.shape[-1]
    description = f"{len(files)} images from {folder}, {size}x{size}{classes}"
    return ImageSet(images, labels, folder.name or str(folder), description, class_names)


def to_uint8(images: Tensor) -> Tensor:
    """Map [-1, 1] images to uint8 [0, 255] with rounding (the quantization of a saved PNG)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_image_grid(images: Tensor, path: str | os.PathLike, nrow: int = 8, padding: int = 1) -> Path:
    """Write [-1, 1] images as one PNG grid of `nrow` columns, atomically (temp file, then rename).

    Values outside [-1, 1] (StyleGAN2 overshoots) are clamped, as to_uint8 does, with a warning once.
    """
    from PIL import Image

    images = check_image_tensor(images, "images", clamp=True)
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    pixels = to_uint8(images).cpu()
    n, c, h, w = pixels.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.zeros(c, rows * (h + padding) + padding, cols * (w + padding) + padding, dtype=torch.uint8)
    for i in range(n):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[:, top : top + h, left : left + w] = pixels[i]
    array = grid[0].numpy() if c == 1 else grid.permute(1, 2, 0).numpy()
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path
