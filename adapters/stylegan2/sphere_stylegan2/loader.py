"""Load and save StyleGAN2-ADA networks: NVlabs pickles (read safely, written in their structure)
and our own folder format (one safetensors file per network plus a JSON config)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from sphere_plugins.errors import MissingWeightsError, UnsafePickleError
from sphere_plugins.files import atomic_write
from sphere_stylegan2.discriminator import (
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    MinibatchStdLayer,
)
from sphere_stylegan2.errors import NetworkFormatError
from sphere_stylegan2.generator import Generator
from sphere_stylegan2.layers import Conv2dLayer, FullyConnectedLayer
from sphere_stylegan2.mapping import MappingNetwork
from sphere_stylegan2.nvpickle import PersistentRecord, dump_nvlabs, plain, read_records
from sphere_stylegan2.synthesis import SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer

NETWORK_CLASSES: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in (
    Generator, MappingNetwork, SynthesisNetwork, SynthesisBlock, SynthesisLayer, ToRGBLayer, FullyConnectedLayer,
    Conv2dLayer, Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, MinibatchStdLayer,
)}
# Classes a snapshot may hold that sampling and fine-tuning do not need; loaded as None.
SKIPPED_CLASSES = frozenset({"AugmentPipe"})
FORMAT = "sphere-stylegan2"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"


def build_network(class_name: str, init_args: tuple = (), init_kwargs: Mapping[str, Any] | None = None,
                  where: str = "network") -> nn.Module:
    """A fresh module of our class `class_name`, constructed with the recorded arguments."""
    cls = NETWORK_CLASSES.get(class_name)
    if cls is None:
        raise NetworkFormatError(f"{where}: unknown network class {class_name!r}; this loader builds "
                                 f"{', '.join(sorted(NETWORK_CLASSES))}")
    kwargs = plain(dict(init_kwargs or {}))
    try:
        return cls(*plain(tuple(init_args)), **kwargs)
    except (TypeError, ValueError) as error:
        raise NetworkFormatError(
            f"{where}: cannot build {class_name} from its recorded arguments {sorted(kwargs)}: {error}. "
            "Is it a StyleGAN2-ADA network (not StyleGAN3 or a modified fork)?") from error


def _collect_state(record: PersistentRecord, module: nn.Module, prefix: str, out: dict[str, torch.Tensor],
                   grads: dict[str, bool], where: str) -> None:
    """Gather the record tree's tensors under state_dict names, checking each child's class."""
    if record.class_name != type(module).__name__:
        raise NetworkFormatError(f"{where}: the pickle has a {record.class_name} at {prefix.rstrip('.') or 'top'}, "
                                 f"where our network has a {type(module).__name__}")
    module.train(bool(record.state.get("training", False)))
    non_persistent = record.state.get("_non_persistent_buffers_set") or set()
    for name, tensor in (record.state.get("_parameters") or {}).items():
        if tensor is not None:
            out[prefix + name] = tensor
            grads[prefix + name] = bool(tensor.requires_grad)
    for name, tensor in (record.state.get("_buffers") or {}).items():
        if tensor is not None and name not in non_persistent:
            out[prefix + name] = tensor
    ours = dict(module.named_children())
    for name, child in (record.state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord) or name not in ours:
            raise NetworkFormatError(f"{where}: unexpected child {prefix + name!r} in the pickle")
        _collect_state(child, ours[name], prefix + name + ".", out, grads, where)


def _load_state(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as error:
        raise NetworkFormatError(f"{where}: the stored tensors do not fit the network built from its "
                                 f"recorded arguments: {error}") from error


def network_from_record(record: PersistentRecord, where: str) -> nn.Module:
    """Our module for one top-level persistent record: built from its init arguments, then its tensors."""
    module = build_network(record.class_name, record.state.get("_init_args", ()),
                           record.state.get("_init_kwargs", {}), where)
    state: dict[str, torch.Tensor] = {}
    grads: dict[str, bool] = {}
    _collect_state(record, module, "", state, grads, where)
    _load_state(module, state, where)
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(grads.get(name, True))
    return module


def _missing(path: Path) -> MissingWeightsError:
    return MissingWeightsError(path.name, str(path.parent.resolve()), "Loading a StyleGAN2-ADA network")


def load_pickle(path: str | Path) -> dict[str, Any]:
    """Read an NVlabs network pickle safely: {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        with path.open("rb") as stream:
            data = read_records(stream)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except Exception as error:
        raise NetworkFormatError(f"{path} is not a readable network pickle (truncated or not a pickle?): "
                                 f"{type(error).__name__}: {error}") from None
    if isinstance(data, PersistentRecord):
        data = {"G_ema" if data.class_name == "Generator" else data.class_name: data}
    if not isinstance(data, dict):
        raise NetworkFormatError(f"{path}: expected a dict of networks (G, D, G_ema, ...), got {type(data).__name__}")
    result: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, PersistentRecord):
            value = None if value.class_name in SKIPPED_CLASSES else network_from_record(value, f"{path} [{key}]")
        result[key] = value
    return result


def load_folder(folder: str | Path) -> dict[str, nn.Module]:
    """Read networks saved by save_network: {role: module}."""
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise _missing(config_path)
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise NetworkFormatError(f"{config_path} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise NetworkFormatError(f"{config_path} is not a {FORMAT} config (expected 'format': '{FORMAT}')")
    networks = {}
    for role, entry in config.get("networks", {}).items():
        where = f"{folder} [{role}]"
        module = build_network(entry["class_name"], tuple(entry.get("init_args", ())), entry.get("init_kwargs"),
                               where)
        weights = folder / entry["weights"]
        if not weights.is_file():
            raise _missing(weights)
        try:
            state = load_file(str(weights))
        except Exception as error:
            raise NetworkFormatError(f"{weights} is not a readable safetensors file: {error}") from None
        _load_state(module, state, where)
        module.eval()
        networks[role] = module
    return networks


def load_network(path: str | Path) -> dict[str, Any]:
    """Networks from an NVlabs pickle file or a folder written by save_network, keyed by role (G_ema, ...)."""
    path = Path(path)
    if path.is_dir():
        return load_folder(path)
    return load_pickle(path)


def _roles(networks: nn.Module | Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    if isinstance(networks, nn.Module):
        role = {"Generator": "G_ema", "Discriminator": "D"}.get(type(networks).__name__, type(networks).__name__)
        networks = {role: networks}
    if not isinstance(networks, Mapping) or not networks:
        raise ValueError(f"networks must be a module or a non-empty dict of role -> module, got {networks!r}")
    for role, module in networks.items():
        if type(module) not in NETWORK_CLASSES.values():
            raise ValueError(f"networks[{role!r}] must be one of our StyleGAN2 modules "
                             f"({', '.join(sorted(NETWORK_CLASSES))}), got {type(module).__name__}")
        if not isinstance(role, str) or not role.isidentifier():
            raise ValueError(f"network roles must be identifiers such as 'G_ema', got {role!r}")
    return dict(networks)


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where}: init argument {value!r} of type {type(value).__name__} cannot be stored as JSON")


def save_network(networks: nn.Module | Mapping[str, nn.Module], folder: str | Path) -> Path:
    """Save one network or a dict {role: network} as safetensors + config.json (each file written atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for role, module in _roles(networks).items():
        state = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in module.state_dict().items()}
        weights = f"{role}.safetensors"
        blob = save(state)
        atomic_write(folder / weights, lambda handle: handle.write(blob))
        entries[role] = {"class_name": type(module).__name__,
                         "init_args": _jsonable(getattr(module, "_init_args", ()), role),
                         "init_kwargs": _jsonable(getattr(module, "_init_kwargs", {}), role),
                         "weights": weights}
    text = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "networks": entries}, indent=2)
    atomic_write(folder / CONFIG_NAME, lambda handle: handle.write(text.encode()))
    return folder


def save_nvlabs_pickle(path: str | Path, G: nn.Module | None = None, D: nn.Module | None = None,
                       G_ema: nn.Module | None = None, training_set_kwargs: Mapping[str, Any] | None = None) -> Path:
    """Write a snapshot pickle in NVlabs' structure (module source replaced by a placeholder), atomically."""
    path = Path(path)
    for name, module in (("G", G), ("D", D), ("G_ema", G_ema)):
        if module is not None and type(module) not in NETWORK_CLASSES.values():
            raise ValueError(f"{name} must be one of our StyleGAN2 modules, got {type(module).__name__}")
    snapshot = {"G": G, "D": D, "G_ema": G_ema, "augment_pipe": None,
                "training_set_kwargs": dict(training_set_kwargs) if training_set_kwargs is not None else None}
    persistent = tuple(NETWORK_CLASSES.values())
    atomic_write(path, lambda handle: dump_nvlabs(snapshot, handle, persistent))
    return path

