"""The stylegan2 plugin through the core API: load_model specs, wrap_generator, priors, options."""

import math

import pytest
import torch
from torch import nn

from sphere_plugins import MissingWeightsError, list_priors, load_model, wrap_generator
from sphere_plugins.plugins import get_plugin_manager
from sphere_stylegan2 import Generator, plugin
from sphere_stylegan2.loader import save_network, save_nvlabs_pickle

TINY = dict(resolution=8, channels=1, z_dim=16, w_dim=16, channel_max=8)


def _snapshot(tmp_path, **options):
    G = load_model("stylegan2:tiny", **{**TINY, **options, "seed": 0})
    with torch.no_grad():
        G.mapping.w_avg.normal_(generator=torch.Generator().manual_seed(1))
    return G, save_nvlabs_pickle(tmp_path / "snapshot.pkl", G=G, G_ema=G)


def test_the_plugin_is_discovered_through_its_entry_point():
    assert get_plugin_manager().get_plugin("stylegan2") is plugin


def test_tiny_spec_builds_a_small_random_generator_with_options():
    G = load_model("stylegan2:tiny", resolution=16, channels=3, z_dim=32)
    assert isinstance(G, Generator) and not G.training
    assert G(torch.randn(2, 32)).shape == (2, 3, 16, 16)


def test_tiny_spec_refuses_unknown_options():
    with pytest.raises(ValueError, match=r"unknown tiny-config options \['width'\]"):
        load_model("stylegan2:tiny", width=3)


def test_pickle_spec_returns_g_ema(tmp_path):
    G, path = _snapshot(tmp_path)
    loaded = load_model(f"stylegan2:{path}")
    z = torch.randn(3, 16)
    assert isinstance(loaded, Generator) and torch.equal(loaded(z), G(z))


def test_folder_spec_returns_the_saved_generator(tmp_path):
    G, _ = _snapshot(tmp_path)
    folder = save_network(G, tmp_path / "saved")
    z = torch.randn(3, 16)
    assert torch.equal(load_model(f"stylegan2:{folder}")(z), G(z))


def test_missing_pickle_spec_names_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="nowhere.pkl"):
        load_model(f"stylegan2:{tmp_path / 'nowhere.pkl'}")


def test_other_schemes_are_left_to_other_plugins():
    assert plugin.sphere_load_model("timm:resnet18", {}) is None
    assert plugin.sphere_adapt_generator(nn.Linear(2, 2), {}) is None


def test_adapter_declares_z_shape_and_radius_sqrt_z_dim(tmp_path):
    _, path = _snapshot(tmp_path)
    wrapped = wrap_generator(load_model(f"stylegan2:{path}"))
    assert wrapped.z_shape == (16,) and wrapped.adapter.radius == math.sqrt(16)


@torch.no_grad()
@pytest.mark.parametrize("prior", list_priors())
def test_wrapped_loaded_generator_samples_every_registered_prior(tmp_path, prior):
    _, path = _snapshot(tmp_path)
    wrapped = wrap_generator(load_model(f"stylegan2:{path}"))
    images = wrapped.sample(3, prior=prior, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 8, 8) and torch.isfinite(images).all()
    z = wrapped.latents(3, prior=prior, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.norm(dim=1), torch.full((3,), 4.0))


@torch.no_grad()
def test_spherizing_without_centering_changes_nothing_on_a_stock_generator(tmp_path):
    G, _ = _snapshot(tmp_path)
    z = torch.randn(4, 16) * 3 + 0.5
    torch.testing.assert_close(wrap_generator(G, spherize=True, center=False)(z), G(z), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_centering_changes_the_output_of_a_stock_generator(tmp_path):
    G, _ = _snapshot(tmp_path)
    z = torch.randn(4, 16) + 1.0
    assert not torch.allclose(wrap_generator(G)(z), G(z), atol=1e-3)


@torch.no_grad()
def test_normalize_z_false_feeds_raw_latents_and_changes_the_output(tmp_path):
    G, _ = _snapshot(tmp_path)
    z = torch.randn(4, 16) * 3
    raw = wrap_generator(G, spherize=False, center=False, options={"normalize_z": False})
    assert not torch.allclose(raw(z), G(z), atol=1e-3)
    torch.testing.assert_close(raw(z / z.square().mean(dim=1, keepdim=True).sqrt()), G(z),
                               rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_normalize_z_false_does_not_change_the_users_module(tmp_path):
    G, _ = _snapshot(tmp_path)
    z = torch.randn(2, 16) * 3
    before = G(z)
    wrap_generator(G, spherize=False, center=False, options={"normalize_z": False})(z)
    assert G.mapping.normalize_z is True and torch.equal(G(z), before)


@torch.no_grad()
def test_truncation_and_noise_mode_pass_through_the_wrapper(tmp_path):
    G, _ = _snapshot(tmp_path)
    z = torch.randn(3, 16)
    wrapped = wrap_generator(G, spherize=False, center=False)
    assert torch.equal(wrapped(z, truncation_psi=0.7, truncation_cutoff=2, noise_mode="none"),
                       G(z, truncation_psi=0.7, truncation_cutoff=2, noise_mode="none"))


@torch.no_grad()
def test_class_labels_pass_through_for_a_conditional_generator(tmp_path):
    G, _ = _snapshot(tmp_path, c_dim=3)
    z = torch.randn(2, 16)
    c = torch.tensor([2, 0])
    assert torch.equal(wrap_generator(G, spherize=False, center=False)(z, c=c), G(z, c))


def test_conditional_generator_without_labels_raises_a_clear_error(tmp_path):
    G, _ = _snapshot(tmp_path, c_dim=3)
    with pytest.raises(ValueError, match=r"c must be given for this conditional network"):
        wrap_generator(G).sample(2)


def test_latents_of_the_wrong_width_are_refused(tmp_path):
    G, _ = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"z must have shape \[N, 16\]"):
        wrap_generator(G)(torch.randn(2, 15))


def test_nan_latents_are_refused(tmp_path):
    G, _ = _snapshot(tmp_path)
    z = torch.randn(2, 16)
    z[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        wrap_generator(G)(z)


class _NVlabsStyleG(nn.Module):
    """A generator shaped like NVlabs' own (a different class with mapping, synthesis and z_dim)."""

    def __init__(self, inner):
        super().__init__()
        self.z_dim, self.c_dim = inner.z_dim, inner.c_dim
        self.mapping, self.synthesis = nn.Sequential(), inner.synthesis
        self.inner_mapping = inner.mapping
        self.mapping.forward = lambda z, c, truncation_psi=1, truncation_cutoff=None: self.inner_mapping(
            z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


@torch.no_grad()
def test_duck_typed_nvlabs_generator_is_adapted(tmp_path):
    G, _ = _snapshot(tmp_path)
    other = _NVlabsStyleG(G)
    z = torch.randn(2, 16) * 2
    torch.testing.assert_close(wrap_generator(other, center=False)(z), G(z), rtol=1e-5, atol=1e-5)


def test_normalize_z_false_on_a_foreign_generator_explains_what_to_do(tmp_path):
    G, _ = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="normalize_z.*load_network"):
        wrap_generator(_NVlabsStyleG(G), options={"normalize_z": False})


def test_an_unknown_adapter_option_is_named_with_the_accepted_ones():
    from sphere_plugins import load_model

    G = load_model("stylegan2:tiny", resolution=8, channels=1, z_dim=8, w_dim=8)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['normalise_z'\].*z_shape, normalize_z"):
        wrap_generator(G, options={"normalise_z": False})
def test_sample_generator_seeds_noise_mode_random_too():
    G = load_model("stylegan2:tiny", seed=0)
    with torch.no_grad():
        for name, parameter in G.named_parameters():
            if name.endswith("noise_strength"):  # zero at init: make the random noise show in the images
                parameter.fill_(0.5)
    gen = wrap_generator(G)
    draws = [gen.sample(2, generator=torch.Generator().manual_seed(3), model_kwargs={"noise_mode": "random"})
             for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    other = gen.sample(2, generator=torch.Generator().manual_seed(4), model_kwargs={"noise_mode": "random"})
    assert not torch.equal(draws[0], other)


def test_one_class_label_applies_to_the_whole_batch():
    G = load_model("stylegan2:tiny", seed=0, c_dim=4)
    gen = wrap_generator(G)
    z = torch.randn(3, G.z_dim)
    expected = gen(z, c=torch.tensor([2, 2, 2]))
    assert torch.equal(gen(z, c=torch.tensor([2])), expected)
    assert torch.equal(gen(z, c=2), expected)
    assert torch.equal(gen(z, c=torch.nn.functional.one_hot(torch.tensor([2]), 4).float()), expected)
    path = gen.interpolate(z[0], z[1], steps=3, c=torch.tensor([2]))
    assert path.shape[0] == 3
