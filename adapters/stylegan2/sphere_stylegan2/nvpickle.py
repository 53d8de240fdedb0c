"""Read and write the pickle format of NVlabs/stylegan2-ada-pytorch without running its code.

NVlabs pickles every network as a call `torch_utils.persistence._reconstruct_persistent_obj(meta)`
whose `meta` carries the class name, the module's `__dict__` and the source code of the defining
module (which NVlabs' own loader executes). The reader here allows only the globals the format
needs, maps that call to a plain record of (class name, state), and never looks at the source.
The writer produces the same structure from our modules, so the format can be tested end to end.
"""

from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from sphere_plugins.errors import UnsafePickleError

PERSISTENCE_VERSION = 6
MODULE_SRC_PLACEHOLDER = "<placeholder: written by sphere-stylegan2, which never stores or runs module source>"


@dataclass
class PersistentRecord:
    """What one persistent-object call in the pickle describes: a class name and the module's state."""

    class_name: str
    state: dict[str, Any]
    version: int | None = None


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict while unpickling: a plain dict subclass, nothing more."""


def _reconstruct(meta: Any) -> PersistentRecord:
    if not isinstance(meta, Mapping) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise UnsafePickleError("a persistent-object call carries no {'type': 'class', 'class_name': ...} meta dict")
    state = meta.get("state")
    if not isinstance(state, Mapping):
        raise UnsafePickleError(f"the persistent object {meta['class_name']!r} carries no state dict")
    return PersistentRecord(meta["class_name"], dict(state), meta.get("version"))


def _load_storage(data: Any) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"a tensor storage must arrive as bytes, got {type(data).__name__}")
    storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"nested tensor data decoded to {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
                    backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor must be rebuilt from a storage, got {type(storage).__name__}")
    if not all(isinstance(v, int) for v in (offset, *size, *stride)):
        raise UnsafePickleError("tensor offset, size and stride must be integers")
    return torch._utils._rebuild_tensor_v2(storage, offset, tuple(size), tuple(stride), bool(requires_grad),
                                           OrderedDict())


def _rebuild_parameter(data: Any, requires_grad: bool, backward_hooks: Any = None) -> nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"a parameter must wrap a tensor, got {type(data).__name__}")
    return nn.Parameter(data, requires_grad=bool(requires_grad))


def _numpy_dtype(name: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(name) if isinstance(name, str) else None
    if dtype is None or dtype.kind not in "biufc":
        raise UnsafePickleError(f"only numeric numpy dtypes are allowed in a network pickle, got {name!r}")
    return np.dtype(name, align=bool(align), copy=True)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise UnsafePickleError("numpy scalars in a network pickle must be numeric values stored as bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0].item()


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is allowed only to decode latin-1 bytes (pickle protocol 2)")
    return text.encode("latin1")


# Everything a network pickle may name. set/frozenset (Python 2 spelling too) and _codecs.encode are how
# pickle protocols below 4 write sets and bytes; the rest are listed in the format notes (module state,
# tensors, numbers).
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ALLOWED_GLOBALS, each to our own safe stand-in."""

    def find_class(self, module: str, name: str) -> Any:
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"refused global {module}.{name}: it is not part of the StyleGAN2-ADA network format, so nothing "
                f"was loaded or executed. Allowed: {', '.join(sorted(f'{m}.{n}' for m, n in ALLOWED_GLOBALS))}"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refused persistent id {pid!r}: the network format uses none")


def read_records(stream: BinaryIO) -> Any:
    """Unpickle a network file into plain containers, tensors and PersistentRecord objects."""
    return plain(RestrictedUnpickler(stream).load())


def plain(value: Any) -> Any:
    """EasyDict stand-ins become dicts, recursively (records keep their own state untouched)."""
    if isinstance(value, EasyDict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, OrderedDict):
        return OrderedDict((k, plain(v)) for k, v in value.items())
    if type(value) is dict:
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


class _ForeignGlobal:
    """A global of another project, written into a pickle by name and never imported."""

    def __init__(self, module: str, name: str):
        self.module = module
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.module}.{self.name} is a name to write into a pickle, not something to call")


_RECONSTRUCT = _ForeignGlobal("torch_utils.persistence", "_reconstruct_persistent_obj")
_EASYDICT = _ForeignGlobal("dnnlib.util", "EasyDict")


class _EasyDictOut(dict):
    """A dict to be written as dnnlib.util.EasyDict (built the way pickle builds dict subclasses)."""


def _as_easydicts(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _EasyDictOut((k, _as_easydicts(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_as_easydicts(v) for v in value]
    return value


class _NVlabsPickler(pickle._Pickler):
    """Writes our modules as NVlabs persistent-object calls (with placeholder source)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file: BinaryIO, persistent_types: tuple[type, ...]):
        super().__init__(file, protocol=4)
        self.persistent_types = persistent_types

    def _save_foreign(self, obj: _ForeignGlobal) -> None:
        self.save(obj.module)
        self.save(obj.name)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    def _save_easydict(self, obj: _EasyDictOut) -> None:
        self.save(_EASYDICT)
        self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
        self.memoize(obj)
        self._batch_setitems(iter(obj.items()))

    dispatch[_ForeignGlobal] = _save_foreign
    dispatch[_EasyDictOut] = _save_easydict

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) in self.persistent_types:
            state = dict(obj.__dict__)
            state["_init_kwargs"] = _as_easydicts(state.get("_init_kwargs", {}))
            meta = dict(type="class", version=PERSISTENCE_VERSION, module_src=MODULE_SRC_PLACEHOLDER,
                        class_name=type(obj).__name__, state=state)
            return _RECONSTRUCT, (meta,), None
        return NotImplemented


def dump_nvlabs(obj: Any, stream: BinaryIO, persistent_types: tuple[type, ...]) -> None:
    """Pickle `obj`, writing modules of `persistent_types` in NVlabs' persistent-object form."""
    _NVlabsPickler(stream, persistent_types).dump(obj)
