"""Kernels behind `centerize_spherize`: layer norm's when the vector spans trailing dimensions, two passes
otherwise.

Layer norm reads the input once for the statistics and once more for the output, the floor for this
operation (a copy reads once and writes once). Neither kernel forms sum(z^2) - d * mean^2 from raw entries,
which loses every digit when the mean is large against the spread (an offset of 1e4 with unit spread in
float32): layer norm accumulates Welford moments (mean and squared deviations from the running mean), and
the two-pass kernel centers before squaring, so the error stays at the float rounding of the mean itself.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Layer norm's constant weight, kept between calls: building it is one allocation and fill per call, about
# a fifth of a tensor copy's time at 1 MiB. Bounded; emptied rather than evicted one by one (it only
# refills with a few small tensors).
_WEIGHTS: dict[tuple, Tensor] = {}
_MAX_WEIGHTS = 64


def trailing_dims(z: Tensor, reduce: tuple[int, ...]) -> bool:
    """Whether `reduce` is a run of dimensions ending at the last one (what layer norm normalizes over)."""
    return reduce == tuple(range(z.dim() - len(reduce), z.dim()))


def layer_norm_constraint(z: Tensor, radius: float, reduce: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """(centerize_spherize(z), per-vector sqrt(d) / norm) for trailing `reduce`, in one fused kernel.

    layer_norm(z) = (z - mean) / sqrt(var) = (z - mean) * sqrt(d) / ||z - mean||, so a constant weight of
    radius / sqrt(d) gives the constraint; eps = 0 keeps it exact, and rstd says which norms are bad.
    Autograd runs layer norm's own analytic backward.
    """
    shape = z.shape[z.dim() - len(reduce):]
    weight = constant_weight(shape, radius / math.sqrt(math.prod(shape)), z)
    out, _, rstd = torch.native_layer_norm(z, shape, weight, None, 0.0)
    if out.dtype != z.dtype:  # autocast runs layer norm in float32; the constraint keeps the input's dtype
        out = out.to(z.dtype)
    return out, rstd  # rstd = sqrt(d) / norm: zero, Inf or NaN exactly when radius / norm is


def constant_weight(shape: torch.Size, value: float, like: Tensor) -> Tensor:
    """A tensor of `shape` filled with `value`, on `like`'s device and dtype, reused across calls.

    Never cached while torch.compile traces (its fake tensors must not outlive the trace), for fake or meta
    devices, or across inference mode (an inference tensor cannot be saved for a later backward).
    """
    if torch.compiler.is_compiling() or like.device.type == "meta" or type(like) not in (Tensor, torch.nn.Parameter):
        return torch.full(shape, value, dtype=like.dtype, device=like.device)
    key = (tuple(shape), value, like.dtype, like.device, torch.is_inference_mode_enabled())
    weight = _WEIGHTS.get(key)
    if weight is None:
        weight = torch.full(shape, value, dtype=like.dtype, device=like.device)
        if type(weight) is Tensor:  # not a fake tensor made under someone's tensor mode
            if len(_WEIGHTS) >= _MAX_WEIGHTS:
                _WEIGHTS.clear()
            _WEIGHTS[key] = weight
    return weight


def two_pass_constraint(z: Tensor, radius: float, reduce: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """(centerize_spherize(z), radius / norm) for any `reduce`: center, take the norm, scale.

    Centering before squaring keeps it accurate for any offset. Without autograd the scaling happens in place
    on the centered temporary, which spares a second large allocation.
    """
    centered = z - z.mean(dim=reduce, keepdim=True)
    scale = radius / torch.linalg.vector_norm(centered, dim=reduce, keepdim=True)
    if torch.is_grad_enabled() and centered.requires_grad:
        return centered * scale, scale  # the norm's backward needs `centered` unchanged
    return centered.mul_(scale), scale
