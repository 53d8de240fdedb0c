"""A timm backbone as a spherical autoencoder's encoder: pooled features -> linear head -> raw code.

Images in [-1, 1] are mapped to the backbone's own normalization (its pretrained_cfg mean/std), and
images whose shorter side is below `min_size` are upsampled bilinearly first: most timm networks
downsample by 32, so the default min_size=32 keeps at least one feature position (8x8 digits work).
Pretrained weights are read only from disk: `checkpoint_path`, the Hugging Face cache, or torch hub's
checkpoints folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from sphere_plugins.adapter import MissingWeightsError
from torch import Tensor, nn

# timm names its Hugging Face weight files one of these; the first cached one is used.
_HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _check_name(name: str) -> None:
    import timm

    if not isinstance(name, str) or not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:10] if isinstance(name, str) else []
        hint = f" Similar names: {', '.join(close)}." if close else " See timm.list_models()."
        raise ValueError(f"name must be a timm model name, got {name!r}.{hint}")


def _cached_hub_file(hub_id: str, filenames: tuple[str, ...]) -> str | None:
    """The first of `filenames` of `hub_id` already in the Hugging Face cache (no network)."""
    from huggingface_hub import constants, try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(hub_id, filename, cache_dir=constants.HF_HUB_CACHE)
        if isinstance(found, str):
            return found
    return None


def pretrained_file(name: str, checkpoint_path: str | os.PathLike | None) -> str:
    """The local file holding `name`'s pretrained weights; MissingWeightsError if there is none."""
    if checkpoint_path is not None:
        path = Path(checkpoint_path)
        if not path.is_file():
            raise MissingWeightsError(path.name, str(path.parent.resolve()), f"TimmEncoder({name!r}) checkpoint_path")
        return str(path)
    from huggingface_hub import constants
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(f"timm publishes no pretrained weights for {name!r}; use pretrained=False "
                         "or pass checkpoint_path= to a weight file")
    filenames = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES
    found = _cached_hub_file(cfg.hf_hub_id, filenames) if cfg.hf_hub_id else None
    url_file = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name if cfg.url else None
    if found is None and url_file is not None and url_file.is_file():
        found = str(url_file)
    if found is not None:
        return found
    purpose = f"TimmEncoder({name!r}, pretrained=True)"
    if cfg.hf_hub_id:
        raise MissingWeightsError(
            filenames[0], f"the Hugging Face cache {constants.HF_HUB_CACHE} (repo {cfg.hf_hub_id}, e.g. "
            f"`huggingface-cli download {cfg.hf_hub_id}` on a connected machine), or pass checkpoint_path= to it",
            purpose, f"https://huggingface.co/{cfg.hf_hub_id}")
    raise MissingWeightsError(url_file.name, f"{url_file.parent}, or pass checkpoint_path= to it", purpose, cfg.url)


class TimmEncoder(nn.Module):
    """Images [N, in_chans, H, W] in [-1, 1] -> raw codes [N, z_dim] through a timm backbone and a linear head.

    `pretrained=True` loads the backbone's weights from `checkpoint_path` (a timm state dict file: its
    classifier is dropped and the stem adapted to `in_chans` by timm) or else from the Hugging Face cache
    (or torch hub's checkpoints folder for url-only weights); nothing is downloaded. `timm_kwargs` go to
    timm.create_model (e.g. drop_path_rate, img_size).
    """

    def __init__(self, name: str, z_dim: int, pretrained: bool = False,
                 checkpoint_path: str | os.PathLike | None = None, in_chans: int = 3, min_size: int = 32,
                 **timm_kwargs: Any):
        super().__init__()
        import timm

        _check_name(name)
        for argument, value in (("z_dim", z_dim), ("in_chans", in_chans), ("min_size", min_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{argument} must be a positive int, got {value!r}")
        if "num_classes" in timm_kwargs:
            raise ValueError("num_classes is fixed to 0 (pooled features) in TimmEncoder; the head maps to z_dim")
        if checkpoint_path is not None and not pretrained:
            raise ValueError("checkpoint_path holds pretrained weights: pass pretrained=True with it")
        # source=None makes timm read the file even for configs whose source is the hub.
        overlay = {"file": pretrained_file(name, checkpoint_path), "source": None} if pretrained else None
        self.backbone = timm.create_model(name, pretrained=pretrained, pretrained_cfg_overlay=overlay,
                                          num_classes=0, in_chans=in_chans, **timm_kwargs)
        self.head = nn.Linear(self.backbone.num_features, z_dim)
        self.name = name
        self.z_dim = z_dim
        self.in_chans = in_chans
        self.min_size = min_size
        self.timm_kwargs = dict(timm_kwargs)  # what save_pretrained needs to rebuild the backbone
        mean, std = self._normalization(in_chans)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def _normalization(self, in_chans: int) -> tuple[Tensor, Tensor]:
        """The backbone's per-channel mean/std, averaged when its channel count differs from in_chans."""
        cfg = self.backbone.pretrained_cfg or {}
        stats = []
        for key, default in (("mean", 0.5), ("std", 0.5)):
            values = torch.tensor(cfg.get(key) or (default,), dtype=torch.float32)
            if values.numel() != in_chans:
                values = values.mean().expand(in_chans)
            stats.append(values.reshape(1, in_chans, 1, 1).clone())
        return stats[0], stats[1]

    def _prepare(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError(f"x must be images [N, C, H, W], got {getattr(x, 'shape', type(x).__name__)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"x must have in_chans={self.in_chans} channel(s) for this TimmEncoder({self.name!r}), "
                             f"got {x.shape[1]} in shape {list(x.shape)}")
        height, width = x.shape[2:]
        if min(height, width) < self.min_size:
            scale = self.min_size / min(height, width)
            x = F.interpolate(x, size=(round(height * scale), round(width * scale)), mode="bilinear",
                              align_corners=False)
        return ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(self._prepare(x)))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, z_dim={self.z_dim}, in_chans={self.in_chans}, min_size={self.min_size}"
