"""save_pretrained / load_pretrained of the spherical wrappers: settings as JSON, the model through the
`sphere_save_model` hook of the plugin that owns it, and the wrapper's own tensors as safetensors.

A folder holds `sphere_model.json` (center, spherize, radius, dims, z_shape, prior and its parameters,
adapter options, the scheme that reloads the model, extra submodules), `model/` (written by the plugin) and
`wrapper_state.safetensors` (the wrapper's tensors beyond the model's: a fitted prior, ...; none is empty).
This module is the built-in plugin of the "saved" scheme: `load_model("saved:DIR")` (or a plain DIR) and
`save_model(wrapper, DIR)` reach it through the same hooks as any plugin's models, and save_model writes only
into a folder of ours (sphere_plugins.output_folder). A saved folder is untrusted input: every field is
checked, every path stays inside the folder, extra submodules are rebuilt with `cls.from_config(config)` of a
class registered through `sphere_register_saved_modules` once their layout fits the saved tensors
(sphere_plugins.layout), and anything wrong ends in SavedFolderError.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from sphere_plugins.errors import MissingWeightsError, SavedFolderError, SpherePluginsError
from sphere_plugins.hookspecs import hookimpl
from sphere_plugins.layout import build_to_fit, inside, load_tensors, tensor_shapes
from sphere_plugins.module_folder import write_safetensors
from sphere_plugins.offers import ModelScheme
from sphere_plugins.records import installed_versions, jsonable, write_record
from sphere_plugins.saved_modules import saved_module_classes, saved_module_name
from sphere_plugins.saved_record import FORMAT, FORMAT_VERSION, WRAPPER_CONFIG, read_settings
from sphere_plugins.schemes import load_model, write_model
from sphere_plugins.weights import check_finite
from sphere_plugins.wrap import SphericalAutoencoder, SphericalGenerator, wrap_autoencoder, wrap_generator

SCHEME = "saved"
MODEL_FOLDER = "model"
STATE_FILE = "wrapper_state.safetensors"
# Submodules every wrapper rebuilds from its settings; any other child is an extra saved with its config.
_OWN_CHILDREN = ("model", "latent", "loss_fn")
# Attributes a wrapper declares as None until an extra submodule fills them.
_EXTRA_SLOTS = ("fitted_prior",)


def source_model(wrapper: nn.Module) -> Any:
    """What the user wrapped: the object given to wrap_*, else the adapter's module."""
    source = wrapper.__dict__.get("_source")
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
        extras[name] = {"class": saved_module_name(cls),
                        "config": jsonable(child.get_config(), f"{name}.get_config()")}
    return extras


def settings(wrapper: nn.Module) -> dict[str, Any]:
    """The fields of the record save_pretrained writes for `wrapper` (without the model's scheme)."""
    latent = wrapper.latent
    options = dict(getattr(wrapper, "adapter_options", None) or {})
    return {
        "role": "autoencoder" if isinstance(wrapper, SphericalAutoencoder) else "generator",
        "center": latent.center,
        "spherize": latent.spherize,
        "radius": latent.radius,
        "dims": jsonable(latent.dims, "dims"),
        "z_shape": None if wrapper.z_shape is None else list(wrapper.z_shape),
        "prior": wrapper.prior,
        "prior_params": jsonable(wrapper.prior_params, "prior_params"),
        "latent_noise": float(getattr(wrapper, "latent_noise", 0.0) or 0.0),
        "options": jsonable(options, "adapter options"),
        "extra_modules": _extra_children(wrapper),
        "versions": installed_versions("sphere-plugins", "torch"),
    }


def save_pretrained(wrapper: nn.Module, folder: Path) -> None:
    """Write `wrapper`'s files into `folder`, the new empty folder sphere_save_model receives (save_model(wrapper,
    DIR), which wrapper.save_pretrained(DIR) calls, commits them to DIR), so that load_pretrained returns an equal
    wrapper."""
    record = settings(wrapper)  # fails on unsaveable settings before anything is written
    (folder / MODEL_FOLDER).mkdir()
    record["model"] = {"scheme": write_model(source_model(wrapper), folder / MODEL_FOLDER), "path": MODEL_FOLDER}
    # Written even when empty, so that saving again replaces the tensors of an earlier save.
    own = {k: v for k, v in wrapper.state_dict().items() if not k.startswith("model.")}
    write_safetensors(folder / STATE_FILE, own)
    write_record(folder / WRAPPER_CONFIG, record, FORMAT, FORMAT_VERSION)


def _extra_module(wrapper: nn.Module, name: str, entry: dict[str, Any], shapes: dict[str, tuple[int, ...]],
                  where: str) -> nn.Module:
    """The extra submodule `name` of the record, of a registered class, built only once it fits its saved tensors."""
    field = f"{where}: field 'extra_modules.{name[:40]}"
    if (name in _OWN_CHILDREN or not name.isidentifier() or name.startswith("_")
            or (hasattr(wrapper, name) and not (name in _EXTRA_SLOTS and getattr(wrapper, name) is None))):
        raise SavedFolderError(f"{field}': {name[:40]!r} is not a name an extra submodule may take (it is the "
                               "wrapper's own attribute, or not an identifier)")
    registered = saved_module_classes()
    cls = registered.get(entry["class"])
    if cls is None:
        raise SavedFolderError(f"{field}.class': {entry['class'][:60]!r} is not registered for saving; registered: "
                               f"{', '.join(sorted(registered)) or 'none'} (plugins add classes with "
                               "sphere_register_saved_modules)")
    prefix = name + "."
    own = {key[len(prefix):]: shape for key, shape in shapes.items() if key.startswith(prefix)}
    return build_to_fit(lambda: cls.from_config(entry["config"]), own, f"{field}.config'", STATE_FILE)


def _load_state(wrapper: nn.Module, state_path: Path, shapes: dict[str, tuple[int, ...]] | None,
                allow_nonfinite: bool) -> None:
    """Load wrapper_state.safetensors after checking it holds exactly the wrapper's own tensors, shapes included,
    and (unless allow_nonfinite) only finite values."""
    expected = {k: tuple(v.shape) for k, v in wrapper.state_dict().items() if not k.startswith("model.")}
    if shapes is None:
        if expected:
            raise MissingWeightsError(STATE_FILE, str(state_path.parent), "Loading the saved wrapper's own tensors "
                                      f"({', '.join(sorted(expected)[:5])})")
        return
    if shapes != expected:
        missing = sorted(set(expected) - set(shapes))[:5]
        unexpected = sorted(k[:60] for k in set(shapes) - set(expected))[:5]
        wrong = [k for k in sorted(set(shapes) & set(expected)) if shapes[k] != expected[k]][:5]
        raise SavedFolderError(f"{str(state_path)!r} does not fit the wrapper sphere_model.json describes: missing "
                               f"{missing}, unexpected {unexpected}, wrong shape {wrong}")
    state = load_tensors(state_path)
    check_finite(state, repr(str(state_path)), allow_nonfinite)
    try:
        missing, unexpected = wrapper.load_state_dict(state, strict=False)
    except SpherePluginsError:
        raise
    except (ValueError, RuntimeError, TypeError) as error:
        raise SavedFolderError(f"{str(state_path)!r}: {str(error).splitlines()[0][:200]}") from None
    missing = [k for k in missing if not k.startswith("model.")]
    if missing or unexpected:
        raise SavedFolderError(f"{str(state_path)!r} does not fit the rebuilt wrapper: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")


def _load_model(record: dict[str, Any], folder: Path, where: str, load_options: dict[str, Any]) -> Any:
    """The bare model of a saved wrapper, from its sub-folder (which must lie inside the saved folder)."""
    path = folder / record["model"]["path"]
    inside(folder, path, f"{where}: field 'model.path'")
    if not path.is_dir():
        raise SavedFolderError(f"{where}: field 'model.path' names {str(path)!r}, which is not a folder")
    _refuse_links_out(folder, path, where)
    scheme = record["model"]["scheme"]
    try:
        return load_model(f"{scheme}:{path}", **load_options)
    except SpherePluginsError:
        raise
    except Exception as error:  # a plugin's loader failing on a malformed model folder
        raise SavedFolderError(f"{str(path)!r} (field 'model.scheme' {scheme[:40]!r} of {where}) cannot be "
                               f"loaded: {type(error).__name__}: {str(error)[:200]}") from None


def _refuse_links_out(folder: Path, model_folder: Path, where: str, limit: int = 10_000) -> None:
    """SavedFolderError if a link in the model's folder leads outside the saved folder (or it is too big to walk)."""
    for count, path in enumerate(model_folder.rglob("*")):
        if count >= limit:
            raise SavedFolderError(f"{where}: the model folder {str(model_folder)!r} holds more than {limit} entries")
        if path.is_symlink():
            inside(folder, path, where)


def _wrap(model: Any, record: dict[str, Any], where: str) -> nn.Module:
    dims = record["dims"] if record["dims"] is None or isinstance(record["dims"], int) else tuple(record["dims"])
    common = dict(spherize=record["spherize"], center=record["center"], radius=record["radius"], dims=dims,
                  options=record["options"], prior=record["prior"], **record["prior_params"])
    if record["z_shape"] is not None:
        common["z_shape"] = tuple(record["z_shape"])
    if record["role"] == "autoencoder" and record["latent_noise"]:
        common["latent_noise"] = record["latent_noise"]
    wrap = wrap_autoencoder if record["role"] == "autoencoder" else wrap_generator
    try:
        return wrap(model, **common)
    except Exception as error:  # the adapters' and the wrapper's checks of the recorded settings
        raise SavedFolderError(f"{where}: the recorded settings do not fit the model: {type(error).__name__}: "
                               f"{str(error).splitlines()[0][:300] if str(error) else ''}") from None


def load_pretrained(folder: str | os.PathLike, **load_options: Any) -> nn.Module:
    """Rebuild the wrapper save_pretrained wrote to `folder`, in eval mode (as diffusers' from_pretrained);
    `load_options` go to the model's loader (its allow_nonfinite also admits NaN/Inf in the wrapper's own
    tensors). Call .train() before fine-tuning it."""
    folder = Path(folder).expanduser()
    record = read_settings(folder)
    where = repr(str(folder / WRAPPER_CONFIG))
    state_path = folder / STATE_FILE
    shapes = None
    if state_path.exists() or state_path.is_symlink():
        inside(folder, state_path, f"{where}: {STATE_FILE}")
        shapes = tensor_shapes(state_path)
    wrapper = _wrap(_load_model(record, folder, where, load_options), record, where)
    for name, entry in record["extra_modules"].items():
        setattr(wrapper, name, _extra_module(wrapper, name, entry, shapes or {}, where))
    _load_state(wrapper, state_path, shapes, load_options.get("allow_nonfinite", False))
    device = next((p.device for p in wrapper.parameters()), None)
    return (wrapper.to(device) if device is not None else wrapper).eval()


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
