"""Feature networks for Frechet distances: the protocol, an offline classifier trained on the benchmark data
(its distances are reported as "FD-<name>", never FID), and an on-disk cache of features of fixed image sets."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sphere_plugins.data import ImageSet, check_image_tensor
from sphere_plugins.files import atomic_path
from sphere_plugins.metrics import shards
from sphere_plugins.metrics.record import library_versions

CACHE_ENV = "SPHERE_PLUGINS_CACHE"


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps a batch of [-1, 1] NCHW images to float64 features [N, D]; `name` labels the distances."""

    name: str

    def __call__(self, images: Tensor) -> np.ndarray: ...


def fd_label(extractor: FeatureExtractor) -> str:
    """"FID" for clean-fid's standard Inception only; "FD-<name>" for any other feature network."""
    return "FID" if getattr(extractor, "is_standard_inception", False) else f"FD-{extractor.name}"


def kd_label(extractor: FeatureExtractor) -> str:
    """"KID" for clean-fid's standard Inception only; "KD-<name>" for any other feature network."""
    return "KID" if getattr(extractor, "is_standard_inception", False) else f"KD-{extractor.name}"


def default_cache_dir() -> Path:
    """$SPHERE_PLUGINS_CACHE, else ~/.cache/sphere-plugins."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sphere-plugins")


def tensor_fingerprint(*tensors: Tensor | None) -> str:
    """SHA-256 of the shapes, dtypes and bytes of tensors: a cache key for a fixed data set."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is None:
            digest.update(b"none")
            continue
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class SmallClassifier(nn.Module):
    """Three conv + batch-norm blocks and two linear layers; `features` is the penultimate layer before its ReLU."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 32, feature_dim: int = 64, pool: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(pool),
            nn.Flatten(),
            nn.Linear(2 * width * pool * pool, feature_dim),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate pre-activations (no ReLU, so no feature is identically zero)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits."""
        return self.head(F.relu(self.body(x)))


@dataclass
class ClassifierConfig:
    """How the offline classifier is trained; part of its cache key."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    test_fraction: float = 0.2
    seed: int = 0
    width: int = 32
    feature_dim: int = 64
    lr_decay: bool = False  # linear decay to zero over training: better accuracy from few epochs
    pool: int = 2  # side of the pooled feature map before the feature layer


class ClassifierFeatures:
    """Penultimate features of a classifier the project trained on the benchmark data (offline FD)."""

    def __init__(self, model: SmallClassifier, info: dict, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.info = info
        self.device = torch.device(device)
        self.name = info["name"]
        self.accuracy = info["test_accuracy"]
        self.fingerprint = info["weights_fingerprint"]
        self.image_shape = tuple(info["image_shape"])
        self.description = (
            f"{self.name}: small CNN trained on {info['data']} ({info['n_train']} images, "
            f"{self.image_shape[1]}x{self.image_shape[2]}), test accuracy {self.accuracy:.4f} "
            f"on {info['n_test']} held-out images"
        )

    @torch.no_grad()
    def __call__(self, images: Tensor) -> np.ndarray:
        """Features [N, feature_dim] in float64 for [-1, 1] images of the shape the classifier was trained on."""
        check_image_tensor(images)
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{self.name} was trained on images of shape {self.image_shape} (C, H, W), "
                f"got {tuple(images.shape[1:])}; "
                "resize the images or train the classifier at this resolution"
            )
        return self.model.features(images.to(self.device, torch.float32)).double().cpu().numpy()


IDX_NAMES = {"fashion-mnist": "fmnist", "mnist": "mnist"}
IDX_TRAINING = ClassifierConfig(epochs=3, batch_size=64, width=16, test_fraction=0.0, lr_decay=True, pool=4)


def classifier_features(
    data: ImageSet,
    cache_dir: str | os.PathLike | None = None,
    config: ClassifierConfig | None = None,
    device: str | torch.device = "cpu",
) -> ClassifierFeatures:
    """The offline feature network for `data`: loaded from the cache, else trained (and cached) on its labels.

    Fashion-MNIST and MNIST sets (from load_images) get the data set's reference network whatever split or
    subset `data` is: trained on the whole train split at data's padding/resolution/channels, accuracy measured
    on the test split, named "fmnist-cnn" / "mnist-cnn". Any other labelled set trains on a fixed random split
    of itself. Training is single-threaded and seeded, so the weights do not depend on how many processes or
    threads run; concurrent processes share one cache entry (the first trains, the others wait and load it).
    """
    if data.origin.get("dataset") in IDX_NAMES:
        return idx_classifier(data.origin, cache_dir, config, device)
    config = config or ClassifierConfig()
    if data.labels is None:
        raise ValueError(
            f"data {data.name!r} has no class labels, so no classifier can be trained for offline FD; "
            "use a folder with one sub-folder per class, or provide the Inception weights for FID"
        )
    return _cached_classifier(data, None, f"{data.name}-cnn", config, cache_dir, device)


def idx_classifier(
    origin: dict,
    cache_dir: str | os.PathLike | None = None,
    config: ClassifierConfig | None = None,
    device: str | torch.device = "cpu",
) -> ClassifierFeatures:
    """The reference network of Fashion-MNIST ("fmnist-cnn") or MNIST ("mnist-cnn"): `origin` is an ImageSet's
    `origin` (dataset, folder, resolution, channels, pad); trained on the train split, tested on the test split."""
    from sphere_plugins.data import load_images

    dataset, folder = origin["dataset"], origin["folder"]
    options = {key: origin.get(key) for key in ("resolution", "channels")}
    train = load_images(f"{dataset}:{folder}:train", pad=origin.get("pad") or 0, **options)
    test = load_images(f"{dataset}:{folder}:test", pad=origin.get("pad") or 0, **options)
    return _cached_classifier(train, test, f"{IDX_NAMES[dataset]}-cnn", config or IDX_TRAINING, cache_dir, device)


def _cached_classifier(
    train: ImageSet, test: ImageSet | None, name: str, config: ClassifierConfig, cache_dir, device
) -> ClassifierFeatures:
    """Load the cache entry of (data, config), else train and store it, holding a lock file meanwhile."""
    fingerprint = tensor_fingerprint(train.images, train.labels, *((test.images, test.labels) if test else ()))
    _, c, h, w = train.images.shape
    stem = f"{name}-{c}x{h}x{w}-{_config_key(config)}-{fingerprint[:16]}"
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "features"
    weights_path, info_path = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    folder.mkdir(parents=True, exist_ok=True)
    with _file_lock(folder / f"{stem}.lock"):
        if weights_path.exists() or info_path.exists():
            try:
                return _load_classifier(weights_path, info_path, fingerprint, device)
            except Exception as err:  # any unreadable cache entry is rebuilt, never trusted
                message = f"feature-network cache {weights_path.name} is unreadable ({err}); retraining it"
                warnings.warn(message, stacklevel=3)
        model, info = _train_classifier(train, test, name, config, fingerprint)
        from safetensors.torch import save_file

        with atomic_path(weights_path) as tmp:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        with atomic_path(info_path) as tmp:
            tmp.write_text(json.dumps(info, indent=2))
    return ClassifierFeatures(model, info, device)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (POSIX); elsewhere a no-op."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the block on one intra-op thread: CPU reductions then do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _config_key(config: ClassifierConfig) -> str:
    """Short stable hash of the training configuration."""
    # "one-thread" marks entries trained on one thread; earlier ones depended on the thread count
    return hashlib.sha256(json.dumps({**config.__dict__, "training": "one-thread"}, sort_keys=True).encode()).hexdigest()[:8]


def _load_classifier(weights_path: Path, info_path: Path, fingerprint: str, device) -> ClassifierFeatures:
    """Rebuild a cached classifier; raises on a missing, corrupt or mismatched entry."""
    from safetensors.torch import load_file

    info = json.loads(info_path.read_text())
    if info["data_fingerprint"] != fingerprint:
        raise ValueError("data fingerprint does not match")
    c = info["image_shape"][0]
    settings = info["config"]
    model = SmallClassifier(c, info["n_classes"], settings["width"], settings["feature_dim"], settings.get("pool", 2))
    state = load_file(str(weights_path))
    if _state_fingerprint(state) != info["weights_fingerprint"]:
        raise ValueError("weights do not match their recorded fingerprint")
    model.load_state_dict(state)
    return ClassifierFeatures(model, info, device)


def _state_fingerprint(state: dict[str, Tensor]) -> str:
    """Fingerprint of a state dict, in key order."""
    return tensor_fingerprint(*(state[k] for k in sorted(state)))


def _train_classifier(
    data: ImageSet, test: ImageSet | None, name: str, config: ClassifierConfig, fingerprint: str
) -> tuple[SmallClassifier, dict]:
    """Train on the CPU, on one thread, and measure accuracy on `test` (else on a fixed random split of `data`)."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    images, labels = data.images.float().cpu(), data.labels.long().cpu()
    if test is None:
        order = torch.randperm(len(data), generator=generator)
        n_test = max(1, int(round(len(data) * config.test_fraction)))
        test_idx, train_idx = order[:n_test], order[n_test:]
        test_images, test_labels = images[test_idx], labels[test_idx]
    else:
        train_idx = torch.arange(len(data))
        test_images, test_labels = test.images.float().cpu(), test.labels.long().cpu()
    n_classes = int(labels.max().item()) + 1
    with _one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = SmallClassifier(images.shape[1], n_classes, config.width, config.feature_dim, config.pool)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        steps = config.epochs * -(-len(train_idx) // config.batch_size)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, (lambda step: 1 - step / steps) if config.lr_decay else (lambda step: 1.0)
        )
        model.train()
        for _ in range(config.epochs):
            perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
            for i in range(0, len(perm), config.batch_size):
                batch = perm[i : i + config.batch_size]
                loss = F.cross_entropy(model(images[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        model.eval()
        with torch.no_grad():
            predictions = torch.cat([model(test_images[i : i + 1000]).argmax(1) for i in range(0, len(test_images), 1000)])
    accuracy = (predictions == test_labels).float().mean().item()
    info = {
        "name": name,
        "data": data.description or data.name,
        "test_data": (test.description or test.name) if test is not None else "held-out split of the data",
        "data_fingerprint": fingerprint,
        "image_shape": list(images.shape[1:]),
        "n_classes": n_classes,
        "n_train": len(train_idx),
        "n_test": len(test_labels),
        "test_accuracy": accuracy,
        "train_seconds": time.perf_counter() - start,
        "config": config.__dict__,
        "weights_fingerprint": _state_fingerprint(model.state_dict()),
        "versions": library_versions(),
    }
    return model, info


def cached_features(
    images: Tensor,
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
    distributed: bool = False,
) -> np.ndarray:
    """Features of a fixed image set, stored as .npy under cache_dir/features when the extractor has a
    `fingerprint` (an extractor without one is always recomputed). `distributed`: see batched_features; the main
    process decides whether the cache holds them and writes it."""
    key = getattr(extractor, "fingerprint", None)
    if cache_dir is None or key is None:
        return batched_features(images, extractor, batch_size, distributed)
    path = Path(cache_dir) / "features" / f"{extractor.name}-{tensor_fingerprint(images)[:16]}-{str(key)[:16]}.npy"
    features = _read_feature_cache(path, images.shape[0]) if shards.is_main(distributed) else None
    if shards.from_main(features is not None, distributed):
        return features if features is not None else np.load(path, allow_pickle=False)
    features = batched_features(images, extractor, batch_size, distributed)
    if shards.is_main(distributed):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, features, allow_pickle=False)
    return features


def _read_feature_cache(path: Path, rows: int) -> np.ndarray | None:
    """The cached features at `path` if they are readable and have `rows` rows; a damaged file is recomputed."""
    if not path.exists():
        return None
    try:
        features = np.load(path, allow_pickle=False)
        if features.shape[0] == rows:
            return features
        raise ValueError(f"{features.shape[0]} rows for {rows} images")
    except Exception as err:  # a damaged cache file is recomputed
        warnings.warn(f"feature cache {path.name} is unreadable ({err}); recomputing it", stacklevel=3)
        return None


def batched_features(images: Tensor, extractor: FeatureExtractor, batch_size: int = 256,
                     distributed: bool = False) -> np.ndarray:
    """Run an extractor over `images` in batches and stack the float64 features; `distributed` splits the batches
    across the processes of the torch.distributed group and gathers them (see metrics.shards)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = [images[i: i + batch_size] for i in range(0, len(images), batch_size)]
    chunks = shards.map_sharded(partial(_as_features, extractor), batches, distributed)
    return np.concatenate(chunks) if chunks else np.zeros((0, 0))


def _as_features(extractor: FeatureExtractor, images: Tensor) -> np.ndarray:
    return np.asarray(extractor(images), dtype=np.float64)
