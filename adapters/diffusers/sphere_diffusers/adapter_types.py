"""The adapter records this plugin returns: the core's, plus what saving needs to rebuild them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sphere_plugins.adapter import AutoencoderAdapter, GeneratorAdapter


@dataclass
class DiffusersAutoencoderAdapter(AutoencoderAdapter):
    """An AutoencoderAdapter that remembers its diffusers model and options (for save_spherical)."""

    source: Any = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DiffusersGeneratorAdapter(GeneratorAdapter):
    """A GeneratorAdapter that remembers its diffusers model or pipeline and options (for save_spherical)."""

    source: Any = None
    options: dict[str, Any] = field(default_factory=dict)
