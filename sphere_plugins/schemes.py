"""The model spec schemes plugins declare ("stylegan2:...", "diffusers:...", ...): list_models() and
inference of the scheme of a plain path, both fed by the `sphere_model_schemes` hook."""

from __future__ import annotations

import fnmatch
import os
from functools import lru_cache
from dataclasses import replace
from importlib.metadata import packages_distributions, version
from pathlib import Path
from typing import Any

from sphere_plugins import plugins
from sphere_plugins.offers import ModelScheme

# A folder written by SphericalGenerator/SphericalAutoencoder.save_pretrained holds this file.
WRAPPER_CONFIG = "sphere_model.json"


def spec_value(text: str) -> Any:
    """An option value written in a spec or on the command line ("k=v") as the bool, int or float it spells,
    else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: once per process


def _version_of(plugin: object) -> str | None:
    top = (getattr(plugin, "__module__", None) if not hasattr(plugin, "__file__") else plugin.__name__) or ""
    for distribution in _distributions().get(top.split(".")[0], []):
        try:
            return version(distribution)
        except Exception:  # a broken metadata record: no version to show
            continue
    return None


def plugin_versions() -> dict[str, str | None]:
    """Every loaded plugin's name with the version of the distribution that ships it."""
    return {name: _version_of(plugin) for name, plugin in sorted(plugins.get_plugin_manager().list_name_plugin())}


def list_models(pattern: str = "*") -> list[ModelScheme]:
    """Every scheme the loaded plugins declare (matching a shell-style `pattern`), sorted by scheme."""
    found = []
    for implementation in plugins.get_plugin_manager().hook.sphere_model_schemes.get_hookimpls():
        declared = implementation.function()
        for scheme in declared or []:
            if not isinstance(scheme, ModelScheme):
                raise TypeError(f"plugin {implementation.plugin_name!r}: sphere_model_schemes must return "
                                f"ModelScheme records, got {type(scheme).__name__}")
            if fnmatch.fnmatchcase(scheme.scheme, pattern):
                found.append(replace(scheme, plugin=implementation.plugin_name,
                                     version=_version_of(implementation.plugin)))
    return sorted(found, key=lambda s: s.scheme)


def _is_wrapper_folder(path: Path) -> bool:
    return path.is_dir() and (path / WRAPPER_CONFIG).is_file()


def infer_scheme(path: str | os.PathLike) -> str:
    """The scheme that loads a plain `path`: "saved" for a save_pretrained folder, else the one plugin
    whose scheme recognizes it. Raises ValueError (no scheme, or several) listing the schemes."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no file or folder at {str(path)!r} (resolved to {str(path.resolve())!r}); "
                                "expected a model spec 'scheme:rest' or an existing path")
    if _is_wrapper_folder(path):
        return "saved"
    schemes = list_models()
    matches = [s.scheme for s in schemes if s.recognizes is not None and s.recognizes(path)]
    listing = "; ".join(f"{s.scheme} (e.g. {s.example!r})" for s in schemes)
    if not matches:
        raise ValueError(f"cannot tell which model {str(path)!r} holds: no scheme recognizes it. Name the scheme "
                         f"in a spec 'scheme:{path}'. Schemes: {listing}")
    if len(matches) > 1:
        raise ValueError(f"{str(path)!r} is ambiguous: schemes {', '.join(matches)} all recognize it; name one in "
                         f"a spec such as '{matches[0]}:{path}'. Schemes: {listing}")
    return matches[0]
