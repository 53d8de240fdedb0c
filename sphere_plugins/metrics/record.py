"""One labelled metric value with everything needed to reproduce it (data, model, prior, seed, versions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sphere_plugins.records import installed_versions

_DISTRIBUTIONS = ("torch", "numpy", "scipy", "clean-fid", "lpips", "sphere-plugins")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a metric value depends on ("not installed" when absent)."""
    return {name: found or "not installed" for name, found in installed_versions(*_DISTRIBUTIONS).items()}


@dataclass
class MetricRecord:
    """A metric value and its provenance; `metric` is the label a report prints (e.g. "FID", "FD-digits-cnn")."""

    metric: str
    value: float
    feature_network: str | None = None
    n_samples: int | None = None
    seed: int | None = None
    prior: str | None = None
    model: str | None = None
    data: str | None = None
    versions: dict[str, str] = field(default_factory=library_versions)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        record = asdict(self)
        record["value"] = float(self.value)
        return record
