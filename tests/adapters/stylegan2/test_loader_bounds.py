"""A pickle is untrusted input, read on one budget: its values are described in errors without being walked, a
value used many times over is not copied each time, nested storages share the file's opcode budget, numpy never
sees a dtype state from the file, and storage views load as torch loads them or are refused."""

import codecs
import io
import pickle
import random
import time
import tracemalloc
import warnings

import numpy as np
import pytest
import torch

from sphere_plugins.errors import NonFiniteWeightsError, UnsafePickleError
from sphere_stylegan2 import nvpickle
from sphere_stylegan2.configs import tiny_generator
from sphere_stylegan2.errors import NetworkFormatError
from sphere_stylegan2.loader import load_network, save_nvlabs_pickle

LOADER_ERRORS = (UnsafePickleError, NetworkFormatError, NonFiniteWeightsError)
SHARED_DEPTH = 24  # a walk of t = (t, t) visits 2**24 nodes: seconds and hundreds of megabytes


class _Reduce:
    """Pickles as the call func(*args), then BUILD with `state` when one is given."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _shared(depth):
    node = ()
    for _ in range(depth):
        node = (node, node)
    return node


def _write(tmp_path, payload, name="hostile.pkl"):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def _outer(value, protocol=4):
    return pickle.dumps({"G_ema": None, "x": value}, protocol=protocol)


class _StoragePickler(pickle.Pickler):
    def __init__(self, file, pid):
        super().__init__(file, protocol=2)
        self.pid = pid

    def persistent_id(self, obj):
        return self.pid if obj is _StoragePickler else None


def _legacy_storage(values, pid=None, keys=None, count=None, info=None, dtype=torch.float32):
    """torch's legacy serialization of one storage, written from the format's description (five pickles: magic
    number, protocol 1001, system info, the storage as a persistent id, the storage keys; then the item count
    as int64 and the raw little-endian items). `pid` and the rest default to what torch writes."""
    raw = torch.tensor(values, dtype=dtype).numpy().tobytes()
    storage_type = {torch.float32: torch.FloatStorage, torch.float64: torch.DoubleStorage}[dtype]
    pid = ("storage", storage_type, "0", "cpu", len(values), None) if pid is None else pid
    headers = info if info is not None else (0x1950A86A20F9469CFC6C, 1001, {
        "protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}})
    out = io.BytesIO()
    for header in headers:
        pickle.dump(header, out, protocol=2)
    _StoragePickler(out, pid).dump(_StoragePickler)
    pickle.dump(["0"] if keys is None else keys, out, protocol=2)
    out.write((len(values) if count is None else count).to_bytes(8, "little", signed=True) + raw)
    return out.getvalue()


def _storage_call(data):
    return _Reduce(torch.storage._load_from_bytes, (data,))


def _generator():
    return tiny_generator(resolution=8, channels=1, z_dim=4, w_dim=4, channel_max=4, mapping_layers=1, seed=0).eval()


def _record(class_name, state):
    return _Reduce(nvpickle._RECONSTRUCT, ({"type": "class", "version": 6, "module_src": "", "class_name": class_name,
                                            "state": state},))


def _records_pickle(value):
    out = io.BytesIO()
    nvpickle.dump_nvlabs({"G_ema": value}, out, ())
    return out.getvalue()


# --- values from the file are described, never walked ---------------------------------------------------------

def _shared_value_places(depth):
    node = _shared(depth)
    generator = _generator()
    kwargs = dict(generator._init_kwargs, z_dim=node)
    return {
        "persistent id": (b"\x80\x04)" + b"2\x86" * depth + b"Q.", "refused persistent id <tuple of 2 items>"),
        "call target": (b"\x80\x04)" + b"2\x86" * depth + b")R.", "refused a call of <tuple of 2 items>"),
        "tensor size": (_outer(_Reduce(torch._utils._rebuild_tensor_v2,
                                       (_storage_call(_legacy_storage([1.0])), 0, (node,), (1,)))),
                        r"size <tuple of 1 item>, stride \(1,\)"),
        "dtype name": (_outer(_Reduce(np.dtype, (node, False, True))), "refused the numpy dtype <tuple of 2 items>"),
        "storage id": (_outer(_storage_call(_legacy_storage([1.0], pid=node))), "storage id <tuple of 2 items>"),
        "architecture argument": (_records_pickle(_record("Generator", {"_init_kwargs": kwargs})),
                                  "'z_dim' must be an int .* got <tuple of 2 items>"),
        "shared nested arguments": (_records_pickle(_record("Generator", {"_init_kwargs": dict(
            generator._init_kwargs, mapping_kwargs=_shared_kwargs(depth), synthesis_kwargs={"architecture": "x"})})),
            "'synthesis_kwargs.architecture' must be one of"),
    }


def _shared_kwargs(depth):
    """Valid all the way down, so only a walk of all 2**depth paths would reach the error after it."""
    node = {"num_layers": 1}
    for _ in range(depth):
        node = {"mapping_kwargs": node, "synthesis_kwargs": node}
    return node


@pytest.mark.parametrize("place", list(_shared_value_places(1)))
def test_a_shared_nesting_in_the_file_is_described_not_walked(tmp_path, place):
    payload, message = _shared_value_places(SHARED_DEPTH)[place]
    assert len(payload) < 2000
    start = time.perf_counter()
    with pytest.raises(LOADER_ERRORS, match=message) as caught:
        load_network(_write(tmp_path, payload))
    assert time.perf_counter() - start < 0.5
    assert len(str(caught.value)) < 1000


# --- one budget for the whole file ------------------------------------------------------------------------------

def _peak_bytes(load, path):
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickleError, match="would copy more than") as caught:
            load(path)
        return tracemalloc.get_traced_memory()[1], caught
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("protocol", [4, 2])  # bytes as BINBYTES, or as _codecs.encode of latin-1 text
def test_one_storage_referenced_many_times_is_refused_not_copied_each_time(tmp_path, protocol):
    data = _legacy_storage([0.5] * (1 << 20))  # 4 MiB
    path = _write(tmp_path, _outer([_storage_call(data) for _ in range(40)], protocol))
    peak, _ = _peak_bytes(load_network, path)
    assert peak < 5 * path.stat().st_size  # copying every reference would take 160 MiB


def test_latin1_text_referenced_many_times_is_refused_not_encoded_each_time(tmp_path):
    text = "\xff" * (1 << 22)
    path = _write(tmp_path, _outer([_Reduce(codecs.encode, (text, "latin1")) for _ in range(40)], protocol=2))
    peak, _ = _peak_bytes(load_network, path)
    assert peak < 5 * path.stat().st_size


def test_a_set_built_many_times_from_one_list_spends_the_opcode_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(nvpickle, "MAX_OPCODES", 50_000)
    items = list(range(5_000))
    path = _write(tmp_path, _outer([_Reduce(set, (items,)) for _ in range(20)], protocol=2))
    with pytest.raises(UnsafePickleError, match="more than 50000 opcodes"):
        load_network(path)


def _padded_storage(pad):
    """A storage whose system-info pickle makes the nested reader spend `pad` opcodes."""
    info = (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True, "pad": [None] * pad})
    return _legacy_storage([1.0, 2.0], info=info)


def test_nested_storages_spend_the_files_opcode_budget_not_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(nvpickle, "MAX_OPCODES", 20_000)
    data = _padded_storage(6_000)
    once = load_network(_write(tmp_path, _outer([_storage_call(data)]), "once.pkl"))["x"][0]
    assert once.numel == 2  # one reference fits the budget
    with pytest.raises(UnsafePickleError, match="more than 20000 opcodes"):
        load_network(_write(tmp_path, _outer([_storage_call(data) for _ in range(5)])))


def test_a_genuine_snapshot_fits_a_twentieth_of_the_opcodes_and_half_the_bytes(tmp_path, monkeypatch):
    G = tiny_generator(resolution=32, channels=3, z_dim=64, w_dim=64, channel_max=64, seed=0).eval()
    path = save_nvlabs_pickle(tmp_path / "g.pkl", G=G, G_ema=G)
    monkeypatch.setattr(nvpickle, "MAX_OPCODES", nvpickle.MAX_OPCODES // 20)
    monkeypatch.setattr(nvpickle, "COPY_FACTOR", nvpickle.COPY_FACTOR / 2)
    monkeypatch.setattr(nvpickle, "_COPY_SLACK", 0)
    loaded = load_network(path)["G_ema"]
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded(z), G(z))


def test_non_persistent_buffer_names_must_be_a_set_so_lookups_stay_constant_time(tmp_path):
    state = {"_init_kwargs": {"in_features": 2, "out_features": 2}, "_non_persistent_buffers_set": ["x"] * 1000}
    with pytest.raises(NetworkFormatError, match="_non_persistent_buffers_set of top is <list of 1000 items>, not a"):
        load_network(_write(tmp_path, _records_pickle(_record("FullyConnectedLayer", state))))


# --- numpy dtypes: a fixed allow-list, and numpy never sees the file's state ------------------------------------

def _scalar_pickle(state, name="f8", data=b"\x00" * 8):
    dtype = _Reduce(np.dtype, (name, False, True), state)
    return _outer(_Reduce(np._core.multiarray.scalar, (dtype, data)), protocol=2)


def test_numpy_scalars_of_every_allowed_dtype_load_as_their_values(tmp_path):
    values = [np.bool_(True), np.int8(-3), np.uint16(7), np.int64(2**40), np.float16(0.5), np.float64(1e-3),
              np.complex64(1 + 2j)]
    data = load_network(_write(tmp_path, _outer(values, protocol=2)))
    assert data["x"] == [v.item() for v in values]


@pytest.mark.parametrize("state", [
    (3, "<", (np.dtype("f8"), (64,)), None, None, 8, 1, 0),  # a subarray: numpy would read 64 items from 8 bytes
    (3, "<", None, ("a",), {"a": (np.dtype("f8"), 0)}, 8, 1, 0),  # named fields
    (3, "<", None, None, None, 64, 1, 0),  # a wrong element size
    (3, ">", None, None, None, -1, -1, 0),  # big-endian
    (4, "<", None, None, None, -1, -1, 0),
    (3, "<", None, None, None, -1, -1, 0, 0),
    (3.0, "<", None, None, None, -1, -1, 0),
    _shared(SHARED_DEPTH),
    {"names": ("a",)},
])
def test_a_numpy_dtype_accepts_only_its_own_plain_state(tmp_path, state):
    start = time.perf_counter()
    with pytest.raises(UnsafePickleError, match="refused the state .* of numpy dtype"):
        load_network(_write(tmp_path, _scalar_pickle(state)))
    assert time.perf_counter() - start < 0.5
    assert np.dtype("f8").names is None and hash(np.dtype("f8")) == hash(np.dtype(np.float64))


@pytest.mark.parametrize("name", ["O", "V8", "S8", "U2", "M8[s]", "f8,f8", "(2,)f8", "<f8", ">f8", "float64"])
def test_numpy_dtypes_outside_the_allow_list_are_refused(tmp_path, name):
    with pytest.raises(UnsafePickleError, match="refused the numpy dtype"):
        load_network(_write(tmp_path, _scalar_pickle((3, "<", None, None, None, -1, -1, 0), name=name)))


# --- storage views: torch's semantics, or refused -----------------------------------------------------------------

def _torch_rebuild(data):
    """torch's own reading of a nested storage (what NVlabs' loader calls); None when torch refuses it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.load(io.BytesIO(data), weights_only=False, map_location="cpu").tolist()
        except Exception:
            return None


def _our_rebuild(data):
    try:
        storage = nvpickle.read_records(io.BytesIO(_outer(_storage_call(data))))["x"]
    except UnsafePickleError:
        return None
    return torch.empty(0, dtype=storage.dtype).set_(storage.data, 0, (storage.numel,), (1,)).tolist()


N_ITEMS = 6


def _view_cases(rng, count):
    values = [float(v) for v in range(1, N_ITEMS + 1)]
    atoms = [0, 1, 2, 3, 5, 6, 7, -1, -6, 10**12, True, 2.0, "1", None]
    cases = [_legacy_storage(values)]
    cases += [_legacy_storage(values, pid=("storage", torch.FloatStorage, "0", "cpu", N_ITEMS, ("v", offset, size)))
              for offset in range(N_ITEMS + 1) for size in range(N_ITEMS + 1 - offset)]
    for _ in range(count):
        view = [rng.choice(["v", "0", b"v", 7]), rng.choice(atoms), rng.choice(atoms)][:rng.choice([3, 3, 3, 2])]
        pid = ["storage", rng.choice([torch.FloatStorage] * 4 + [torch.DoubleStorage, torch.UntypedStorage]), "0",
               rng.choice(["cpu"] * 4 + ["cuda:0", "tpu"]), rng.choice([N_ITEMS] * 4 + [N_ITEMS - 1, N_ITEMS + 1, 0]),
               rng.choice([tuple(view)] * 4 + [list(view), None])][:rng.choice([6] * 6 + [5, 7])]
        keys = rng.choice([None] * 6 + [["v"], ["0", "0"], []])
        count_field = rng.choice([None] * 6 + [N_ITEMS - 1, N_ITEMS + 1])
        cases.append(_legacy_storage(values, pid=tuple(pid), keys=keys, count=count_field))
    return cases


def test_storage_views_load_as_torch_rebuilds_them_or_are_refused():
    cases = _view_cases(random.Random(20261204), 300)
    accepted_by_torch_only, refused_by_torch_only, different = 0, [], []
    for index, data in enumerate(cases):
        theirs, ours = _torch_rebuild(data), _our_rebuild(data)
        if theirs is None and ours is not None:
            refused_by_torch_only.append(index)
        elif ours is not None and ours != theirs:
            different.append(index)
        accepted_by_torch_only += theirs is not None and ours is None
    assert refused_by_torch_only == [] and different == []
    in_range = cases[:1 + (N_ITEMS + 1) * (N_ITEMS + 2) // 2]  # the genuine storage and every view inside it
    assert all(_our_rebuild(data) == _torch_rebuild(data) is not None for data in in_range)
    assert accepted_by_torch_only < len(cases) // 4  # refusing is for views torch clips or wraps, not the rule


# --- a seeded fuzz over these classes of input ----------------------------------------------------------------------

def _fuzz_case(rng):
    """One hostile file of a random class: shared nesting somewhere, a value referenced many times, a dtype state,
    a storage view or id, or a storage whose nested pickle is padded."""
    kind = rng.choice(["shared", "references", "dtype", "view", "padded"])
    if kind == "shared":
        place = rng.choice(list(_shared_value_places(1)))
        return kind, _shared_value_places(rng.randrange(18, 25))[place][0]
    if kind == "references":
        data = _legacy_storage([1.0] * rng.randrange(1, 1 << 15))
        make = rng.choice([_storage_call, lambda d: _Reduce(codecs.encode, (d.decode("latin1"), "latin1")),
                           lambda d: _Reduce(set, (list(range(len(d) // 8)),))])
        return kind, _outer([make(data) for _ in range(rng.randrange(1, 200))], protocol=rng.choice([2, 4]))
    if kind == "dtype":
        pool = [3, 4, "<", ">", "|", None, -1, 8, 64, 0, 1, ("a",), (np.dtype("f8"), (4,)), {"a": 1}, _shared(8)]
        state = tuple(rng.choice(pool) for _ in range(rng.choice([7, 8, 8, 8, 9])))
        return kind, _scalar_pickle(state, name=rng.choice(["f8", "i8", "b1", "c16"]))
    if kind == "view":
        return kind, _outer(_storage_call(_view_cases(rng, 1)[-1]))
    return kind, _outer([_storage_call(_padded_storage(rng.randrange(1, 50_000)))
                         for _ in range(rng.randrange(1, 30))])


def test_fuzzed_hostile_structures_load_or_raise_the_loaders_error_quickly(tmp_path, monkeypatch):
    monkeypatch.setattr(nvpickle, "MAX_OPCODES", 200_000)  # spending all of it then takes a fraction of the bound
    rng = random.Random(20261204)
    outcomes, slowest = {}, (0.0, None)
    for index in range(150):
        kind, payload = _fuzz_case(rng)
        path = _write(tmp_path, payload, f"f{index}.pkl")
        start = time.perf_counter()
        try:
            load_network(path)
            outcome = "loaded"
        except LOADER_ERRORS:
            outcome = "refused"
        slowest = max(slowest, (time.perf_counter() - start, (index, kind)))
        outcomes[kind, outcome] = outcomes.get((kind, outcome), 0) + 1
        path.unlink()
    assert slowest[0] < 2.5, slowest
    assert {kind for kind, outcome in outcomes if outcome == "refused"} == {"shared", "references", "dtype", "view",
                                                                            "padded"}, outcomes
