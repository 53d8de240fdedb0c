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
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from sphere_plugins.adapter import UnsafePickleError
from sphere_plugins.errors import describe

PERSISTENCE_VERSION = 6
MODULE_SRC_PLACEHOLDER = "<placeholder: written by sphere-stylegan2, which never stores or runs module source>"


@dataclass(eq=False)
class PersistentRecord:
    """What one persistent-object call in the pickle describes: a class name and the module's state."""

    class_name: str
    state: dict[str, Any]
    version: int | None = None


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict while unpickling: a plain dict subclass, nothing more."""


# Work and shape bounds for one file, the tensor storages nested in it included. A 256x256 snapshot (G, D, G_ema
# at NVlabs' paper256 size, 282 MiB) written by save_nvlabs_pickle takes about 55,000 opcodes, copies 1.0x its
# size and nests about 20 containers deep; the bounds leave wide margins and keep a hostile file's cost to a
# few seconds and a few hundred megabytes.
MAX_OPCODES = 1_000_000
MAX_DEPTH = 100
MAX_TENSOR_DIMS = 16
# The bytes reading may copy out of the file's values: tensor storages once, and their latin-1 text once more in
# pickle protocols below 3. A value used many times over is refused rather than copied each time.
COPY_FACTOR = 2
_COPY_SLACK = 1 << 20
_MAX_MEMO_INDEX = 1 << 32
_SMALL_INT = 1 << 60  # ints below this hash to distinct values (except -1/-2), so dict keys cannot collide


class Budget:
    """What reading one file may cost, shared by every pickle nested in it: opcodes (a call that walks a
    container pays one per item) and bytes copied out of the file's values. Spend before allocating."""

    def __init__(self, file_bytes: int):
        self.max_opcodes = self.opcodes = MAX_OPCODES
        self.max_bytes = self.bytes = COPY_FACTOR * file_bytes + _COPY_SLACK

    def spend(self, opcodes: int = 0, nbytes: int = 0) -> None:
        self.opcodes -= opcodes
        self.bytes -= nbytes
        if self.opcodes < 0:
            raise UnsafePickleError(f"the pickle needs more than {self.max_opcodes} opcodes; no network file is "
                                    "that complex, so it was not read further")
        if self.bytes < 0:
            raise UnsafePickleError(f"the pickle's values would copy more than {self.max_bytes} bytes "
                                    f"({COPY_FACTOR}x the file's size): it uses one storage or string many times "
                                    "over, which no network file does")


# Every allowed global that is called gets the file's Budget as its first argument, then the file's arguments.

def _reconstruct(budget: Budget, meta: Any) -> PersistentRecord:
    if not isinstance(meta, Mapping) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise UnsafePickleError("a persistent-object call carries no {'type': 'class', 'class_name': ...} meta dict")
    state = meta.get("state")
    if not isinstance(state, Mapping):
        raise UnsafePickleError(f"the persistent object {describe(meta['class_name'])} carries no state dict")
    budget.spend(len(state))
    version = meta.get("version")
    return PersistentRecord(meta["class_name"], dict(state), version if type(version) is int else None)


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _StorageRef:
    """A storage's persistent id in torch's legacy format: `numel` items of `dtype`, of which the loaded
    storage is the `size` items from `offset` (all of them unless the id names a view)."""

    dtype: torch.dtype
    key: str
    numel: int
    offset: int
    size: int


@dataclass(frozen=True)
class Storage:
    """A tensor storage read from the file: exactly the bytes the file holds, as `numel` items of `dtype`."""

    data: torch.UntypedStorage
    dtype: torch.dtype
    numel: int


_STORAGE_TYPES = {("torch", name): _StorageType(dtype) for name, dtype in (
    ("FloatStorage", torch.float32), ("DoubleStorage", torch.float64), ("HalfStorage", torch.float16),
    ("BFloat16Storage", torch.bfloat16), ("LongStorage", torch.int64), ("IntStorage", torch.int32),
    ("ShortStorage", torch.int16), ("CharStorage", torch.int8), ("ByteStorage", torch.uint8),
    ("BoolStorage", torch.bool))}
# torch.save's legacy (non-zip) format, which storages pickled by plain pickle use: five pickles
# (magic number, protocol version, system info, the object, storage keys), then each storage's
# element count (int64, little-endian) and raw bytes.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_LOCATION = re.compile(r"cpu|cuda(:[0-9]{1,3})?|mps")


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < _SMALL_INT


def _storage_ref(pid: Any) -> _StorageRef:
    """torch's legacy storage id ('storage', type, key, location, numel, view), where view is None or (view key,
    offset, size): torch then loads items offset..offset+size of the storage. Views that torch would clip
    (past the end), wrap (negative) or resolve to the whole storage (view key = key) are refused."""
    ok = type(pid) is tuple and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType) \
        and type(pid[2]) is str and type(pid[3]) is str and _LOCATION.fullmatch(pid[3]) is not None \
        and _is_count(pid[4])
    view = pid[5] if ok else None
    if view is not None:
        ok = type(view) is tuple and len(view) == 3 and type(view[0]) is str and view[0] != pid[2] \
            and _is_count(view[1]) and _is_count(view[2]) and view[1] + view[2] <= pid[4]
    if not ok:
        raise UnsafePickleError(f"refused the storage id {describe(pid)}: expected ('storage', a torch storage "
                                "type, key, 'cpu' or 'cuda', item count, None or (view key, offset, size) inside "
                                "the storage)")
    offset, size = view[1:] if view is not None else (0, pid[4])
    return _StorageRef(pid[1].dtype, pid[2], pid[4], offset, size)


def _load_storage(budget: Budget, data: Any) -> Storage:
    """Parse a nested legacy torch serialization of one storage without torch.load, on the file's budget:
    sizes come from the bytes, and the storage (or the view its id names) is copied only once they agree."""
    if type(data) is not bytes:
        raise UnsafePickleError(f"a tensor storage must arrive as bytes, got {describe(data)}")
    stream = io.BytesIO(data)
    reader = RestrictedUnpickler(stream, globals_=_STORAGE_TYPES, storage_ids=True, budget=budget)
    if reader.load() != _LEGACY_MAGIC or reader.load() != _LEGACY_PROTOCOL:
        raise UnsafePickleError("a tensor storage does not start with torch's legacy serialization header")
    info = reader.load()
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise UnsafePickleError("a tensor storage was not written on a little-endian machine (or has no header)")
    ref = reader.load()
    keys = reader.load()
    if not isinstance(ref, _StorageRef) or type(keys) is not list or keys != [ref.key]:
        raise UnsafePickleError("nested tensor data must describe exactly one storage")
    header = stream.read(8)
    count = int.from_bytes(header, "little", signed=True) if len(header) == 8 else -1
    itemsize = ref.dtype.itemsize
    nbytes = ref.numel * itemsize
    start = stream.tell()
    held = len(data) - start
    if count != ref.numel or held != nbytes:
        raise UnsafePickleError(f"a tensor storage claims {ref.numel} items of {ref.dtype} ({nbytes} bytes) "
                                f"but holds {max(held, 0)} bytes (count field {count})")
    budget.spend(nbytes=ref.size * itemsize)
    if not ref.size:
        return Storage(torch.UntypedStorage(0), ref.dtype, 0)
    first = start + ref.offset * itemsize
    copy = bytearray(memoryview(data)[first:first + ref.size * itemsize])
    return Storage(torch.frombuffer(copy, dtype=torch.uint8).untyped_storage(), ref.dtype, ref.size)


def _rebuild_tensor(budget: Budget, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """A view of `storage`, after checking that every element it addresses lies inside the storage."""
    if not isinstance(storage, Storage):
        raise UnsafePickleError(f"a tensor must be rebuilt from a storage, got {describe(storage)}")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride) \
            or len(size) > MAX_TENSOR_DIMS:
        raise UnsafePickleError(f"tensor size and stride must be tuples of equal length <= {MAX_TENSOR_DIMS}")
    values = (offset, *size, *stride)
    if not all(type(v) is int and 0 <= v < _SMALL_INT for v in values):
        raise UnsafePickleError(f"tensor offset, sizes and strides must be non-negative ints, got offset "
                                f"{describe(offset)}, size {describe(size)}, stride {describe(stride)}")
    if 0 in size:
        last = offset - 1
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.numel or offset > storage.numel:
        raise UnsafePickleError(f"a tensor of size {size}, stride {stride} at offset {offset} reaches item "
                                f"{last} of a storage holding {storage.numel} items")
    tensor = torch.empty(0, dtype=storage.dtype).set_(storage.data, offset, size, stride)
    return tensor.requires_grad_(bool(requires_grad)) if tensor.is_floating_point() else tensor


def _rebuild_parameter(budget: Budget, data: Any, requires_grad: Any, backward_hooks: Any = None) -> nn.Parameter:
    if not isinstance(data, torch.Tensor) or isinstance(data, nn.Parameter):
        raise UnsafePickleError(f"a parameter must wrap a tensor, got {describe(data)}")
    if not data.is_floating_point():
        raise UnsafePickleError(f"a parameter must hold floating-point values, got {data.dtype}")
    return nn.Parameter(data.detach(), requires_grad=bool(requires_grad))


# The numpy dtypes a network pickle may name (for numpy scalars among plain settings), by the name numpy pickles
# them with, and the state each pickles with. These are numpy's own shared dtype objects: a BUILD on one is
# accepted only with exactly that state, so it would change nothing and is skipped; file state never reaches
# numpy's __setstate__ (a crafted one can make numpy read outside its buffers).
_NUMPY_DTYPES = {name: np.dtype(name) for name in
                 ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")}
_NUMPY_DTYPE_STATES = {id(dtype): dtype.__reduce__()[2] for dtype in _NUMPY_DTYPES.values()}


def _numpy_dtype(budget: Budget, name: Any, align: Any = False, copy: Any = False) -> np.dtype:
    dtype = _NUMPY_DTYPES.get(name) if type(name) is str else None
    if dtype is None:
        raise UnsafePickleError(f"refused the numpy dtype {describe(name)}: a network pickle may name only "
                                f"{', '.join(_NUMPY_DTYPES)}")
    return dtype


def _numpy_scalar(budget: Budget, dtype: Any, data: Any = None) -> Any:
    if id(dtype) not in _NUMPY_DTYPE_STATES or type(data) is not bytes or len(data) != dtype.itemsize:
        raise UnsafePickleError("numpy scalars in a network pickle must be numeric values stored as bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0].item()


def _latin1_bytes(budget: Budget, text: Any, encoding: Any = "latin1") -> bytes:
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is allowed only to decode latin-1 bytes (pickle protocol 2)")
    budget.spend(nbytes=len(text))
    return text.encode("latin1")


def _check_key(key: Any) -> Any:
    """Dict keys and set items: atoms whose hashes an attacker cannot make collide (strings are salted)."""
    if key is None or type(key) in (str, bytes, bool) or (type(key) is int and -_SMALL_INT < key < _SMALL_INT):
        return key
    raise UnsafePickleError(f"dict keys and set items in a network pickle must be strings or small ints, got "
                            f"{type(key).__name__}")


def _atoms(items: list) -> set:
    return {_check_key(item) for item in items}


def _make_set(budget: Budget, items: Any = ()) -> set:
    if type(items) not in (list, tuple):
        raise UnsafePickleError(f"a set in a network pickle is built from a list, got {describe(items)}")
    budget.spend(len(items))
    return _atoms(items)


def _make_frozenset(budget: Budget, items: Any = ()) -> frozenset:
    return frozenset(_make_set(budget, items))


_DICT_BASE = object()  # what builtins.dict resolves to: only an argument of _reconstructor, never called


def _reconstructor(budget: Budget, cls: Any, base: Any, state: Any) -> EasyDict:
    """copy_reg._reconstructor as pickle protocols 0 and 1 write a dict subclass: only EasyDict from a dict."""
    if cls is not EasyDict or base is not _DICT_BASE or type(state) is not dict:
        raise UnsafePickleError("copy_reg._reconstructor is allowed only to rebuild an EasyDict from a dict")
    budget.spend(len(state))
    return EasyDict(state)


# Everything a network pickle may name. set/frozenset (Python 2 spelling too) and _codecs.encode are how
# pickle protocols below 4 write sets and bytes, and copy_reg._reconstructor with dict how protocols 0 and 1
# write an EasyDict; the rest are listed in the format notes (module state, tensors, numbers).
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
    ("builtins", "set"): _make_set,
    ("builtins", "frozenset"): _make_frozenset,
    ("__builtin__", "set"): _make_set,
    ("__builtin__", "frozenset"): _make_frozenset,
    ("_codecs", "encode"): _latin1_bytes,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "dict"): _DICT_BASE,
    ("builtins", "dict"): _DICT_BASE,
}
_DICT_CLASSES = (EasyDict, OrderedDict)
_Op = Callable[[Any], None]


def _counted(op: _Op) -> _Op:
    def run(self: RestrictedUnpickler) -> None:
        budget = self.budget
        budget.opcodes -= 1
        if budget.opcodes < 0:
            budget.spend()
        op(self)
    return run


class _Opcodes(dict):
    """The dispatch table: a byte that is no opcode ends in a pickle error saying so, not in a KeyError."""

    def __missing__(self, code: int) -> None:
        raise pickle.UnpicklingError(f"byte {code:#04x} is not a pickle opcode")


class RestrictedUnpickler(pickle._Unpickler):
    """A pure-Python unpickler that resolves only an allowed set of globals, each to our own safe stand-in.

    Every opcode that can call, mutate or size something is checked: calls reach only the allowed
    stand-ins, BUILD applies only to objects this reader created (never to a class or function) and to
    numpy dtypes only with their own state, dict keys are collision-proof atoms, memo indices are bounded,
    and the whole file, nested storages included, shares one Budget. Reads never ask the file for more
    bytes than it still holds, and error messages describe the file's values without walking them.
    """

    def __init__(self, file: BinaryIO, globals_: Mapping[tuple[str, str], Any] | None = None,
                 storage_ids: bool = False, budget: Budget | None = None):
        bounded = _Bounded(file)
        super().__init__(bounded)
        self.allowed = ALLOWED_GLOBALS if globals_ is None else globals_
        self.callables = {id(v): v for v in self.allowed.values() if callable(v)}
        self.storage_ids = storage_ids
        self.budget = Budget(bounded.remaining) if budget is None else budget
        self.created: dict[int, Any] = {}

    def find_class(self, module: Any, name: Any) -> Any:
        target = self.allowed.get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"refused global {str(module)[:80]}.{str(name)[:80]}: it is not part of the StyleGAN2-ADA network "
                "format, so nothing was loaded or executed. Allowed: "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in self.allowed))}"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        if self.storage_ids:
            return _storage_ref(pid)
        raise UnsafePickleError(f"refused persistent id {describe(pid)}: the network format uses none")

    def _call(self, func: Any, args: Any, kwargs: Any = None) -> Any:
        if self.callables.get(id(func)) is not func:
            raise UnsafePickleError(f"refused a call of {describe(func)}: only the format's allowed globals may "
                                    "be called")
        if type(args) is not tuple or kwargs:
            raise UnsafePickleError("call arguments in a network pickle must be a tuple, without keywords")
        if func in _DICT_CLASSES:
            if args:
                raise UnsafePickleError(f"{func.__name__} is built empty and filled item by item in this format")
            value = func()
        else:
            value = func(self.budget, *args)
        if isinstance(value, (EasyDict, OrderedDict)):
            self.created[id(value)] = value
        return value

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, kwargs)

    def _instantiate(self, klass: Any, args: list) -> None:
        self.append(self._call(klass, tuple(args)))

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        dtype_state = _NUMPY_DTYPE_STATES.get(id(target))
        if dtype_state is not None:
            if type(state) is not tuple or len(state) != len(dtype_state) or \
                    not all(type(a) is type(b) and a == b for a, b in zip(state, dtype_state)):
                raise UnsafePickleError(f"refused the state {describe(state)} of numpy dtype {target.str!r}: only "
                                        f"its plain state {dtype_state} is allowed")
            return
        if self.created.get(id(target)) is not target:
            raise UnsafePickleError(f"refused BUILD on {type(target).__name__}: the pickle may set state only on "
                                    "objects this reader created")
        if state not in (None, {}, (None, None), ({}, None), (None, {}), ({}, {})):
            raise UnsafePickleError(f"refused BUILD with attributes on a {type(target).__name__}")

    def _set_items(self, target: Any, items: list) -> None:
        if type(target) not in (dict, EasyDict, OrderedDict) or len(items) % 2:
            raise UnsafePickleError(f"refused setting items on a {type(target).__name__}")
        for index in range(0, len(items), 2):
            target[_check_key(items[index])] = items[index + 1]

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items(self.stack[-1], [key, value])

    def load_setitems(self) -> None:
        items = self.pop_mark()
        self._set_items(self.stack[-1], items)

    def load_dict(self) -> None:
        items = self.pop_mark()
        target: dict = {}
        self._set_items(target, items)
        self.append(target)

    def load_additems(self) -> None:
        items = self.pop_mark()
        if type(self.stack[-1]) is not set:
            raise UnsafePickleError(f"refused adding items to a {type(self.stack[-1]).__name__}")
        self.stack[-1].update(_atoms(items))

    def load_frozenset(self) -> None:
        self.append(frozenset(_atoms(self.pop_mark())))

    def _extend(self, items: list) -> None:
        if type(self.stack[-1]) is not list:
            raise UnsafePickleError(f"refused appending to a {type(self.stack[-1]).__name__}")
        self.stack[-1].extend(items)

    def load_append(self) -> None:
        self._extend([self.stack.pop()])

    def load_appends(self) -> None:
        self._extend(self.pop_mark())

    def _memo_index(self, index: int) -> int:
        if not 0 <= index < _MAX_MEMO_INDEX:
            raise UnsafePickleError(f"memo index {index} out of range")
        return index

    def load_put(self) -> None:
        line = self.readline()[:-1]
        if not line.isdigit() or len(line) > 10:
            raise UnsafePickleError("a PUT memo index must be a short non-negative number")
        self.memo[self._memo_index(int(line))] = self.stack[-1]

    def load_get(self) -> None:
        line = self.readline()[:-1]
        if not line.isdigit() or len(line) > 10:
            raise UnsafePickleError("a GET memo index must be a short non-negative number")
        self.append(self.memo[int(line)])

    def load_long(self) -> None:
        line = self.readline()[:-1]
        if len(line) > 400:
            raise UnsafePickleError("a text-encoded integer in the pickle is implausibly long")
        self.append(int(line[:-1] if line.endswith(b"L") else line))

    dispatch = dict(pickle._Unpickler.dispatch)
    for _code, _name in ((pickle.REDUCE, "load_reduce"), (pickle.NEWOBJ, "load_newobj"),
                         (pickle.NEWOBJ_EX, "load_newobj_ex"), (pickle.BUILD, "load_build"),
                         (pickle.SETITEM, "load_setitem"), (pickle.SETITEMS, "load_setitems"),
                         (pickle.DICT, "load_dict"), (pickle.ADDITEMS, "load_additems"),
                         (pickle.FROZENSET, "load_frozenset"), (pickle.APPEND, "load_append"),
                         (pickle.APPENDS, "load_appends"), (pickle.PUT, "load_put"), (pickle.GET, "load_get"),
                         (pickle.LONG, "load_long")):
        dispatch[_code[0]] = locals()[_name]
    dispatch = _Opcodes({code: _counted(op) for code, op in dispatch.items()})
    del _code, _name


class _Bounded:
    """File reads clamped to the bytes the file still holds, so a claimed length cannot allocate more."""

    def __init__(self, file: BinaryIO):
        self.file = file
        position = file.tell()
        self.remaining = file.seek(0, os.SEEK_END) - position
        file.seek(position)

    def read(self, n: int = -1) -> bytes:
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        data = self.file.read(n)
        self.remaining -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        line = self.file.readline(self.remaining)
        self.remaining -= len(line)
        return line


def _children(value: Any) -> list | None:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, PersistentRecord):
        return [value.state]
    return None


def check_graph(root: Any) -> None:
    """Refuse reference cycles and nesting deeper than MAX_DEPTH; each shared object is visited once."""
    depth: dict[int, int] = {}
    open_: set[int] = set()
    todo: list[tuple[Any, bool]] = [(root, False)]
    while todo:
        node, finished = todo.pop()
        kids = _children(node)
        if kids is None:
            continue
        key = id(node)
        if finished:
            open_.discard(key)
            level = 1 + max((depth.get(id(kid), 0) for kid in kids), default=0)
            if level > MAX_DEPTH:
                raise UnsafePickleError(f"the pickle nests containers more than {MAX_DEPTH} deep")
            depth[key] = level
            continue
        if key in depth:
            continue
        if key in open_:
            raise UnsafePickleError("the pickle holds a reference cycle, which no network file has")
        open_.add(key)
        todo.append((node, True))
        todo.extend((kid, False) for kid in kids if id(kid) not in depth)


def read_records(stream: BinaryIO) -> Any:
    """Unpickle a network file into plain containers, tensors and PersistentRecord objects."""
    data = RestrictedUnpickler(stream).load()
    check_graph(data)
    return plain(data)


def plain(value: Any, _memo: dict[int, Any] | None = None) -> Any:
    """EasyDict stand-ins become dicts, recursively; an object shared in the input stays shared in the output
    (records keep their own state untouched)."""
    memo = {} if _memo is None else _memo
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, OrderedDict):
        out: Any = OrderedDict()
    elif isinstance(value, dict):
        out = {}
    elif isinstance(value, list):
        out = []
    elif isinstance(value, tuple):
        memo[key] = out = tuple(plain(v, memo) for v in value)
        return out
    else:
        return value
    memo[key] = out
    if isinstance(out, list):
        out.extend(plain(v, memo) for v in value)
    else:
        out.update((k, plain(v, memo)) for k, v in value.items())
    return out


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
