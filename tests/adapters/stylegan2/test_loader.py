"""Loading NVlabs-structure pickles safely and our safetensors folders; hostile and broken files."""

import os
import pickle

import numpy as np
import pytest
import torch

from sphere_plugins.errors import MissingWeightsError, UnsafePickleError
from sphere_stylegan2 import nvpickle
from sphere_stylegan2.configs import tiny_discriminator, tiny_generator
from sphere_stylegan2.errors import NetworkFormatError
from sphere_stylegan2.loader import load_network, save_network, save_nvlabs_pickle

CONFIGS = {
    "skip": dict(resolution=8, channels=3, z_dim=8, w_dim=8, channel_max=8),
    "orig": dict(resolution=8, channels=1, z_dim=8, w_dim=8, channel_max=8, architecture="orig"),
    "resnet": dict(resolution=16, channels=3, z_dim=8, w_dim=8, channel_max=8, architecture="resnet"),
    "conditional": dict(resolution=8, channels=3, z_dim=8, w_dim=8, channel_max=8, c_dim=3),
}


def _nets(config="skip", seed=0):
    options = CONFIGS[config]
    G = tiny_generator(**options, seed=seed)
    with torch.no_grad():  # non-trivial noise strengths and w_avg, as in a trained network
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
        G.mapping.w_avg.normal_(generator=torch.Generator().manual_seed(seed))
    return G.eval(), tiny_discriminator(**options, seed=seed + 1).eval()


def _inputs(G, n=3):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(n, G.z_dim, generator=g)
    c = torch.nn.functional.one_hot(torch.arange(n) % max(G.c_dim, 1), G.c_dim).float() if G.c_dim else None
    return z, c


class _EasyDictStub(dict):
    pass


class _StructureReader(pickle.Unpickler):
    """The test's own reader: real torch/collections globals, stand-ins only for NVlabs' two names."""

    def __init__(self, file):
        super().__init__(file)
        self.names = set()

    def find_class(self, module, name):
        self.names.add(f"{module}.{name}")
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return lambda meta: {"__meta__": meta}
        if (module, name) == ("dnnlib.util", "EasyDict"):
            return _EasyDictStub
        return super().find_class(module, name)


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("psi", [1.0, 0.7])
def test_nvlabs_pickle_round_trip_reproduces_generator_images(tmp_path, config, psi):
    G, D = _nets(config)
    path = save_nvlabs_pickle(tmp_path / "snapshot.pkl", G=G, D=D, G_ema=G)
    loaded = load_network(path)["G_ema"]
    z, c = _inputs(G)
    assert torch.equal(loaded(z, c, truncation_psi=psi), G(z, c, truncation_psi=psi))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_nvlabs_pickle_round_trip_reproduces_discriminator_scores(tmp_path, config):
    G, D = _nets(config)
    path = save_nvlabs_pickle(tmp_path / "snapshot.pkl", G=G, D=D, G_ema=G)
    z, c = _inputs(G, n=4)
    images = G(z, c)
    assert torch.equal(load_network(path)["D"](images, c), D(images, c))


def test_written_pickle_has_the_nvlabs_snapshot_structure(tmp_path):
    G, D = _nets()
    path = save_nvlabs_pickle(tmp_path / "snapshot.pkl", G=G, D=D, G_ema=G, training_set_kwargs={"xflip": False})
    with path.open("rb") as handle:
        reader = _StructureReader(handle)
        data = reader.load()
    assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert data["augment_pipe"] is None and data["training_set_kwargs"] == {"xflip": False}
    meta = data["G_ema"]["__meta__"]
    assert set(meta) == {"type", "version", "module_src", "class_name", "state"}
    assert (meta["type"], meta["version"], meta["class_name"]) == ("class", 6, "Generator")
    state = meta["state"]
    assert isinstance(state["_init_kwargs"], _EasyDictStub)
    assert isinstance(state["_init_kwargs"]["mapping_kwargs"], _EasyDictStub)
    assert state["_modules"]["mapping"]["__meta__"]["class_name"] == "MappingNetwork"
    assert torch.equal(state["_modules"]["mapping"]["__meta__"]["state"]["_buffers"]["w_avg"], G.mapping.w_avg)
    assert reader.names <= {"torch_utils.persistence._reconstruct_persistent_obj", "dnnlib.util.EasyDict",
                            "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                            "torch._utils._rebuild_parameter", "torch.storage._load_from_bytes"}


def test_loaded_init_kwargs_are_plain_dicts(tmp_path):
    G, D = _nets()
    loaded = load_network(save_nvlabs_pickle(tmp_path / "s.pkl", G_ema=G))["G_ema"]
    assert type(loaded._init_kwargs["mapping_kwargs"]) is dict
    assert loaded._init_kwargs == G._init_kwargs


def test_loaded_networks_keep_training_flag_and_requires_grad(tmp_path):
    G, D = _nets()
    G.requires_grad_(False)
    D.train()
    loaded = load_network(save_nvlabs_pickle(tmp_path / "s.pkl", D=D, G_ema=G))
    assert not loaded["G_ema"].training and not any(p.requires_grad for p in loaded["G_ema"].parameters())
    assert loaded["D"].training and all(p.requires_grad for p in loaded["D"].parameters())


def test_numpy_scalars_in_a_pickle_load_as_numbers(tmp_path):
    path = tmp_path / "s.pkl"
    path.write_bytes(pickle.dumps({"G_ema": None, "training_set_kwargs": {"max_size": np.int64(7),
                                                                            "scale": np.float32(0.5)}}))
    assert load_network(path)["training_set_kwargs"] == {"max_size": 7, "scale": 0.5}


def test_sets_and_bytes_of_pickle_protocol_2_load(tmp_path):
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps({"G_ema": None, "s": {1, 2}, "b": b"\x00\xff"}, protocol=2))
    data = load_network(path)
    assert data["s"] == {1, 2} and data["b"] == b"\x00\xff"


def _hostile(tmp_path, payload):
    path = tmp_path / "hostile.pkl"
    path.write_bytes(payload)
    return path


def test_pickle_calling_os_system_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "marker"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    with pytest.raises(UnsafePickleError, match=r"refused global os\.system"):
        load_network(_hostile(tmp_path, payload))
    assert not marker.exists()


def test_pickle_calling_builtins_eval_is_refused(tmp_path):
    marker = tmp_path / "marker"
    payload = (b"cbuiltins\neval\n(S'open(" + repr(str(marker)).encode() + b", \"w\")'\ntR.")
    with pytest.raises(UnsafePickleError, match=r"refused global builtins\.eval"):
        load_network(_hostile(tmp_path, payload))
    assert not marker.exists()


def test_pickle_naming_an_unknown_module_is_refused_without_importing_it(tmp_path):
    with pytest.raises(UnsafePickleError, match=r"refused global evil_plugin\.payload"):
        load_network(_hostile(tmp_path, b"cevil_plugin\npayload\n)R."))


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_hostile_object_inside_a_real_snapshot_is_refused(tmp_path):
    marker = tmp_path / "marker"
    G, D = _nets()
    path = save_nvlabs_pickle(tmp_path / "s.pkl", G=G, D=D, G_ema=G,
                              training_set_kwargs={"hook": _RunsCommand(f"touch {marker}")})
    with pytest.raises(UnsafePickleError, match=rf"refused global {os.system.__module__}\.system"):
        load_network(path)
    assert not marker.exists()


def test_embedded_module_source_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setattr(nvpickle, "MODULE_SRC_PLACEHOLDER", f"open({str(marker)!r}, 'w').close()\n")
    G, _ = _nets()
    loaded = load_network(save_nvlabs_pickle(tmp_path / "s.pkl", G_ema=G))["G_ema"]
    assert not marker.exists()
    z, c = _inputs(G)
    assert torch.equal(loaded(z, c), G(z, c))


def test_truncated_pickle_gives_an_error_naming_the_file(tmp_path):
    G, _ = _nets()
    path = save_nvlabs_pickle(tmp_path / "s.pkl", G_ema=G)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(NetworkFormatError, match=r"s\.pkl is not a readable network pickle"):
        load_network(path)


def test_text_file_gives_an_error_naming_the_file(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("these are not weights\n")
    with pytest.raises(NetworkFormatError, match=r"notes\.pkl is not a readable network pickle"):
        load_network(path)


def _torch_zip(path):
    torch.save({"weight": torch.ones(2)}, path)


def _torch_legacy(path):
    torch.save({"weight": torch.ones(2)}, path, _use_new_zipfile_serialization=False)


def _safetensors(path):
    from safetensors.torch import save_file

    save_file({"weight": torch.ones(2)}, str(path))


@pytest.mark.parametrize(("write", "message"), [
    (_torch_zip, r"is a zip archive \(torch.save's format\), not an NVIDIA network pickle; load it with torch.load"),
    (_torch_legacy, r"is a legacy torch.save file, not an NVIDIA network pickle; load it with torch.load"),
    (_safetensors, r"is a safetensors file, not an NVIDIA network pickle;.*load_network\(folder\)"),
])
def test_a_file_of_another_format_named_pkl_is_named_with_what_to_do(tmp_path, write, message):
    path = tmp_path / "network.pkl"
    write(path)
    with pytest.raises(NetworkFormatError, match=rf"network\.pkl {message}"):
        load_network(path)


def test_missing_file_names_the_file_and_where_to_put_it(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"'ffhq\.pkl'.*" + str(tmp_path)):
        load_network(tmp_path / "ffhq.pkl")


def _record_pickle(tmp_path, class_name, state):
    class Record:
        def __reduce__(self):
            meta = {"type": "class", "version": 6, "module_src": "", "class_name": class_name, "state": state}
            return nvpickle._RECONSTRUCT, (meta,)

    path = tmp_path / "record.pkl"
    with path.open("wb") as handle:
        nvpickle.dump_nvlabs({"G_ema": Record()}, handle, ())
    return path


def test_unknown_network_class_is_named_in_the_error(tmp_path):
    path = _record_pickle(tmp_path, "SynthesisInput", {"_init_kwargs": {}})
    with pytest.raises(NetworkFormatError, match="unknown network class 'SynthesisInput'"):
        load_network(path)


def test_foreign_init_arguments_are_named_in_the_error(tmp_path):
    kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, magnitude_ema_beta=0.99)
    with pytest.raises(NetworkFormatError, match="cannot build Generator.*magnitude_ema_beta"):
        load_network(_record_pickle(tmp_path, "Generator", {"_init_kwargs": kwargs}))


def test_tensors_of_the_wrong_shape_are_refused(tmp_path):
    state = {"_init_kwargs": {"in_features": 4, "out_features": 2},
             "_parameters": {"weight": torch.nn.Parameter(torch.zeros(3, 3)),
                             "bias": torch.nn.Parameter(torch.zeros(2))}}
    with pytest.raises(NetworkFormatError, match="do not fit"):
        load_network(_record_pickle(tmp_path, "FullyConnectedLayer", state))


def test_augment_pipe_loads_as_none(tmp_path):
    G, _ = _nets()
    path = _record_pickle(tmp_path, "AugmentPipe", {"_init_kwargs": {"xflip": 1}})
    assert load_network(path)["G_ema"] is None


@pytest.mark.parametrize("config", list(CONFIGS))
def test_safetensors_folder_round_trip_reproduces_the_networks(tmp_path, config):
    G, D = _nets(config)
    folder = save_network({"G_ema": G, "D": D}, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["D.safetensors", "G_ema.safetensors", "config.json",
                                                        "sphere_outputs.json"]
    loaded = load_network(folder)
    z, c = _inputs(G, n=4)
    assert torch.equal(loaded["G_ema"](z, c, truncation_psi=0.7), G(z, c, truncation_psi=0.7))
    assert torch.equal(loaded["D"](G(z, c), c), D(G(z, c), c))


def test_saving_one_generator_stores_it_as_g_ema(tmp_path):
    G, _ = _nets()
    assert set(load_network(save_network(G, tmp_path / "g"))) == {"G_ema"}


def test_folder_without_config_names_the_missing_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="config.json"):
        load_network(tmp_path / "empty")


def test_truncated_safetensors_gives_an_error_naming_the_file(tmp_path):
    G, _ = _nets()
    folder = save_network(G, tmp_path / "g")
    weights = folder / "G_ema.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(NetworkFormatError, match=r"G_ema\.safetensors is not a readable safetensors file"):
        load_network(folder)
