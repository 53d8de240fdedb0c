"""The benchmark suites by name; each module has NAME, DESCRIPTION, MODEL_SCHEMES and run(ctx)."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

# In the order a full run goes through them: cheap and informative first.
SUITE_NAMES = ("theory", "overhead", "sampling", "autoencoder", "finetune")


def get_suite(name: str) -> ModuleType:
    """The suite module called `name` (a ValueError lists the others)."""
    if name not in SUITE_NAMES:
        raise ValueError(f"unknown suite {name!r}; expected one or more of: {', '.join(SUITE_NAMES)}")
    return import_module(f"benchmarks.suites.{name}")
