"""Load and save StyleGAN2-ADA networks: NVlabs pickles (read safely, written in their structure)
and our own folder format (one safetensors file per network plus a JSON config)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from sphere_plugins.adapter import MissingWeightsError, UnsafePickleError
from sphere_plugins.errors import SpherePluginsError, describe
from sphere_plugins.files import atomic_write
from sphere_plugins.output_folder import OutputFolder
from sphere_plugins.records import jsonable, read_record, record_format, write_record
from sphere_plugins.weights import allow_flag, check_finite
from sphere_stylegan2.arch import check_budget, checked_arguments, meta_layout
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


def _network_class(class_name: Any, where: str) -> type[nn.Module]:
    cls = NETWORK_CLASSES.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise NetworkFormatError(f"{where}: unknown network class {describe(class_name)}; this loader builds "
                                 f"{', '.join(sorted(NETWORK_CLASSES))}")
    return cls


def build_network(class_name: str, init_args: tuple = (), init_kwargs: Mapping[str, Any] | None = None,
                  where: str = "network") -> nn.Module:
    """A fresh module of our class `class_name`, constructed with the recorded arguments once they are checked."""
    cls = _network_class(class_name, where)
    kwargs = checked_arguments(cls, plain(init_args), plain(dict(init_kwargs or {})), where)
    meta_layout(cls, kwargs, where)
    return cls(**kwargs)


def _collect_state(record: PersistentRecord, module: nn.Module, prefix: str, out: dict[str, torch.Tensor],
                   grads: dict[str, bool], where: str) -> None:
    """Gather the record tree's tensors under state_dict names, checking each child's class."""
    if record.class_name != type(module).__name__:
        raise NetworkFormatError(f"{where}: the pickle has a {record.class_name} at {prefix.rstrip('.') or 'top'}, "
                                 f"where our network has a {type(module).__name__}")
    module.train(bool(record.state.get("training", False)))
    non_persistent = record.state.get("_non_persistent_buffers_set") or set()
    if not isinstance(non_persistent, (set, frozenset)):
        raise NetworkFormatError(f"{where}: _non_persistent_buffers_set of {prefix.rstrip('.') or 'top'} is "
                                 f"{describe(non_persistent)}, not a set")
    for kind in ("_parameters", "_buffers"):
        entries = record.state.get(kind) or {}
        if not isinstance(entries, Mapping):
            raise NetworkFormatError(f"{where}: {kind} of {prefix.rstrip('.') or 'top'} is not a dict")
        for name, tensor in entries.items():
            if tensor is None or (kind == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor) or not isinstance(name, str):
                raise NetworkFormatError(f"{where}: {prefix}{name!s:.60} is a {type(tensor).__name__}, not a tensor")
            out[prefix + name] = tensor
            if kind == "_parameters":
                grads[prefix + name] = bool(tensor.requires_grad)
    ours = dict(module.named_children())
    children = record.state.get("_modules") or {}
    if not isinstance(children, Mapping):
        raise NetworkFormatError(f"{where}: _modules of {prefix.rstrip('.') or 'top'} is not a dict")
    for name, child in children.items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord) or name not in ours:
            raise NetworkFormatError(f"{where}: unexpected child {prefix}{name!s:.60} in the pickle")
        _collect_state(child, ours[name], prefix + name + ".", out, grads, where)


def _check_fits(layout: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Same names and shapes as the layout, floating point, and no more values than the tensors' storages hold."""
    held: dict[tuple[int, int], int] = {}
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise NetworkFormatError(f"{where}: tensor {name} has dtype {tensor.dtype}; weights must be floating point")
        storage = tensor.untyped_storage()
        held[(storage.data_ptr(), storage.nbytes())] = storage.nbytes() // tensor.element_size()
    check_budget(layout, sum(held.values()), where)
    expected = {name: tuple(t.shape) for name, t in layout.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))[:5]
        unexpected = sorted(set(found) - set(expected))[:5]
        wrong = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])[:5]
        raise NetworkFormatError(f"{where}: the stored tensors do not fit the network built from its recorded "
                                 f"arguments: missing {missing}, unexpected {unexpected}, wrong shape "
                                 f"{[(n, found[n], expected[n]) for n in wrong]}")


def _load_state(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as error:
        raise NetworkFormatError(f"{where}: the stored tensors do not fit the network built from its "
                                 f"recorded arguments: {error}") from error


def _checked_network(class_name: Any, init_args: Any, init_kwargs: Any, where: str,
                     state_of: Any, allow_nonfinite: bool) -> nn.Module:
    """Check the arguments, lay the network out on the meta device, fit the file's tensors (finite unless
    allow_nonfinite, also once narrowed to the network's dtypes), then build it."""
    cls = _network_class(class_name, where)
    kwargs = checked_arguments(cls, plain(init_args), plain(init_kwargs), where)
    layout = meta_layout(cls, kwargs, where)
    state, grads = state_of(layout)
    _check_fits(layout, state, where)
    check_finite(state, where, allow_nonfinite, {name: t.dtype for name, t in layout.state_dict().items()})
    module = layout.to_empty(device="cpu")  # every parameter and buffer is in the state dict, loaded next
    _load_state(module, state, where)
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(grads.get(name, True))
    return module


def network_from_record(record: PersistentRecord, where: str, allow_nonfinite: bool = False) -> nn.Module:
    """Our module for one top-level persistent record: built from its init arguments, then its tensors."""
    def state_of(layout: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, bool]]:
        state: dict[str, torch.Tensor] = {}
        grads: dict[str, bool] = {}
        _collect_state(record, layout, "", state, grads, where)
        return state, grads

    init_kwargs = record.state.get("_init_kwargs", {})
    return _checked_network(record.class_name, record.state.get("_init_args", ()),
                            {} if init_kwargs is None else init_kwargs, where, state_of, allow_nonfinite)


def _missing(path: Path) -> MissingWeightsError:
    return MissingWeightsError(path.name, str(path.parent.resolve()), "Loading a StyleGAN2-ADA network")


_TORCH_SAVE_ADVICE = ("load it with torch.load(path, weights_only=True) and copy the state dict into a network built "
                      "with sphere_stylegan2 (load_state_dict), or convert the original NVIDIA .pkl")
_LEGACY_TORCH_SAVE = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."  # its first pickle: torch's magic number


def _foreign_format(head: bytes) -> str | None:
    """What a file named like a pickle is instead, from its first 16 bytes, and what to do with it."""
    if head.startswith(b"PK\x03\x04"):
        return f"a zip archive (torch.save's format), not an NVIDIA network pickle; {_TORCH_SAVE_ADVICE}"
    if head.startswith(_LEGACY_TORCH_SAVE):
        return f"a legacy torch.save file, not an NVIDIA network pickle; {_TORCH_SAVE_ADVICE}"
    if head[8:10] == b'{"':  # an 8-byte header length, then the JSON header
        return ("a safetensors file, not an NVIDIA network pickle; a safetensors file records no architecture: "
                "load the folder save_network wrote (config.json beside the weights) with load_network(folder)")
    return None


def load_pickle(path: str | Path, allow_nonfinite: bool = False) -> dict[str, Any]:
    """Read an NVlabs network pickle safely: {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}.

    Anything malformed or hostile raises UnsafePickleError or NetworkFormatError naming the file (NaN/Inf
    weights NonFiniteWeightsError, unless allow_nonfinite); the process is left as it was (the reader
    creates every object it changes).
    """
    allow_flag(allow_nonfinite)
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        with path.open("rb") as stream:
            foreign = _foreign_format(stream.read(16))
            if foreign is not None:
                raise NetworkFormatError(f"{path} is {foreign}")
            stream.seek(0)
            data = read_records(stream)
        if isinstance(data, PersistentRecord):
            data = {"G_ema" if data.class_name == "Generator" else data.class_name: data}
        if not isinstance(data, dict):
            raise NetworkFormatError(f"{path}: expected a dict of networks (G, D, G_ema, ...), got "
                                     f"{type(data).__name__}")
        result: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, PersistentRecord):
                value = (None if value.class_name in SKIPPED_CLASSES
                         else network_from_record(value, f"{path} [{key}]", allow_nonfinite))
            result[key] = value
        return result
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except SpherePluginsError:
        raise
    except Exception as error:
        raise NetworkFormatError(f"{path} is not a readable network pickle (truncated or not a pickle?): "
                                 f"{type(error).__name__}: {str(error)[:200]}") from None


def is_saved_folder(path: Path) -> bool:
    """Whether `path` is a folder save_network wrote: its config.json is a sphere-stylegan2 record."""
    return record_format(path / CONFIG_NAME) == FORMAT


def _read_config(folder: Path) -> dict[str, Any]:
    """config.json of a saved folder, with its format, version and every network entry checked."""
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise _missing(config_path)
    config = read_record(config_path, FORMAT, FORMAT_VERSION, error=NetworkFormatError)
    networks = config.get("networks")
    if not isinstance(networks, dict) or not networks:
        raise NetworkFormatError(f"{config_path}: 'networks' must be a non-empty dict of role -> entry")
    for role, entry in networks.items():
        ok = (role.isidentifier() and isinstance(entry, dict) and isinstance(entry.get("class_name"), str)
              and isinstance(entry.get("init_args", []), list) and isinstance(entry.get("init_kwargs", {}), dict)
              and isinstance(entry.get("weights"), str))
        if not ok:
            raise NetworkFormatError(f"{config_path}: network {role[:40]!r} must be a dict with 'class_name' (str), "
                                     "'init_args' (list), 'init_kwargs' (dict) and 'weights' (str)")
        weights = Path(entry["weights"])
        if weights.is_absolute() or weights.drive or len(weights.parts) != 1 or weights.name in ("", ".", ".."):
            raise NetworkFormatError(f"{config_path}: network {role!r} names weights {entry['weights'][:80]!r}; "
                                     "it must be a file name inside the folder (no directories, no '..')")
    return config


def load_folder(folder: str | Path, allow_nonfinite: bool = False) -> dict[str, nn.Module]:
    """Read networks saved by save_network: {role: module}. NaN/Inf weights are refused unless allow_nonfinite."""
    allow_flag(allow_nonfinite)
    folder = Path(folder)
    networks = {}
    for role, entry in _read_config(folder)["networks"].items():
        where = f"{folder} [{role}]"
        weights = folder / entry["weights"]
        if not weights.is_file():
            raise _missing(weights)
        if weights.resolve().parent != folder.resolve():
            raise NetworkFormatError(f"{weights} leads outside {folder} (a link?); refusing to read it")

        def state_of(layout: nn.Module, weights: Path = weights) -> tuple[dict[str, torch.Tensor], dict]:
            try:
                state = load_file(str(weights))
            except Exception as error:
                raise NetworkFormatError(f"{weights} is not a readable safetensors file: {error}") from None
            return state, {}

        try:
            module = _checked_network(entry["class_name"], entry.get("init_args", []),
                                      entry.get("init_kwargs", {}), where, state_of, allow_nonfinite)
        except SpherePluginsError:
            raise
        except Exception as error:
            raise NetworkFormatError(f"{where}: cannot be loaded: {type(error).__name__}: {str(error)[:200]}") from None
        networks[role] = module.eval()
    return networks


def load_network(path: str | Path, allow_nonfinite: bool = False) -> dict[str, Any]:
    """Networks from an NVlabs pickle file or a folder written by save_network, keyed by role (G_ema, ...).

    allow_nonfinite: accept NaN/Inf weights, and float64 values that overflow float32 (refused by default,
    since they only produce NaN images).
    """
    path = Path(path)
    if path.is_dir():
        return load_folder(path, allow_nonfinite=allow_nonfinite)
    return load_pickle(path, allow_nonfinite=allow_nonfinite)


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


def save_network(networks: nn.Module | Mapping[str, nn.Module], folder: str | Path) -> Path:
    """Save one network or a dict {role: network} as safetensors + config.json. The folder must be new, empty or
    one sphere-plugins wrote (OutputFolderError otherwise); each file arrives whole."""
    out = OutputFolder(folder)
    with out.staging() as stage:
        write_network(networks, stage)
        out.commit(stage)
    return out.path


def write_network(networks: nn.Module | Mapping[str, nn.Module], folder: Path) -> None:
    """The files of save_network, written into `folder` (a fresh folder: the sphere_save_model hook's)."""
    entries = {}
    for role, module in _roles(networks).items():
        state = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in module.state_dict().items()}
        weights = f"{role}.safetensors"
        blob = save(state)
        atomic_write(folder / weights, lambda handle: handle.write(blob))
        entries[role] = {"class_name": type(module).__name__,
                         "init_args": jsonable(getattr(module, "_init_args", ()), f"{role} init_args"),
                         "init_kwargs": jsonable(getattr(module, "_init_kwargs", {}), f"{role} init_kwargs"),
                         "weights": weights}
    write_record(folder / CONFIG_NAME, {"networks": entries}, FORMAT, FORMAT_VERSION)


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

