"""save_pretrained / from_pretrained / load_model(path): the wrapper comes back with its settings and state."""

import json
import pickle

import pytest
import torch
from torch import nn

import sphere_plugins
from sphere_plugins import (
    SphericalAutoencoder,
    SphericalGenerator,
    hookimpl,
    load_model,
    wrap_autoencoder,
    wrap_generator,
)
from sphere_plugins.errors import SavedFolderError
from sphere_plugins.nets import ConvAutoencoder


def _tiny_sae(**wrap):
    torch.manual_seed(0)
    return wrap_autoencoder(ConvAutoencoder(z_dim=6, width=8), **wrap)


def test_settings_json_records_every_wrapper_option(tmp_path):
    sae = _tiny_sae(center=False, radius=2.5, prior="poisson", rate=3.0)
    sae.save_pretrained(tmp_path)
    record = json.loads((tmp_path / "sphere_model.json").read_text())
    assert record["role"] == "autoencoder"
    assert (record["center"], record["spherize"], record["radius"]) == (False, True, 2.5)
    assert (record["prior"], record["prior_params"], record["z_shape"]) == ("poisson", {"rate": 3.0}, [6])
    assert record["model"] == {"scheme": "builtin", "path": "model"}


def test_from_pretrained_returns_the_class_it_is_called_on(tmp_path):
    sae = _tiny_sae()
    sae.save_pretrained(tmp_path)
    loaded = SphericalAutoencoder.from_pretrained(tmp_path)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.equal(loaded.encode(x), sae.encode(x))
    with pytest.raises(ValueError, match="not a SphericalGenerator"):
        SphericalGenerator.from_pretrained(tmp_path)


def test_load_model_accepts_a_plain_string_path(tmp_path):
    _tiny_sae().save_pretrained(tmp_path / "out")
    assert isinstance(load_model(str(tmp_path / "out")), SphericalAutoencoder)


class Scale(nn.Module):
    """Stands in for a fitted prior: a submodule with a JSON config and buffers."""

    def __init__(self, width):
        super().__init__()
        self.width = width
        self.register_buffer("mean", torch.zeros(width))

    def get_config(self):
        return {"width": self.width}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class RegistersScale:
    @hookimpl
    def sphere_register_saved_modules(self, register):
        register("Scale", Scale)


@pytest.fixture
def scale_registered():
    plugin = RegistersScale()
    sphere_plugins.register(plugin, name="registers-scale")
    yield
    sphere_plugins.unregister(plugin)


def test_extra_wrapper_submodules_and_their_buffers_are_saved(tmp_path, scale_registered):
    sae = _tiny_sae()
    sae.extra_scale = Scale(6)
    sae.extra_scale.mean += torch.arange(6.0)
    sae.save_pretrained(tmp_path)
    assert (tmp_path / "wrapper_state.safetensors").is_file()
    assert json.loads((tmp_path / "sphere_model.json").read_text())["extra_modules"]["extra_scale"]["class"] == "Scale"
    loaded = load_model(tmp_path)
    assert torch.equal(loaded.extra_scale.mean, torch.arange(6.0))


def test_a_submodule_of_an_unregistered_class_is_refused_before_writing(tmp_path):
    sae = _tiny_sae()
    sae.extra_scale = Scale(6)
    with pytest.raises(ValueError, match="Scale cannot be saved: its class is not registered.*"
                                         "sphere_register_saved_modules"):
        sae.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["vmf", "gmm"])
def test_a_fitted_prior_and_latent_noise_survive_save_and_load(tmp_path, kind):
    sae = wrap_autoencoder(load_model("builtin:tiny-ae"), latent_noise=0.1)
    codes = torch.randn(64, 10)
    sae.fit_prior(codes, kind=kind, components=2, seed=0)
    sae.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.latent_noise == 0.1
    assert loaded.fitted_prior.config() == sae.fitted_prior.config()
    expected = sae.sample(5, prior="fitted", generator=torch.Generator().manual_seed(1))
    got = loaded.sample(5, prior="fitted", generator=torch.Generator().manual_seed(1))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("named", ["os:system", "sphere_plugins.__main__:X",
                                   "sphere_plugins.fitted_prior:FittedSpherePrior"])
def test_an_extra_module_class_is_looked_up_among_registered_names_never_imported(tmp_path, named, monkeypatch):
    import sys

    sae = _tiny_sae()
    sae.save_pretrained(tmp_path)
    record = json.loads((tmp_path / "sphere_model.json").read_text())
    record["extra_modules"] = {"evil": {"class": named, "config": {}}}
    (tmp_path / "sphere_model.json").write_text(json.dumps(record))
    monkeypatch.delitem(sys.modules, "sphere_plugins.__main__", raising=False)
    with pytest.raises(SavedFolderError, match=r"field 'extra_modules.evil.class': .* is not registered for saving; "
                                               "registered: FittedSpherePrior"):
        load_model(tmp_path)
    assert "sphere_plugins.__main__" not in sys.modules


def test_torch_save_of_a_wrapper_points_to_save_pretrained(tmp_path):
    sae = _tiny_sae()
    with pytest.raises(TypeError, match="save_pretrained"):
        torch.save(sae, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="save_pretrained"):
        pickle.dumps(wrap_generator(load_model("builtin:tiny-ae")))


def test_deepcopy_of_a_wrapper_still_works():
    import copy

    sae = _tiny_sae()
    twin = copy.deepcopy(sae)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.equal(twin.encode(x), sae.encode(x))
    assert twin.model is not sae.model


def test_a_model_no_plugin_can_save_is_refused_before_writing_settings(tmp_path):
    class Plain(nn.Module):
        z_dim = 4

        def forward(self, z):
            return z.view(-1, 1, 2, 2)

    with pytest.raises(ValueError, match="no plugin can save a model of type"):
        wrap_generator(Plain()).save_pretrained(tmp_path)
    assert not (tmp_path / "sphere_model.json").exists()


def test_a_pkl_path_is_inferred_as_stylegan2(tmp_path):
    from sphere_stylegan2.loader import save_nvlabs_pickle

    G = load_model("stylegan2:tiny", seed=0)
    save_nvlabs_pickle(tmp_path / "g.pkl", G_ema=G)
    loaded = load_model(tmp_path / "g.pkl")
    z = torch.randn(2, G.z_dim)
    assert torch.equal(loaded(z, None), G(z, None))


def test_an_unrecognized_path_lists_the_schemes(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"no scheme recognizes it.*builtin \(e\.g\."):
        load_model(tmp_path / "notes.txt")


def test_a_path_two_schemes_recognize_is_ambiguous(tmp_path):
    import sphere_plugins
    from sphere_plugins import hookimpl
    from sphere_plugins import ModelScheme

    class Greedy:
        @hookimpl
        def sphere_model_schemes(self):
            return [ModelScheme("greedy", ("generator",), "greedy:PATH", example="greedy:x", recognizes=lambda path: True)]

    (tmp_path / "g.pkl").write_bytes(b"")
    plugin = Greedy()
    sphere_plugins.register(plugin, name="greedy")
    try:
        with pytest.raises(ValueError, match="ambiguous: schemes .*greedy"):
            load_model(tmp_path / "g.pkl")
    finally:
        sphere_plugins.unregister(plugin)


def test_list_schemes_comes_from_the_plugins_hooks():
    from sphere_plugins import list_schemes

    schemes = {s.name: s for s in list_schemes()}
    assert schemes["builtin"].defaults == {"channels": 1, "resolution": 16, "z_dim": 10, "width": 32}
    assert schemes["builtin"].plugin == "sphere_plugins.module_adapters"
    assert all(s.example.startswith(f"{s.name}:") for s in schemes.values())
    assert [s.name for s in list_schemes("b*")] == ["builtin"]


def test_saved_folders_are_a_built_in_scheme_served_through_the_hooks(tmp_path):
    from sphere_plugins import list_schemes, save_model

    saved = {s.name: s for s in list_schemes()}["saved"]
    assert saved.plugin == "sphere_plugins.saving" and saved.kinds == ()
    sae = wrap_autoencoder(ConvAutoencoder(z_dim=6), prior="chi2")
    assert save_model(sae, tmp_path / "sae") == "saved"
    assert saved.recognizes(tmp_path / "sae") and not saved.recognizes(tmp_path / "sae" / "model")
    loaded = load_model(f"saved:{tmp_path / 'sae'}")
    assert isinstance(loaded, SphericalAutoencoder) and loaded.prior == "chi2"


def test_saving_into_a_new_folder_that_fails_leaves_no_folder(tmp_path):
    from sphere_plugins import save_model

    with pytest.raises(ValueError, match="no plugin can save a model of type builtins.object"):
        save_model(object(), tmp_path / "new" / "folder")
    assert not (tmp_path / "new" / "folder").exists()


def test_loaded_wrappers_and_models_come_back_in_eval_mode(tmp_path):
    sae = wrap_autoencoder(ConvAutoencoder(z_dim=6, width=8))
    assert sae.training
    sae.save_pretrained(tmp_path / "sae")
    loaded = load_model(tmp_path / "sae")
    assert not loaded.training and not any(m.training for m in loaded.modules())
    assert not load_model("builtin:tiny-ae").training
