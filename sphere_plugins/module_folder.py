"""Plugins' helpers for a model saved as one folder: config.json (a record tagged with the plugin's format, see
sphere_plugins.records) and model.safetensors.

Reading treats the folder as untrusted: the config's size is bounded, both files must lie inside the folder, and
the module the config describes is laid out and compared with the weight file's shapes before it is built
(sphere_plugins.layout), so any problem ends in SavedFolderError naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from sphere_plugins.errors import MissingWeightsError, SavedFolderError, describe
from sphere_plugins.layout import build_to_fit, inside, load_tensors, tensor_shapes
from sphere_plugins.records import read_record, record_text, write_record
from sphere_plugins.weights import allow_flag, check_finite

CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 1 << 20


def write_safetensors(path: Path, state: dict[str, Any]) -> None:
    """Tensors as a safetensors file (on the CPU, contiguous)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))


def save_module_folder(module: nn.Module, folder: Path, format: str, config: dict[str, Any],
                       format_version: int = 1) -> None:
    """Plugins' helper: `config` as a `format` record (sphere_plugins.records) in config.json and the module's
    state as model.safetensors in `folder`."""
    record_text(config, format, format_version)  # an unsaveable config fails before any file is written
    write_safetensors(folder / "model.safetensors", {k: v.clone() for k, v in module.state_dict().items()})
    write_record(folder / CONFIG_FILE, config, format, format_version)


def load_module_folder(folder: Path, format: str, build: Callable[[dict[str, Any]], nn.Module],
                       allow_nonfinite: bool = False, format_version: int = 1) -> tuple[dict[str, Any], nn.Module]:
    """Plugins' helper: the config record and the module of a folder save_module_folder wrote with this `format`.

    `build(config)` makes the module from the config (it should check the fields it reads); it is first laid
    out on the meta device and compared with model.safetensors' shapes, so a config asking for more than the
    file holds allocates nothing. Any problem ends in SavedFolderError naming the file and field; NaN/Inf
    weights in NonFiniteWeightsError unless allow_nonfinite (sphere_plugins.weights).
    """
    allow_flag(allow_nonfinite)
    config_path, weights = folder / CONFIG_FILE, folder / "model.safetensors"
    for path in (config_path, weights):
        if not (path.is_file() or path.is_symlink()):
            raise MissingWeightsError(path.name, str(folder.resolve()), f"Loading the saved model {str(folder)!r}")
        inside(folder, path, f"the saved model {str(folder)!r}")
    config = read_record(config_path, format, format_version, error=SavedFolderError, max_bytes=MAX_CONFIG_BYTES)
    module = build_to_fit(lambda: build(config), tensor_shapes(weights), repr(str(config_path)), repr(str(weights)))
    state = load_tensors(weights)
    check_finite(state, repr(str(weights)), allow_nonfinite, {k: v.dtype for k, v in module.state_dict().items()})
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise SavedFolderError(f"{str(weights)!r}: {str(error).splitlines()[0][:200]}") from None
    return config, module


def checked_ints(arguments: Any, bounds: dict[str, tuple[int, int]], field: str) -> dict[str, int]:
    """Plugins' helper for a config's constructor arguments: a dict whose keys are some of `bounds`' and whose
    values are ints within them; ValueError naming `field` and the argument otherwise."""
    if not isinstance(arguments, dict):
        raise ValueError(f"{field} must be a dict of arguments, got {type(arguments).__name__}")
    for key, value in arguments.items():
        low, high = bounds.get(key, (None, None))
        if low is None:
            raise ValueError(f"{field}: unknown argument {str(key)[:40]!r}; expected some of {', '.join(bounds)}")
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{field}: {key} must be an int in [{low}, {high}], got {describe(value)}")
    return arguments
