"""Plugins' helpers for a model saved as one folder: config.json (with a 'format' field) and model.safetensors.

Reading treats the folder as untrusted: the config's size is bounded, both files must lie inside the folder, and
the module the config describes is laid out and compared with the weight file's shapes before it is built
(sphere_plugins.layout), so any problem ends in SavedFolderError naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from sphere_plugins.errors import MissingWeightsError, SavedFolderError, describe
from sphere_plugins.layout import build_to_fit, inside, load_tensors, tensor_shapes
from sphere_plugins.weights import allow_flag, check_finite

MAX_CONFIG_BYTES = 1 << 20


def write_safetensors(path: Path, state: dict[str, Any]) -> None:
    """Tensors as a safetensors file (on the CPU, contiguous)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))


def jsonable(value: Any, where: str) -> Any:
    """`value` as plain JSON data (dicts with string keys, lists, numbers, strings); ValueError naming `where`."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where} = {value!r} ({type(value).__name__}) cannot be saved as JSON; "
                     "save_pretrained stores plain numbers, strings, lists and dicts")


def save_module_folder(module: nn.Module, folder: Path, config: dict[str, Any]) -> None:
    """Plugins' helper: `config` as config.json and the module's state as model.safetensors in `folder`."""
    text = json.dumps(jsonable(config, "config"), indent=2, sort_keys=True) + "\n"
    write_safetensors(folder / "model.safetensors", {k: v.clone() for k, v in module.state_dict().items()})
    (folder / "config.json").write_text(text)


def load_module_folder(folder: Path, expected_format: str, build: Callable[[dict[str, Any]], nn.Module],
                       allow_nonfinite: bool = False) -> tuple[dict[str, Any], nn.Module]:
    """Plugins' helper: the config and the module of a folder save_module_folder wrote with config['format'] set.

    `build(config)` makes the module from the config (it should check the fields it reads); it is first laid
    out on the meta device and compared with model.safetensors' shapes, so a config asking for more than the
    file holds allocates nothing. Any problem ends in SavedFolderError naming the file and field; NaN/Inf
    weights in NonFiniteWeightsError unless allow_nonfinite (sphere_plugins.weights).
    """
    allow_flag(allow_nonfinite)
    config_path, weights = folder / "config.json", folder / "model.safetensors"
    for path in (config_path, weights):
        if not (path.is_file() or path.is_symlink()):
            raise MissingWeightsError(path.name, str(folder.resolve()), f"Loading the saved model {str(folder)!r}")
        inside(folder, path, f"the saved model {str(folder)!r}")
    if config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise SavedFolderError(f"{str(config_path)!r} is larger than {MAX_CONFIG_BYTES} bytes; not a model config")
    try:
        config = json.loads(config_path.read_bytes())
    except (ValueError, RecursionError) as error:
        raise SavedFolderError(f"{str(config_path)!r} is not valid JSON: {str(error)[:200]}") from None
    if not isinstance(config, dict) or config.get("format") != expected_format:
        raise SavedFolderError(f"{str(config_path)!r} is not a {expected_format} config "
                               f"(expected field 'format': '{expected_format}')")
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
