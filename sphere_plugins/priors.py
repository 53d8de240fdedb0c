"""Latent priors by name: the registry, `sample_prior`, and the built-in priors (a plugin like any other).

Built-in defaults (the paper gives none; each is an option):
normal N(mean=0, std=1); uniform U(low=-1, high=1); poisson(rate=1); chi2(df=1);
laplace(loc=0, scale=1); student_t(df=3); exponential(rate=1); rademacher (+-1, p=1/2);
bernoulli(p=0.5) in {0, 1}.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sphere_plugins import plugins
from sphere_plugins.errors import UnknownPriorError
from sphere_plugins.fitted_prior import FittedSpherePrior
from sphere_plugins.hookspecs import hookimpl
from sphere_plugins.latent import Dims, centerize, group_size, vector_dims

Sampler = Callable[..., Tensor]


@dataclass(frozen=True)
class Prior:
    """A named latent distribution with its default parameters."""

    name: str
    sampler: Sampler
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def sample(self, shape: Sequence[int], generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype | None = None,
               **params: Any) -> Tensor:
        """Draw a tensor of `shape`; `params` override the defaults."""
        check_prior_params(self.name, params, self.defaults)
        shape = _check_shape(shape)
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype}")
        # Draw where the generator lives (torch requires it), then move.
        draw_device = generator.device if generator is not None else torch.device(device or "cpu")
        sample = self.sampler(shape, generator, draw_device, dtype, **{**self.defaults, **params})
        return sample.to(device=device or draw_device, dtype=dtype)


def check_prior_params(name: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Raise ValueError naming the prior `name` when `params` holds a parameter its `defaults` do not declare."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"prior {name!r} got unknown parameter(s) {unknown}; accepted: "
                         f"{', '.join(sorted(defaults)) or 'none'}")


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ValueError(f"shape must be a sequence of non-negative ints, got {shape!r}")
    return shape


class PriorRegistry:
    """Priors contributed by every plugin; rebuilt when plugins change."""

    def __init__(self) -> None:
        self._priors: dict[str, Prior] | None = None
        plugins.on_change(self.invalidate)

    def invalidate(self) -> None:
        self._priors = None

    def _build(self) -> dict[str, Prior]:
        priors: dict[str, Prior] = {}
        owners: dict[str, str] = {}

        def register(plugin: str, name: str, sampler: Sampler, description: str = "", replace: bool = False,
                     **defaults: Any) -> None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"prior name must be a non-empty string, got {name!r}")
            if not callable(sampler):
                raise ValueError(f"sampler for prior {name!r} must be callable, got {sampler!r}")
            if name in priors and not replace:
                raise ValueError(f"plugin {plugin!r} registers the prior {name!r}, which plugin {owners[name]!r} "
                                 "already registered; pass replace=True to register(...) to replace it, or "
                                 "choose another name")
            priors[name] = Prior(name, sampler, dict(defaults), description)
            owners[name] = plugin

        plugins.collect_priors(register)
        return priors

    def all(self) -> dict[str, Prior]:
        if self._priors is None:
            self._priors = self._build()
        return self._priors

    def get(self, name: str) -> Prior:
        priors = self.all()
        if name not in priors:
            raise UnknownPriorError(name, priors)
        return priors[name]


_registry = PriorRegistry()


def get_prior(name: str) -> Prior:
    """The registered prior called `name` (UnknownPriorError lists the others)."""
    return _registry.get(name)


def list_priors(pattern: str = "*") -> list[str]:
    """Sorted names of the registered priors matching a shell-style `pattern`."""
    return sorted(n for n in _registry.all() if fnmatch.fnmatchcase(n, pattern))


def sample_prior(name: str, shape: Sequence[int], generator: torch.Generator | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 **params: Any) -> Tensor:
    """Draw a tensor of `shape` from the prior `name` ("normal", "uniform", "poisson", "chi2", ...)."""
    return get_prior(name).sample(shape, generator=generator, device=device, dtype=dtype, **params)


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)):
        raise ValueError(f"prior parameter {name} must be a positive finite number, got {value!r}")
    return float(value)


def _normal(shape, generator, device, dtype, mean, std):
    return torch.randn(shape, generator=generator, device=device, dtype=dtype) * _positive("std", std) + mean


def _uniform(shape, generator, device, dtype, low, high):
    if not high > low:
        raise ValueError(f"uniform prior needs low < high, got low={low!r}, high={high!r}")
    return torch.rand(shape, generator=generator, device=device, dtype=dtype) * (high - low) + low


def _poisson(shape, generator, device, dtype, rate):
    rates = torch.full(shape, _positive("rate", rate), device=device, dtype=torch.float32)
    return torch.poisson(rates, generator=generator).to(dtype)


def _gamma(shape, generator, device, concentration):
    alpha = torch.full(shape, concentration, device=device, dtype=torch.float32)
    return torch._standard_gamma(alpha, generator=generator)


def _chi2(shape, generator, device, dtype, df):
    return (2.0 * _gamma(shape, generator, device, _positive("df", df) / 2.0)).to(dtype)


def _laplace(shape, generator, device, dtype, loc, scale):
    exponential = torch.empty(shape, device=device, dtype=dtype).exponential_(generator=generator)
    sign = torch.randint(0, 2, shape, generator=generator, device=device).to(dtype) * 2 - 1
    return loc + _positive("scale", scale) * sign * exponential


def _student_t(shape, generator, device, dtype, df):
    df = _positive("df", df)
    normal = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    chi2 = 2.0 * _gamma(shape, generator, device, df / 2.0)
    return (normal / torch.sqrt(chi2 / df)).to(dtype)


def _exponential(shape, generator, device, dtype, rate):
    return torch.empty(shape, device=device, dtype=dtype).exponential_(_positive("rate", rate), generator=generator)


def _rademacher(shape, generator, device, dtype):
    return torch.randint(0, 2, shape, generator=generator, device=device).to(dtype) * 2 - 1


def _bernoulli(shape, generator, device, dtype, p):
    if not 0 <= p <= 1:
        raise ValueError(f"bernoulli prior parameter p must lie in [0, 1], got {p!r}")
    return torch.bernoulli(torch.full(shape, float(p), device=device, dtype=dtype), generator=generator)


@hookimpl
def sphere_register_priors(register: Callable[..., None]) -> None:
    register("normal", _normal, "Gaussian N(mean, std^2); the prior most generators were trained on", mean=0.0, std=1.0)
    register("uniform", _uniform, "uniform on [low, high]; symmetric about 0 by default", low=-1.0, high=1.0)
    register("poisson", _poisson, "Poisson counts with the given rate; mean = variance = rate", rate=1.0)
    register("chi2", _chi2, "chi-squared with df degrees of freedom; mean df, variance 2 df", df=1.0)
    register("laplace", _laplace, "Laplace (double exponential) with location and scale", loc=0.0, scale=1.0)
    register("student_t", _student_t, "Student's t with df degrees of freedom (heavy tails)", df=3.0)
    register("exponential", _exponential, "exponential with the given rate; mean 1/rate", rate=1.0)
    register("rademacher", _rademacher, "+1 or -1 with probability 1/2 each")
    register("bernoulli", _bernoulli, "1 with probability p, else 0", p=0.5)



@hookimpl
def sphere_register_saved_modules(register: Callable[[str, type], None]) -> None:
    register("FittedSpherePrior", FittedSpherePrior)

def redraw_degenerate(z: Tensor, draw: Callable[[int], Tensor], dims: Dims = None, center: bool = True,
                      what: str = "the prior", max_rounds: int = 16) -> Tensor:
    """`z` with every sample whose latent vector is zero (after centerize when `center`) replaced by a fresh
    draw: `draw(k)` returns k new samples. Discrete priors in low d can do this; spherize cannot scale a zero.

    Only the bad samples are redrawn, so the random stream is the same whether or not it happens elsewhere.
    Raises ValueError naming `what` after `max_rounds` rounds that still leave zero vectors.
    """
    reduce = vector_dims(z, dims)
    for _ in range(max_rounds):
        probe = centerize(z, dims) if center else z
        bad = (torch.linalg.vector_norm(probe, dim=reduce, keepdim=True) == 0).flatten(1).any(dim=1)
        if not bool(bad.any()):
            return z
        z = z.clone()
        z[bad] = draw(int(bad.sum())).to(z)
    raise ValueError(f"{what} keeps producing latent vectors that are zero after centerize "
                     f"(d={group_size(z.shape, dims)}); use a larger latent or another prior")
