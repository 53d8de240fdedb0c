"""Kernels behind `centerize_spherize`: an eager one built on layer norm, and an opt-in compiled one.

Both read the input once for the statistics and once more for the output, the floor for this operation
(a copy reads once and writes once). Neither forms sum(z^2) - d * mean^2 from raw entries, which loses
every digit when the mean is large against the spread (an offset of 1e4 with unit spread in float32):
both accumulate Welford moments (mean and squared deviations from the running mean), whose error stays
at the float rounding of the mean itself.
"""

from __future__ import annotations

import math
import os
import threading
import warnings

import torch
from torch import Tensor

# The compiled kernel is opt-in (SPHERE_PLUGINS_COMPILE_CONSTRAINT=1): on a CPU it measured no faster than
# layer norm at 16 and 128 MiB and slower below (its call costs more), and its first call compiles for
# seconds. Where it is on, inputs smaller than COMPILE_MIN_BYTES still take layer norm.
COMPILE_ENV = "SPHERE_PLUGINS_COMPILE_CONSTRAINT"
COMPILE_MIN_BYTES = 16 * 2**20

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


def welford_constraint(z: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
    """(centerize_spherize(z), radius / norm) over all non-batch dimensions, written for inductor: var_mean
    lowers to one Welford reduction pass and the rest fuses into one pointwise pass. `radius` is a tensor
    so that a new radius reuses the compiled kernel."""
    d = z[0].numel()
    x = z.reshape(z.shape[0], d)
    var, mean = torch.var_mean(x, dim=1, correction=0, keepdim=True)
    scale = radius * torch.rsqrt(var * d)
    return ((x - mean) * scale).to(z.dtype).view_as(z), scale.view((-1,) + (1,) * (z.dim() - 1))


class CompiledConstraint:
    """`welford_constraint` under torch.compile: compiled on first use (never at import), once for all
    shapes (dynamic), shared by threads; any failure to compile or run switches it off for the process
    with one warning, and the caller falls back to eager. Used only without autograd: its compiled backward
    would refuse retain_graph and double backward, which the eager kernels support."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kernel = None
        self._ready: set[tuple] = set()
        self.error: Exception | None = None

    def enabled(self) -> bool:
        """Asked for (SPHERE_PLUGINS_COMPILE_CONSTRAINT=1) and not failed before in this process."""
        return self.error is None and os.environ.get(COMPILE_ENV, "0") == "1"

    def wanted(self, z: Tensor, reduce: tuple[int, ...]) -> bool:
        """Whether `z` should take the compiled kernel: large, contiguous, all non-batch dims, no autograd,
        floating point, and not already inside someone's torch.compile (their compiler fuses it there)."""
        return (z.numel() * z.element_size() >= COMPILE_MIN_BYTES and self.enabled()
                and reduce == tuple(range(1, z.dim())) and z.is_floating_point() and z.is_contiguous()
                and not (torch.is_grad_enabled() and z.requires_grad)
                and not torch.compiler.is_compiling())

    def __call__(self, z: Tensor, radius: float) -> tuple[Tensor, Tensor] | None:
        """The constraint and radius / norm, or None when compiling is unavailable here."""
        radius_t = torch.full((1, 1), radius, dtype=torch.float32 if z.dtype in (torch.float16, torch.bfloat16)
                              else z.dtype, device=z.device)
        key = (z.device.type, z.dtype, z.dim())
        try:
            if key in self._ready:
                return self._kernel(z, radius_t)
            with self._lock:  # one thread compiles; the others wait for the result instead of compiling too
                if self.error is not None:
                    return None
                if self._kernel is None:
                    self._kernel = torch.compile(welford_constraint, dynamic=True)
                result = self._kernel(z, radius_t)
                self._ready.add(key)
                return result
        except Exception as error:  # no compiler, unsupported backend: eager is always correct
            self.error = error
            warnings.warn(f"centerize_spherize: torch.compile failed ({type(error).__name__}: {error}); "
                          f"using the eager kernel from now on (unset {COMPILE_ENV} to skip the attempt)",
                          RuntimeWarning, stacklevel=3)
            return None


compiled_constraint = CompiledConstraint()
