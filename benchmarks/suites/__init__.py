"""The benchmark suites by name. Each module has NAME, DESCRIPTION, check(options) (its own checks of the run's
options, raising BenchmarkError before any suite runs), run(ctx), and either MODEL_KIND (it takes --model specs
of every plugin scheme whose models are of that kind) or MODEL_SCHEMES (the schemes it takes)."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from sphere_plugins.schemes import list_schemes

# In the order a full run goes through them: cheap and informative first.
SUITE_NAMES = ("theory", "overhead", "sampling", "autoencoder", "finetune", "dimension")


def get_suite(name: str) -> ModuleType:
    """The suite module called `name` (a ValueError lists the others)."""
    if name not in SUITE_NAMES:
        raise ValueError(f"unknown suite {name!r}; expected one or more of: {', '.join(SUITE_NAMES)}")
    return import_module(f"benchmarks.suites.{name}")


def accepted_schemes(suite: ModuleType) -> tuple[str, ...]:
    """The --model schemes a suite takes: from the plugins' declared schemes when it names a MODEL_KIND."""
    kind = getattr(suite, "MODEL_KIND", None)
    if kind is None:
        return tuple(suite.MODEL_SCHEMES)
    return tuple(scheme.name for scheme in list_schemes() if kind in scheme.kinds)
