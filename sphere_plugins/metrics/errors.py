"""The metrics' missing-weights error: the core MissingWeightsError, printing its one-line message."""

from __future__ import annotations

from sphere_plugins.errors import MissingWeightsError


class MissingMetricWeightsError(MissingWeightsError):
    """MissingWeightsError whose str() is its message (OSError's str would print errno fields instead)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
