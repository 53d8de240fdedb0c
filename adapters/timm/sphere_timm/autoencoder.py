"""A timm encoder paired with a decoder: one module with encode/decode/z_dim, as every adapter expects."""

from __future__ import annotations

import os
from typing import Any

from sphere_plugins.nets import ConvDecoder, EncoderDecoder
from torch import nn

from sphere_timm.encoder import TimmEncoder
from sphere_plugins.adapter import spec_value


class TimmAutoencoder(EncoderDecoder):
    """encode: images in [-1, 1] -> raw codes [N, z_dim] (timm backbone); decode: codes -> images."""

    def __init__(self, encoder: TimmEncoder, decoder: nn.Module):
        if not isinstance(encoder, TimmEncoder):
            raise ValueError(f"encoder must be a TimmEncoder, got {type(encoder).__name__}")
        if not isinstance(decoder, nn.Module):
            raise ValueError(f"decoder must be an nn.Module mapping [N, z_dim] codes to images, "
                             f"got {type(decoder).__name__}")
        super().__init__(encoder, decoder, encoder.z_dim)


# The options of build_timm_autoencoder (and of "timm:NAME" specs) with their defaults.
DEFAULTS = {"z_dim": 10, "resolution": 16, "channels": 1, "width": 32, "pretrained": False, "min_size": 32}
_ALIASES = {"in_chans": "channels", "img_size": "resolution"}


def parse_spec(rest: str) -> tuple[str, dict[str, Any]]:
    """'resnet18?in_chans=3&img_size=64' -> ('resnet18', {'channels': 3, 'resolution': 64})."""
    name, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, equals, text = item.partition("=")
        if not equals or not key:
            raise ValueError(f"timm spec options must read key=value joined by '&', got {item!r} in {rest!r}")
        key = _ALIASES.get(key, key)
        if key in options:
            raise ValueError(f"timm spec option {key!r} given twice in {rest!r}")
        options[key] = spec_value(text)
    return name, options


def build_timm_autoencoder(name: str, z_dim: int = 10, resolution: int = 16, channels: int = 1, width: int = 32,
                           pretrained: bool = False, checkpoint_path: str | os.PathLike | None = None,
                           min_size: int = 32, **timm_kwargs: Any) -> TimmAutoencoder:
    """A timm backbone encoder and the core's conv decoder for `channels` x `resolution`^2 images.

    Defaults match "builtin:tiny-ae" (1 channel, 16x16, z_dim 10); `resolution` must be a power of two >= 4.
    """
    encoder = TimmEncoder(name, z_dim, pretrained=pretrained, checkpoint_path=checkpoint_path, in_chans=channels,
                          min_size=min_size, **timm_kwargs)
    return TimmAutoencoder(encoder, ConvDecoder(channels=channels, resolution=resolution, z_dim=z_dim, width=width))
