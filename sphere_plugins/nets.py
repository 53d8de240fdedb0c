"""Small built-in networks for tests and quick benchmarks: a conv encoder/decoder pair.

The encoder can emit extra code channels (`heads`, `extra`) so the VAE baseline (mu, logvar) and the
S-VAE baseline (mean direction, concentration) share the spherical autoencoder's architecture exactly.
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def _check_sizes(**sizes: int) -> None:
    """ValueError naming the first size that is not a positive int (a zero z_dim or width builds empty layers)."""
    for name, value in sizes.items():
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_resolution(resolution: int) -> int:
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution!r}")
    return int(math.log2(resolution))


class ConvEncoder(nn.Module):
    """Images [N, C, R, R] -> codes [N, heads * z_dim + extra], halving the resolution down to 4x4."""

    def __init__(self, channels: int = 1, resolution: int = 16, z_dim: int = 10, width: int = 32, heads: int = 1,
                 extra: int = 0):
        super().__init__()
        _check_sizes(channels=channels, z_dim=z_dim, width=width, heads=heads)
        if not isinstance(extra, int) or extra < 0:
            raise ValueError(f"extra must be a non-negative int (additional outputs), got {extra!r}")
        levels = _check_resolution(resolution) - 2
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        for _ in range(levels):
            layers += [nn.Conv2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers += [nn.Flatten(), nn.Linear(width * 16, heads * z_dim + extra)]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim
        self.heads = heads
        self.extra = extra

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """Codes [N, z_dim] -> images [N, C, R, R] in [-1, 1], doubling the resolution from 4x4."""

    def __init__(self, channels: int = 1, resolution: int = 16, z_dim: int = 10, width: int = 32):
        super().__init__()
        _check_sizes(channels=channels, z_dim=z_dim, width=width)
        levels = _check_resolution(resolution) - 2
        self.width = width
        self.fc = nn.Sequential(nn.Linear(z_dim, width * 16), nn.LeakyReLU(0.2))
        layers: list[nn.Module] = []
        for _ in range(levels):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1),
                       nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(width, channels, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim
        self.config = {"channels": channels, "resolution": resolution, "z_dim": z_dim, "width": width}

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.fc(z).view(-1, self.width, 4, 4))


class EncoderDecoder(nn.Module):
    """An encoder and a decoder as one module with encode/decode and `z_dim`: the shape every autoencoder
    adapter understands. z_dim=None leaves the code size to be learnt from the first encode."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, z_dim: int | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.z_dim = z_dim

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class ConvAutoencoder(EncoderDecoder):
    """ConvEncoder + ConvDecoder of one size."""

    def __init__(self, channels: int = 1, resolution: int = 16, z_dim: int = 10, width: int = 32, heads: int = 1):
        super().__init__(ConvEncoder(channels, resolution, z_dim, width, heads),
                         ConvDecoder(channels, resolution, z_dim, width), z_dim)
        # The constructor's arguments, so save_pretrained can rebuild it.
        self.config = {"channels": channels, "resolution": resolution, "z_dim": z_dim, "width": width, "heads": heads}
