"""Save a spherical wrapper of a diffusers model (save_pretrained + sphere_adapter.json) and load it back.

The JSON records how to rebuild the wrapper: its role, center/spherize/radius/dims, the adapter options,
the default prior, and the versions that wrote it. A custom loss module is not saved.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sphere_plugins import SphericalAutoencoder, SphericalGenerator, wrap_autoencoder, wrap_generator
from sphere_plugins.output_folder import OutputFolder

from sphere_diffusers.adapter_types import DiffusersAutoencoderAdapter, DiffusersGeneratorAdapter
from sphere_diffusers.loading import load_folder

ADAPTER_FILE = "sphere_adapter.json"
ADAPTER_NAME = "sphere_diffusers"
FORMAT_VERSION = 1


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _json_dims(dims: Any) -> Any:
    return dims if dims is None or isinstance(dims, int) else list(dims)


def adapter_record(wrapper: SphericalAutoencoder | SphericalGenerator) -> dict[str, Any]:
    """What sphere_adapter.json holds for `wrapper`."""
    role = "autoencoder" if isinstance(wrapper, SphericalAutoencoder) else "generator"
    latent = wrapper.latent
    return {
        "format_version": FORMAT_VERSION,
        "adapter": ADAPTER_NAME,
        "role": role,
        "model_class": type(wrapper.adapter.source).__name__,
        "center": latent.center,
        "spherize": latent.spherize,
        "radius": latent.radius,
        "dims": _json_dims(latent.dims),
        "z_shape": None if wrapper.z_shape is None else list(wrapper.z_shape),
        "options": wrapper.adapter.options,
        "prior": wrapper.prior,
        "prior_params": wrapper.prior_params,
        "versions": {name: _version(name) for name in ("sphere-plugins", "sphere-diffusers", "diffusers", "torch")},
    }


def save_spherical(wrapper: SphericalAutoencoder | SphericalGenerator, folder: str | os.PathLike) -> Path:
    """Write the wrapped diffusers model with save_pretrained and the wrapper's settings beside it, into a folder
    that is new, empty or one sphere-plugins wrote (OutputFolderError otherwise)."""
    if not isinstance(wrapper, (SphericalAutoencoder, SphericalGenerator)) or not isinstance(
            wrapper.adapter, (DiffusersAutoencoderAdapter, DiffusersGeneratorAdapter)):
        raise ValueError("wrapper must be a wrap_autoencoder/wrap_generator result around a diffusers model, "
                         f"got {type(wrapper).__name__}")
    record = adapter_record(wrapper)
    text = json.dumps(record, indent=2, sort_keys=True)  # fail before writing anything if not serializable
    out = OutputFolder(folder)  # refuses a folder of the user's files before anything is written
    with out.staging() as stage:
        wrapper.adapter.source.save_pretrained(stage)
        (stage / ADAPTER_FILE).write_text(text + "\n")
        out.commit(stage)
    return out.path


def read_record(folder: Path) -> dict[str, Any]:
    """The sphere_adapter.json of `folder`, checked."""
    path = folder / ADAPTER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {ADAPTER_FILE} in {str(folder)!r}: expected a folder written by save_spherical")
    try:
        record = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error
    if record.get("adapter") != ADAPTER_NAME or record.get("role") not in ("autoencoder", "generator"):
        raise ValueError(f"{str(path)!r} was not written by save_spherical of {ADAPTER_NAME} "
                         f"(adapter={record.get('adapter')!r}, role={record.get('role')!r})")
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} has format_version {record.get('format_version')!r}; this version of "
                         f"{ADAPTER_NAME} reads {FORMAT_VERSION}")
    return record


def load_spherical(folder: str | os.PathLike, **from_pretrained: Any) -> SphericalAutoencoder | SphericalGenerator:
    """Rebuild the wrapper save_spherical wrote; keyword arguments go to from_pretrained (e.g. torch_dtype)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder at {str(folder)!r}: expected a folder written by save_spherical")
    record = read_record(folder)
    model = load_folder(folder, from_pretrained)
    dims = record["dims"] if record["dims"] is None or isinstance(record["dims"], int) else tuple(record["dims"])
    common = dict(spherize=record["spherize"], center=record["center"], radius=record["radius"], dims=dims,
                  options=record["options"], prior=record["prior"], **record["prior_params"])
    if record["role"] == "autoencoder":
        return wrap_autoencoder(model, **common)
    return wrap_generator(model, **common)
