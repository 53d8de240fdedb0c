"""The StyleGAN2-ADA generator: mapping network + synthesis network."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sphere_stylegan2.mapping import MappingNetwork
from sphere_stylegan2.layers import records_init
from sphere_stylegan2.synthesis import SynthesisNetwork


def labels(c: Tensor | int | None, c_dim: int, batch: int, device: torch.device) -> Tensor:
    """Class labels as [N, c_dim] floats: None is allowed only when c_dim == 0; int labels become one-hot;
    one label (an int, [1] or [1, c_dim]) applies to the whole batch."""
    if isinstance(c, int) and not isinstance(c, bool):
        c = torch.tensor([c], device=device)
    if isinstance(c, Tensor) and c.dim() in (1, 2) and c.shape[0] == 1 and batch != 1 and c_dim > 0:
        c = c.expand(batch, *c.shape[1:])
    if c is None:
        if c_dim > 0:
            raise ValueError(f"c must be given for this conditional network: a tensor [N, {c_dim}] "
                             f"(one-hot) or [N] class indices, got None")
        return torch.zeros([batch, 0], device=device)
    if not isinstance(c, Tensor):
        raise ValueError(f"c must be a torch.Tensor of shape [N, {c_dim}] or [N] class indices, got {type(c).__name__}")
    if c_dim == 0:  # an unconditional network ignores its (empty) labels, as NVlabs' does
        if c.numel() > 0:
            raise ValueError(f"c must be None or empty for this unconditional network, got shape {list(c.shape)}")
        return torch.zeros([batch, 0], device=device)
    if c.dim() == 1 and not c.is_floating_point() and c_dim > 0:
        if bool(((c < 0) | (c >= c_dim)).any()):
            raise ValueError(f"c class indices must lie in [0, {c_dim - 1}], got {c.tolist()}")
        return torch.nn.functional.one_hot(c.long(), c_dim).to(device=device, dtype=torch.float32)
    if c.dim() != 2 or c.shape[1] != c_dim or c.shape[0] != batch:
        raise ValueError(f"c must have shape [{batch}, {c_dim}], got {list(c.shape)}")
    return c


@records_init
class Generator(nn.Module):
    """z [N, z_dim] and c [N, c_dim] -> images [N, img_channels, R, R] (about [-1, 1] when trained)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict[str, Any] | None = None, synthesis_kwargs: dict[str, Any] | None = None):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **dict(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **dict(mapping_kwargs or {}))

    def forward(self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False, **synthesis_kwargs) -> Tensor:
        """Images for latents z; synthesis_kwargs: noise_mode ('const' by default), force_fp32, fused_modconv."""
        c = labels(c, self.c_dim, z.shape[0], z.device)
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, **synthesis_kwargs)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, "
                f"img_resolution={self.img_resolution}, img_channels={self.img_channels}")
