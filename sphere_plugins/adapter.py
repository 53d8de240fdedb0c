"""Everything a plugin author needs, in one import (as `import pytest` is for pytest plugins): the adapter
records a plugin returns, check_adapter_options, the hook marker, register(), the records of what else a
plugin offers, the spec option parser and the errors a plugin raises. The adapter records live here; the
rest is re-exported from its home module. Hook contracts: sphere_plugins/hookspecs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from sphere_plugins.errors import (
    CorruptWeightsError,
    MissingWeightsError,
    SpherePluginsError,
    UnknownModelError,
    UnsafePickleError,
)
from sphere_plugins.hookspecs import hookimpl
from sphere_plugins.offers import ModelKwarg, ModelScheme, TrainableGenerator
from sphere_plugins.plugins import register, unregister
from sphere_plugins.schemes import spec_value

__all__ = [
    "AutoencoderAdapter", "CorruptWeightsError", "GeneratorAdapter", "MissingWeightsError", "ModelKwarg",
    "ModelScheme", "SpherePluginsError", "TrainableGenerator", "UnknownModelError", "UnsafePickleError",
    "check_adapter_options", "hookimpl", "register", "spec_value", "unregister",
]


@dataclass
class GeneratorAdapter:
    """What a plugin says about a generator: latent shape, expected radius, and how to call it.

    radius=None means sqrt(d) (d = entries of one latent): the norm of N(0, I) latents in high d.
    accepts_generator=True says generate() takes generator=, so sample() hands its torch.Generator
    on and a stochastic sampler (DDPM's per-step noise) reproduces from one seed.
    normalizes_z=True says the model spherizes z itself and the adapter honours options["normalize_z"]=False
    (see hookspecs.sphere_adapt_generator). stochastic(model_kwargs) says whether a call with those keyword
    arguments draws noise of its own (None: whenever accepts_generator); seed-by-seed generation
    (sphere_plugins.generation) batches the calls that do not.
    """

    z_shape: tuple[int, ...]
    generate: Callable[..., Tensor]
    radius: float | None = None
    module: nn.Module | None = None
    name: str = "module"
    output_range: tuple[float, float] = (-1.0, 1.0)
    latent_entry: str = "input"
    accepts_generator: bool = False
    normalizes_z: bool = False
    stochastic: Callable[[dict[str, Any]], bool] | None = None

    def draws_noise(self, model_kwargs: dict[str, Any]) -> bool:
        """Whether generate(z, **model_kwargs) draws noise of its own."""
        return self.accepts_generator if self.stochastic is None else bool(self.stochastic(model_kwargs))


@dataclass
class AutoencoderAdapter:
    """What a plugin says about an autoencoder: code shape, radius, and raw encode/decode.

    `encode` returns the code before centerize/spherize; `decode` takes a code on the sphere.
    z_shape=None means "learn it from the first encode". `input_range`, when set, is checked.
    """

    z_shape: tuple[int, ...] | None
    encode: Callable[[Tensor], Tensor]
    decode: Callable[[Tensor], Tensor]
    radius: float | None = None
    module: nn.Module | None = None
    name: str = "module"
    output_range: tuple[float, float] = (-1.0, 1.0)
    input_range: tuple[float, float] | None = None


def check_adapter_options(options: dict[str, Any], accepted: Sequence[str], what: str) -> None:
    """Reject adapter options an adapter does not know (a typo would otherwise be ignored silently).

    Adapters call it first in their sphere_adapt_* hook; `what` names the model in the message.
    """
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {what}; accepted options: {', '.join(accepted)}")
