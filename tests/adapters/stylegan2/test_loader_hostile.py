"""Hostile and broken network files: each loads exactly or raises the loader's own error, quickly and in
bounded memory, and a refused file changes nothing for the files loaded after it."""

import copy
import json
import os
import pickle
import resource
import subprocess
import sys
import textwrap
import time
import warnings
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import load_file, save_file

import sphere_plugins
from sphere_plugins.errors import NonFiniteWeightsError, UnsafePickleError
from sphere_stylegan2 import nvpickle
from sphere_stylegan2.configs import tiny_generator
from sphere_stylegan2.errors import NetworkFormatError
from sphere_stylegan2.loader import load_network, save_network, save_nvlabs_pickle

TINY = dict(resolution=8, channels=1, z_dim=4, w_dim=4, channel_max=4, mapping_layers=1)
LOADER_ERRORS = (UnsafePickleError, NetworkFormatError, NonFiniteWeightsError)


def _generator(seed=0):
    return tiny_generator(**TINY, seed=seed).eval()


def _write(tmp_path, payload, name="hostile.pkl"):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _assert_genuine_still_loads(tmp_path):
    G = _generator(seed=3)
    loaded = load_network(save_nvlabs_pickle(tmp_path / "genuine.pkl", G_ema=G))["G_ema"]
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded(z), G(z))


# --- shared references, nesting, cycles ------------------------------------------------------------

def test_shared_references_stay_shared_instead_of_expanding(tmp_path):
    node = []
    for _ in range(60):  # a tree of 2**60 leaves, a graph of 61 nodes
        node = [node, node]
    path = _write(tmp_path, pickle.dumps({"G_ema": None, "training_set_kwargs": {"tree": node}}))
    start = time.perf_counter()
    data = load_network(path)
    assert time.perf_counter() - start < 2
    tree = data["training_set_kwargs"]["tree"]
    assert tree[0] is tree[1] and tree[0][0] is tree[0][1]


def _deep_list_pickle(depth):
    """[[[...]]] `depth` deep, built through the memo so the pickle stack stays flat."""
    out = [b"\x80\x04]r\x00\x00\x00\x00"]
    for level in range(1, depth):
        out.append(b"]j" + (level - 1).to_bytes(4, "little") + b"ar" + level.to_bytes(4, "little") + b"0")
    out.append(b"j" + (depth - 1).to_bytes(4, "little") + b".")
    return b"".join(out)


def test_deep_nesting_ends_in_the_loaders_error_not_recursion_error(tmp_path):
    with pytest.raises(UnsafePickleError, match="nests containers more than"):
        load_network(_write(tmp_path, _deep_list_pickle(5_000)))


def test_a_reference_cycle_is_refused(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(UnsafePickleError, match="reference cycle"):
        load_network(_write(tmp_path, pickle.dumps({"G_ema": None, "x": loop})))


# --- a refused pickle changes nothing --------------------------------------------------------------

def test_build_on_an_allowed_class_is_refused_and_leaves_the_class_alone(tmp_path):
    payload = b"\x80\x02cdnnlib.util\nEasyDict\n}\x8c\x05pwnedK\x01sb."
    with pytest.raises(UnsafePickleError, match="BUILD"):
        load_network(_write(tmp_path, payload))
    assert not hasattr(nvpickle.EasyDict, "pwned")
    _assert_genuine_still_loads(tmp_path)


def test_build_on_an_allowed_function_cannot_rewrite_its_defaults(tmp_path):
    defaults = nvpickle._rebuild_tensor.__defaults__
    payload = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}\x8c\x0c__defaults__)s\x86b."
    with pytest.raises(UnsafePickleError, match="BUILD"):
        load_network(_write(tmp_path, payload))
    assert nvpickle._rebuild_tensor.__defaults__ == defaults
    _assert_genuine_still_loads(tmp_path)


# --- bounded work and memory -----------------------------------------------------------------------

def test_colliding_dict_keys_are_refused_at_once(tmp_path):
    modulus = 2**61 - 1  # every multiple hashes to 0
    items = b"".join(b"\x8a\x0c" + (k * modulus).to_bytes(12, "little", signed=True) + b"K\x00"
                     for k in range(1, 20_001))
    start = time.perf_counter()
    with pytest.raises(UnsafePickleError, match="dict keys"):
        load_network(_write(tmp_path, b"\x80\x04(" + items + b"d."))
    assert time.perf_counter() - start < 2


def test_a_pickle_needing_too_many_opcodes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(nvpickle, "MAX_OPCODES", 1000)
    with pytest.raises(UnsafePickleError, match="more than 1000 opcodes"):
        load_network(_write(tmp_path, b"\x80\x04]" + b"N" * 2000 + b"."))


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x8d", b"\x96"])  # BINBYTES8, BINUNICODE8, BYTEARRAY8
def test_a_length_claiming_more_bytes_than_the_file_holds_allocates_nothing(tmp_path, opcode):
    before = _peak_rss_mb()
    with pytest.raises(NetworkFormatError, match="not a readable network pickle"):
        load_network(_write(tmp_path, b"\x80\x05" + opcode + (2**40).to_bytes(8, "little") + b"abc"))
    assert _peak_rss_mb() - before < 50


# --- tensor extents --------------------------------------------------------------------------------

class _Tensor:
    """Pickles as torch's tensor rebuild call with whatever offset, size and stride the test names."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return torch._utils._rebuild_parameter, (self.tensor, True, OrderedDict())


def _fc_pickle(tmp_path, weight, bias=None, in_features=2, out_features=2):
    class Record:
        def __reduce__(self):
            state = {"_init_kwargs": {"in_features": in_features, "out_features": out_features},
                     "_parameters": {"weight": _Parameter(weight),
                                     "bias": _Parameter(bias if bias is not None else
                                                        _Tensor(_storage(out_features), 0, (out_features,), (1,)))}}
            meta = {"type": "class", "version": 6, "module_src": "", "class_name": "FullyConnectedLayer",
                    "state": state}
            return nvpickle._RECONSTRUCT, (meta,)

    path = tmp_path / "fc.pkl"
    with path.open("wb") as handle:
        nvpickle.dump_nvlabs({"G_ema": Record()}, handle, ())
    return path


def _storage(n, fill=1.0, dtype=torch.float32):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage is deprecated, but it is what old pickles hold
        return torch.full((n,), fill, dtype=dtype).storage()


def test_a_well_formed_hand_written_tensor_loads_exactly(tmp_path):
    weight = _Tensor(_storage(6, 0.5), 2, (2, 2), (2, 1))
    fc = load_network(_fc_pickle(tmp_path, weight))["G_ema"]
    assert torch.equal(fc.weight, torch.full((2, 2), 0.5)) and torch.equal(fc.bias, torch.ones(2))


@pytest.mark.parametrize(("offset", "size", "stride", "message"), [
    (0, (2, 2), (2, 1), "reaches item 3 of a storage holding 1"),  # storage too small (torch would grow it)
    (10**9, (2, 2), (2, 1), "reaches item"),  # huge offset (torch would allocate gigabytes)
    (0, (2, 2), (-1, 1), "non-negative"),
    (0, (-2, 2), (2, 1), "non-negative"),
    (-1, (2, 2), (2, 1), "non-negative"),
    (0, (2**70, 2), (2, 1), "non-negative ints"),
])
def test_tensor_extents_beyond_their_storage_are_refused(tmp_path, offset, size, stride, message):
    before = _peak_rss_mb()
    with pytest.raises(UnsafePickleError, match=message):
        load_network(_fc_pickle(tmp_path, _Tensor(_storage(1), offset, size, stride)))
    assert _peak_rss_mb() - before < 50


def test_a_storage_claiming_more_items_than_its_bytes_is_refused(tmp_path):
    genuine = save_nvlabs_pickle(tmp_path / "g.pkl", G_ema=_generator()).read_bytes()
    # In a nested storage, the key-list pickle (ending 'a.') is followed by the 8-byte element count.
    count_at = genuine.index(b"a.", genuine.index(b"cpu")) + 2
    mutated = genuine[:count_at] + (10**12).to_bytes(8, "little") + genuine[count_at + 8:]
    with pytest.raises(UnsafePickleError, match="claims .* items"):
        load_network(_write(tmp_path, mutated))


def test_a_zero_stride_view_cannot_inflate_a_network_past_the_values_the_file_holds(tmp_path):
    width = 1 << 20
    weight = _Tensor(_storage(1), 0, (16, width), (0, 0))
    before = _peak_rss_mb()
    with pytest.raises(NetworkFormatError, match="file holds only"):
        load_network(_fc_pickle(tmp_path, weight, _Tensor(_storage(16), 0, (16,), (1,)), width, 16))
    assert _peak_rss_mb() - before < 50


# --- architecture arguments ------------------------------------------------------------------------

def _kwargs_pickle(tmp_path, **changes):
    G = _generator()
    kwargs = copy.deepcopy(G._init_kwargs)
    for key, value in changes.items():
        target = kwargs
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    G._init_kwargs = kwargs
    return save_nvlabs_pickle(tmp_path / "g.pkl", G_ema=G)


@pytest.mark.parametrize(("change", "message"), [
    ({"z_dim": -1}, "'z_dim' must be an int in"),
    ({"w_dim": True}, "'w_dim' must be an int"),
    ({"w_dim": 8.0}, "'w_dim' must be an int"),
    ({"img_resolution": 24}, "'img_resolution' must be a power of two"),
    ({"mapping_kwargs.num_layers": 10**5}, "'mapping_kwargs.num_layers' must be an int in"),
    ({"mapping_kwargs.num_layers": 10**7}, "'mapping_kwargs.num_layers' must be an int in"),
    ({"synthesis_kwargs.architecture": "fancy"}, "'synthesis_kwargs.architecture' must be one of"),
    ({"synthesis_kwargs.conv_clamp": float("nan")}, "conv_clamp"),
    ({"w_dim": 12000}, "file holds only"),
    ({"synthesis_kwargs.channel_max": 4096, "synthesis_kwargs.channel_base": 1 << 20}, "file holds only"),
    ({"mapping_kwargs": [1, 2]}, "must be a dict"),
])
def test_architecture_arguments_are_checked_before_anything_is_built(tmp_path, change, message):
    path = _kwargs_pickle(tmp_path, **change)
    before, start = _peak_rss_mb(), time.perf_counter()
    with pytest.raises(NetworkFormatError, match=message):
        load_network(path)
    assert time.perf_counter() - start < 3 and _peak_rss_mb() - before < 100


def test_load_model_never_returns_something_that_is_not_a_module(tmp_path):
    path = _write(tmp_path, pickle.dumps({"G_ema": [1, 2, 3]}))
    with pytest.raises(NetworkFormatError, match="holds no network 'G_ema'"):
        sphere_plugins.load_model(f"stylegan2:{path}")


# --- our saved folders -----------------------------------------------------------------------------

def _folder(tmp_path):
    return save_network(_generator(), tmp_path / "model")


def _edit_config(folder, edit):
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c.update(format_version=2), "format_version 2"),
    (lambda c: c.pop("format_version"), "format_version None"),
    (lambda c: c["networks"]["G_ema"].update(weights="../G_ema.safetensors"), "inside the folder"),
    (lambda c: c["networks"]["G_ema"].update(weights="/etc/hostname"), "inside the folder"),
    (lambda c: c["networks"]["G_ema"].update(weights=["x"]), "'weights' \\(str\\)"),
    (lambda c: c["networks"]["G_ema"]["init_kwargs"].update(w_dim=-4), "'w_dim' must be"),
    (lambda c: c["networks"]["G_ema"]["init_kwargs"].update(w_dim=20000), "file holds only"),
    (lambda c: c.update(networks=[]), "non-empty dict"),
])
def test_a_saved_folders_config_is_validated(tmp_path, edit, message):
    folder = _folder(tmp_path)
    _edit_config(folder, edit)
    with pytest.raises(NetworkFormatError, match=message):
        load_network(folder)


def test_a_deeply_nested_config_is_the_loaders_error(tmp_path):
    folder = _folder(tmp_path)
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(NetworkFormatError, match="config.json"):
        load_network(folder)


def test_integer_weights_are_refused(tmp_path):
    folder = _folder(tmp_path)
    state = load_file(folder / "G_ema.safetensors")
    name = next(iter(state))
    state[name] = state[name].to(torch.int32)
    save_file(state, folder / "G_ema.safetensors")
    with pytest.raises(NetworkFormatError, match=f"{name} has dtype torch.int32"):
        load_network(folder)


def test_nan_weights_are_refused_unless_allowed(tmp_path):
    folder = _folder(tmp_path)
    state = load_file(folder / "G_ema.safetensors")
    state["mapping.w_avg"][0] = float("nan")
    save_file(state, folder / "G_ema.safetensors")
    with pytest.raises(NonFiniteWeightsError, match="mapping.w_avg holds NaN or Inf.*allow_nonfinite=True"):
        load_network(folder)
    loaded = load_network(folder, allow_nonfinite=True)["G_ema"]
    assert torch.isnan(loaded.mapping.w_avg[0])
    assert torch.isnan(sphere_plugins.load_model(f"stylegan2:{folder}", allow_nonfinite=True).mapping.w_avg[0])


@pytest.mark.parametrize(("fill", "dtype", "message"), [
    (float("nan"), torch.float32, "tensor weight holds NaN or Inf values"),
    (float("-inf"), torch.float32, "tensor weight holds NaN or Inf values"),
    (1e300, torch.float64, "tensor weight holds values up to 1e\\+300, which overflow to Inf when narrowed from "
                           "torch.float64 to torch.float32"),
])
def test_nonfinite_pickle_weights_are_refused_unless_allowed(tmp_path, fill, dtype, message):
    path = _fc_pickle(tmp_path, _Tensor(_storage(4, fill, dtype), 0, (2, 2), (2, 1)))
    with pytest.raises(NonFiniteWeightsError, match=message + ".*allow_nonfinite=True"):
        load_network(path)
    with pytest.raises(NonFiniteWeightsError, match=message):
        sphere_plugins.load_model(f"stylegan2:{path}", network="G_ema")
    loaded = load_network(path, allow_nonfinite=True)["G_ema"]
    assert not torch.isfinite(loaded.weight).any() and torch.equal(loaded.bias, torch.ones(2))


def test_allow_nonfinite_must_be_a_bool(tmp_path):
    path = _fc_pickle(tmp_path, _Tensor(_storage(4), 0, (2, 2), (2, 1)))
    with pytest.raises(ValueError, match="allow_nonfinite must be True or False, got 'no'"):
        load_network(path, allow_nonfinite="no")


# --- the fuzz test ---------------------------------------------------------------------------------

FUZZ = textwrap.dedent('''
    import json, random, resource, sys, tempfile, time, pickle
    from collections import OrderedDict
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from sphere_plugins.errors import NonFiniteWeightsError, UnsafePickleError
    from sphere_stylegan2.configs import tiny_discriminator, tiny_generator
    from sphere_stylegan2.errors import NetworkFormatError
    from sphere_stylegan2.loader import load_network, save_nvlabs_pickle

    class Reference(pickle.Unpickler):
        """torch's own rebuild functions; used only on files our loader accepted."""
        def find_class(self, module, name):
            if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
                return lambda meta: meta
            if (module, name) == ("dnnlib.util", "EasyDict"):
                return dict
            return super().find_class(module, name)

    def reference_tensors(meta, prefix="", out=None):
        out = {} if out is None else out
        state = meta["state"]
        skip = state.get("_non_persistent_buffers_set") or set()
        for kind in ("_parameters", "_buffers"):
            for name, t in (state.get(kind) or {}).items():
                if t is not None and name not in skip:
                    out[prefix + name] = t
        for name, child in (state.get("_modules") or {}).items():
            if child is not None:
                reference_tensors(child, prefix + name + ".", out)
        return out

    options = dict(resolution=8, channels=1, z_dim=4, w_dim=4, channel_max=4, mapping_layers=1)
    G = tiny_generator(**options, seed=0).eval()
    D = tiny_discriminator(**options, seed=1).eval()
    folder = Path(tempfile.mkdtemp())
    genuine = save_nvlabs_pickle(folder / "genuine.pkl", G_ema=G, D=D, training_set_kwargs={"xflip": False})
    data = genuine.read_bytes()
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    expected = G(z)
    load_network(genuine)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    rng = random.Random(int(sys.argv[1]))
    extremes = [0, 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1]
    def mutate(b):
        b = bytearray(b)
        kind = rng.randrange(7)
        at = rng.randrange(len(b))
        if kind == 0:
            b[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            b[at] = rng.randrange(256)
        elif kind == 2:
            del b[at:]
        elif kind == 3:
            del b[at:at + rng.randrange(1, 64)]
        elif kind == 4:
            b[at:at] = b[rng.randrange(len(b)):][:rng.randrange(1, 64)]
        elif kind == 5:
            width = rng.choice([1, 2, 4, 8])
            b[at:at + width] = (rng.choice(extremes) % 256**width).to_bytes(width, "little")
        else:
            for _ in range(8):
                b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)

    counts = {"loaded": 0, "refused": 0}
    raw, inexact, slowest = [], [], 0.0
    for index in range(int(sys.argv[2])):
        path = folder / f"m{index}.pkl"
        path.write_bytes(mutate(data))
        start = time.perf_counter()
        try:
            result = load_network(path)
        except (UnsafePickleError, NetworkFormatError, NonFiniteWeightsError):
            counts["refused"] += 1
        except BaseException as error:
            raw.append(f"{index}: {type(error).__name__}: {str(error)[:120]}")
        else:
            counts["loaded"] += 1
            with path.open("rb") as handle:
                reference = Reference(handle).load()
            for key, module in result.items():
                if isinstance(module, torch.nn.Module):
                    ref = reference_tensors(reference[key])
                    ours = module.state_dict()
                    if set(ref) != set(ours) or not all(torch.equal(ours[n].nan_to_num(7.0),
                                                                    ref[n].to(ours[n].dtype).nan_to_num(7.0))
                                                        for n in ours):
                        inexact.append(index)
        slowest = max(slowest, time.perf_counter() - start)
        path.unlink()
    after = load_network(genuine)["G_ema"]
    print(json.dumps({"counts": counts, "raw": raw, "inexact": inexact, "slowest": slowest,
                      "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
                      "genuine_unaffected": bool(torch.equal(after(z), expected))}))
''')


def test_fuzzed_genuine_pickles_load_exactly_or_raise_the_loaders_error():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", FUZZ, "20261201", "300"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["raw"] == [], report["raw"]
    assert report["inexact"] == []
    assert report["counts"]["loaded"] > 20 and report["counts"]["refused"] > 100, report["counts"]
    assert report["slowest"] < 3, report
    assert report["rss_growth_mb"] < 200, report
    assert report["genuine_unaffected"]


class _Protocol3Pickler(nvpickle._NVlabsPickler):
    """The NVlabs structure at pickle protocol 3 (GLOBAL opcodes, no frames), as Python 3.7 wrote it."""

    dispatch = nvpickle._NVlabsPickler.dispatch.copy()

    def __init__(self, file, persistent_types):
        pickle._Pickler.__init__(self, file, protocol=3)
        self.persistent_types = persistent_types

    def _save_foreign(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[nvpickle._ForeignGlobal] = _save_foreign


def test_a_protocol_3_snapshot_loads_exactly(tmp_path):
    from sphere_stylegan2.loader import NETWORK_CLASSES

    G = _generator(seed=4)
    path = tmp_path / "p3.pkl"
    with path.open("wb") as handle:
        _Protocol3Pickler(handle, tuple(NETWORK_CLASSES.values())).dump(
            {"G": G, "D": None, "G_ema": G, "augment_pipe": None, "training_set_kwargs": {"xflip": True}})
    assert path.read_bytes()[:2] == b"\x80\x03"
    data = load_network(path)
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(2))
    assert torch.equal(data["G_ema"](z), G(z)) and data["training_set_kwargs"] == {"xflip": True}


class _Protocol0Pickler(_Protocol3Pickler):
    """The NVlabs structure as Python writes it at pickle protocols 0 and 1: text or binary opcodes without
    NEWOBJ, so an EasyDict is rebuilt by copy_reg._reconstructor(EasyDict, dict, items), and bytes are latin-1
    text passed to _codecs.encode."""

    dispatch = _Protocol3Pickler.dispatch.copy()

    def __init__(self, file, persistent_types, protocol):
        pickle._Pickler.__init__(self, file, protocol=protocol)
        self.persistent_types = persistent_types

    def _save_easydict(self, obj):
        self.save_reduce(nvpickle._ForeignGlobal("copy_reg", "_reconstructor"),
                         (nvpickle._EASYDICT, nvpickle._ForeignGlobal("__builtin__", "dict"), dict(obj)), obj=obj)

    dispatch[nvpickle._EasyDictOut] = _save_easydict


@pytest.mark.parametrize("protocol", [0, 1])
def test_a_protocol_0_or_1_snapshot_loads_exactly(tmp_path, protocol):
    from sphere_stylegan2.loader import NETWORK_CLASSES

    G = tiny_generator(resolution=8, channels=1, z_dim=32, w_dim=32, channel_max=64, seed=5).eval()
    path = tmp_path / f"p{protocol}.pkl"
    with path.open("wb") as handle:
        _Protocol0Pickler(handle, tuple(NETWORK_CLASSES.values()), protocol).dump(
            {"G": G, "D": None, "G_ema": G, "augment_pipe": None, "training_set_kwargs": {"xflip": True}})
    payload = path.read_bytes()
    assert b"copy_reg\n_reconstructor" in payload
    if protocol == 0:
        assert max(map(len, payload.split(b"\n"))) > 1 << 16  # a storage's latin-1 text on one line
    data = load_network(path)
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(2))
    assert torch.equal(data["G_ema"](z), G(z)) and data["training_set_kwargs"] == {"xflip": True}


def test_copy_reg_reconstructor_builds_only_an_easydict_from_a_dict(tmp_path):
    payload = b"ccopy_reg\n_reconstructor\n(ccollections\nOrderedDict\nc__builtin__\ndict\n(dtR."
    with pytest.raises(UnsafePickleError, match="only to rebuild an EasyDict"):
        load_network(_write(tmp_path, payload))


def test_a_byte_that_is_no_opcode_is_named(tmp_path):
    with pytest.raises(NetworkFormatError, match="byte 0x3f is not a pickle opcode"):
        load_network(_write(tmp_path, b"\x80\x04N?."))
