"""Models by spec ("stylegan2:ffhq.pkl", "saved:DIR", or a plain path): the schemes plugins declare
(`list_schemes()`), scheme inference for a path, load_model / save_model, and the other model offers
(example specs, trainable generators), all read from the plugins' hooks."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from sphere_plugins.errors import UnknownModelError
from sphere_plugins.offers import ModelScheme, TrainableGenerator
from sphere_plugins.output_folder import OutputFolder
from sphere_plugins.plugins import get_plugin_manager, plugin_names, plugin_version


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


def list_schemes(pattern: str = "*") -> list[ModelScheme]:
    """Every scheme the loaded plugins declare whose name matches the shell-style `pattern`, sorted by name,
    each with the plugin that declared it and that plugin's version. Of two plugins declaring one name, the one
    whose hooks run first (the newest) wins, as it does in load_model."""
    found: dict[str, ModelScheme] = {}
    for implementation in reversed(get_plugin_manager().hook.sphere_model_schemes.get_hookimpls()):
        for scheme in implementation.function() or []:
            if not isinstance(scheme, ModelScheme):
                raise TypeError(f"plugin {implementation.plugin_name!r}: sphere_model_schemes must return "
                                f"ModelScheme records, got {type(scheme).__name__}")
            if fnmatch.fnmatchcase(scheme.name, pattern) and scheme.name not in found:
                found[scheme.name] = replace(scheme, plugin=implementation.plugin_name,
                                             version=plugin_version(implementation.plugin))
    return sorted(found.values(), key=lambda s: s.name)


def example_models() -> list[str]:
    """Specs of the small offline models every plugin offers for contract tests."""
    return [spec for specs in get_plugin_manager().hook.sphere_example_models() for spec in specs]


def trainable_generators() -> dict[str, TrainableGenerator]:
    """The small trainable generators the loaded plugins offer, by name."""
    offered: dict[str, TrainableGenerator] = {}
    for declared in get_plugin_manager().hook.sphere_trainable_generators():
        for trainable in declared:
            if not isinstance(trainable, TrainableGenerator):
                raise TypeError(f"sphere_trainable_generators must return TrainableGenerator objects, got {trainable!r}")
            offered.setdefault(trainable.name, trainable)
    return offered


def infer_scheme(path: str | os.PathLike) -> str:
    """The scheme of the one plugin that recognizes a plain `path` (a save_pretrained folder is "saved").
    Raises ValueError (no scheme, or several) listing the schemes."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no file or folder at {str(path)!r} (resolved to {str(path.resolve())!r}); "
                                "expected a model spec 'scheme:rest' or an existing path")
    schemes = list_schemes()
    matches = [s.name for s in schemes if s.recognizes is not None and s.recognizes(path)]
    listing = "; ".join(f"{s.name} (e.g. {s.example!r})" for s in schemes)
    if not matches:
        raise ValueError(f"cannot tell which model {str(path)!r} holds: no scheme recognizes it. Name the scheme "
                         f"in a spec 'scheme:{path}'. Schemes: {listing}")
    if len(matches) > 1:
        raise ValueError(f"{str(path)!r} is ambiguous: schemes {', '.join(matches)} all recognize it; name one in "
                         f"a spec such as '{matches[0]}:{path}'. Schemes: {listing}")
    return matches[0]


def load_model(spec: str | os.PathLike, **options: Any) -> Any:
    """Build or load the model `spec` names ("stylegan2:ffhq.pkl", "timm:resnet18", "saved:DIR", ...).

    A plain path (str or pathlib.Path) gets its scheme inferred: a save_pretrained folder returns the wrapper,
    a `.pkl` file a StyleGAN2 network, a save_pretrained folder of diffusers its model, and so on. Modules come
    back in eval mode (as diffusers' from_pretrained); call .train() before training one.
    """
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and names_a_path(spec)):
        spec = f"{infer_scheme(spec)}:{os.fspath(spec)}"
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"spec must be a string 'scheme:rest' such as 'stylegan2:tiny', or an existing path, "
                         f"got {spec!r}")
    model = get_plugin_manager().hook.sphere_load_model(spec=spec, options=options)
    if model is None:
        raise UnknownModelError(spec, plugin_names(), [s.usage for s in list_schemes()])
    from torch import nn

    return model.eval() if isinstance(model, nn.Module) else model


def names_a_path(spec: str) -> bool:
    """Whether `spec` is a plain path: it names an existing file or folder and does not begin with a loaded
    plugin's scheme ("stylegan2:tiny" stays a spec even where a file of that name exists)."""
    if not os.path.exists(os.path.expanduser(spec)):
        return False
    scheme, colon, _ = spec.partition(":")
    return not (colon and scheme in {s.name for s in list_schemes()})


def save_model(model: Any, folder: str | os.PathLike) -> str:
    """Write `model` (a bare model, or a spherical wrapper) to `folder` through the plugin that owns it; returns
    the scheme that reloads it (`load_model(f"{scheme}:{folder}")`, or simply `load_model(folder)`).

    The folder must be new, empty or one sphere-plugins wrote (OutputFolderError otherwise, before anything is
    written); the plugin writes into a staging folder, then its files replace only files of ours
    (sphere_plugins.output_folder). A folder this call created is removed again when nothing could be written.
    """
    out = OutputFolder(folder)
    with out.staging() as stage:
        scheme = write_model(model, stage)
        out.commit(stage)
    return scheme


def write_model(model: Any, folder: Path) -> str:
    """Write `model` into `folder`, a new empty folder, through the sphere_save_model hook; returns the scheme.
    save_model adds the output-folder rule around it; a plugin writing a model inside its own files (a
    wrapper's DIR/model) calls this directly."""
    scheme = get_plugin_manager().hook.sphere_save_model(model=model, folder=folder)
    if scheme is None:
        raise ValueError(f"no plugin can save a model of type {type(model).__module__}.{type(model).__qualname__}; "
                         f"plugins loaded: {', '.join(plugin_names())}. Implement "
                         "sphere_save_model(model, folder) in the plugin that adapts it")
    return scheme
