"""save_pretrained / load_pretrained of the spherical wrappers: settings as JSON, the model through the
`sphere_save_model` hook of the plugin that owns it, and any wrapper state beyond the model as safetensors.

A folder holds `sphere_model.json` (center, spherize, radius, dims, z_shape, prior and its parameters,
adapter options, the scheme that reloads the model, extra submodules), `model/` (written by the plugin) and,
when the wrapper has tensors of its own (a fitted prior, ...), `wrapper_state.safetensors`.
Extra submodules are rebuilt with `cls.from_config(config)` from their `get_config()` before their tensors load.
This module is the built-in plugin of the "saved" scheme: `load_model("saved:DIR")` (or a plain DIR) and
`save_model(wrapper, DIR)` reach it through the same hooks as any plugin's models.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from torch import nn

from sphere_plugins import plugins
from sphere_plugins.errors import MissingWeightsError
from sphere_plugins.files import atomic_write
from sphere_plugins.hookspecs import hookimpl
from sphere_plugins.offers import ModelScheme
from sphere_plugins.schemes import load_model, save_model
from sphere_plugins.wrap import SphericalAutoencoder, SphericalGenerator, wrap_autoencoder, wrap_generator

SCHEME = "saved"
# A folder written by SphericalGenerator/SphericalAutoencoder.save_pretrained holds this file.
WRAPPER_CONFIG = "sphere_model.json"
FORMAT = "sphere-plugins-wrapper"
FORMAT_VERSION = 1
MODEL_FOLDER = "model"
STATE_FILE = "wrapper_state.safetensors"
# Submodules every wrapper rebuilds from its settings; any other child is an extra saved with its config.
_OWN_CHILDREN = ("model", "latent", "loss_fn")


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where} = {value!r} ({type(value).__name__}) cannot be saved as JSON; "
                     "save_pretrained stores plain numbers, strings, lists and dicts")


def source_model(wrapper: nn.Module) -> Any:
    """What the user wrapped: the object given to wrap_*, else the adapter's source or module."""
    source = wrapper.__dict__.get("_source")
    if source is None:
        source = getattr(wrapper.adapter, "source", None)
    return source if source is not None else wrapper.adapter.module


def _extra_children(wrapper: nn.Module) -> dict[str, dict[str, Any]]:
    extras = {}
    for name, child in wrapper.named_children():
        if name in _OWN_CHILDREN:
            continue
        cls = type(child)
        if not (callable(getattr(child, "get_config", None)) and callable(getattr(cls, "from_config", None))):
            raise ValueError(f"the wrapper's submodule {name!r} ({cls.__name__}) has no get_config()/from_config(); "
                             "save_pretrained cannot rebuild it")
        extras[name] = {"class": f"{cls.__module__}:{cls.__qualname__}",
                        "config": _jsonable(child.get_config(), f"{name}.get_config()")}
    return extras


def settings(wrapper: nn.Module) -> dict[str, Any]:
    """The JSON record save_pretrained writes for `wrapper` (without the model's scheme)."""
    latent = wrapper.latent
    options = dict(getattr(wrapper, "adapter_options", None) or getattr(wrapper.adapter, "options", None) or {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "role": "autoencoder" if isinstance(wrapper, SphericalAutoencoder) else "generator",
        "center": latent.center,
        "spherize": latent.spherize,
        "radius": latent.radius,
        "dims": _jsonable(latent.dims, "dims"),
        "z_shape": None if wrapper.z_shape is None else list(wrapper.z_shape),
        "prior": wrapper.prior,
        "prior_params": _jsonable(wrapper.prior_params, "prior_params"),
        "latent_noise": float(getattr(wrapper, "latent_noise", 0.0) or 0.0),
        "options": _jsonable(options, "adapter options"),
        "extra_modules": _extra_children(wrapper),
        "versions": {name: _version(name) for name in ("sphere-plugins", "torch")},
    }


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def save_pretrained(wrapper: nn.Module, folder: str | os.PathLike) -> Path:
    """Write `wrapper` to `folder` so that load_pretrained(folder) returns an equal wrapper."""
    record = settings(wrapper)  # fails on unsaveable settings before anything is written
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder must be a directory to write into, got the file {str(folder)!r}")
    folder.mkdir(parents=True, exist_ok=True)
    model = source_model(wrapper)
    model_folder = folder / MODEL_FOLDER
    if model_folder.exists():
        shutil.rmtree(model_folder)
    model_folder.mkdir()
    try:
        scheme = save_model(model, model_folder)
    except ValueError:
        model_folder.rmdir()
        raise
    record["model"] = {"scheme": scheme, "path": MODEL_FOLDER}
    extra_state = {k: v for k, v in wrapper.state_dict().items() if not k.startswith("model.")}
    state_path = folder / STATE_FILE
    if extra_state:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in extra_state.items()}, str(state_path))
    elif state_path.exists():
        state_path.unlink()
    _write_text(folder / WRAPPER_CONFIG, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return folder


def read_settings(folder: Path) -> dict[str, Any]:
    """The checked sphere_model.json of a save_pretrained folder."""
    path = folder / WRAPPER_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"no {WRAPPER_CONFIG} in {str(folder)!r}: expected a folder written by "
                                "save_pretrained")
    try:
        record = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a {FORMAT} record (expected 'format': '{FORMAT}')")
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} has format_version {record.get('format_version')!r}; this version of "
                         f"sphere-plugins reads {FORMAT_VERSION}")
    return record


def _extra_class(name: str, entry: dict[str, Any]) -> type[nn.Module]:
    module_name, _, qualname = str(entry.get("class", "")).partition(":")
    allowed = {"sphere_plugins"} | {type(p).__module__.split(".")[0] if not hasattr(p, "__file__")
                                    else p.__name__.split(".")[0]
                                    for _, p in plugins.get_plugin_manager().list_name_plugin()}
    if module_name.split(".")[0] not in allowed:
        raise ValueError(f"extra module {name!r} names the class {entry.get('class')!r} outside sphere_plugins and "
                         f"the loaded plugins ({', '.join(sorted(allowed))}); refusing to import it")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise ValueError(f"extra module {name!r}: {entry.get('class')!r} is not an nn.Module class")
    return found


def load_pretrained(folder: str | os.PathLike, **load_options: Any) -> nn.Module:
    """Rebuild the wrapper save_pretrained wrote to `folder`, in eval mode (as diffusers' from_pretrained);
    `load_options` go to the model's loader. Call .train() before fine-tuning it."""
    folder = Path(folder).expanduser()
    record = read_settings(folder)
    model_entry = record["model"]
    model = load_model(f"{model_entry['scheme']}:{folder / model_entry['path']}", **load_options)
    dims = record["dims"] if record["dims"] is None or isinstance(record["dims"], int) else tuple(record["dims"])
    common = dict(spherize=record["spherize"], center=record["center"], radius=record["radius"], dims=dims,
                  options=record["options"], prior=record["prior"], **record["prior_params"])
    if record["z_shape"] is not None:
        common["z_shape"] = tuple(record["z_shape"])
    if record["role"] == "autoencoder" and record.get("latent_noise"):
        common["latent_noise"] = record["latent_noise"]
    wrap = wrap_autoencoder if record["role"] == "autoencoder" else wrap_generator
    wrapper = wrap(model, **common)
    for name, entry in record.get("extra_modules", {}).items():
        setattr(wrapper, name, _extra_class(name, entry).from_config(entry["config"]))
    state_path = folder / STATE_FILE
    if state_path.is_file():
        from safetensors.torch import load_file

        missing, unexpected = wrapper.load_state_dict(load_file(str(state_path)), strict=False)
        missing = [k for k in missing if not k.startswith("model.")]
        if missing or unexpected:
            raise ValueError(f"{str(state_path)!r} does not fit the rebuilt wrapper: missing {missing}, "
                             f"unexpected {unexpected}")
    device = next((p.device for p in wrapper.parameters()), None)
    return (wrapper.to(device) if device is not None else wrapper).eval()


def save_module_folder(module: nn.Module, folder: Path, config: dict[str, Any]) -> None:
    """Plugins' helper: `config` as config.json and the module's state as model.safetensors in `folder`."""
    from safetensors.torch import save_file

    text = json.dumps(_jsonable(config, "config"), indent=2, sort_keys=True) + "\n"
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    _write_text(folder / "config.json", text)


def read_module_folder(folder: Path, expected_format: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plugins' helper: (config, state) of a folder save_module_folder wrote with config['format'] set."""
    from safetensors.torch import load_file

    config_path, weights = folder / "config.json", folder / "model.safetensors"
    for path in (config_path, weights):
        if not path.is_file():
            raise MissingWeightsError(path.name, str(folder.resolve()), f"Loading the saved model {str(folder)!r}")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as error:
        raise ValueError(f"{str(config_path)!r} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or config.get("format") != expected_format:
        raise ValueError(f"{str(config_path)!r} is not a {expected_format} config "
                         f"(expected 'format': '{expected_format}')")
    try:
        state = load_file(str(weights))
    except Exception as error:
        raise ValueError(f"{str(weights)!r} is not a readable safetensors file ({error}); save the model again "
                         "or delete the folder") from None
    return config, state


def _is_wrapper_folder(path: Path) -> bool:
    return path.is_dir() and (path / WRAPPER_CONFIG).is_file()


@hookimpl
def sphere_model_schemes() -> list[ModelScheme]:
    return [ModelScheme(
        SCHEME, (), f"{SCHEME}:DIR or DIR, a folder save_pretrained wrote", example=f"{SCHEME}:out/tiny-sae",
        description="a spherical generator or autoencoder as save_pretrained wrote it (settings, model, state); "
                    "options go to the model's own loader", recognizes=_is_wrapper_folder)]


@hookimpl
def sphere_load_model(spec: str, options: dict[str, Any]) -> nn.Module | None:
    scheme, _, folder = spec.partition(":")
    return load_pretrained(folder, **options) if scheme == SCHEME else None


@hookimpl(tryfirst=True)
def sphere_save_model(model: Any, folder: Path) -> str | None:
    if not isinstance(model, (SphericalGenerator, SphericalAutoencoder)):
        return None
    save_pretrained(model, folder)
    return SCHEME
