"""clean-fid's InceptionV3 features ("clean" resize) from a local weight file; nothing is downloaded."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from sphere_plugins.data import check_image_tensor, to_uint8
from sphere_plugins.downloads import downloads_allowed
from sphere_plugins.errors import CorruptWeightsError, MissingWeightsError

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_DIR_ENV = "SPHERE_PLUGINS_INCEPTION_DIR"
INCEPTION_NAME = "inception-v3-2015-12-05"


def inception_weights_path(folder: str | os.PathLike | None = None) -> Path:
    """Where the Inception TorchScript file is looked up: `folder`, else $SPHERE_PLUGINS_INCEPTION_DIR, else
    the system temp folder (clean-fid's own download folder on Linux)."""
    folder = folder or os.environ.get(INCEPTION_DIR_ENV) or tempfile.gettempdir()
    return Path(folder) / INCEPTION_FILE


def inception_available(folder: str | os.PathLike | None = None) -> bool:
    """Whether the Inception weight file is on disk (so "auto" features mean real FID)."""
    return inception_weights_path(folder).is_file()


def check_inception_weights(folder: str | os.PathLike | None = None, metric: str = "FID") -> Path:
    """Return the weight file path, or raise MissingWeightsError naming the file, the folder and its URL."""
    path = inception_weights_path(folder)
    if not path.is_file():
        raise MissingWeightsError(
            INCEPTION_FILE,
            str(path.parent),
            f"{metric} (clean-fid's InceptionV3)",
            INCEPTION_URL,
        )
    return path


class InceptionFeatures:
    """2048-d InceptionV3 pool features of [-1, 1] images, preprocessed exactly as clean-fid's "clean" mode.

    Images are quantized to uint8 (as if saved to PNG, so generated and real images take the same path),
    grey images are repeated to RGB, each is resized to 299x299 with clean-fid's PIL bicubic resizer, and the
    network sees values in [0, 255]. `model` injects another network into this pipeline (tests): its results
    are then labelled FD-<name>, never FID.
    """

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        model: nn.Module | None = None,
        name: str | None = None,
    ):
        from cleanfid.resize import build_resizer

        self.device = torch.device(device)
        self.resize = build_resizer("clean")
        if model is None:
            from cleanfid.inception_torchscript import InceptionV3W

            path = inception_weights_path(folder)
            download = downloads_allowed() and not path.is_file()
            if not download:
                check_inception_weights(folder)
            try:
                model = InceptionV3W(str(path.parent), download=download, resize_inside=False)
            except (RuntimeError, ValueError, EOFError, OSError) as error:
                if download or not path.is_file():
                    raise
                raise CorruptWeightsError(str(path), "FID/KID (clean-fid's InceptionV3)", INCEPTION_URL) from error
            self.is_standard_inception = True
            self.name = INCEPTION_NAME
            self.fingerprint = f"{INCEPTION_NAME}-{path.stat().st_size}"
        else:
            self.is_standard_inception = False
            self.name = name or f"{type(model).__name__}-clean-fid-pipeline"
            self.fingerprint = None
        self.model = model.to(self.device).eval()

    def preprocess(self, images: Tensor) -> Tensor:
        """[-1, 1] NCHW images -> float32 [N, 3, 299, 299] in [0, 255], as clean-fid feeds its network."""
        pixels = to_uint8(check_image_tensor(images)).cpu()
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        resized = [self.resize(image.permute(1, 2, 0).numpy()) for image in pixels]
        return torch.from_numpy(np.stack(resized).astype(np.float32)).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def __call__(self, images: Tensor) -> np.ndarray:
        """Features [N, D] in float64 for a batch of [-1, 1] images."""
        batch = self.preprocess(images).to(self.device)
        return self.model(batch).reshape(batch.shape[0], -1).double().cpu().numpy()
