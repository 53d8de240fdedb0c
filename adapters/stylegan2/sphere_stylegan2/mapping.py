"""The mapping network: z (and a class label c) -> intermediate latents w, with truncation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sphere_stylegan2.layers import FullyConnectedLayer, normalize_2nd_moment, records_init


@records_init
class MappingNetwork(nn.Module):
    """An MLP from normalized z (and embedded c) to w, tracking the mean w for the truncation trick.

    `normalize_z=False` feeds z to the first layer as is (StyleGAN normally rescales it to RMS 1,
    which already puts it on the sphere of radius sqrt(z_dim)).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995,
                 normalize_z: bool = True):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.normalize_z = normalize_z
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        if z_dim + embed_features < 1:
            raise ValueError(f"z_dim is {z_dim} and c_dim is {c_dim}: the mapping network would have no input; "
                             "expected z_dim > 0 (or a conditional c_dim > 0)")
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: Tensor | None, c: Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False,
                normalize_z: bool | None = None, skip_w_avg_update: bool | None = None) -> Tensor:
        """ws [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None); normalize_z overrides the attribute.

        w_avg moves with update_emas=True (stylegan3's convention). Code written for stylegan2-ada-pytorch
        passes skip_w_avg_update instead, which there means: update in training mode unless it is True;
        given, it takes that meaning here too.
        """
        if skip_w_avg_update is not None:
            update_emas = self.training and not skip_w_avg_update
        x = None
        if self.z_dim > 0:
            _check_width(z, self.z_dim, "z")
            x = z.to(torch.float32)
            if self.normalize_z if normalize_z is None else normalize_z:
                x = normalize_2nd_moment(x)
        if self.c_dim > 0:
            _check_width(c, self.c_dim, "c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation_psi != 1 needs the tracked w_avg, but this mapping has w_avg_beta=None")
            truncated = self.w_avg.lerp(x, truncation_psi)
            if self.num_ws is None or truncation_cutoff is None:
                x = truncated
            else:
                x = torch.cat([truncated[:, :truncation_cutoff], x[:, truncation_cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"normalize_z={self.normalize_z}")


def _check_width(t: Tensor | None, width: int, name: str) -> None:
    if not isinstance(t, Tensor) or t.dim() != 2 or t.shape[1] != width:
        got = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a tensor of shape [N, {width}], got {got}")
