"""The model spec schemes plugins declare ("stylegan2:...", "diffusers:...", ...): list_models() and
inference of the scheme of a plain path, both fed by the `sphere_model_schemes` hook."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from sphere_plugins import plugins
from sphere_plugins.errors import UnknownModelError
from sphere_plugins.offers import ModelScheme, TrainableGenerator
from sphere_plugins.plugins import _version_of, get_plugin_manager, plugin_names

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


def example_models() -> list[str]:
    """Specs of the small offline models every plugin offers for contract tests."""
    return [spec for specs in get_plugin_manager().hook.sphere_example_models() for spec in specs]


def model_schemes() -> dict[str, ModelScheme]:
    """Every spec scheme the loaded plugins declare, by name (the first plugin to declare a name wins)."""
    from sphere_plugins.schemes import list_models  # it reads this module's plugin manager

    schemes: dict[str, ModelScheme] = {}
    for scheme in list_models():
        schemes.setdefault(scheme.name, scheme)
    return schemes


def trainable_generators() -> dict[str, TrainableGenerator]:
    """The small trainable generators the loaded plugins offer, by name."""
    offered: dict[str, TrainableGenerator] = {}
    for declared in get_plugin_manager().hook.sphere_trainable_generators():
        for trainable in declared:
            if not isinstance(trainable, TrainableGenerator):
                raise TypeError(f"sphere_trainable_generators must return TrainableGenerator objects, got {trainable!r}")
            offered.setdefault(trainable.name, trainable)
    return offered


def load_model(spec: str | os.PathLike, **options: Any) -> Any:
    """Build or load the model `spec` names ("stylegan2:ffhq.pkl", "timm:resnet18", ...).

    A plain path (str or pathlib.Path) gets its scheme inferred: a save_pretrained folder returns the wrapper,
    a `.pkl` file a StyleGAN2 network, a save_pretrained folder of diffusers its model, and so on.
    """
    from sphere_plugins.schemes import infer_scheme, list_models

    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and _looks_like_path(spec, list_models)):
        scheme = infer_scheme(spec)
        if scheme == "saved":
            from sphere_plugins.saving import load_pretrained

            return load_pretrained(spec, **options)
        spec = f"{scheme}:{os.fspath(spec)}"
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"spec must be a string 'scheme:rest' such as 'stylegan2:tiny', or an existing path, "
                         f"got {spec!r}")
    model = get_plugin_manager().hook.sphere_load_model(spec=spec, options=options)
    if model is None:
        raise UnknownModelError(spec, plugin_names(), [s.usage for s in model_schemes().values()])
    return model


def _looks_like_path(spec: str, list_models) -> bool:
    """A string without a known scheme prefix that names an existing file or folder."""
    if not os.path.exists(os.path.expanduser(spec)):
        return False
    scheme, colon, _ = spec.partition(":")
    return not (colon and scheme in {s.scheme for s in list_models()})


def save_model(model: Any, folder: str | os.PathLike) -> str:
    """Write a bare model to `folder` through the plugin that owns it; returns the scheme that reloads it
    (`load_model(f"{scheme}:{folder}")`, or simply `load_model(folder)`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scheme = plugins.get_plugin_manager().hook.sphere_save_model(model=model, folder=folder)
    if scheme is None:
        raise ValueError(f"no plugin can save a model of type {type(model).__module__}.{type(model).__qualname__}; "
                         f"plugins loaded: {', '.join(plugins.plugin_names())}. Implement "
                         "sphere_save_model(model, folder) in the plugin that adapts it")
    return scheme
