"""The paper's two operations, centerize and spherize, plus great-circle interpolation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sphere_plugins import fused

Dims = int | Sequence[int] | None


def vector_dims(z: Tensor, dims: Dims = None) -> tuple[int, ...]:
    """The dimensions one latent vector spans: all but the batch dimension unless `dims` says otherwise."""
    return _dims_of(tuple(z.shape), dims)


def group_size(shape: Sequence[int], dims: Dims = None) -> int:
    """Number of entries in one latent vector of a batch of `shape` (the d of the paper)."""
    shape = tuple(shape)
    if not all(isinstance(n, (int, torch.SymInt)) and not isinstance(n, bool) and not (isinstance(n, int) and n < 0)
               for n in shape):
        raise ValueError(f"shape must hold non-negative ints, got {shape}")
    size = 1
    for d in _dims_of(shape, dims):  # a plain loop: torch.compile traces it without a graph break
        size *= shape[d]
    return size


def _dims_of(shape: tuple[int, ...], dims: Dims) -> tuple[int, ...]:
    """vector_dims for a batch of `shape`: checks and normalizes `dims` (negative ones counted from the end)."""
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(f"z must have a batch dimension and at least one latent dimension, got shape {shape}")
    if dims is None:
        return tuple(range(1, ndim))
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if not all(type(d) is int and -ndim <= d < ndim for d in dims):
        raise ValueError(f"dims must be ints in [{-ndim}, {ndim - 1}] for z of shape {shape} "
                         f"(out-of-range dims are not wrapped around), got {dims}")
    normalized = tuple(d % ndim for d in dims)
    if not normalized or 0 in normalized or len(set(normalized)) != len(normalized):
        raise ValueError(f"dims must name distinct non-batch dimensions of z (shape {shape}), got {dims}")
    return normalized


def centerize(z: Tensor, dims: Dims = None) -> Tensor:
    """Subtract from each latent vector the mean of its own entries (Algorithm 1, step 2)."""
    return z - z.mean(dim=vector_dims(z, dims), keepdim=True)


def spherize(z: Tensor, radius: float = 1.0, dims: Dims = None, check: bool = True) -> Tensor:
    """Project each latent vector onto the sphere of `radius` (eq. 3).

    With `check`, NaN/Inf entries and zero vectors raise ValueError naming the samples, instead of
    producing NaN; pass check=False in a hot loop whose inputs are known to be good.
    """
    _check_radius(radius)
    scale = radius / torch.linalg.vector_norm(z, dim=vector_dims(z, dims), keepdim=True)
    if check:
        _check_scale(z, scale)
    return z * scale


def centerize_spherize(z: Tensor, radius: float = 1.0, dims: Dims = None, check: bool = True) -> Tensor:
    """spherize(centerize(z)), the spherical constraint of eq. (10), in one fused kernel.

    Same values as chaining the two, at about the cost of two reads and one write of z: layer norm's
    kernel when the vector spans trailing dimensions (the default), two passes otherwise
    (sphere_plugins.fused). Gradients are the kernels' exact analytic ones.
    """
    _check_radius(radius)
    reduce = vector_dims(z, dims)
    kernel = fused.layer_norm_constraint if fused.trailing_dims(z, reduce) else fused.two_pass_constraint
    out, scale = kernel(z, radius, reduce)
    if check:
        _check_scale(z, scale)
    return out


def _check_radius(radius: float) -> None:
    if not radius > 0 or not math.isfinite(radius):
        raise ValueError(f"radius must be a positive finite number, got {radius!r}")


def _check_scale(z: Tensor, scale: Tensor) -> None:
    """Raise when a vector's norm is zero, NaN or Inf, given scale = (a positive constant) / norm per vector.
    Each log(scale) is finite exactly when the norm is good (scale is 0, Inf or NaN otherwise) and lies
    within +-745 (float64's range), so their float32 sum is finite exactly when all are: two small ops and
    one device read cover all three cases; the per-sample diagnosis runs only on failure."""
    if not math.isfinite(float(scale.detach().log().sum(dtype=torch.float32))):
        _raise_bad_vectors(z, scale)


def _raise_bad_vectors(z: Tensor, scale: Tensor) -> None:
    norm_not_finite = (scale == 0) | scale.isnan()
    bad = norm_not_finite | scale.isinf()
    samples = sorted({int(i) for i in bad.nonzero()[:, 0].tolist()})
    shown = ", ".join(map(str, samples[:8])) + (" ..." if len(samples) > 8 else "")
    if bool(norm_not_finite.any()):
        entries_finite = bool(torch.isfinite(z[sorted(samples)]).all())
        problem = (f"have a norm too large for {z.dtype} (finite entries, overflowing sum of squares)"
                   if entries_finite else "contain NaN or Inf entries")
    elif bool((z[sorted(samples)] != 0).any()) and not _constant(z[sorted(samples)]):
        problem = (f"have entries so small that their squares underflow to zero in {z.dtype} (they are not "
                   "constant: scale them up or compute in float64)")
    else:
        problem = "are zero vectors (a constant vector becomes zero after centerize)"
    raise ValueError(
        f"latent z (shape {tuple(z.shape)}) cannot be spherized: samples [{shown}] {problem}; "
        "expected finite vectors with a non-zero norm"
    )


def _constant(z: Tensor) -> bool:
    """Whether every sample of z holds one value in all its entries (the diagnosis of a zero norm)."""
    flat = z.flatten(1)
    return bool((flat == flat[:, :1]).all())


def slerp(a: Tensor, b: Tensor, t: float | Tensor, dims: Dims = None) -> Tensor:
    """Great-circle interpolation from `a` (t=0) to `b` (t=1), per latent vector.

    `t` is a number or one value per sample. Norms are interpolated linearly, so endpoints on one
    sphere keep the whole path on it. Antipodal endpoints follow a fixed great circle.
    """
    if a.shape != b.shape:
        raise ValueError(f"slerp endpoints must share a shape, got a {tuple(a.shape)} and b {tuple(b.shape)}")
    reduce = vector_dims(a, dims)
    t = _per_sample(torch.as_tensor(t, dtype=a.dtype, device=a.device), a)
    na = torch.linalg.vector_norm(a, dim=reduce, keepdim=True)
    nb = torch.linalg.vector_norm(b, dim=reduce, keepdim=True)
    if bool(((na == 0) | (nb == 0)).any()):
        raise ValueError("slerp endpoints a and b must be non-zero vectors")
    ua, ub = a / na, b / nb
    cos = (ua * ub).sum(dim=reduce, keepdim=True).clamp(-1.0, 1.0)
    # ub = cos(theta) ua + sin(theta) w, with w the unit direction of ub orthogonal to ua.
    ortho = ub - cos * ua
    sin = torch.linalg.vector_norm(ortho, dim=reduce, keepdim=True)
    degenerate = sin < 1e-6
    w = torch.where(degenerate, _orthogonal_unit(ua, reduce), ortho / sin.clamp_min(1e-12))
    theta = torch.atan2(sin, cos)
    path = torch.cos(t * theta) * ua + torch.sin(t * theta) * w
    out = path * ((1.0 - t) * na + t * nb)
    return torch.where(t == 0, a, torch.where(t == 1, b, out))


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    """Shape `t` (a scalar or one value per sample) to broadcast against `like`."""
    if t.dim() == 0:
        return t
    if t.dim() == 1 and t.shape[0] == like.shape[0]:
        return t.view(-1, *([1] * (like.dim() - 1)))
    raise ValueError(f"t must be a number or hold one value per sample ({like.shape[0]}), got shape {tuple(t.shape)}")


def _orthogonal_unit(u: Tensor, reduce: tuple[int, ...]) -> Tensor:
    """A unit vector orthogonal to each unit vector in `u`, chosen deterministically."""
    flat = u.flatten(start_dim=1)
    first = torch.zeros_like(flat)
    first[:, 0] = 1.0
    last = torch.zeros_like(flat)
    last[:, -1] = 1.0
    helper = torch.where(flat[:, :1].abs() > 0.9, last, first).view_as(u)
    ortho = helper - (u * helper).sum(dim=reduce, keepdim=True) * u
    return ortho / torch.linalg.vector_norm(ortho, dim=reduce, keepdim=True)


class SphericalLatent(nn.Module):
    """centerize then spherize as a module: the spherical constraint of eq. (10).

    radius=None means sqrt(d), d the entries of one latent vector: the norm a model trained on
    N(0, I) latents sees.
    """

    def __init__(self, *, center: bool = True, spherize: bool = True, radius: float | None = 1.0,
                 dims: Dims = None, check: bool = True):
        super().__init__()
        if radius is not None and (isinstance(radius, bool) or not isinstance(radius, (int, float))
                                   or not radius > 0 or not math.isfinite(radius)):
            raise ValueError(f"radius must be a positive finite number or None (sqrt(d)), got {radius!r}")
        for name, flag in (("center", center), ("spherize", spherize), ("check", check)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        self.center = center
        self.spherize = spherize
        self.radius = radius
        self.dims = dims
        self.check = check

    def radius_for(self, z: Tensor) -> float:
        """The radius used for a batch shaped like `z`."""
        if self.radius is not None:
            return float(self.radius)
        return math.sqrt(group_size(z.shape, self.dims))

    def forward(self, z: Tensor, check: bool | None = None) -> Tensor:
        """`check` overrides the module's NaN/zero-norm check for this call (None keeps it)."""
        check = self.check if check is None else check
        if self.center and self.spherize:
            return centerize_spherize(z, self.radius_for(z), self.dims, check=check)
        if self.center:
            z = centerize(z, self.dims)
        if self.spherize:
            z = spherize(z, self.radius_for(z), self.dims, check=check)
        return z

    def extra_repr(self) -> str:
        radius = "sqrt(d)" if self.radius is None else f"{self.radius:g}"
        return f"center={self.center}, spherize={self.spherize}, radius={radius}, dims={self.dims}"
