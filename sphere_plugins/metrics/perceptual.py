"""LPIPS through the lpips package, with its torchvision backbone read from the local torch hub folder only."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor

from sphere_plugins.data import check_image_tensor
from sphere_plugins.downloads import downloads_allowed
from sphere_plugins.errors import CorruptWeightsError, MissingWeightsError
from sphere_plugins.metrics.record import MetricRecord

LPIPS_NETS = ("alex", "vgg", "squeeze")
RANDOM_BACKBONE_NAME = "LPIPS-random-backbone (plumbing test only)"
MIN_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}  # smallest side each backbone's pooling stack accepts (measured)


def _backbone_url(net: str) -> str:
    """The torchvision weight URL lpips's backbone loads (its file name is what the hub folder must hold)."""
    from torchvision.models import AlexNet_Weights, SqueezeNet1_1_Weights, VGG16_Weights

    weights = {"alex": AlexNet_Weights, "vgg": VGG16_Weights, "squeeze": SqueezeNet1_1_Weights}[net]
    return weights.IMAGENET1K_V1.url


def lpips_backbone_path(net: str = "alex") -> Path:
    """Where torchvision looks for the backbone of LPIPS-`net`: torch.hub.get_dir()/checkpoints/<file>."""
    if net not in LPIPS_NETS:
        raise ValueError(f"net must be one of {LPIPS_NETS}, got {net!r}")
    return Path(torch.hub.get_dir()) / "checkpoints" / _backbone_url(net).rsplit("/", 1)[-1]


class LPIPS:
    """LPIPS distance per image pair of [-1, 1] images (grey images are repeated to RGB).

    The backbone weight file must already be in the torch hub folder (MissingWeightsError otherwise).
    `allow_random_backbone=True` builds a randomly initialized backbone to exercise the plumbing only;
    its results are named RANDOM_BACKBONE_NAME, never LPIPS.
    """

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu", allow_random_backbone: bool = False):
        import lpips

        path = lpips_backbone_path(net)
        purpose = f"LPIPS-{net} (torchvision backbone)"
        present = path.is_file()
        if not allow_random_backbone and not present and not downloads_allowed():
            raise MissingWeightsError(path.name, str(path.parent), purpose, _backbone_url(net))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=allow_random_backbone, verbose=False)
        except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
            if not present or allow_random_backbone:
                raise
            raise CorruptWeightsError(str(path), purpose, _backbone_url(net)) from error
        self.model = self.model.to(device).eval()
        self.device = torch.device(device)
        self.net = net
        self.name = RANDOM_BACKBONE_NAME if allow_random_backbone else f"LPIPS-{net}"

    @torch.no_grad()
    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Distances [N] between matching images of x and y (same shape, values in [-1, 1])."""
        check_image_tensor(x, "x")
        check_image_tensor(y, "y")
        if x.shape != y.shape:
            raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        smallest = MIN_SIZE[self.net]
        if min(x.shape[-2:]) < smallest:
            raise ValueError(
                f"LPIPS-{self.net} needs images of at least {smallest}x{smallest} pixels, "
                f"got {x.shape[-2]}x{x.shape[-1]}; resize them first"
            )
        x, y = (t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t for t in (x, y))
        return self.model(x.to(self.device, torch.float32), y.to(self.device, torch.float32)).flatten().cpu()


def compute_lpips(x: Tensor, y: Tensor, metric: LPIPS, batch_size: int = 64, seed: int | None = None) -> MetricRecord:
    """Mean LPIPS over image pairs, as a record labelled with the metric's name."""
    values = torch.cat([metric(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    return MetricRecord(
        metric=metric.name,
        value=float(values.mean()),
        feature_network=f"lpips {metric.net}",
        n_samples=int(x.shape[0]),
        seed=seed,
        extra={"std": float(values.std()) if values.numel() > 1 else 0.0},
    )
