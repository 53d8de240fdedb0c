"""Checks of the command line's data, model and device before any suite runs, and the data loader suites use."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import BenchmarkError, Options
from benchmarks.suites import accepted_schemes, get_suite
from sphere_plugins.data import ImageSet, check_idx_files, idx_dataset, list_image_files, load_images, parse_idx_spec
from sphere_plugins.idx import SPLITS
from sphere_plugins.schemes import example_models, list_schemes


def check_inputs(options: Options) -> None:
    """Raise BenchmarkError (one clear line) for a bad device, data spec or model spec, or for what a chosen
    suite's own check(options) refuses; nothing runs before."""
    check_out(options.out)
    check_device(options.device)
    check_data_spec(options.data, options.resolution)
    for name in options.suites:
        get_suite(name).check(options)
    if options.model is not None:
        check_model_spec(options.model, options.suites)


def check_out(out: Path) -> None:
    """--out must be a writable folder, or a path whose nearest existing parent is a writable folder."""
    if not str(out).strip():
        raise BenchmarkError("--out is empty; expected an output folder such as results")
    if out.exists() and not out.is_dir():
        raise BenchmarkError(f"--out {str(out)!r} is a file, not a folder; pass a folder for the results")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BenchmarkError(f"--out {str(out)!r} cannot be written ({str(existing)!r} is not a writable folder)")


def check_device(device: str) -> None:
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise BenchmarkError(f"--device {device!r} is not a torch device ({error}); expected e.g. cpu or cuda") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError(f"--device {device!r} asks for a GPU but torch sees none; use --device cpu")
    if parsed.type not in ("cpu", "cuda"):
        raise BenchmarkError(f"--device {device!r} is not supported; expected cpu or cuda[:N]")


DATA_SPECS = "'fashion-mnist', 'fashion-mnist:PATH', 'mnist:PATH', 'digits' or 'folder:PATH'"


def check_data_spec(spec: str, resolution: int | None) -> None:
    """A data spec whose files are all there and sound: an idx data set (both splits read and checked, so a
    missing or truncated file stops the run before any training), 'digits', or 'folder:PATH' naming a readable
    folder of images of one size (or --resolution)."""
    if spec == "digits":
        return
    if idx_dataset(spec):
        check_idx_spec(spec)
        return
    if not spec.startswith("folder:"):
        raise BenchmarkError(f"--data {spec!r} is not a data spec; expected {DATA_SPECS}")
    from PIL import Image

    try:
        files = list_image_files(spec[len("folder:"):])
    except (OSError, ValueError) as error:
        raise BenchmarkError(f"--data {spec!r}: {error}") from None
    sizes: dict[tuple[int, int], Path] = {}
    for path in files:
        try:
            with Image.open(path) as image:
                sizes.setdefault(image.size, path)
        except OSError as error:
            raise BenchmarkError(f"--data {spec!r}: cannot read image file {str(path)!r} ({error})") from None
    if len(sizes) > 1 and resolution is None:
        (a, pa), (b, pb) = list(sizes.items())[:2]
        raise BenchmarkError(f"--data {spec!r} holds images of different sizes ({pa.name} is {a[0]}x{a[1]}, "
                             f"{pb.name} is {b[0]}x{b[1]}); pass --resolution N to resize them all to NxN")


def check_idx_spec(spec: str) -> None:
    """Both splits of an idx data set spec ('fashion-mnist[:PATH][:train|:test]') read and checked; the split
    named in the spec is ignored, since the benchmarks train on the train split and measure on the test split."""
    dataset, folder, _ = parse_idx_spec(spec)
    if spec.partition(":")[2] and not folder.is_dir():
        raise BenchmarkError(f"--data {spec!r}: the folder {str(folder)!r} does not exist; expected a folder "
                             f"holding {dataset}'s four idx files (train-images-idx3-ubyte[.gz], ...)")
    try:
        check_idx_files(spec, SPLITS)
    except (OSError, ValueError) as error:
        raise BenchmarkError(f"--data {spec!r}: {error}") from None


def check_model_spec(spec: str, suites: list[str]) -> None:
    """A 'scheme:rest' spec that one of the chosen suites accepts, whose file or folder exists."""
    accepted = {s: accepted_schemes(get_suite(s)) for s in suites}
    schemes = sorted({scheme for values in accepted.values() for scheme in values})
    scheme, colon, rest = spec.partition(":")
    if not colon or not rest:
        raise BenchmarkError(f"--model {spec!r} is not a model spec; expected 'scheme:NAME_OR_PATH' with scheme one "
                             f"of {', '.join(schemes) or '(none: the chosen suites train their own models)'}")
    if scheme not in schemes:
        users = ", ".join(f"{s}: {', '.join(v)}" for s, v in accepted.items() if v) or "none of the chosen suites take --model"
        raise BenchmarkError(f"--model {spec!r}: no chosen suite takes a {scheme!r} model ({users})")
    if spec in example_models():  # built by the plugin, no file needed
        return
    path = Path(rest).expanduser()
    declared = next((s for s in list_schemes(scheme) if s.name == scheme), None)
    hub_like = (declared is not None and declared.hub_ids and rest.count("/") == 1
                and not rest.startswith((".", "/", "~")))
    if not path.exists() and not hub_like:
        raise BenchmarkError(f"--model {spec!r}: the weight file or folder {str(path)!r} does not exist; put the "
                             f"model there or pass another path")


def load_data(options: Options, resolution: int | None, channels: int | None = None, limit: int | None = None,
              split: str | None = None):
    """The run's ImageSet at `resolution` (--resolution wins), with errors as BenchmarkError. An idx data set
    (28x28) is padded with background to 32x32 when 32 is asked for, as the paper does, and resized otherwise;
    `split` picks its train or test split."""
    spec, pad, resolution = options.data, 0, options.resolution or resolution
    if idx_dataset(spec):
        spec = idx_split_spec(spec, split or "train")
        if resolution == 32:
            pad, resolution = 2, None
        elif resolution == 28:
            resolution = None
    try:
        return load_images(spec, resolution=resolution, channels=channels, limit=limit, pad=pad)
    except (OSError, ValueError) as error:
        raise BenchmarkError(f"--data {options.data!r}: {error}") from None


def idx_split_spec(spec: str, split: str) -> str:
    """The spec of one split of an idx data set spec: 'fashion-mnist:PATH' -> 'fashion-mnist:PATH:test'."""
    dataset, folder, _ = parse_idx_spec(spec)
    return f"{dataset}:{folder}:{split}"


@dataclass
class Splits:
    """The images a suite trains on, the held-out images it reconstructs, and the real set its samples are
    measured against (the feature network is chosen from `real`)."""

    train: Any
    test: Any
    real: Any


def load_splits(options: Options, resolution: int | None, channels: int | None = None, limit: int | None = None,
                held_out: float | Callable[[int], float] = 0.2, n_test: int | None = None) -> Splits:
    """Training, held-out and reference images of the run's data.

    Fashion-MNIST and MNIST come with a fixed test split: models train on the train split (`limit` images at
    most), reconstructions are of the test split's first `n_test` images, and samples are measured against the
    whole test split (10,000 images the models never saw, the split the feature network is tested on). Other
    data is split at random (a `held_out` share, or held_out(number of images) when it is a function), and
    samples are measured against all of it, as before.
    """
    if idx_dataset(options.data):
        train = load_data(options, resolution, channels, limit, split="train")
        real = load_data(options, resolution, channels, None, split="test")
        count = len(real) if n_test is None else min(n_test, len(real))
        test = ImageSet(real.images[:count], real.labels[:count], real.name,
                        f"the first {count} images of the {real.description}", real.class_names, real.origin)
        return Splits(train, test, real)
    data = load_data(options, resolution, channels, limit)
    share = held_out(len(data)) if callable(held_out) else held_out
    train_idx, test_idx = train_test_split(len(data), share, options.seed)
    labels = data.labels
    train = ImageSet(data.images[train_idx], None if labels is None else labels[train_idx], data.name,
                     f"{len(train_idx)} training images of {data.description}")
    test = ImageSet(data.images[test_idx], None if labels is None else labels[test_idx], data.name,
                    f"{len(test_idx)} held-out images of {data.description}")
    return Splits(train, test, data)


def train_test_split(n: int, held_out: float, seed: int):
    """A fixed random split of n images into training and held-out indices (a `held_out` share)."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(n * held_out)))
    return order[n_test:], order[:n_test]


def file_stamp(spec: str) -> dict:
    """Size and modification time of the file or folder a model spec names (part of cache keys), or {}."""
    path = Path(spec.partition(":")[2]).expanduser()
    if not path.exists():
        return {}
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return {"bytes": sum(p.stat().st_size for p in files), "mtime": max((p.stat().st_mtime for p in files), default=0)}
